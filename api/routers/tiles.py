"""OGC API - Tiles: vector tiles of the grids, the basemap, and density map tiles.

Every route parses its path, asks :class:`api.tiles.TileSets` (the build's archives, opened once)
and serialises; the conventions (404 outside the tileset's limits, 204 for an empty tile,
``ETag`` naming the build, gzip) are in :mod:`api.tiles`. Vector tile routes are ``async``: a
tile is a slice of a memory-mapped archive, no computation; density tiles are rendered by
rio-tiler and run in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request, Response

from api.dependencies import ProviderDep, base_url, format_parameter, query_checker
from api.responses import JSON
from api.tiles import (
    MVT,
    PNG,
    TileSets,
    check_tile,
    get_tilesets,
    json_response,
    tile_response,
    tilejson,
    tileset_document,
)
from geo_usm.tiles import BASEMAP, SURFACE, TILE_MATRIX_SET, render_surface_tile, surface_legend

router = APIRouter(tags=["Tiles"])

_EXCEPTION = {"$ref": "#/components/schemas/OgcException"}
_CACHE_HEADERS = {
    "ETag": {
        "description": 'Names the build: "<build_id>" ("<build_id>-gzip" for a gzip body).',
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "public, max-age=3600", "schema": {"type": "string"}},
}
_ERRORS: dict[int | str, Any] = {
    304: {"description": "Not modified: If-None-Match names the current ETag."},
    400: {
        "description": "A path or query parameter is invalid or unknown.",
        "content": {JSON: {"schema": _EXCEPTION}},
    },
    404: {
        "description": (
            "No such collection or tileset (a build made before tiles existed has none), or "
            "the tile is outside the tile matrix or the tileset's zoom levels."
        ),
        "content": {JSON: {"schema": _EXCEPTION}},
    },
    500: {"description": "A server error occurred.", "content": {JSON: {"schema": _EXCEPTION}}},
}
_EMPTY = {
    "description": (
        "The tile is within the tileset's limits but empty (no feature, or no data): no body."
    ),
    "headers": _CACHE_HEADERS,
}


def _binary(media_type: str, description: str) -> dict[int | str, Any]:
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            "headers": _CACHE_HEADERS,
        },
        204: _EMPTY,
        **_ERRORS,
    }


def _document(description: str) -> dict[int | str, Any]:
    return {
        200: {
            "description": description,
            "content": {JSON: {"schema": {"type": "object"}}},
            "headers": _CACHE_HEADERS,
        },
        **_ERRORS,
    }


CollectionId = Annotated[
    str,
    Path(alias="collectionId", description="Id of a grid collection: hex, hex_r<N> or units."),
]
Z = Annotated[int, Path(ge=0, le=24, description="Zoom level (tileMatrix).")]
Y = Annotated[int, Path(ge=0, description="Row (tileRow), 0 at the north.")]
X = Annotated[int, Path(ge=0, description="Column (tileCol), 0 at the west.")]
TileSetsDep = Annotated[TileSets, Depends(get_tilesets)]


def _extra(fmt: str) -> dict[str, Any]:
    return {"parameters": [format_parameter((fmt,))]}


def _collection_base(request: Request, collection_id: str) -> str:
    return f"{base_url(request)}/collections/{quote(collection_id, safe='')}"


@router.get(
    "/collections/{collectionId}/tiles",
    summary="Tilesets of a collection",
    description="The vector tilesets of a grid collection (one: WebMercatorQuad).",
    response_class=Response,
    responses=_document("The list of tilesets."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def tilesets(
    request: Request, collection_id: CollectionId, sets: TileSetsDep, provider: ProviderDep
) -> Response:
    """List the tilesets of a collection."""
    sets.archive(collection_id)
    info = provider.collection(collection_id)
    base = f"{_collection_base(request, collection_id)}/tiles"
    href = f"{base}/{TILE_MATRIX_SET}"
    document = {
        "links": [{"rel": "self", "href": base, "type": JSON}],
        "tilesets": [
            {
                "title": f"{info.title}: vector tiles",
                "dataType": "vector",
                "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                "tileMatrixSetURI": (
                    "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
                ),
                "links": [
                    {"rel": "self", "href": href, "type": JSON},
                    {
                        "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                        "href": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
                        "type": JSON,
                    },
                ],
            }
        ],
    }
    return json_response(request, sets, document)


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad",
    summary="Tileset metadata",
    description=(
        "OGC API - Tiles tileset metadata: zoom levels (tileMatrixSetLimits), the MVT layer (its "
        "id is the collection id, MapLibre's source-layer) and its attributes, links to the "
        "tiles and the TileJSON."
    ),
    response_class=Response,
    responses=_document("The tileset metadata."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def tileset(
    request: Request, collection_id: CollectionId, sets: TileSetsDep, provider: ProviderDep
) -> Response:
    """Describe a collection's vector tileset."""
    archive = sets.archive(collection_id)
    info = provider.collection(collection_id)
    columns = {c.name: (c.type, c.description) for c in info.columns}
    base = f"{_collection_base(request, collection_id)}/tiles/{TILE_MATRIX_SET}"
    document = tileset_document(archive, title=info.title, base=base, columns=columns)
    return json_response(request, sets, document)


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
    summary="TileJSON of a collection's vector tiles",
    description="TileJSON 3.0.0: tiles URL, vector_layers with fields, bounds, zoom levels.",
    response_class=Response,
    responses=_document("The TileJSON document."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def collection_tilejson(
    request: Request, collection_id: CollectionId, sets: TileSetsDep, provider: ProviderDep
) -> Response:
    """Return the TileJSON of a collection's vector tiles."""
    archive = sets.archive(collection_id)
    info = provider.collection(collection_id)
    url = f"{_collection_base(request, collection_id)}/tiles/{TILE_MATRIX_SET}/{{z}}/{{y}}/{{x}}"
    document = tilejson(
        archive, url, name=info.title, attribution=sets.attribution, description=info.description
    )
    return json_response(request, sets, document)


@router.get(
    "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{y}/{x}",
    summary="A vector tile of a collection",
    description=(
        "Mapbox Vector Tile 2.1, extent 4096, one layer named as the collection (MapLibre's "
        "source-layer) carrying every public column of the collection; a NULL value is left "
        "out. 204 when the tile has no feature; 404 outside the tileset's zoom levels."
    ),
    response_class=Response,
    responses=_binary(MVT, "The vector tile."),
    dependencies=[Depends(query_checker(formats=("mvt",)))],
    openapi_extra=_extra("mvt"),
)
async def collection_tile(
    request: Request, collection_id: CollectionId, z: Z, y: Y, x: X, sets: TileSetsDep
) -> Response:
    """Return one vector tile of a collection."""
    archive = sets.archive(collection_id)
    check_tile(z, y, x, archive.minzoom, archive.maxzoom)
    data = archive.get(z, x, y)
    return tile_response(request, sets, data, compressed=archive.compressed, media_type=MVT)


@router.get(
    "/tiles/basemap/WebMercatorQuad/tilejson.json",
    summary="TileJSON of the basemap",
    description=(
        "TileJSON 3.0.0 of the offline basemap made from the city's own data: MVT layers "
        "study_area, boundaries (the admin units), streets and parks (those the build has)."
    ),
    response_class=Response,
    responses=_document("The TileJSON document."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def basemap_tilejson(request: Request, sets: TileSetsDep) -> Response:
    """Return the TileJSON of the basemap."""
    archive = sets.basemap()
    url = f"{base_url(request)}/tiles/{BASEMAP}/{TILE_MATRIX_SET}/{{z}}/{{y}}/{{x}}"
    document = tilejson(archive, url, name="Basemap", attribution=sets.attribution)
    return json_response(request, sets, document)


@router.get(
    "/tiles/basemap/WebMercatorQuad/{z}/{y}/{x}",
    summary="A basemap tile",
    description="Mapbox Vector Tile 2.1 of the basemap (see its TileJSON for the layers).",
    response_class=Response,
    responses=_binary(MVT, "The vector tile."),
    dependencies=[Depends(query_checker(formats=("mvt",)))],
    openapi_extra=_extra("mvt"),
)
async def basemap_tile(request: Request, z: Z, y: Y, x: X, sets: TileSetsDep) -> Response:
    """Return one basemap tile."""
    archive = sets.basemap()
    check_tile(z, y, x, archive.minzoom, archive.maxzoom)
    data = archive.get(z, x, y)
    return tile_response(request, sets, data, compressed=archive.compressed, media_type=MVT)


_SURFACE_BASE = f"/collections/{SURFACE}/map/tiles/{TILE_MATRIX_SET}"


@router.get(
    f"{_SURFACE_BASE}/tilejson.json",
    summary="TileJSON of the density map tiles",
    description="TileJSON 3.0.0 of the crime density PNG tiles (404 when the build has none).",
    response_class=Response,
    responses=_document("The TileJSON document."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def surface_tilejson(request: Request, sets: TileSetsDep) -> Response:
    """Return the TileJSON of the density tiles."""
    surface = sets.surface()
    url = f"{base_url(request)}{_SURFACE_BASE}/{{z}}/{{y}}/{{x}}"
    document = tilejson(
        surface,
        url,
        name="Crime density",
        attribution=sets.attribution,
        description="Crimes per km2; colours: see /collections/risk_surface/legend.",
    )
    return json_response(request, sets, document)


@router.get(
    f"{_SURFACE_BASE}/{{z}}/{{y}}/{{x}}",
    summary="A density map tile",
    description=(
        "256-pixel RGBA PNG of the crime density (crimes per km2) with the fixed colour scale "
        "of /collections/risk_surface/legend; transparent where there is no data. 204 when "
        "the tile has no data at all; 404 when the build has no density surface."
    ),
    response_class=Response,
    responses=_binary(PNG, "The PNG tile."),
    dependencies=[Depends(query_checker(formats=("png",)))],
    openapi_extra=_extra("png"),
)
def surface_tile(request: Request, z: Z, y: Y, x: X, sets: TileSetsDep) -> Response:
    """Render one density tile."""
    surface = sets.surface()
    check_tile(z, y, x, 0, 24)
    data = render_surface_tile(surface.path, z, x, y)
    return tile_response(request, sets, data, compressed=False, media_type=PNG)


@router.get(
    f"/collections/{SURFACE}/legend",
    summary="Legend of the density map tiles",
    description=(
        "The fixed colour scale of the density tiles: unit (crimes per km2), classes with "
        "their lower (included) and upper (excluded) bounds, colours and labels."
    ),
    response_class=Response,
    responses=_document("The legend."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_extra("json"),
)
async def surface_legend_route(request: Request, sets: TileSetsDep) -> Response:
    """Return the legend of the density tiles."""
    sets.surface()
    return json_response(request, sets, surface_legend())
