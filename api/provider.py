"""Read a geo-usm build once and serve its public aggregate layers as feature collections.

Only the aggregate layers ``hex``, ``hex_r<N>`` and ``units`` are public; every other layer of
``diagnosis.gpkg`` (raw records, rejects, crosswalk, study area) is never read, let alone
served. At startup each public layer is reprojected to CRS84 (longitude, latitude) and every
feature is serialised to GeoJSON once, so that a page of items is a join of ready-made byte
strings; an STRtree over the CRS84 geometries answers ``bbox`` queries.

Routes talk to the abstract :class:`Provider`, so they can be tested against a fake; the one
implementation, :class:`BuildProvider`, reads a build directory.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo_usm import store
from geo_usm.errors import BuildError, NotFoundError

#: CRS of every geometry served (WGS 84 longitude, latitude).
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

#: Names of the layers that may be served; anything else in the GeoPackage stays private.
PUBLIC_LAYERS = re.compile(r"hex|hex_r(?P<res>\d+)|units")

#: Decimal places kept in served coordinates (1e-7 degree is about 1 cm).
COORDINATE_DECIMALS = 7

BBox = tuple[float, float, float, float]

WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class BuildInfo:
    """What the manifest says about the build being served.

    Attributes
    ----------
    path
        Resolved build directory.
    build_id
        Build identifier (the directory name when the manifest has none).
    city
        City name.
    finished
        When the build finished (ISO 8601), if known.
    attribution
        Attribution statements of the inputs.
    working_crs
        The build's metric working CRS, if known.

    """

    path: Path
    build_id: str
    city: str
    finished: str | None
    attribution: tuple[str, ...]
    working_crs: str | None


@dataclass(frozen=True)
class CollectionInfo:
    """Metadata of one feature collection.

    Attributes
    ----------
    id
        Collection id (the layer name).
    title, description
        Human-readable title and description.
    bbox
        Extent in CRS84: ``(min lon, min lat, max lon, max lat)``.
    count
        Number of features.
    id_column
        Attribute holding the feature id.
    properties
        Names of the attributes served as feature properties.

    """

    id: str
    title: str
    description: str
    bbox: BBox
    count: int
    id_column: str
    properties: tuple[str, ...]


@dataclass(frozen=True)
class ItemsPage:
    """One page of features.

    Attributes
    ----------
    number_matched
        Number of features matching the query, over all pages.
    features
        The page's features, each a UTF-8 GeoJSON ``Feature`` object without links.

    """

    number_matched: int
    features: list[bytes]


class Provider(ABC):
    """The data behind the API: what routes call to list collections and read features."""

    @property
    @abstractmethod
    def info(self) -> BuildInfo:
        """Describe the build (used by ``/`` and ``/healthz``)."""

    @abstractmethod
    def collections(self) -> list[CollectionInfo]:
        """List the public collections (used by ``/collections``)."""

    @abstractmethod
    def collection(self, collection_id: str) -> CollectionInfo:
        """Describe one collection (used by ``/collections/{collectionId}``).

        Raises
        ------
        geo_usm.errors.NotFoundError
            If there is no such public collection.

        """

    @abstractmethod
    def items(
        self, collection_id: str, *, bbox: BBox | None = None, offset: int = 0, limit: int = 10
    ) -> ItemsPage:
        """Return a page of features (used by ``/collections/{collectionId}/items``).

        Parameters
        ----------
        collection_id
            The collection.
        bbox
            Keep features whose geometry intersects this CRS84 box; ``min lon > max lon``
            means a box crossing the antimeridian.
        offset
            Number of matching features to skip.
        limit
            Largest number of features returned.

        Raises
        ------
        geo_usm.errors.NotFoundError
            If there is no such public collection.

        """

    @abstractmethod
    def item(self, collection_id: str, feature_id: str) -> bytes:
        """Return one feature (used by ``/collections/{collectionId}/items/{featureId}``).

        Raises
        ------
        geo_usm.errors.NotFoundError
            If there is no such collection or feature.

        """


@dataclass(frozen=True)
class _Layer:
    info: CollectionInfo
    features: list[bytes]
    index: dict[str, int]
    tree: shapely.STRtree


class BuildProvider(Provider):
    """Serve the public layers of a geo-usm build, read once into memory.

    Parameters
    ----------
    build_dir
        The build directory or a link to it; a link is resolved now, so a build published
        later at the same path is picked up only by a restart.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If ``build_dir`` is not a geo-usm build.
    geo_usm.errors.BuildError
        If the build has no public layer, a layer lacks a CRS or its id column, or ids repeat.

    """

    def __init__(self, build_dir: str | Path):
        path = Path(build_dir).resolve()
        manifest = store.load_manifest(path)
        self._info = _build_info(path, manifest)
        names = [str(name) for name, _ in pyogrio.list_layers(path / store.GPKG)]
        public = sorted((n for n in names if PUBLIC_LAYERS.fullmatch(n)), key=_layer_order)
        if not public:
            msg = "the build has no public layer (hex, hex_r<N> or units)"
            raise BuildError(msg, path=path / store.GPKG)
        self._layers = {name: self._load(name) for name in public}

    @property
    def info(self) -> BuildInfo:
        """Describe the build."""
        return self._info

    def collections(self) -> list[CollectionInfo]:
        """List the public collections: ``hex``, then ``hex_r<N>`` by resolution, ``units``."""
        return [layer.info for layer in self._layers.values()]

    def collection(self, collection_id: str) -> CollectionInfo:
        """Describe one collection."""
        return self._layer(collection_id).info

    def items(
        self, collection_id: str, *, bbox: BBox | None = None, offset: int = 0, limit: int = 10
    ) -> ItemsPage:
        """Return a page of features, in the layer's stored order."""
        layer = self._layer(collection_id)
        start, stop = max(offset, 0), max(offset, 0) + max(limit, 0)
        if bbox is None:
            return ItemsPage(len(layer.features), layer.features[start:stop])
        hits = _query(layer.tree, bbox)
        return ItemsPage(len(hits), [layer.features[i] for i in hits[start:stop]])

    def item(self, collection_id: str, feature_id: str) -> bytes:
        """Return one feature as GeoJSON."""
        layer = self._layer(collection_id)
        position = layer.index.get(feature_id)
        if position is None:
            msg = f"collection '{collection_id}' has no feature '{feature_id}'"
            raise NotFoundError(msg)
        return layer.features[position]

    def _layer(self, collection_id: str) -> _Layer:
        layer = self._layers.get(collection_id)
        if layer is None:
            known = ", ".join(self._layers)
            msg = f"no collection '{collection_id}'; the collections are: {known}"
            raise NotFoundError(msg)
        return layer

    def _load(self, name: str) -> _Layer:
        gpkg = self._info.path / store.GPKG
        frame = store.read_layer(self._info.path, name)
        problem = None
        id_column = "unit_id" if name == "units" else "h3"
        if not isinstance(frame, gpd.GeoDataFrame):
            problem = f"layer '{name}' has no geometry"
        elif frame.crs is None:
            problem = f"layer '{name}' has no CRS"
        elif id_column not in frame.columns:
            problem = f"layer '{name}' has no '{id_column}' column"
        elif frame[id_column].isna().any():
            problem = f"layer '{name}' has empty '{id_column}' values"
        if problem:
            raise BuildError(problem, path=gpkg, hint="rebuild it with 'usm build'")
        ids = frame[id_column].astype(str)
        if ids.duplicated().any():
            dup = ", ".join(sorted(set(ids[ids.duplicated()]))[:5])
            msg = f"layer '{name}' repeats '{id_column}' values: {dup}"
            raise BuildError(msg, path=gpkg, hint="rebuild it with 'usm build'")

        geoms = np.asarray(frame.to_crs("OGC:CRS84").geometry.values, dtype=object)
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, COORDINATE_DECIMALS))
        attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
        features = _serialise(ids.tolist(), geoms, attributes)
        bbox = WORLD  # an empty layer has no extent of its own
        if len(geoms) and not shapely.is_missing(geoms).all():
            minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
            if all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
                bbox = (minx, miny, maxx, maxy)
        info = CollectionInfo(
            id=name,
            title=_title(name, frame),
            description=_description(name, frame, self._info),
            bbox=bbox,
            count=len(frame),
            id_column=id_column,
            properties=tuple(str(c) for c in attributes.columns),
        )
        return _Layer(
            info,
            features,
            dict(zip(ids.tolist(), range(len(ids)), strict=True)),
            shapely.STRtree(geoms),
        )


def _layer_order(name: str) -> tuple[int, int]:
    match = PUBLIC_LAYERS.fullmatch(name)
    assert match is not None
    if name == "hex":
        return (0, 0)
    if name == "units":
        return (2, 0)
    return (1, -int(match["res"]))  # finer grids first


def _resolution(name: str, frame: pd.DataFrame) -> int | None:
    match = PUBLIC_LAYERS.fullmatch(name)
    if match and match["res"]:
        return int(match["res"])
    if "resolution" in frame.columns and len(frame):
        values = pd.unique(frame["resolution"].dropna())
        if len(values) == 1:
            return int(values[0])
    return None


def _title(name: str, frame: pd.DataFrame) -> str:
    if name == "units":
        return "Administrative units"
    res = _resolution(name, frame)
    return f"H3 hexagons, resolution {res}" if res is not None else "H3 hexagons"


def _description(name: str, frame: pd.DataFrame, info: BuildInfo) -> str:
    counts = [
        str(c) for c in frame.columns if str(c).endswith("_count") or str(c).startswith("count_")
    ]
    listed = ", ".join(counts) if counts else "none"
    if name == "units":
        head = f"Counts per lowest administrative unit of {info.city}."
    else:
        res = _resolution(name, frame)
        grid = f"H3 cell at resolution {res}" if res is not None else "H3 cell"
        head = (
            f"Counts per {grid} covering the study area of {info.city}; area_share is the "
            "share of the cell inside the study area."
        )
    return f"{head} Count attributes: {listed}. Build {info.build_id}."


def _build_info(path: Path, manifest: dict[str, Any]) -> BuildInfo:
    city = manifest.get("city")
    city_name = city.get("name") if isinstance(city, dict) else city
    attribution = manifest.get("attribution") or []
    if isinstance(attribution, str):
        attribution = [attribution]
    crs = manifest.get("crs")
    working = crs.get("working") if isinstance(crs, dict) else crs
    finished = manifest.get("finished")
    return BuildInfo(
        path=path,
        build_id=str(manifest.get("build_id") or path.name),
        city=str(city_name or "the city"),
        finished=str(finished) if finished else None,
        attribution=tuple(str(a) for a in attribution if a),
        working_crs=str(working) if working else None,
    )


def _plain(value: Any) -> Any:
    """Return a JSON-ready Python value (NaN, NA and NaT become None)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return str(value)


def _serialise(ids: Sequence[str], geoms: np.ndarray, attributes: pd.DataFrame) -> list[bytes]:
    """Serialise every feature to a compact GeoJSON ``Feature`` (UTF-8 bytes)."""
    geometry_json = shapely.to_geojson(geoms)
    columns = [str(c) for c in attributes.columns]
    values = [[_plain(v) for v in attributes[c].tolist()] for c in attributes.columns]
    features = []
    for i, fid in enumerate(ids):
        properties = {name: column[i] for name, column in zip(columns, values, strict=True)}
        text = (
            '{"type":"Feature","id":'
            + json.dumps(fid, ensure_ascii=False)
            + ',"geometry":'
            + (geometry_json[i] or "null")
            + ',"properties":'
            + json.dumps(properties, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            + "}"
        )
        features.append(text.encode())
    return features


def _box(bbox: BBox) -> shapely.Geometry:
    minx, miny, maxx, maxy = bbox
    if minx == maxx and miny == maxy:
        return shapely.Point(minx, miny)
    if minx == maxx or miny == maxy:
        return shapely.LineString([(minx, miny), (maxx, maxy)])
    return shapely.box(minx, miny, maxx, maxy)


def _query(tree: shapely.STRtree, bbox: BBox) -> np.ndarray:
    """Return the sorted positions of the geometries intersecting ``bbox``."""
    minx, miny, maxx, maxy = bbox
    boxes = (
        [(minx, miny, maxx, maxy)]
        if minx <= maxx
        else [(minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)]
    )  # crosses the antimeridian
    hits = [tree.query(_box(b), predicate="intersects") for b in boxes]
    return np.unique(np.concatenate(hits)) if hits else np.empty(0, dtype=np.intp)
