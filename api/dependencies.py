"""Request dependencies: the provider, the settings and the parsed query parameters.

Query parameters are parsed here rather than declared to FastAPI so that every invalid or
unknown parameter gives an OGC exception with status 400 (never FastAPI's 422), ``limit`` is
clamped rather than refused, and the OpenAPI document declares the parameters exactly as
OGC API - Features Part 1 does (see the ``*_PARAMETER`` objects, added with ``openapi_extra``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from api.errors import InvalidParameterError
from api.provider import BBox, Provider
from api.settings import Settings

JSON_FORMATS = ("json",)
GEOJSON_FORMATS = ("json", "geojson")

_INTEGER = re.compile(r"[+-]?\d{1,12}")
_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?)?"
)
_OPEN = ("", "..")


def format_parameter(formats: tuple[str, ...] = JSON_FORMATS) -> dict[str, Any]:
    """Return the OpenAPI parameter object of ``f`` (the response format)."""
    return {
        "name": "f",
        "in": "query",
        "required": False,
        "description": f"The response format ({', '.join(formats)}); the default is the first.",
        "schema": {"type": "string", "enum": list(formats)},
        "style": "form",
        "explode": False,
    }


#: OpenAPI parameter objects of the items query; ``limit`` bounds are set per app.
LIMIT_PARAMETER: dict[str, Any] = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": (
        "The largest number of features in the response. Values beyond the allowed range "
        "are clamped to it."
    ),
    "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
    "style": "form",
    "explode": False,
}
OFFSET_PARAMETER: dict[str, Any] = {
    "name": "offset",
    "in": "query",
    "required": False,
    "description": "Number of matching features to skip (the next links use it).",
    "schema": {"type": "integer", "minimum": 0, "default": 0},
    "style": "form",
    "explode": False,
}
BBOX_PARAMETER: dict[str, Any] = {
    "name": "bbox",
    "in": "query",
    "required": False,
    "description": (
        "Only features whose geometry intersects the bounding box: lower left corner, upper "
        "right corner, in CRS84 (longitude, latitude), as 4 numbers (or 6 with heights, "
        "which are ignored). A first longitude larger than the second crosses the antimeridian."
    ),
    "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
    "style": "form",
    "explode": False,
}
DATETIME_PARAMETER: dict[str, Any] = {
    "name": "datetime",
    "in": "query",
    "required": False,
    "description": (
        "An RFC 3339 date-time or interval (open ends as '..'). These collections have no "
        "temporal dimension: any valid value selects every feature."
    ),
    "schema": {"type": "string"},
    "style": "form",
    "explode": False,
}
ITEMS_PARAMETERS = [LIMIT_PARAMETER, OFFSET_PARAMETER, BBOX_PARAMETER, DATETIME_PARAMETER]


def get_provider(request: Request) -> Provider:
    """Return the provider the app was made with."""
    provider: Provider = request.app.state.provider
    return provider


def get_settings(request: Request) -> Settings:
    """Return the settings the app was made with."""
    settings: Settings = request.app.state.settings
    return settings


def base_url(request: Request) -> str:
    """Return the absolute URL of the landing page, without the trailing slash."""
    return str(request.base_url).rstrip("/")


def check_query(request: Request, names: tuple[str, ...], formats: tuple[str, ...]) -> None:
    """Refuse unknown or repeated query parameters and an unsupported ``f``.

    Raises
    ------
    api.errors.InvalidParameterError
        For the first problem found.

    """
    allowed = {"f", *names}
    keys = [key for key, _ in request.query_params.multi_items()]
    for key in keys:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            msg = f"unknown query parameter '{key}'; this resource accepts: {known}"
            raise InvalidParameterError(msg)
        if keys.count(key) > 1:
            raise InvalidParameterError(f"query parameter '{key}' is given more than once")
    fmt = request.query_params.get("f")
    if fmt is not None and fmt not in formats:
        msg = f"unsupported format f={fmt}; supported: {', '.join(formats)}"
        raise InvalidParameterError(msg)


def query_checker(
    *names: str, formats: tuple[str, ...] = JSON_FORMATS
) -> Callable[[Request], None]:
    """Return a dependency accepting only the query parameters ``names`` and ``f``.

    Parameters
    ----------
    *names
        Accepted parameter names besides ``f``.
    formats
        Accepted values of ``f``.

    Returns
    -------
    callable
        A FastAPI dependency.

    """

    def dependency(request: Request) -> None:
        check_query(request, names, formats)

    return dependency


@dataclass(frozen=True)
class ItemsQuery:
    """Parsed query of ``/collections/{collectionId}/items``.

    Attributes
    ----------
    limit
        Page size, clamped to ``1..max_limit``.
    offset
        Matching features skipped.
    bbox
        CRS84 box ``(min lon, min lat, max lon, max lat)`` or None.
    bbox_text, datetime_text, format
        The ``bbox``, ``datetime`` and ``f`` values as given, repeated in the links.

    """

    limit: int
    offset: int
    bbox: BBox | None
    bbox_text: str | None
    datetime_text: str | None
    format: str | None


def items_query(request: Request) -> ItemsQuery:
    """Parse and check the query of an items request (a FastAPI dependency).

    Raises
    ------
    api.errors.InvalidParameterError
        If a parameter is unknown, repeated or invalid.

    """
    settings = get_settings(request)
    check_query(request, ("limit", "offset", "bbox", "datetime"), GEOJSON_FORMATS)
    params = request.query_params
    limit = settings.default_limit
    if "limit" in params:
        limit = min(max(_integer(params["limit"], "limit"), 1), settings.max_limit)
    offset = 0
    if "offset" in params:
        offset = _integer(params["offset"], "offset")
        if offset < 0:
            raise InvalidParameterError(f"offset must be 0 or more, not {offset}")
    bbox_text = params.get("bbox")
    bbox = parse_bbox(bbox_text) if bbox_text is not None else None
    datetime_text = params.get("datetime")
    if datetime_text is not None:
        parse_datetime(datetime_text)
    return ItemsQuery(limit, offset, bbox, bbox_text, datetime_text, params.get("f"))


def _integer(text: str, name: str) -> int:
    if not _INTEGER.fullmatch(text.strip()):
        raise InvalidParameterError(f"{name} must be an integer, not '{text}'")
    return int(text)


def parse_bbox(text: str) -> BBox:
    """Parse a ``bbox`` value: 4 (or 6, heights ignored) comma-separated CRS84 numbers.

    Parameters
    ----------
    text
        ``minlon,minlat,maxlon,maxlat`` or ``minlon,minlat,minh,maxlon,maxlat,maxh``.

    Returns
    -------
    tuple of float
        ``(min lon, min lat, max lon, max lat)``.

    Raises
    ------
    api.errors.InvalidParameterError
        If the value is not 4 or 6 finite numbers, a latitude is outside -90..90, a longitude
        outside -180..180, or the minimum latitude exceeds the maximum.

    """
    parts = text.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6) or not all(n == n and abs(n) != float("inf") for n in numbers):
        msg = f"bbox must be 4 (or 6) comma-separated numbers in CRS84, not '{text}'"
        raise InvalidParameterError(msg)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if not (-90 <= miny <= 90 and -90 <= maxy <= 90):
        raise InvalidParameterError(f"bbox latitudes must be within -90..90: '{text}'")
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180):
        raise InvalidParameterError(f"bbox longitudes must be within -180..180: '{text}'")
    if miny > maxy:
        msg = f"bbox minimum latitude exceeds the maximum: '{text}'"
        raise InvalidParameterError(msg)
    return (minx, miny, maxx, maxy)


def parse_datetime(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse a ``datetime`` value: an RFC 3339 instant or an interval ``start/end``.

    Dates count as midnight UTC and date-times without an offset as UTC; ``..`` or an empty
    string is an open end.

    Parameters
    ----------
    text
        The parameter value.

    Returns
    -------
    tuple
        ``(start, end)`` as aware datetimes, None for an open end; an instant gives
        ``start == end``.

    Raises
    ------
    api.errors.InvalidParameterError
        If the value is not an instant or interval, or the interval ends before it starts.

    """
    parts = text.split("/")
    if len(parts) == 1:
        instant = _instant(text, text)
        return instant, instant
    if len(parts) != 2:
        raise InvalidParameterError(f"datetime must be an instant or start/end, not '{text}'")
    start = None if parts[0] in _OPEN else _instant(parts[0], text)
    end = None if parts[1] in _OPEN else _instant(parts[1], text)
    if start is not None and end is not None and start > end:
        raise InvalidParameterError(f"datetime interval ends before it starts: '{text}'")
    return start, end


def _instant(part: str, text: str) -> dt.datetime:
    msg = f"datetime is not an RFC 3339 date-time, date or interval: '{text}'"
    if not _INSTANT.fullmatch(part):
        raise InvalidParameterError(msg)
    try:
        value = dt.datetime.fromisoformat(part.upper().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterError(msg) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
