"""Serving helpers of the tiles: the build's tilesets, tile checks, caching headers, documents.

:class:`TileSets` opens the build's tile archives once (made by :func:`api.main.create_app`):
``public/tiles/<collection>.pmtiles`` for the public grids, ``public/tiles/basemap.pmtiles``
and the density surface ``public/risk_surface.tif``. A build made before tiles existed has no
``public/tiles/``: its tile routes answer 404 saying so (tiles are never made on the fly by the
server; ``usm build`` makes them, and ``usm export --pmtiles`` makes them for an older build).

Conventions (documented in ``/api``):

- Tiles outside the tile matrix (``x`` or ``y`` beyond ``2**z - 1``, ``z`` above 24) or outside
  the tileset's zoom levels (its ``tileMatrixSetLimits``, TileJSON ``minzoom``/``maxzoom``)
  are 404; a tile within them with no feature (vector) or no data (density) is ``204 No
  Content`` with an empty body (OGC API - Tiles allows it; MapLibre GL 4 and later draw
  nothing, without an error).
- Every tile, TileJSON and tileset document carries ``ETag`` naming the build (``"<build_id>"``;
  ``"<build_id>-gzip"`` for a gzip-encoded body, the same tile compressed) and
  ``Cache-Control: public, max-age=3600``; ``If-None-Match`` with that tag gets ``304``.
- Vector tiles are stored gzip-compressed and sent as they are with ``Content-Encoding: gzip``
  to clients that accept it (``Vary: Accept-Encoding``), decompressed for the others.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import morecantile
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from geo_usm import store
from geo_usm.errors import NotFoundError
from geo_usm.tiles import (
    BASEMAP,
    SURFACE,
    SURFACE_FILE,
    TILE_MATRIX_SET,
    TILES_DIR,
    Archive,
    SurfaceInfo,
    surface_info,
    tiled_layers,
)

MVT = "application/vnd.mapbox-vector-tile"
PNG = "image/png"
TILEJSON = "3.0.0"
CACHE_CONTROL = "public, max-age=3600"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
CRS_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Deepest zoom level of WebMercatorQuad.
TMS_MAXZOOM = 24

_REBUILD = "rebuild it with 'usm build' (a build made before tiles existed has none)"


@functools.cache
def matrix_size(z: int) -> tuple[int, int]:
    """Return ``(columns, rows)`` of the WebMercatorQuad tile matrix at zoom ``z``."""
    matrix = morecantile.tms.get(TILE_MATRIX_SET).matrix(z)
    return int(matrix.matrixWidth), int(matrix.matrixHeight)


def check_tile(z: int, y: int, x: int, minzoom: int, maxzoom: int) -> None:
    """Refuse a tile outside WebMercatorQuad or outside a tileset's zoom levels.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If the tile does not exist in the tileset's limits.

    """
    if not 0 <= z <= TMS_MAXZOOM:
        raise NotFoundError(f"WebMercatorQuad has zoom levels 0 to {TMS_MAXZOOM}, not {z}")
    cols, rows = matrix_size(z)
    if not (0 <= x < cols and 0 <= y < rows):
        msg = f"no tile {z}/{y}/{x}: at zoom {z} rows and columns go from 0 to {rows - 1}"
        raise NotFoundError(msg)
    if not minzoom <= z <= maxzoom:
        msg = f"zoom {z} is outside this tileset's zoom levels {minzoom} to {maxzoom}"
        raise NotFoundError(msg)


@dataclass(frozen=True)
class Surface:
    """The density surface of the build: its file and extent."""

    path: Path
    info: SurfaceInfo


class TileSets:
    """The tilesets of the build being served, opened once.

    Parameters
    ----------
    public
        The build's public directory.
    build_id
        The build's id (named by every ``ETag``).
    attribution
        Attribution statements of the build's data (TileJSON ``attribution``).

    """

    def __init__(self, public: Path, build_id: str, attribution: tuple[str, ...] = ()):
        self.build_id = build_id
        self.attribution = "; ".join(attribution)
        self.etag = f'"{build_id}"'
        self.etag_gzip = f'"{build_id}-gzip"'
        try:
            catalog = store.load_catalog(store.load_manifest(public))
            self.grids = [layer.name for layer in tiled_layers(catalog)]
        except (OSError, ValueError, KeyError):
            self.grids = []
        folder = public / TILES_DIR
        self.has_tiles = folder.is_dir()
        self._archives = {
            name: Archive(folder / f"{name}.pmtiles")
            for name in [*self.grids, BASEMAP]
            if (folder / f"{name}.pmtiles").is_file()
        }
        for z in range(TMS_MAXZOOM + 1):  # ready before the first tile request
            matrix_size(z)
        path = public / SURFACE_FILE
        self._surface = Surface(path, surface_info(path)) if path.is_file() else None

    def collections(self) -> list[str]:
        """Return the collections with a vector tileset, in catalogue order."""
        return [name for name in self.grids if name in self._archives]

    def archive(self, collection_id: str) -> Archive:
        """Return the vector tileset of a collection.

        Raises
        ------
        geo_usm.errors.NotFoundError
            If the collection has no tileset (or the build has no tiles).

        """
        found = self._archives.get(collection_id) if collection_id != BASEMAP else None
        if found is not None:
            return found
        if not self.has_tiles:
            raise NotFoundError("this build has no vector tiles", hint=_REBUILD)
        tiled = ", ".join(self.collections()) or "none"
        msg = f"collection '{collection_id}' has no vector tiles; collections with tiles: {tiled}"
        raise NotFoundError(msg)

    def basemap(self) -> Archive:
        """Return the basemap tileset (404 when the build has none)."""
        found = self._archives.get(BASEMAP)
        if found is None:
            raise NotFoundError("this build has no basemap tiles", hint=_REBUILD)
        return found

    def surface(self) -> Surface:
        """Return the density surface (404 when the build has none)."""
        if self._surface is None:
            msg = f"this build has no density surface ({SURFACE}: public/{SURFACE_FILE})"
            raise NotFoundError(msg)
        return self._surface


async def get_tilesets(request: Request) -> TileSets:
    """Return the tilesets the app was made with."""
    tilesets: TileSets = request.app.state.tilesets
    return tilesets


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


def _matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def cached(request: Request, tilesets: TileSets, response: Response) -> Response:
    """Add ``ETag`` and ``Cache-Control``; answer 304 when ``If-None-Match`` names the tag."""
    etag = response.headers.get("etag") or tilesets.etag
    if _matches(request, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


def tile_response(
    request: Request, tilesets: TileSets, data: bytes | None, *, compressed: bool, media_type: str
) -> Response:
    """Return a tile: 200 with its body, or 204 when it is empty; with the caching headers."""
    if not data:
        return cached(request, tilesets, Response(status_code=204))
    headers = {}
    if compressed and _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"  # (the app's gzip middleware adds it to the others)
        headers["ETag"] = tilesets.etag_gzip
    elif compressed:
        data = gzip.decompress(data)
        if not data:
            return cached(request, tilesets, Response(status_code=204))
    return cached(request, tilesets, Response(data, media_type=media_type, headers=headers))


def json_response(request: Request, tilesets: TileSets, content: Any) -> Response:
    """Return a JSON document with the caching headers."""
    return cached(request, tilesets, JSONResponse(content))


def tilejson(
    archive_or_surface: Archive | Surface,
    tiles_url: str,
    *,
    name: str,
    attribution: str,
    description: str = "",
) -> dict[str, Any]:
    """Return a TileJSON 3.0.0 document of a vector tileset or of the density tiles.

    Parameters
    ----------
    archive_or_surface
        The vector tileset (``vector_layers`` from its metadata) or the density surface.
    tiles_url
        URL template of the tiles, with ``{z}``, ``{x}`` and ``{y}``.
    name, attribution, description
        Shown by clients.

    """
    doc: dict[str, Any] = {"tilejson": TILEJSON, "name": name, "scheme": "xyz"}
    if description:
        doc["description"] = description
    doc["tiles"] = [tiles_url]
    if isinstance(archive_or_surface, Archive):
        archive = archive_or_surface
        doc["vector_layers"] = [
            {
                k: v
                for k, v in layer.items()
                if k in ("id", "fields", "description", "minzoom", "maxzoom")
            }
            for layer in archive.vector_layers
        ]
        bounds, minzoom, maxzoom = archive.bounds, archive.minzoom, archive.maxzoom
        lon, lat, zoom = archive.center
    else:
        info = archive_or_surface.info
        bounds, minzoom, maxzoom = info.bounds, info.minzoom, info.maxzoom
        lon, lat, zoom = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, minzoom
    doc.update(
        {
            "bounds": [round(v, 7) for v in bounds],
            "center": [round(lon, 7), round(lat, 7), zoom],
            "minzoom": minzoom,
            "maxzoom": maxzoom,
            "attribution": attribution,
        }
    )
    return doc


_JSON_TYPES = {"string": "string", "integer": "integer", "float": "number", "boolean": "boolean"}


def tile_matrix_set_limits(
    bounds: tuple[float, float, float, float], minzoom: int, maxzoom: int
) -> list[dict[str, Any]]:
    """Return OGC ``tileMatrixSetLimits``: the tiles covering ``bounds`` at each zoom."""
    tms = morecantile.tms.get(TILE_MATRIX_SET)
    out = []
    for z in range(minzoom, maxzoom + 1):
        upper_left = tms.tile(bounds[0], bounds[3], z)
        lower_right = tms.tile(bounds[2], bounds[1], z)
        out.append(
            {
                "tileMatrix": str(z),
                "minTileRow": upper_left.y,
                "maxTileRow": lower_right.y,
                "minTileCol": upper_left.x,
                "maxTileCol": lower_right.x,
            }
        )
    return out


def tileset_document(
    archive: Archive,
    *,
    title: str,
    base: str,
    data_type: str = "vector",
    columns: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Return the OGC API - Tiles tileset metadata of a vector tileset.

    Parameters
    ----------
    archive
        The tileset.
    title
        Its title.
    base
        URL of the tileset (``.../tiles/WebMercatorQuad``).
    data_type
        ``vector`` or ``map``.
    columns
        Attribute name to ``(catalogue type, description)``, for ``propertiesSchema``.

    """
    columns = columns or {}
    layers = []
    for layer in archive.vector_layers:
        properties = {}
        for name in layer.get("fields", {}):
            kind, description = columns.get(name, ("string", ""))
            entry: dict[str, Any] = {"type": _JSON_TYPES.get(kind, "string")}
            if description:
                entry["description"] = description
            properties[name] = entry
        layers.append(
            {
                "id": layer["id"],
                "dataType": "vector",
                "minTileMatrix": str(layer.get("minzoom", archive.minzoom)),
                "maxTileMatrix": str(layer.get("maxzoom", archive.maxzoom)),
                "propertiesSchema": {"type": "object", "properties": properties},
            }
        )
    west, south, east, north = archive.bounds
    return {
        "title": title,
        "dataType": data_type,
        "crs": CRS_3857,
        "tileMatrixSetURI": TMS_URI,
        "boundingBox": {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84},
        "tileMatrixSetLimits": tile_matrix_set_limits(
            archive.bounds, archive.minzoom, archive.maxzoom
        ),
        "layers": layers,
        "links": [
            {"rel": "self", "href": base, "type": "application/json", "title": title},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "href": TMS_URI,
                "type": "application/json",
                "title": "WebMercatorQuad tile matrix set",
            },
            {
                "rel": "item",
                "href": f"{base}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                "templated": True,
                "type": MVT,
                "title": "Mapbox vector tiles",
            },
            {
                "rel": "describedby",
                "href": f"{base}/tilejson.json",
                "type": "application/json",
                "title": "TileJSON 3.0",
            },
        ],
    }
