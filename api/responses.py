"""Response classes with the media types OGC API - Features asks for."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

GEOJSON = "application/geo+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
JSON = "application/json"
HTML = "text/html"


class RawGeoJSONResponse(Response):
    """A response whose body is ready-made GeoJSON bytes."""

    media_type = GEOJSON


class OpenAPIResponse(JSONResponse):
    """The OpenAPI 3.0 document, as ``application/vnd.oai.openapi+json;version=3.0``."""

    media_type = OPENAPI_JSON
