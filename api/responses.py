"""Response classes with the media types OGC API - Features asks for, and the HTML views."""

from __future__ import annotations

import html
import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse

GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
JSON = "application/json"
HTML = "text/html"


class RawGeoJSONResponse(JSONResponse):
    """A GeoJSON response whose body is given as ready-made bytes.

    A :class:`~fastapi.responses.JSONResponse`, so that FastAPI documents its body with the
    route's JSON schema (not as a string); bytes are sent as they are, anything else is
    serialised as JSON.
    """

    media_type = GEOJSON

    def render(self, content: Any) -> bytes:
        """Return the body: ``content`` itself when it is bytes."""
        return content if isinstance(content, bytes) else super().render(content)


#: gzip member header: magic, deflate, no flags, no time, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: The last, empty, block of a deflate stream.
_FINAL_BLOCK = b"\x03\x00"
#: zlib level of the pre-compressed features (zlib's default balance).
GZIP_LEVEL = 6


def _deflate(data: bytes) -> bytes:
    """Return ``data`` as deflate blocks that can be followed by other such blocks.

    A fresh compressor refers back only inside ``data``, and a full flush ends its blocks on a
    byte boundary without the final-block flag: the outputs of several calls, one after the
    other and closed by :data:`_FINAL_BLOCK`, are one valid deflate stream (RFC 1951).
    """
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


_COMMA = _deflate(b",")


class GzipPages:
    """Gzip pages of features, each feature compressed once and reused in every page.

    Compressing a page of 100 grid features (about 270 kB of GeoJSON with the indicators,
    indices and hotspot attributes) takes about 7 ms; joining ready-made deflate blocks and
    computing the CRC-32 takes a tenth of that. The features are the provider's pre-serialised
    bytes, which live as long as the application, so their blocks are kept by identity.
    """

    def __init__(self) -> None:
        self._blocks: dict[int, tuple[bytes, bytes]] = {}

    def _block(self, feature: bytes) -> bytes:
        hit = self._blocks.get(id(feature))
        if hit is not None and hit[0] is feature:
            return hit[1]
        block = _deflate(feature)
        self._blocks[id(feature)] = (feature, block)
        return block

    def page(self, head: bytes, features: Sequence[bytes], tail: bytes) -> bytes:
        """Return the gzip body of ``head``, the features joined by commas, and ``tail``."""
        parts = [_GZIP_HEADER, _deflate(head)]
        crc, size = zlib.crc32(head), len(head)
        for i, feature in enumerate(features):
            if i:
                parts.append(_COMMA)
                crc, size = zlib.crc32(b",", crc), size + 1
            parts.append(self._block(feature))
            crc, size = zlib.crc32(feature, crc), size + len(feature)
        parts += [_deflate(tail), _FINAL_BLOCK]
        crc, size = zlib.crc32(tail, crc), size + len(tail)
        parts.append(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
        return b"".join(parts)


def accepts_gzip(headers: Any) -> bool:
    """Return whether a request's ``Accept-Encoding`` allows gzip (a q of 0 refuses it)."""
    for part in headers.get("accept-encoding", "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return False
    return False


class OpenAPIResponse(JSONResponse):
    """The OpenAPI 3.0 document, as ``application/vnd.oai.openapi+json;version=3.0``."""

    media_type = OPENAPI_JSON


PROBLEM_JSON = "application/problem+json"
CSV = "text/csv; charset=utf-8"
GPKG = "application/geopackage+sqlite3"

#: ``Cache-Control`` of responses that change only with the build (diagnoses, tiles).
BUILD_CACHE_CONTROL = "public, max-age=3600"


def build_etag(build_id: str) -> str:
    """Return the ``ETag`` of a response that changes only with the build: its quoted id."""
    return '"' + build_id.replace('"', "") + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Return whether an ``If-None-Match`` header matches ``etag`` (weak comparison)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:80em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.2em .5em;
text-align:left;vertical-align:top;font-size:.9em}}th{{background:#f3f3f3}}
dl{{margin:.3em 0 .3em 1em}}dt{{font-weight:bold;margin-top:.3em}}dd{{margin-left:1.5em}}
.null{{color:#999;font-style:italic}}nav{{font-size:.9em;margin-bottom:1em}}</style>
</head>
<body>
<nav>{nav}</nav>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def _cell(value: Any, depth: int) -> str:
    esc = html.escape
    if value is None:
        return '<span class="null">null</span>'
    if isinstance(value, dict):
        if "href" in value:
            text = value.get("title") or value.get("rel") or value["href"]
            return f'<a href="{esc(str(value["href"]))}">{esc(str(text))}</a>'
        if depth > 4:
            return esc(json.dumps(value, ensure_ascii=False)[:500])
        rows = "".join(
            f"<dt>{esc(str(k))}</dt><dd>{_cell(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f"<dl>{rows}</dl>"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value) and depth <= 4:
            if all("href" in v for v in value):
                items = "".join(
                    f"<li>{_cell(v, depth + 1)}"
                    + f" <small>({esc(str(v.get('rel', '')))}, "
                    + f"{esc(str(v.get('type', '')))})</small>"
                    + "</li>"
                    for v in value
                )
                return f"<ul>{items}</ul>"
            keys: list[str] = []
            for v in value:
                keys += [str(k) for k in v if str(k) not in keys]
            head = "".join(f"<th>{esc(k)}</th>" for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{_cell(v.get(k), depth + 1)}</td>" for k in keys) + "</tr>"
                for v in value
            )
            return f"<table><tr>{head}</tr>{body}</table>"
        return esc(
            ", ".join(
                json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v for v in value
            )
        )
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return f'<a href="{esc(value)}">{esc(value)}</a>'
    return esc(str(value))


def html_page(title: str, document: dict[str, Any], *, home: str | None = None) -> HTMLResponse:
    """Return a plain HTML view of a JSON document (no script, nothing fetched elsewhere).

    The ``description`` is a paragraph, ``links`` a list of anchors, and every other key a
    section: objects become definition lists, lists of objects tables, link objects and URLs
    anchors.

    Parameters
    ----------
    title
        Page title.
    document
        The JSON document the view shows.
    home
        URL of the landing page, linked from the top of the page.

    Returns
    -------
    fastapi.responses.HTMLResponse

    """
    esc = html.escape
    parts = []
    if document.get("description"):
        parts.append(f"<p>{esc(str(document['description']))}</p>")
    if document.get("links"):
        parts.append(f"<h2>Links</h2>{_cell(document['links'], 0)}")
    for key, value in document.items():
        if key in ("description", "links", "title"):
            continue
        parts.append(f"<h2>{esc(key)}</h2>{_cell(value, 0)}")
    pages = (("/", "Home"), ("/collections", "Collections"), ("/api.html", "API"))
    nav = " · ".join(f'<a href="{esc(home)}{p}">{n}</a>' for p, n in pages) if home else ""
    return HTMLResponse(_PAGE.format(title=esc(title), nav=nav, body="\n".join(parts)))
