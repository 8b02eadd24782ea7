"""The application factory of the geo-usm API.

Run it with ``usm serve BUILD_DIR`` or with uvicorn's factory mode::

    USM_BUILD_DIR=out/camden uvicorn api.main:create_app --factory

Nothing is read at import time: :func:`create_app` makes the settings (unless given) and reads
the build.

Several cities
--------------
``usm serve DIR [DIR ...]`` (or ``USM_EXTRA_BUILD_DIRS``) serves several builds from one
process. The design is *one sub-application per city, built by the same factory*:
:func:`create_app` reads one :class:`api.provider.BuildProvider` per build, makes the root
application for the first build (everything at the root, as with a single build), and mounts,
for every build (the first included), an application made by the same private factory
:func:`_application` at ``/cities/{cityId}`` (``cityId``: a slug of the city name, see
:func:`api.routers.service.city_slugs`). ``GET /cities`` lists them (``id``, ``name``,
``href`` of the landing page, ``bbox``); with one build it lists one.

So a router needs nothing special to work under ``/cities/{cityId}/``: inside a mounted
application ``request.app`` is that city's application, ``request.app.state.provider`` its
build and :func:`api.dependencies.base_url` its URL (``app.state.prefix`` is ``/cities/{id}``
there, empty at the root). Routers register in :func:`_application` only. The middleware
(HEAD, allowed hosts, CORS, gzip) wraps the root application alone, which receives every
request; mounted applications have no lifespan events of their own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from api.dependencies import limit_parameter
from api.errors import install_error_handlers
from api.middleware import AllowedHostsMiddleware, GZipMiddleware, HeadMiddleware
from api.models import OgcException
from api.openapi import convert_schema, to_openapi30
from api.provider import BuildProvider, Provider
from api.responses import JSON, PROBLEM_JSON, GzipPages
from api.routers import dashboard, features, service, tiles
from api.settings import Settings
from api.tiles import TileSets
from geo_usm import __version__

_TAGS = [
    {"name": "Capabilities", "description": "What the service offers."},
    {"name": "Data", "description": "Features of the collections."},
    {"name": "Service", "description": "Operations and monitoring."},
]

#: The URL contract of the map service, appended to the description of ``/api``.
URL_CONTRACT = (
    "\n\nURLs. One build: everything at the root. Several builds (usm serve DIR [DIR ...]): "
    "the first is also at the root; GET /cities lists every build served (id: a slug of the "
    "city name, name, href of its landing page, bbox) and each build's full API lives under "
    "/cities/{cityId}/ with the same paths. Features: /collections, "
    "/collections/{collectionId}/items (property filters, sortby, properties, f=html|csv|gpkg), "
    "/collections/{collectionId}/queryables. Diagnosis: "
    "/collections/{units|hex|hex_r<N>}/items/{featureId}/diagnosis (JSON). Vector tiles (OGC "
    "API - Tiles, WebMercatorQuad, MVT layer name = collectionId): "
    "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{y}/{x} and its tilejson.json; "
    "basemap /tiles/basemap/WebMercatorQuad/{z}/{y}/{x}; density surface "
    "/collections/risk_surface/map/tiles/WebMercatorQuad/{z}/{y}/{x} with "
    "/collections/risk_surface/legend. Tile, TileJSON and diagnosis responses carry an ETag "
    "naming the build and Cache-Control. Errors are problem details (RFC 7807)."
)

#: Responses smaller than this many bytes are not compressed (a gzip header and a round of
#: deflate cost more than they save on a small document).
GZIP_MINIMUM_SIZE = 1024
#: Compression level of gzip: 6 is zlib's default balance of speed and size.
GZIP_LEVEL = 6


def create_app(settings: Settings | None = None, *, provider: Provider | None = None) -> FastAPI:
    """Make the OGC API - Features application serving one geo-usm build, or several.

    Parameters
    ----------
    settings
        Settings; by default read from ``USM_*`` environment variables.
    provider
        The data source; by default one :class:`api.provider.BuildProvider` per build of
        the settings (``build_dir``, then ``extra_build_dirs``), read now. Tests may pass a
        fake (then it alone is served).

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
    providers = (
        [provider]
        if provider is not None
        else [BuildProvider(path) for path in (settings.build_dir, *settings.extra_build_dirs)]
    )
    cities = service.city_slugs(providers)
    # one set of open tile archives per build (the first build is served twice)
    tilesets = {
        id(p): TileSets(p.info.path, p.info.build_id, p.info.attribution) for p in providers
    }
    app = _application(settings, providers[0], tilesets[id(providers[0])], cities=cities, prefix="")
    for city_id, city_provider in cities.items():
        prefix = f"/cities/{city_id}"
        city_app = _application(
            settings, city_provider, tilesets[id(city_provider)], cities=cities, prefix=prefix
        )
        app.mount(prefix, city_app)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD"],
            allow_headers=["*"],
        )
    if settings.allowed_hosts:
        app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(HeadMiddleware)  # outermost: a HEAD is a GET everywhere inside
    app.router.lifespan_context = _warm_up(["", *(f"/cities/{c}" for c in cities)])
    return app


#: Requests made once at startup, so that the first client does not pay for FastAPI's lazy
#: preparation of its routes (about 30 ms on the first request) or the first open of a tileset.
WARM_UP_PATHS = (
    "/",
    "/collections",
    "/collections/units/items?limit=1",
    "/collections/units/tiles/WebMercatorQuad/0/0/0",
    "/collections/hex/tiles/WebMercatorQuad/0/0/0",
)


def _warm_up(prefixes: list[str]) -> Any:
    """Return a lifespan that requests :data:`WARM_UP_PATHS` of every city before serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for prefix in prefixes:
            for path in WARM_UP_PATHS:
                await _request(app, prefix + path)
        yield

    return lifespan


async def _request(app: FastAPI, target: str) -> None:
    """Make one GET request to ``app`` in process, discarding the answer."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        return None

    await app(scope, receive, send)


def _application(
    settings: Settings,
    provider: Provider,
    tilesets: TileSets,
    *,
    cities: dict[str, Provider],
    prefix: str,
) -> FastAPI:
    """Make the application of one build, without middleware (see the module docstring).

    Parameters
    ----------
    settings
        Settings.
    provider
        The build served.
    tilesets
        Its open tile archives.
    cities
        Every build served, by city id (for ``/cities``).
    prefix
        Path of the application below the root: empty, or ``/cities/{cityId}``.

    """
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
    app.state.cities = cities
    app.state.prefix = prefix
    app.state.tilesets = tilesets
    app.state.gzip_pages = GzipPages()
    install_error_handlers(app)
    app.include_router(dashboard.router)  # first: it answers / for browsers (text/html)
    app.include_router(features.router)
    app.include_router(service.router)
    app.include_router(tiles.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            app.openapi_schema = _finish(to_openapi30(document), settings, provider)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _problem_media_type(document: dict[str, Any]) -> None:
    """Declare every error response with the exception schema as ``application/problem+json``.

    Errors are made in one place (:func:`api.errors.error_response`), with that media type;
    a router declaring its errors as ``application/json`` is corrected here.
    """
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if not str(status).startswith(("4", "5")) or JSON not in content:
                    continue
                if "OgcException" in repr(content[JSON]) and PROBLEM_JSON not in content:
                    response["content"] = {
                        (PROBLEM_JSON if media == JSON else media): value
                        for media, value in content.items()
                    }


def _finish(document: dict[str, Any], settings: Settings, provider: Provider) -> dict[str, Any]:
    """Complete the converted document from the settings and the build being served.

    The limits of ``limit`` come from the settings; ``collectionId`` lists the collections
    served (any other id is a 404) with the first as example, and ``featureId`` has the first
    feature of that collection as example, so that the examples describe a real feature. The
    error schema is added and FastAPI's 422, which the API never returns, removed.
    """
    info = document.setdefault("info", {})
    info["description"] = str(info.get("description") or "") + URL_CONTRACT
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["OgcException"] = convert_schema(
        OgcException.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    ids = [c.id for c in provider.collections()]
    examples = {"collectionId": ids[0]} if ids else {}
    if ids:
        first = provider.items(ids[0], limit=1).features
        if first:
            examples["featureId"] = str(json.loads(first[0])["id"])
    limit = limit_parameter(settings.default_limit, settings.max_limit)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
            parameters = operation.get("parameters", [])
            for i, parameter in enumerate(parameters):
                name, where = parameter.get("name"), parameter.get("in")
                if (name, where) == ("limit", "query"):
                    parameters[i] = limit
                elif (name, where) == ("collectionId", "path") and ids:
                    parameter["schema"] = {**parameter["schema"], "enum": ids}
                if where == "path" and name in examples:
                    parameter["example"] = examples[name]
    _problem_media_type(document)
    features.collection_paths(document, provider.collections())
    grids = [c.id for c in provider.collections() if c.diagnosis]
    diagnosis = document["paths"].get("/collections/{collectionId}/items/{featureId}/diagnosis")
    for parameter in (diagnosis or {}).get("get", {}).get("parameters", []):
        if parameter.get("name") == "collectionId" and grids:
            parameter["schema"] = {**parameter["schema"], "enum": grids}
    text = repr(document["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in text:
            schemas.pop(name, None)
    return document
