"""Vector tiles of a build's public grids, written once into PMTiles archives; density tiles.

At build time :func:`write_tilesets` writes one PMTiles archive per public grid (``hex``,
``hex_r<N>``, ``units``: the catalogue's public grid layers with geometry) and a ``basemap``
archive, into ``public/tiles/``; the API then serves each tile as a slice of an archive, and
``usm export DIR --pmtiles FILE`` merges them into one file for static hosting
(:func:`export_pmtiles`).

Conventions
-----------
- Tiles are Mapbox Vector Tiles 2.1 on the WebMercatorQuad tile matrix set (EPSG:3857, the
  XYZ scheme of web maps), extent 4096, gzip-compressed in the archive. :mod:`geo_usm.mvt`
  encodes them with numpy, every tile of a layer at a zoom at once: it reprojects once, clips
  with a buffer of 80 units and quantises; simplification is off for the grids, and no feature
  is ever dropped for size: a tile carries every feature it touches.
- The MVT layer name is the collection id (``hex``, ``hex_r8``, ``units``): MapLibre's
  ``source-layer``. Every column the catalogue declares for the layer is a tile attribute, read
  from the catalogue (never from names); a NULL value is left out of the feature (MVT has no
  null: a missing attribute means no data, never zero).
- Zoom levels of a hexagon grid follow its H3 resolution (:func:`hex_zoom_range`): ``minzoom``
  is the first zoom at which a hexagon of average size is at least :data:`MIN_PIXELS` pixels
  across (256-pixel tiles, at the equator; hexagons look larger at higher latitudes), and
  ``maxzoom`` is :data:`ZOOM_SPAN` levels deeper, where it is 16 pixels across and a tile unit
  is about a metre for resolution 9 (clients over-zoom beyond ``maxzoom``, losslessly but for
  that quantisation; each deeper level would quadruple the tiles). Resolution 8 gives 9-12, 9
  gives 10-13, 10 gives 12-15. The admin units use the same rule with the side of a
  square of their median area, but start no later than the zoom at which the whole study area
  spans :data:`OVERVIEW_PIXELS` pixels, so that the city's units are there at its overview.
- The basemap (layers ``study_area``, ``boundaries``, ``streets``, ``parks``, those the build
  has) spans the grids' zooms; streets are tiled at zoom :data:`STREETS_ZOOM` only (clients
  over-zoom them; they are not drawn at smaller zooms) and parks from :data:`PARKS_MINZOOM`
  (both kept within the basemap's zooms); streets and parks keep only their geometry and
  ``name``, and are simplified by one tile unit.
- Cost (this 2-core machine, shared, load average about 3): Camden's four archives in 0.6 to
  0.9 s (GDAL's MVT writer, used before: 4.4 s); a synthetic grid of 85,000 hexagons with 54
  columns over its 6 zoom levels makes about 480 MB of raw tiles, whose gzip alone takes about
  10 s of CPU (``benchmarks/bench_tiles_encode.py``, against GDAL's writer).
- The density surface (``public/risk_surface.tif``, a float32 COG in crimes per km2) is
  rendered on request as 256-pixel PNG tiles with rio-tiler, classified with the fixed colour
  scale :data:`SURFACE_BREAKS` / :data:`SURFACE_COLORS` (:func:`surface_legend`).
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import mmap
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from pmtiles.tile import (
    Compression,
    TileType,
    deserialize_directory,
    deserialize_header,
    tileid_to_zxy,
    zxy_to_tileid,
)
from pmtiles.writer import Writer

from geo_usm import __version__, geo, mvt
from geo_usm.catalog import Catalog, ColumnType, OutputLayer
from geo_usm.errors import BuildError, NotFoundError
from geo_usm.io import file_sha256

#: Folder of the tile archives inside ``public/``.
TILES_DIR = "tiles"
#: The only tile matrix set served.
TILE_MATRIX_SET = "WebMercatorQuad"
#: Units per tile side in every vector tile.
EXTENT = 4096
#: Buffer around each tile, in tile units, inside which features are kept (clipped).
BUFFER = 80
#: Name of the basemap tileset and its layers, in drawing order.
BASEMAP = "basemap"
BASEMAP_LAYERS = ("study_area", "boundaries", "streets", "parks")
#: Attributes a basemap layer keeps (those the frame has).
BASEMAP_FIELDS: dict[str, tuple[str, ...]] = {
    "study_area": ("name",),
    "boundaries": ("unit_id", "unit_name"),
    "streets": ("name",),
    "parks": ("name",),
}
#: Smallest size of a grid feature, in pixels, at a grid's first zoom level.
MIN_PIXELS = 2
#: Zoom levels of a grid after its first.
ZOOM_SPAN = 3
#: The admin units start no later than the zoom at which the study area spans this many pixels.
OVERVIEW_PIXELS = 512
#: Deepest zoom of a tileset.
MAX_ZOOM = 22
#: The one zoom of the basemap's streets (clients over-zoom it; the streets are the most
#: features of a build) and the first zoom of its parks (both within the basemap's zoom levels).
STREETS_ZOOM = 13
PARKS_MINZOOM = 12
#: Size in metres of a pixel at zoom 0 on the equator (256-pixel tiles).
Z0_PIXEL_M = 2 * math.pi * 6378137.0 / 256

#: Attribute types of the catalogue as TileJSON ``vector_layers`` name them.
MVT_FIELD_TYPES: dict[ColumnType, str] = {
    "string": "String",
    "integer": "Number",
    "float": "Number",
    "boolean": "Boolean",
    "datetime": "String",
}

#: zlib level of the stored tiles: 1, twice as fast as 6 for 2 to 4 % more bytes.
GZIP_LEVEL = 1
#: Threads compressing tiles.
GZIP_THREADS = 2

BBox = tuple[float, float, float, float]


# --- zoom levels --------------------------------------------------------------------------------


def zoom_range_for_size(size_m: float) -> tuple[int, int]:
    """Return the zoom levels of a grid whose typical feature is ``size_m`` metres across.

    The first zoom is the least at which the feature spans :data:`MIN_PIXELS` pixels (256-pixel
    tiles, at the equator); the last is :data:`ZOOM_SPAN` levels deeper, at most
    :data:`MAX_ZOOM`.

    Parameters
    ----------
    size_m
        Width of a typical feature, in metres (positive).

    Returns
    -------
    tuple of int
        ``(minzoom, maxzoom)``.

    """
    if not size_m > 0 or not math.isfinite(size_m):
        return 0, ZOOM_SPAN
    minzoom = math.ceil(math.log2(MIN_PIXELS * Z0_PIXEL_M / size_m) - 1e-9)
    minzoom = min(max(minzoom, 0), MAX_ZOOM - ZOOM_SPAN)
    return minzoom, minzoom + ZOOM_SPAN


def hex_zoom_range(resolution: int) -> tuple[int, int]:
    """Return the zoom levels of the hexagon grid at an H3 resolution.

    The size is the flat-to-flat width of a hexagon of H3's average edge length at that
    resolution (:func:`zoom_range_for_size`): resolution 8 gives ``(9, 12)``, 9 gives
    ``(10, 13)``, 10 gives ``(12, 15)``.
    """
    width = math.sqrt(3) * float(h3.average_hexagon_edge_length(resolution, unit="m"))
    return zoom_range_for_size(width)


def units_zoom_range(units: gpd.GeoDataFrame) -> tuple[int, int]:
    """Return the zoom levels of the admin units (metric working CRS).

    The size is the side of a square of the units' median area; the first zoom is moved
    earlier, if needed, to the zoom at which the units' extent spans :data:`OVERVIEW_PIXELS`
    pixels.
    """
    areas = units.geometry.area.to_numpy(dtype=float)
    areas = areas[np.isfinite(areas) & (areas > 0)]
    if not len(areas):
        return 0, ZOOM_SPAN
    minzoom, maxzoom = zoom_range_for_size(math.sqrt(float(np.median(areas))))
    minx, miny, maxx, maxy = (float(v) for v in units.total_bounds)
    extent = max(maxx - minx, maxy - miny)
    if extent > 0 and math.isfinite(extent):
        overview = math.floor(math.log2(OVERVIEW_PIXELS * Z0_PIXEL_M / extent))
        minzoom = max(0, min(minzoom, overview))
    return minzoom, maxzoom


# --- reading archives -----------------------------------------------------------------------------


class Archive:
    """A PMTiles v3 archive opened for reading, with its whole directory indexed in memory.

    The file is memory-mapped; :meth:`get` finds a tile with one binary search and returns its
    stored bytes (gzip-compressed when :attr:`compressed`).

    Parameters
    ----------
    path
        The ``.pmtiles`` file.

    Raises
    ------
    geo_usm.errors.BuildError
        If the file is not a readable PMTiles v3 archive.

    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with self.path.open("rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if self._map[:7] != b"PMTiles" or self._map[7] != 3:
                raise ValueError("not a PMTiles version 3 archive")
            self.header: dict[str, Any] = dict(deserialize_header(self._map[:127]))
            meta = self._map[
                self.header["metadata_offset"] : self.header["metadata_offset"]
                + self.header["metadata_length"]
            ]
            if self.header["internal_compression"] == Compression.GZIP:
                meta = gzip.decompress(meta)
            self.metadata: dict[str, Any] = json.loads(meta) if meta else {}
            self._ids: list[int] = []
            self._entries: list[tuple[int, int, int]] = []
            self._index(self.header["root_offset"], self.header["root_length"])
        except (OSError, ValueError, EOFError, KeyError) as exc:
            msg = f"cannot read the tile archive: {exc}"
            raise BuildError(msg, path=self.path, hint="rebuild it with 'usm build'") from None

    def _directory(self, offset: int, length: int) -> list[Any]:
        # deserialize_directory decompresses (gzip) by itself
        return list(deserialize_directory(self._map[offset : offset + length]))

    def _index(self, offset: int, length: int) -> None:
        data = self.header["tile_data_offset"]
        for entry in self._directory(offset, length):
            if entry.run_length == 0:  # a leaf directory
                self._index(self.header["leaf_directory_offset"] + entry.offset, entry.length)
            else:
                self._ids.append(entry.tile_id)
                self._entries.append((data + entry.offset, entry.length, entry.run_length))

    @property
    def compressed(self) -> bool:
        """Whether the stored tiles are gzip-compressed."""
        return bool(self.header["tile_compression"] == Compression.GZIP)

    @property
    def minzoom(self) -> int:
        """First zoom level of the archive."""
        return int(self.header["min_zoom"])

    @property
    def maxzoom(self) -> int:
        """Last zoom level of the archive."""
        return int(self.header["max_zoom"])

    @property
    def bounds(self) -> BBox:
        """Extent in WGS84: ``(west, south, east, north)``."""
        h = self.header
        return (
            h["min_lon_e7"] / 1e7,
            h["min_lat_e7"] / 1e7,
            h["max_lon_e7"] / 1e7,
            h["max_lat_e7"] / 1e7,
        )

    @property
    def center(self) -> tuple[float, float, int]:
        """Centre ``(lon, lat, zoom)``."""
        h = self.header
        return (h["center_lon_e7"] / 1e7, h["center_lat_e7"] / 1e7, int(h["center_zoom"]))

    @property
    def vector_layers(self) -> list[dict[str, Any]]:
        """The ``vector_layers`` of the archive's metadata (id, fields, zoom levels)."""
        layers = self.metadata.get("vector_layers")
        return list(layers) if isinstance(layers, list) else []

    def __len__(self) -> int:
        """Return the number of tiles addressed."""
        return sum(run for _, _, run in self._entries)

    def get(self, z: int, x: int, y: int) -> bytes | None:
        """Return a tile's stored bytes, or None when the archive has no such tile.

        Parameters
        ----------
        z, x, y
            Zoom, column and row (XYZ scheme, row 0 at the north), assumed valid.

        """
        tile_id = zxy_to_tileid(z, x, y)
        i = bisect.bisect_right(self._ids, tile_id) - 1
        if i < 0:
            return None
        offset, length, run = self._entries[i]
        if tile_id - self._ids[i] >= run:
            return None
        return self._map[offset : offset + length]

    def tiles(self) -> Iterator[tuple[int, bytes]]:
        """Yield ``(tile_id, stored bytes)`` for every tile, in tile-id order."""
        for start, (offset, length, run) in zip(self._ids, self._entries, strict=True):
            data = self._map[offset : offset + length]
            for i in range(run):
                yield start + i, data

    def close(self) -> None:
        """Release the memory map."""
        self._map.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- writing archives -----------------------------------------------------------------------------


@dataclass
class TileLayer:
    """One MVT layer to write: a frame and how to tile it.

    Attributes
    ----------
    name
        MVT layer name (MapLibre's ``source-layer``).
    frame
        Features with a CRS; every column besides the geometry becomes an attribute.
    fields
        Attribute name to catalogue type, in order.
    minzoom, maxzoom
        Zoom levels of the layer.
    description
        For people (TileJSON ``vector_layers``).
    simplification
        Simplification tolerance in tile units at each zoom (0: none; never for grids).

    """

    name: str
    frame: gpd.GeoDataFrame
    fields: dict[str, ColumnType]
    minzoom: int
    maxzoom: int
    description: str = ""
    simplification: float = 0.0
    bounds: BBox | None = field(default=None, init=False)


def _encode(layer: TileLayer) -> tuple[Iterator[dict[int, bytes]], dict[str, Any]]:
    """Encode one layer (:func:`geo_usm.mvt.iter_layer`); return its tiles and tilestats.

    The tiles come zoom after zoom, uncompressed MVT ``Layer`` fields by tile id (a tile's
    layers are concatenated, then compressed, by :func:`write_archive`); sets ``layer.bounds``.
    """
    frame = layer.frame
    # one pyproj transform to WGS84 (the transformer the build has cached), then Mercator
    lonlat = geo.to_crs(np.asarray(frame.geometry.values), frame.crs, geo.WGS84)
    layer.bounds = _box(shapely.total_bounds(lonlat))
    geoms = mvt.wgs84_to_mercator(lonlat)
    attributes = mvt.prepare_attributes(pd.DataFrame(frame[list(layer.fields)]), layer.fields)
    tiles = mvt.iter_layer(
        layer.name,
        geoms,
        attributes,
        layer.minzoom,
        layer.maxzoom,
        buffer=BUFFER,
        simplification=layer.simplification,
    )
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    names = {0: "Point", 4: "Point", 1: "LineString", 5: "LineString", 3: "Polygon", 6: "Polygon"}
    kinds = {names.get(int(t), "Unknown") for t in np.unique(shapely.get_type_id(present))}
    stats = {
        "layer": layer.name,
        "count": len(frame),
        "geometry": kinds.pop() if len(kinds) == 1 else "Unknown",
        "attributeCount": len(layer.fields),
        "attributes": [
            {"attribute": column, **summary}
            for column, summary in zip(layer.fields, attributes.summaries, strict=True)
        ],
    }
    return tiles, stats


def _box(bounds: np.ndarray) -> BBox | None:
    """Return a WGS84 box as a tuple, or None when it is empty (NaN)."""
    if not np.all(np.isfinite(bounds)):
        return None
    return (float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3]))


def _gzip(tiles: Sequence[bytes]) -> bytes:
    return gzip.compress(b"".join(tiles), compresslevel=GZIP_LEVEL, mtime=0)


def _compress(
    raw: Mapping[int, list[bytes]], pool: ThreadPoolExecutor
) -> list[Future[dict[int, list[bytes]]]]:
    """Submit tiles (their layers to concatenate) for gzip in batches, one per thread or so."""
    items = list(raw.items())
    step = max(1, math.ceil(len(items) / (2 * GZIP_THREADS)))

    def run(batch: list[tuple[int, list[bytes]]]) -> dict[int, list[bytes]]:
        return {tile_id: [_gzip(layers)] for tile_id, layers in batch}

    return [pool.submit(run, items[i : i + step]) for i in range(0, len(items), step)]


def write_archive(
    path: Path,
    layers: Sequence[TileLayer],
    *,
    name: str,
    description: str,
    attribution: str,
    kind: str = "overlay",
) -> dict[str, Any] | None:
    """Write MVT layers into one PMTiles archive.

    Each layer is encoded on its own (its zoom levels, its simplification) by
    :func:`geo_usm.mvt.encode_layer`; tiles that several layers share are merged (an MVT tile is
    a list of layers: their encodings are concatenated), then every tile is gzip-compressed.

    Parameters
    ----------
    path
        The ``.pmtiles`` file to write (replaced).
    layers
        The layers, in drawing order; empty ones are left out.
    name, description, attribution
        Metadata of the tileset.
    kind
        ``overlay`` or ``baselayer`` (metadata ``type``).

    Returns
    -------
    dict or None
        The tileset's manifest entry (see :func:`write_tilesets`) without ``file``, or None
        when no layer has a feature (nothing is written).

    """
    layers = [layer for layer in layers if len(layer.frame)]
    if not layers:
        return None
    stats: list[Any] = []
    # zlib releases the GIL: threads compress batches of tiles while the next zoom is encoded
    with ThreadPoolExecutor(max_workers=GZIP_THREADS) as pool:
        pending = []
        if len(layers) == 1:
            zooms, layer_stats = _encode(layers[0])
            stats.append(layer_stats)
            for tiles in zooms:
                pending += _compress({t: [data] for t, data in tiles.items()}, pool)
        else:
            raw: dict[int, list[bytes]] = {}
            for layer in layers:
                zooms, layer_stats = _encode(layer)
                stats.append(layer_stats)
                for tiles in zooms:
                    for tile_id, data in tiles.items():
                        raw.setdefault(tile_id, []).append(data)
            pending += _compress(raw, pool)
        parts: dict[int, list[bytes]] = {}
        for batch in pending:
            parts.update(batch.result())
    if not parts:
        return None
    boxes = [layer.bounds for layer in layers if layer.bounds is not None]
    vector_layers = [
        {
            "id": layer.name,
            "description": layer.description,
            "minzoom": layer.minzoom,
            "maxzoom": layer.maxzoom,
            "fields": {f: MVT_FIELD_TYPES[t] for f, t in layer.fields.items()},
        }
        for layer in layers
    ]
    info = _write(
        path,
        parts,
        {"name": name, "description": description, "attribution": attribution, "type": kind},
        vector_layers,
        stats,
        _union(boxes),
    )
    return {
        "format": "pmtiles",
        "tile_type": "mvt",
        "tile_matrix_set": TILE_MATRIX_SET,
        "extent": EXTENT,
        "minzoom": info["minzoom"],
        "maxzoom": info["maxzoom"],
        "bounds": info["bounds"],
        "layers": [
            {
                "id": layer.name,
                "minzoom": layer.minzoom,
                "maxzoom": layer.maxzoom,
                "fields": dict(layer.fields),
            }
            for layer in layers
        ],
        "tiles": info["tiles"],
        "bytes": info["bytes"],
        "sha256": file_sha256(path),
    }


def _union(boxes: Sequence[BBox]) -> BBox:
    if not boxes:
        return (-180.0, -85.0511287798066, 180.0, 85.0511287798066)
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _write(
    path: Path,
    parts: Mapping[int, list[bytes]],
    described: Mapping[str, str],
    vector_layers: list[dict[str, Any]],
    stats: list[Any],
    bounds: BBox,
) -> dict[str, Any]:
    """Write gzip tiles (merged per tile id) and their metadata as a PMTiles archive."""
    minzoom = min(int(layer["minzoom"]) for layer in vector_layers)
    maxzoom = max(int(layer["maxzoom"]) for layer in vector_layers)
    center = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    center_zoom = max(minzoom, min(maxzoom, _fit_zoom(bounds)))
    metadata = {
        **described,
        "version": "1",
        "format": "pbf",
        "generator": f"geo-usm {__version__}",
        "minzoom": str(minzoom),
        "maxzoom": str(maxzoom),
        "bounds": ",".join(f"{v:.7f}" for v in bounds),
        "center": f"{center[0]:.7f},{center[1]:.7f},{center_zoom}",
        "vector_layers": vector_layers,
        "tilestats": {"layerCount": len(stats), "layers": stats},
    }
    header = {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": math.floor(bounds[0] * 1e7),
        "min_lat_e7": math.floor(bounds[1] * 1e7),
        "max_lon_e7": math.ceil(bounds[2] * 1e7),
        "max_lat_e7": math.ceil(bounds[3] * 1e7),
        "center_zoom": center_zoom,
        "center_lon_e7": round(center[0] * 1e7),
        "center_lat_e7": round(center[1] * 1e7),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as f:
            writer = Writer(f)
            for tile_id in sorted(parts):
                writer.write_tile(tile_id, _merge(parts[tile_id]))
            writer.finalize(header, metadata)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [round(v, 7) for v in bounds],
        "tiles": len(parts),
        "bytes": path.stat().st_size,
    }


def _merge(tiles: list[bytes]) -> bytes:
    """Merge gzip-compressed MVT tiles into one (a tile is a repeated field of layers)."""
    if len(tiles) == 1:
        return tiles[0]
    return gzip.compress(b"".join(gzip.decompress(t) for t in tiles), mtime=0)


def _fit_zoom(bounds: BBox) -> int:
    """Zoom at which a WGS84 box spans about :data:`OVERVIEW_PIXELS` pixels."""
    width = max(bounds[2] - bounds[0], 1e-9) / 360.0 * 256
    lat = math.radians((bounds[1] + bounds[3]) / 2)
    height = max(bounds[3] - bounds[1], 1e-9) / 360.0 * 256 / max(math.cos(lat), 1e-6)
    return max(0, min(MAX_ZOOM, math.floor(math.log2(OVERVIEW_PIXELS / max(width, height)))))


def tiled_layers(catalog: Catalog) -> list[OutputLayer]:
    """Return the layers that get a vector tileset: the public grids with geometry."""
    return [layer for layer in catalog.collections() if layer.grid]


def _grid_layer(declared: OutputLayer, frame: gpd.GeoDataFrame) -> TileLayer:
    """Return a grid's tile layer: every declared column, zoom levels from its kind."""
    if not isinstance(frame, gpd.GeoDataFrame) or frame.crs is None:
        msg = f"layer '{declared.name}' has no geometry or no CRS: cannot make its tiles"
        raise BuildError(msg)
    missing = [c for c in declared.column_names if c not in frame.columns]
    if missing:
        msg = f"layer '{declared.name}' lacks declared column(s) {missing}: cannot make its tiles"
        raise BuildError(msg)
    data = gpd.GeoDataFrame(
        frame[declared.column_names].reset_index(drop=True),
        geometry=np.asarray(frame.geometry.values),
        crs=frame.crs,
    )
    if declared.resolution is not None:
        minzoom, maxzoom = hex_zoom_range(declared.resolution)
    else:
        minzoom, maxzoom = units_zoom_range(data)
    return TileLayer(
        name=declared.name,
        frame=data,
        fields={c.name: c.type for c in declared.columns},
        minzoom=minzoom,
        maxzoom=maxzoom,
        description=declared.title,
    )


def _basemap_layers(
    basemap: Mapping[str, gpd.GeoDataFrame], minzoom: int, maxzoom: int
) -> list[TileLayer]:
    unknown = sorted(set(basemap) - set(BASEMAP_LAYERS))
    if unknown:
        msg = f"unknown basemap layer(s) {unknown}; the basemap layers are {BASEMAP_LAYERS}"
        raise ValueError(msg)
    first = {"streets": STREETS_ZOOM, "parks": PARKS_MINZOOM}
    out = []
    for name in BASEMAP_LAYERS:
        frame = basemap.get(name)
        if frame is None:
            continue
        if not isinstance(frame, gpd.GeoDataFrame) or frame.crs is None:
            msg = f"basemap layer '{name}' has no geometry or no CRS"
            raise BuildError(msg)
        keep = [c for c in BASEMAP_FIELDS[name] if c in frame.columns]
        data = gpd.GeoDataFrame(
            frame[keep].astype("string").reset_index(drop=True),
            geometry=np.asarray(frame.geometry.values),
            crs=frame.crs,
        )
        data = data[~(data.geometry.isna() | data.geometry.is_empty)]
        low = min(max(minzoom, first.get(name, minzoom)), maxzoom)
        high = low if name == "streets" else maxzoom
        out.append(
            TileLayer(
                name=name,
                frame=data,
                fields=dict.fromkeys(keep, "string"),
                minzoom=low,
                maxzoom=high,
                description=name.replace("_", " ").capitalize(),
                simplification=1.0 if name in first else 0.0,
            )
        )
    return out


def write_tilesets(
    public_dir: Path,
    catalog: Catalog,
    frames: Mapping[str, gpd.GeoDataFrame],
    basemap: Mapping[str, gpd.GeoDataFrame],
    *,
    attribution: str,
) -> dict[str, Any]:
    """Write the vector tilesets of a build into ``public_dir/tiles/``.

    One archive per public grid of the catalogue (``<name>.pmtiles``, one MVT layer named as
    the grid, every declared column an attribute) and ``basemap.pmtiles`` with the layers of
    ``basemap`` that have features.

    Parameters
    ----------
    public_dir
        The build's ``public/`` directory.
    catalog
        The build's output catalogue: which layers get tiles, and their columns.
    frames
        The grid frames as written (working CRS), by layer name; other entries are ignored.
    basemap
        Frames of the basemap layers by name (``study_area``, ``boundaries``: the admin units,
        ``streets``, ``parks``); any may be missing. Streets and parks keep only ``name``.
    attribution
        Attribution statement of the tiles' data.

    Returns
    -------
    dict
        The manifest's ``tiles`` section: per tileset name, ``file`` (relative to the build
        directory), ``format``, ``tile_type``, ``tile_matrix_set``, ``extent``, ``minzoom``,
        ``maxzoom``, ``bounds`` (WGS84 west, south, east, north), ``layers`` (``id``,
        ``minzoom``, ``maxzoom``, ``fields``: name to catalogue type), ``tiles``, ``bytes`` and
        ``sha256``.

    Raises
    ------
    geo_usm.errors.BuildError
        If a grid frame is missing, lacks a declared column or has no CRS.

    """
    out_dir = Path(public_dir) / TILES_DIR
    section: dict[str, Any] = {}
    ranges = []
    for declared in tiled_layers(catalog):
        if declared.name not in frames:
            raise BuildError(f"no frame for layer '{declared.name}': cannot make its tiles")
        layer = _grid_layer(declared, frames[declared.name])
        ranges.append((layer.minzoom, layer.maxzoom))
        entry = write_archive(
            out_dir / f"{declared.name}.pmtiles",
            [layer],
            name=declared.title,
            description=declared.description,
            attribution=attribution,
        )
        if entry is not None:
            section[declared.name] = {"file": _relative(declared.name), **entry}
    if basemap:
        minzoom = min((r[0] for r in ranges), default=0)
        maxzoom = max((r[1] for r in ranges), default=ZOOM_SPAN)
        entry = write_archive(
            out_dir / f"{BASEMAP}.pmtiles",
            _basemap_layers(basemap, minzoom, maxzoom),
            name="Basemap",
            description="Study area, admin unit boundaries, streets and parks of the city.",
            attribution=attribution,
            kind="baselayer",
        )
        if entry is not None:
            section[BASEMAP] = {"file": _relative(BASEMAP), **entry}
    return section


def _relative(name: str) -> str:
    return f"public/{TILES_DIR}/{name}.pmtiles"


def export_pmtiles(public_dir: Path, out: Path, archives: Sequence[Path]) -> dict[str, Any]:
    """Merge tile archives into one PMTiles file for static hosting.

    Every MVT layer keeps its name and zoom levels; tiles several archives share are merged.

    Parameters
    ----------
    public_dir
        The build's ``public/`` directory (for messages).
    out
        The file to write (replaced).
    archives
        The archives to merge, in drawing order.

    Returns
    -------
    dict
        ``layers`` (MVT layer ids), ``minzoom``, ``maxzoom``, ``tiles`` and ``bytes``.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If there is no archive to merge.

    """
    if not archives:
        msg = "the build has no vector tiles to export"
        raise NotFoundError(msg, path=public_dir, hint="rebuild it with 'usm build'")
    parts: dict[int, list[bytes]] = {}
    vector_layers: list[dict[str, Any]] = []
    stats: list[Any] = []
    boxes: list[BBox] = []
    attributions: list[str] = []
    for path in archives:
        with Archive(path) as archive:
            for tile_id, data in archive.tiles():
                if not archive.compressed:
                    data = gzip.compress(data, mtime=0)
                parts.setdefault(tile_id, []).append(data)
            vector_layers += archive.vector_layers
            stats += (archive.metadata.get("tilestats") or {}).get("layers", [])
            boxes.append(archive.bounds)
            text = archive.metadata.get("attribution")
            if text and text not in attributions:
                attributions.append(text)
    described = {
        "name": "geo-usm tiles",
        "description": "Every vector tileset of a geo-usm build (grids and basemap).",
        "attribution": "; ".join(attributions),
        "type": "overlay",
    }
    info = _write(Path(out), parts, described, vector_layers, stats, _union(boxes))
    return {"layers": [layer.get("id") for layer in vector_layers], **info}


def tile_zxy(tile_id: int) -> tuple[int, int, int]:
    """Return ``(z, x, y)`` of a PMTiles tile id."""
    z, x, y = tileid_to_zxy(tile_id)
    return int(z), int(x), int(y)


def _build_archives(public: Path, catalog: Catalog) -> list[Path]:
    """Return the build's tile archives: grids in catalogue order, then the basemap."""
    names = [layer.name for layer in tiled_layers(catalog)] + [BASEMAP]
    paths = [public / TILES_DIR / f"{name}.pmtiles" for name in names]
    return [p for p in paths if p.is_file()]


def export_build(build_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write every vector tileset of a build into one PMTiles file (``usm export --pmtiles``).

    A build made before tiles existed (no ``public/tiles/``) gets its tiles made now from its
    public layers (grids; basemap with the study area and the unit boundaries), in a temporary
    directory: the build itself is never modified.

    Parameters
    ----------
    build_dir
        The build directory (or a copy of its ``public/`` part).
    out
        The ``.pmtiles`` file to write (replaced).

    Returns
    -------
    dict
        ``layers``, ``minzoom``, ``maxzoom``, ``bounds``, ``tiles`` and ``bytes`` of the file.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If ``build_dir`` is not a geo-usm build.
    geo_usm.errors.BuildError
        If its manifest or layers cannot be read.

    """
    from geo_usm import store  # store imports the catalogue only; kept local to stay light

    public = store.public_dir(build_dir)
    manifest = store.load_manifest(public)
    catalog = store.load_catalog(manifest)
    archives = _build_archives(public, catalog)
    with tempfile.TemporaryDirectory(prefix="usm-export-") as tmp:
        if not archives:
            frames = {
                layer.name: store.read_layer(public, layer)
                for layer in catalog.layers
                if layer.store == "public" and layer.geometry
            }
            basemap = {}
            if "study_area" in frames:
                basemap["study_area"] = frames["study_area"]
            if "units" in frames:
                basemap["boundaries"] = frames["units"]
            attribution = "; ".join(str(a) for a in manifest.get("attribution") or [] if a)
            write_tilesets(Path(tmp), catalog, frames, basemap, attribution=attribution)
            archives = _build_archives(Path(tmp), catalog)
        return export_pmtiles(public, Path(out), archives)


# --- the density surface --------------------------------------------------------------------------

#: File of the density surface inside ``public/`` and its collection id.
SURFACE = "risk_surface"
SURFACE_FILE = "risk_surface.tif"
#: Class breaks of the density surface, in crimes per km2: class i holds values from
#: ``SURFACE_BREAKS[i]`` (included) to ``SURFACE_BREAKS[i + 1]`` (excluded). Fixed, so that
#: maps of different cities and builds read alike; roughly logarithmic.
SURFACE_BREAKS: tuple[float, ...] = (0, 10, 50, 100, 250, 500, 1000, 2500, 5000, math.inf)
#: Colours of the classes: ColorBrewer YlOrRd, 9 classes (sequential, colour-blind safe).
SURFACE_COLORS: tuple[str, ...] = (
    "#ffffcc",
    "#ffeda0",
    "#fed976",
    "#feb24c",
    "#fd8d3c",
    "#fc4e2a",
    "#e31a1c",
    "#bd0026",
    "#800026",
)
#: Opacity (0-255) of every class; no data (NaN, nodata, outside the study area) is transparent.
SURFACE_ALPHA = 255
SURFACE_UNIT = "crimes per km2"
#: Side of a density tile in pixels.
SURFACE_TILE_SIZE = 256


def _rgba(color: str) -> tuple[int, int, int, int]:
    value = color.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16), SURFACE_ALPHA)


def surface_colormap() -> list[tuple[tuple[float, float], tuple[int, int, int, int]]]:
    """Return the density colour scale as rio-tiler intervals ``((low, high), (r, g, b, a))``."""
    return [
        ((SURFACE_BREAKS[i], SURFACE_BREAKS[i + 1]), _rgba(color))
        for i, color in enumerate(SURFACE_COLORS)
    ]


def surface_legend() -> dict[str, Any]:
    """Return the legend of the density tiles: unit, colour scale, classes.

    Returns
    -------
    dict
        ``title``, ``unit``, ``colormap`` (its name), ``nodata`` (what transparent means) and
        ``classes``: per class ``min`` (included), ``max`` (excluded; None for the last, open
        class), ``color`` (``#rrggbb``), ``rgba`` and ``label``.

    """
    classes = []
    for i, color in enumerate(SURFACE_COLORS):
        low, high = SURFACE_BREAKS[i], SURFACE_BREAKS[i + 1]
        label = f"{low:,.0f} or more" if math.isinf(high) else f"{low:,.0f} to {high:,.0f}"
        classes.append(
            {
                "min": low,
                "max": None if math.isinf(high) else high,
                "color": color,
                "rgba": list(_rgba(color)),
                "label": label,
            }
        )
    return {
        "title": "Crime density",
        "unit": SURFACE_UNIT,
        "colormap": "YlOrRd (ColorBrewer), 9 fixed classes",
        "nodata": "transparent: no data, outside the study area",
        "classes": classes,
    }


@dataclass(frozen=True)
class SurfaceInfo:
    """Extent and zoom levels of a density surface.

    Attributes
    ----------
    bounds
        WGS84 ``(west, south, east, north)``.
    minzoom, maxzoom
        Zoom levels matching the raster's resolution (rio-tiler's choice).

    """

    bounds: BBox
    minzoom: int
    maxzoom: int


def surface_info(path: Path) -> SurfaceInfo:
    """Describe a density surface (a GeoTIFF in any CRS).

    Raises
    ------
    geo_usm.errors.BuildError
        If the file cannot be read.

    """
    from rio_tiler.io import Reader  # rasterio is heavy: imported only when a surface exists

    try:
        with Reader(str(path)) as src:
            bounds = tuple(float(v) for v in src.get_geographic_bounds("epsg:4326"))
            return SurfaceInfo(
                (bounds[0], bounds[1], bounds[2], bounds[3]), src.minzoom, src.maxzoom
            )
    except Exception as exc:  # rasterio raises its own hierarchy
        msg = f"cannot read the density surface: {exc}"
        raise BuildError(msg, path=path, hint="rebuild it with 'usm build'") from None


def render_surface_tile(path: Path, z: int, x: int, y: int) -> bytes | None:
    """Render one WebMercatorQuad tile of a density surface as a PNG with the fixed colours.

    Parameters
    ----------
    path
        The surface (float32 GeoTIFF, NaN or nodata where there is no data).
    z, x, y
        Tile zoom, column and row (assumed valid).

    Returns
    -------
    bytes or None
        The PNG (RGBA, :data:`SURFACE_TILE_SIZE` pixels, transparent where there is no data),
        or None when the tile holds no data at all.

    """
    from rio_tiler.errors import TileOutsideBounds
    from rio_tiler.io import Reader

    with Reader(str(path)) as src:
        if not src.tile_exists(x, y, z):
            return None
        try:
            image = src.tile(
                x, y, z, tilesize=SURFACE_TILE_SIZE, indexes=1, reproject_method="bilinear"
            )
        except TileOutsideBounds:
            return None
    values = image.array[0]
    valid = ~np.ma.getmaskarray(values) & np.isfinite(np.ma.getdata(values))
    if not valid.any():
        return None
    return bytes(image.render(img_format="PNG", colormap=surface_colormap()))
