"""Response classes with the media types OGC API - Features asks for."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

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


class OpenAPIResponse(JSONResponse):
    """The OpenAPI 3.0 document, as ``application/vnd.oai.openapi+json;version=3.0``."""

    media_type = OPENAPI_JSON
