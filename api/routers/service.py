"""Service routes: the API definition (``/api``), its HTML rendering, ``/cities``, ``/healthz``.

``/api`` serves the OpenAPI 3.0 document and ``/api.html`` a plain HTML page listing the
operations (no scripts, nothing fetched from a CDN); ``f=json`` or ``f=html`` picks either
representation on both paths.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.dependencies import (
    JSON_HTML_FORMATS,
    ProviderDep,
    base_url,
    format_parameter,
    get_settings,
    query_checker,
    wants_html,
)
from api.models import Cities, Health
from api.openapi import HTTP_METHODS
from api.provider import WORLD, Provider
from api.responses import HTML, JSON, OPENAPI_JSON, OpenAPIResponse, html_page
from api.routers.features import BAD_REQUEST, SERVER_ERROR, link, root_url

router = APIRouter()


_DEFINITION_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "The API definition (OpenAPI 3.0) or its HTML rendering.",
        "content": {
            OPENAPI_JSON: {"schema": {"type": "object"}},
            HTML: {"schema": {"type": "string"}},
        },
    },
    400: BAD_REQUEST,
    500: SERVER_ERROR,
}


def city_slugs(providers: Sequence[Provider]) -> dict[str, Provider]:
    """Return the builds served by city id: a slug of the city name, unique among them.

    The slug is the name in lower-case ASCII with every run of other characters a ``-``
    (``Greater Manchester`` is ``greater-manchester``); a repeated slug gets ``-2``, ``-3``...

    Parameters
    ----------
    providers
        The builds served, in order.

    Returns
    -------
    dict
        City id -> provider, in the order given.

    """
    out: dict[str, Provider] = {}
    for provider in providers:
        ascii_name = (
            unicodedata.normalize("NFKD", provider.info.city).encode("ascii", "ignore").decode()
        )
        slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "city"
        unique, n = slug, 1
        while unique in out:
            n += 1
            unique = f"{slug}-{n}"
        out[unique] = provider
    return out


def _extent(provider: Provider) -> list[float]:
    """Return the union of the extents of a build's collections (CRS84)."""
    boxes = [c.bbox for c in provider.collections() if c.bbox != WORLD]
    if not boxes:
        return list(WORLD)
    out = [min(b[0] for b in boxes), min(b[1] for b in boxes)]
    out += [max(b[2] for b in boxes), max(b[3] for b in boxes)]
    return [v if math.isfinite(v) else 0.0 for v in out]


@router.get(
    "/cities",
    summary="Cities served",
    description=(
        "Every build this service serves, one per city: id (a slug of the city name), name, "
        "href of its landing page and bbox (CRS84). Each city's full API lives under "
        "/cities/{cityId}/ with the same paths as at the root (/collections, "
        "/collections/{collectionId}/items, .../diagnosis, tiles...); the first city is also "
        "served at the root. With one build, the list has one city."
    ),
    operation_id="getCities",
    tags=["Capabilities"],
    response_model=None,
    responses={
        200: {
            "model": Cities,
            "description": "The cities.",
            "content": {HTML: {"schema": {"type": "string"}}},
        },
        400: BAD_REQUEST,
        500: SERVER_ERROR,
    },
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra={"parameters": [format_parameter(JSON_HTML_FORMATS)]},
)
def cities(request: Request) -> Response:
    """Return the list of cities served."""
    root = root_url(request)
    served: dict[str, Provider] = request.app.state.cities
    listed = [
        {
            "id": city_id,
            "name": provider.info.city,
            "href": f"{root}/cities/{city_id}/",
            "bbox": _extent(provider),
            "build_id": provider.info.build_id,
        }
        for city_id, provider in served.items()
    ]
    doc = {"links": [link(f"{root}/cities", "self", JSON, "This document")], "cities": listed}
    if wants_html(request):
        rows = [{**c, "href": {"href": c["href"], "title": c["href"]}} for c in listed]
        return html_page("Cities", {**doc, "cities": rows}, home=base_url(request))
    return JSONResponse(doc)


def _definition(request: Request) -> OpenAPIResponse:
    document: dict[str, Any] = request.app.openapi()
    prefix: str = getattr(request.app.state, "prefix", "")
    configured = get_settings(request).base_url
    public = configured + prefix if configured else request.scope.get("root_path")
    if public:
        document = {**document, "servers": [{"url": public}]}
    return OpenAPIResponse(document)


def _documentation(request: Request) -> HTMLResponse:
    document: dict[str, Any] = request.app.openapi()
    base = base_url(request)
    esc = html.escape
    rows = []
    for path, path_item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if not operation:
                continue
            shown = esc(path)
            if method == "get" and "{" not in path:
                shown = f'<a href="{esc(base + path)}">{shown}</a>'
            params = ", ".join(
                esc(p["name"]) for p in operation.get("parameters", []) if p.get("in") == "query"
            )
            rows.append(
                f"<tr><td>{method.upper()}</td><td><code>{shown}</code></td>"
                f"<td>{esc(operation.get('summary', ''))}</td><td>{params}</td>"
                f"<td>{esc(operation.get('description', ''))}</td></tr>"
            )
    title = esc(document["info"]["title"])
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}: API</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border-bottom:1px solid #ccc;
padding:.3em .6em;text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style>
</head>
<body>
<h1>{title}</h1>
<p>{esc(document["info"].get("description", ""))}</p>
<p>OGC API - Features Part 1. Machine-readable definition:
<a href="{esc(base)}/api">{esc(base)}/api</a> (OpenAPI 3.0).</p>
<table>
<tr><th>Method</th><th>Path</th><th>Summary</th><th>Query parameters</th><th>Description</th></tr>
{chr(10).join(rows)}
</table>
</body>
</html>
"""
    return HTMLResponse(page)


@router.get(
    "/api",
    summary="API definition",
    description="This OpenAPI 3.0 document (f=html: the HTML page of /api.html).",
    operation_id="getApi",
    tags=["Capabilities"],
    response_class=OpenAPIResponse,
    response_model=None,
    responses=_DEFINITION_RESPONSES,
    dependencies=[Depends(query_checker(formats=("json", "html")))],
    openapi_extra={"parameters": [format_parameter(("json", "html"))]},
)
def api_definition(request: Request) -> Response:
    """Return the OpenAPI 3.0 document."""
    if request.query_params.get("f") == "html":
        return _documentation(request)
    return _definition(request)


@router.get(
    "/api.html",
    summary="API documentation",
    description="The operations of this API as a plain HTML page (f=json: the OpenAPI document).",
    operation_id="getApiDocumentation",
    tags=["Capabilities"],
    response_class=HTMLResponse,
    response_model=None,
    responses=_DEFINITION_RESPONSES,
    dependencies=[Depends(query_checker(formats=("html", "json")))],
    openapi_extra={"parameters": [format_parameter(("html", "json"))]},
)
def api_documentation(request: Request) -> Response:
    """Return a plain HTML page listing the operations of the API."""
    if request.query_params.get("f") == "json":
        return _definition(request)
    return _documentation(request)


@router.get(
    "/healthz",
    summary="Health",
    description="The build being served and the number of features per collection.",
    operation_id="getHealth",
    tags=["Service"],
    response_model=None,
    responses={
        200: {"model": Health, "description": "The service is up."},
        400: BAD_REQUEST,
        500: SERVER_ERROR,
    },
    dependencies=[Depends(query_checker())],
    openapi_extra={"parameters": [format_parameter()]},
)
def health(provider: ProviderDep) -> JSONResponse:
    """Return the service health."""
    info = provider.info
    return JSONResponse(
        {
            "status": "ok",
            "build_id": info.build_id,
            "city": info.city,
            "finished": info.finished,
            "collections": {c.id: c.count for c in provider.collections()},
        }
    )
