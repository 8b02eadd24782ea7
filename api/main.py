"""The application factory of the geo-usm API.

Run it with ``usm serve BUILD_DIR`` or with uvicorn's factory mode::

    USM_BUILD_DIR=out/camden uvicorn api.main:create_app --factory

Nothing is read at import time: :func:`create_app` makes the settings (unless given) and reads
the build.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.dependencies import LIMIT_PARAMETER
from api.errors import install_error_handlers
from api.models import OgcException
from api.openapi import convert_schema, to_openapi30
from api.provider import BuildProvider, Provider
from api.routers import features, service
from api.settings import Settings
from geo_usm import __version__

_TAGS = [
    {"name": "Capabilities", "description": "What the service offers."},
    {"name": "Data", "description": "Features of the collections."},
    {"name": "Service", "description": "Operations and monitoring."},
]


def create_app(settings: Settings | None = None, *, provider: Provider | None = None) -> FastAPI:
    """Make the OGC API - Features application serving one geo-usm build.

    Parameters
    ----------
    settings
        Settings; by default read from ``USM_*`` environment variables.
    provider
        The data source; by default a :class:`api.provider.BuildProvider` reading
        ``settings.build_dir`` now. Tests may pass a fake.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    geo_usm.errors.NotFoundError
        If ``settings.build_dir`` is not a geo-usm build.
    geo_usm.errors.BuildError
        If the build cannot be served (see :class:`api.provider.BuildProvider`).

    """
    settings = settings if settings is not None else Settings()  # type: ignore[call-arg]
    provider = provider if provider is not None else BuildProvider(settings.build_dir)
    info = provider.info
    title = settings.title or f"Urban Safety Monitor: {info.city}"
    description = settings.description or (
        f"Neighbourhood safety diagnosis of {info.city} as OGC API - Features: aggregates per "
        f"H3 hexagon and per administrative unit, GeoJSON in CRS84. Build {info.build_id}"
        + (f", finished {info.finished}." if info.finished else ".")
    )
    app = FastAPI(
        title=title,
        description=description,
        version=__version__,
        openapi_url=None,  # the OpenAPI 3.0 document is served at /api
        docs_url=None,
        redoc_url=None,
        openapi_tags=_TAGS,
    )
    app.state.settings = settings
    app.state.provider = provider
    install_error_handlers(app)
    app.include_router(features.router)
    app.include_router(service.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET"],
            allow_headers=["*"],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            app.openapi_schema = _finish(to_openapi30(document), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _finish(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Complete the converted document: limits from the settings, errors, no 422."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["OgcException"] = convert_schema(
        OgcException.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == LIMIT_PARAMETER["name"] and parameter["in"] == "query":
                    parameter["schema"] = {
                        **parameter["schema"],
                        "maximum": settings.max_limit,
                        "default": settings.default_limit,
                    }
    text = repr(document["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in text:
            schemas.pop(name, None)
    return document
