"""Request dependencies: the provider, the settings and the parsed query parameters.

Query parameters are parsed here rather than declared to FastAPI so that every invalid or
unknown parameter gives an OGC exception with status 400 (never FastAPI's 422), ``limit`` above
the largest page size is clamped rather than refused, and the OpenAPI document declares the
parameters exactly as the server reads them (the ``*_PARAMETER`` objects, added with
``openapi_extra``): what the document allows is accepted, what it does not is refused.
Constraints between the numbers of one value that OpenAPI 3.0 cannot express (a ``bbox`` whose
south edge lies north of its north edge, a ``datetime`` interval that ends before it starts) are
stated in the parameter's description and refused with 400.

Property filters (``name=value``), ``sortby`` and ``properties`` are typed from the collection's
catalogue columns (:func:`queryables`): the OpenAPI document declares them on each collection's
own items path, and the items query checks them against the collection asked for.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from api.errors import InvalidParameterError
from api.provider import BBox, CollectionInfo, PropertyFilter, Provider, Selection, SortKey
from api.settings import Settings
from geo_usm.catalog import Column

JSON_FORMATS = ("json",)
GEOJSON_FORMATS = ("json", "geojson")
#: Formats of a JSON resource that also has an HTML view.
JSON_HTML_FORMATS = ("json", "html")
#: Formats of the items of a collection: a GeoJSON page, its HTML view, or a download of the
#: selected features (CSV with WKT geometry, GeoPackage).
ITEMS_FORMATS = ("json", "geojson", "html", "csv", "gpkg")
#: Formats of one feature.
ITEM_FORMATS = ("json", "geojson", "html")

#: Query parameters of the items request besides property filters: a property with one of
#: these names cannot be filtered on (the OGC names ``filter``, ``crs``... are kept free).
RESERVED_PARAMETERS = frozenset(
    {
        "f",
        "limit",
        "offset",
        "bbox",
        "bbox-crs",
        "datetime",
        "sortby",
        "properties",
        "filter",
        "filter-lang",
        "filter-crs",
        "crs",
        "q",
        "ids",
    }
)
#: Catalogue column types that can be filtered and sorted on, with their JSON Schema type.
QUERYABLE_TYPES = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "boolean": "boolean",
}

_INTEGER = re.compile(r"[+-]?[0-9]+")
#: Integers longer than this are saturated (a page size or offset that large means "all").
_MAX_DIGITS = 18
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# RFC 3339 dates and date-times, calendar-exact (month lengths, leap years), as Python's
# datetime reads them: years 0001-9999, no leap second, any number of fraction digits, an
# optional offset (UTC when absent), "T", "t" or a space between date and time.
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = (
    "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29"
)
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
INSTANT_PATTERN = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})(?:[Tt ]{_TIME}{_OFFSET}?)?"
#: The values ``datetime`` accepts: an instant, or an interval with at most one open end.
DATETIME_PATTERN = (
    f"^(?:{INSTANT_PATTERN}|{INSTANT_PATTERN}/{INSTANT_PATTERN}"
    f"|(?:\\.\\.)?/{INSTANT_PATTERN}|{INSTANT_PATTERN}/(?:\\.\\.)?)$"
)
_DATETIME = re.compile(DATETIME_PATTERN)
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


def limit_parameter(default_limit: int, max_limit: int) -> dict[str, Any]:
    """Return the OpenAPI parameter object of ``limit`` for the given page sizes.

    The schema has no ``maximum``: a larger value is not an error but asks for the largest
    page, which the description states.
    """
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": (
            f"The largest number of features in the response: an integer of 1 or more; "
            f"{default_limit} when absent. At most {max_limit} features are returned: larger "
            f"values are served as {max_limit} (and written so in the links)."
        ),
        "schema": {"type": "integer", "minimum": 1, "default": default_limit},
        "style": "form",
        "explode": False,
    }


OFFSET_PARAMETER: dict[str, Any] = {
    "name": "offset",
    "in": "query",
    "required": False,
    "description": (
        "Number of matching features to skip: an integer of 0 or more (the next and prev "
        "links use it). An offset beyond the last feature gives an empty page."
    ),
    "schema": {"type": "integer", "minimum": 0, "default": 0},
    "style": "form",
    "explode": False,
}
BBOX_PARAMETER: dict[str, Any] = {
    "name": "bbox",
    "in": "query",
    "required": False,
    "description": (
        "Only features whose geometry intersects the bounding box, in CRS84: 4 numbers "
        "(west longitude, south latitude, east longitude, north latitude), or 6 with a "
        "minimum height after the south latitude and a maximum height after the north "
        "latitude (heights are ignored). A west longitude larger than the east one crosses the "
        "antimeridian; longitudes outside -180..180 are taken modulo 360 and a box 360 degrees "
        "wide or more covers every longitude; latitudes beyond the poles are taken at the "
        "poles. The south latitude must not exceed the north latitude (400 otherwise)."
    ),
    "schema": {
        "type": "array",
        "items": {"type": "number"},
        "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
    },
    "style": "form",
    "explode": False,
}
DATETIME_PARAMETER: dict[str, Any] = {
    "name": "datetime",
    "in": "query",
    "required": False,
    "description": (
        "An RFC 3339 date or date-time (without offset: UTC), or an interval start/end of "
        "two of them with at most one open end ('..' or nothing), which must not end before "
        "it starts (400 otherwise). These collections have no temporal dimension: any valid "
        "value selects every feature. An empty value is refused."
    ),
    "schema": {"type": "string", "minLength": 1, "pattern": DATETIME_PATTERN},
    "style": "form",
    "explode": False,
}


#: OpenAPI parameter objects of the items query (without ``f``); :func:`api.main.create_app`
#: replaces ``limit`` by the one of its settings.
ITEMS_PARAMETERS = [
    limit_parameter(10, 10_000),
    OFFSET_PARAMETER,
    BBOX_PARAMETER,
    DATETIME_PARAMETER,
]


def sortby_parameter(info: CollectionInfo) -> dict[str, Any]:
    """Return the OpenAPI parameter object of ``sortby`` for one collection."""
    names = [c.name for c in queryables(info)]
    return {
        "name": "sortby",
        "in": "query",
        "required": False,
        "description": (
            "Order of the features (OGC API - Features Part 5): comma-separated sortable "
            "properties (see the collection's sortables), each optionally prefixed with + "
            "(ascending, the default) or - (descending), e.g. sortby=-crime_rate,unit_id. NULL "
            "values come last in either direction; the stored order breaks ties."
        ),
        "schema": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "string",
                "enum": [*names, *(f"-{n}" for n in names), *(f"+{n}" for n in names)],
            },
        },
        "style": "form",
        "explode": False,
    }


def properties_parameter(info: CollectionInfo) -> dict[str, Any]:
    """Return the OpenAPI parameter object of ``properties`` for one collection."""
    return {
        "name": "properties",
        "in": "query",
        "required": False,
        "description": (
            "Only these properties in each feature, in this order: comma-separated names of "
            "the collection's properties (the feature id and geometry are always given)."
        ),
        "schema": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(info.properties)},
        },
        "style": "form",
        "explode": False,
    }


def filter_parameters(info: CollectionInfo) -> list[dict[str, Any]]:
    """Return the OpenAPI parameter objects of the property filters of one collection."""
    out = []
    for column in queryables(info):
        title = info.titles.get(column.name)
        unit = f" ({column.unit})" if column.unit else ""
        out.append(
            {
                "name": column.name,
                "in": "query",
                "required": False,
                "description": (
                    f"Only features whose {column.name}{unit} equals this value"
                    + (f": {title}." if title else ".")
                    + " NULL values never match."
                ),
                "schema": {"type": QUERYABLE_TYPES[column.type]},
                "style": "form",
                "explode": False,
            }
        )
    return out


def queryables(info: CollectionInfo) -> list[Column]:
    """Return the columns of a collection that can be filtered and sorted on, in order.

    Every property whose catalogue type is a string, integer, float or boolean, unless its
    name is a reserved query parameter (:data:`RESERVED_PARAMETERS`).
    """
    return [
        c for c in info.columns if c.type in QUERYABLE_TYPES and c.name not in RESERVED_PARAMETERS
    ]


def get_provider(request: Request) -> Provider:
    """Return the provider the app was made with."""
    provider: Provider = request.app.state.provider
    return provider


async def _provider(request: Request) -> Provider:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hop per request
    return get_provider(request)


#: The provider as a route parameter.
ProviderDep = Annotated[Provider, Depends(_provider)]


def get_settings(request: Request) -> Settings:
    """Return the settings the app was made with."""
    settings: Settings = request.app.state.settings
    return settings


def base_url(request: Request) -> str:
    """Return the absolute URL of the landing page, without the trailing slash.

    The ``base_url`` setting when set; otherwise the request's own base URL (scheme, ``Host``
    header and ASGI ``root_path``), which a client can choose by sending another ``Host``. An
    app serving one of several cities under ``/cities/{cityId}`` (see :mod:`api.main`) adds
    that prefix, kept in ``app.state.prefix``.
    """
    prefix: str = getattr(request.app.state, "prefix", "")
    configured = get_settings(request).base_url
    if configured:
        return configured + prefix
    return str(request.base_url).rstrip("/") + prefix


def accept_quality(accept: str) -> dict[str, float]:
    """Return the q-value of each media range of an ``Accept`` header (malformed q: 0)."""
    out: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        out[media.lower()] = max(q, out.get(media.lower(), 0.0))
    return out


def wants_html(request: Request) -> bool:
    """Return whether a request asks for the HTML view of a resource.

    ``f=html`` does; another ``f`` does not; without ``f``, an ``Accept`` header naming
    ``text/html`` (or ``application/xhtml+xml``) with a q-value above 0 and at least that of
    ``application/json`` and ``application/geo+json`` does (a browser). Wildcards alone keep
    JSON, so clients sending no preference (GDAL, OWSLib, curl) get JSON.
    """
    fmt = request.query_params.get("f")
    if fmt is not None:
        return fmt == "html"
    return accepts_html(request.headers.get("accept"))


def accepts_html(accept: str | None) -> bool:
    """Return whether an ``Accept`` header prefers HTML to JSON (see :func:`wants_html`)."""
    if not accept or "html" not in accept:
        return False
    q = accept_quality(accept)
    html_q = max(q.get("text/html", 0.0), q.get("application/xhtml+xml", 0.0))
    json_q = max(q.get("application/json", 0.0), q.get("application/geo+json", 0.0))
    return html_q > 0.0 and html_q >= json_q


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
) -> Callable[[Request], Awaitable[None]]:
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

    async def dependency(request: Request) -> None:  # async: no worker-thread hop
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
    selection
        Box, property filters, order and properties, for the provider.
    carried
        The filter, ``sortby`` and ``properties`` parameters as given, in request order,
        repeated in the links after ``bbox`` and ``datetime``.
    limit_given
        Whether the request gave ``limit`` or ``offset`` (downloads are whole otherwise).

    """

    limit: int
    offset: int
    bbox: BBox | None
    bbox_text: str | None
    datetime_text: str | None
    format: str | None
    selection: Selection = field(default_factory=Selection)
    carried: tuple[tuple[str, str], ...] = ()
    limit_given: bool = False


async def items_query(request: Request) -> ItemsQuery:
    """Parse and check the query of an items request (a FastAPI dependency).

    Besides ``limit``, ``offset``, ``bbox``, ``datetime`` and ``f``, the collection's
    queryable properties are accepted as equality filters, with ``sortby`` and
    ``properties``; all are checked against the collection's catalogue columns.

    Raises
    ------
    api.errors.InvalidParameterError
        If a parameter is unknown, repeated or invalid.
    geo_usm.errors.NotFoundError
        If the collection does not exist.

    """
    settings = get_settings(request)
    params = request.query_params
    core = ("limit", "offset", "bbox", "datetime")
    info = None
    names: tuple[str, ...] = core
    if any(key not in core and key != "f" for key in params):
        info = get_provider(request).collection(request.path_params["collectionId"])
        columns = {c.name: c for c in queryables(info)}
        names = (*core, "sortby", "properties", *columns)
    check_query(request, names, ITEMS_FORMATS)
    limit = settings.default_limit
    if "limit" in params:
        limit = _integer(params["limit"], "limit")
        if limit < 1:
            raise InvalidParameterError(f"limit must be 1 or more, not {params['limit']}")
        limit = min(limit, settings.max_limit)
    offset = 0
    if "offset" in params:
        offset = _integer(params["offset"], "offset")
        if offset < 0:
            raise InvalidParameterError(f"offset must be 0 or more, not {params['offset']}")
    bbox_text = params.get("bbox")
    bbox = parse_bbox(bbox_text) if bbox_text is not None else None
    datetime_text = params.get("datetime")
    if datetime_text is not None:
        parse_datetime(datetime_text)
    given = "limit" in params or "offset" in params
    if info is None:
        selection = Selection(bbox=bbox)
        return ItemsQuery(
            limit, offset, bbox, bbox_text, datetime_text, params.get("f"), selection, (), given
        )
    filters: list[PropertyFilter] = []
    sortby: tuple[SortKey, ...] = ()
    properties: tuple[str, ...] | None = None
    carried: list[tuple[str, str]] = []
    for key, value in params.multi_items():
        if key in columns:
            filters.append(PropertyFilter(key, parse_value(value, columns[key])))
        elif key == "sortby":
            sortby = parse_sortby(value, columns)
        elif key == "properties":
            properties = parse_properties(value, info)
        else:
            continue
        carried.append((key, value))
    selection = Selection(bbox, tuple(filters), sortby, properties)
    return ItemsQuery(
        limit,
        offset,
        bbox,
        bbox_text,
        datetime_text,
        params.get("f"),
        selection,
        tuple(carried),
        given,
    )


def parse_value(text: str, column: Column) -> str | int | float | bool:
    """Parse a property filter's value as the catalogue types the property.

    Raises
    ------
    api.errors.InvalidParameterError
        If the value is not of the property's type.

    """
    if column.type == "integer":
        if not _INTEGER.fullmatch(text):
            raise InvalidParameterError(f"{column.name} must be an integer, not '{text}'")
        return int(text)
    if column.type == "float":
        if not _NUMBER.fullmatch(text) or not math.isfinite(float(text)):
            raise InvalidParameterError(f"{column.name} must be a finite number, not '{text}'")
        return float(text)
    if column.type == "boolean":
        if text not in ("true", "false"):
            raise InvalidParameterError(f"{column.name} must be true or false, not '{text}'")
        return text == "true"
    return text


def parse_sortby(text: str, columns: dict[str, Column]) -> tuple[SortKey, ...]:
    """Parse ``sortby``: comma-separated sortable properties, each with an optional + or -.

    A leading space counts as ``+`` (a ``+`` left unencoded in a URL arrives as a space).

    Raises
    ------
    api.errors.InvalidParameterError
        If a name is empty or not a sortable property of the collection.

    """
    keys = []
    for part in text.split(","):
        descending = part.startswith("-")
        name = part[1:] if part[:1] in ("+", "-", " ") else part
        if name not in columns:
            known = ", ".join(columns) or "none"
            msg = f"sortby: '{part}' is not a sortable property; the sortables are: {known}"
            raise InvalidParameterError(msg)
        keys.append(SortKey(name, descending))
    return tuple(keys)


def parse_properties(text: str, info: CollectionInfo) -> tuple[str, ...]:
    """Parse ``properties``: comma-separated property names (repeats are dropped).

    Raises
    ------
    api.errors.InvalidParameterError
        If a name is empty or not a property of the collection.

    """
    names: list[str] = []
    for name in text.split(","):
        if name not in info.properties:
            known = ", ".join(info.properties)
            msg = f"properties: '{name}' is not a property of '{info.id}'; they are: {known}"
            raise InvalidParameterError(msg)
        if name not in names:
            names.append(name)
    return tuple(names)


def _integer(text: str, name: str) -> int:
    """Read an integer; one of more than ``_MAX_DIGITS`` digits is saturated at 10**18."""
    if not _INTEGER.fullmatch(text):
        raise InvalidParameterError(f"{name} must be an integer, not '{text}'")
    digits = text.lstrip("+-")
    value = int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
    return -value if text.startswith("-") else value


def _longitude(value: float) -> float:
    """Return a longitude in -180..180, taken modulo 360 when outside."""
    return value if -180.0 <= value <= 180.0 else (value + 180.0) % 360.0 - 180.0


def parse_bbox(text: str) -> BBox:
    """Parse a ``bbox`` value: 4 (or 6, heights ignored) comma-separated CRS84 numbers.

    Longitudes outside -180..180 are taken modulo 360 (a box at least 360 degrees wide covers
    every longitude) and latitudes beyond the poles are taken at the poles, so that every
    pair of corners names the part of the globe it covers.

    Parameters
    ----------
    text
        ``minlon,minlat,maxlon,maxlat`` or ``minlon,minlat,minh,maxlon,maxlat,maxh``.

    Returns
    -------
    tuple of float
        ``(min lon, min lat, max lon, max lat)`` with longitudes in -180..180 (``min lon >
        max lon`` crosses the antimeridian) and latitudes in -90..90.

    Raises
    ------
    api.errors.InvalidParameterError
        If the value is not 4 or 6 finite numbers or the south latitude exceeds the north one.

    """
    parts = text.split(",")
    numbers = [float(p) for p in parts if _NUMBER.fullmatch(p)]
    if (
        len(numbers) != len(parts)
        or len(numbers) not in (4, 6)
        or not all(math.isfinite(n) for n in numbers)
    ):
        msg = f"bbox must be 4 (or 6) comma-separated numbers in CRS84, not '{text}'"
        raise InvalidParameterError(msg)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    if miny > maxy:
        msg = f"bbox south latitude ({miny:g}) exceeds its north latitude ({maxy:g}): '{text}'"
        raise InvalidParameterError(msg)
    miny, maxy = max(miny, -90.0), min(maxy, 90.0)
    if maxx - minx >= 360.0:
        return (-180.0, miny, 180.0, maxy)
    return (_longitude(minx), miny, _longitude(maxx), maxy)


def parse_datetime(text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse a ``datetime`` value: an RFC 3339 instant or an interval ``start/end``.

    Dates count as midnight UTC and date-times without an offset as UTC; ``..`` or an empty
    string is an open end, at most one end may be open. The accepted values are exactly those
    matching :data:`DATETIME_PATTERN`, the pattern the OpenAPI document declares.

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
    if not _DATETIME.fullmatch(text):
        msg = (
            "datetime must be an RFC 3339 date or date-time, or an interval start/end with at "
            f"most one open end ('..'), not '{text}'"
        )
        raise InvalidParameterError(msg)
    if "/" not in text:
        instant = _instant(text)
        return instant, instant
    first, second = text.split("/")
    start = None if first in _OPEN else _instant(first)
    end = None if second in _OPEN else _instant(second)
    if start is not None and end is not None and start > end:
        raise InvalidParameterError(f"datetime interval ends before it starts: '{text}'")
    return start, end


def _instant(part: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(part.upper().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
