"""Read a geo-usm build once and serve its public layers with geometry as feature collections.

What is served comes from the build's output catalogue (``catalog`` in ``manifest.json``, see
:mod:`geo_usm.catalog`), never from layer names: exactly the layers of
:meth:`geo_usm.catalog.Catalog.collections` (public store, public access, with geometry), in
catalogue order, each with the catalogue's title, description, id column and columns. Only the
public part of a build is opened, through :func:`geo_usm.store.read_layer`; the private part
(record-level layers, rejects) is never read, and a copy of ``public/`` alone can be served.

At startup each collection is reprojected to CRS84 (longitude, latitude) and every feature is
serialised to GeoJSON once, so that a page of items is a join of ready-made byte strings; an
STRtree over the CRS84 geometries answers ``bbox`` queries.

Property filters, ``sortby`` and ``properties`` selection take a slower path over a pandas
frame of the properties kept beside the serialised features (the features with a selection of
properties are re-serialised per request); the plain page of the hot path is untouched. The
diagnoses of the grids' features are assembled by :class:`geo_usm.diagnosis.Diagnoses` from the
frames read here and the build's public tables.

Routes talk to the abstract :class:`Provider`, so they can be tested against a fake; the one
implementation, :class:`BuildProvider`, reads a build directory. Several builds are served by
one provider each (see :mod:`api.main`).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio.errors
import shapely

from geo_usm import store
from geo_usm.catalog import Catalog, Column, OutputLayer
from geo_usm.diagnosis import SECTIONS, Diagnoses, json_value
from geo_usm.errors import BuildError, NotFoundError

#: CRS of every geometry served (WGS 84 longitude, latitude).
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

#: Decimal places kept in served coordinates (1e-7 degree is about 1 cm).
COORDINATE_DECIMALS = 7

_REBUILD = "rebuild it with 'usm build'"

BBox = tuple[float, float, float, float]

WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class BuildInfo:
    """What the manifest says about the build being served.

    Attributes
    ----------
    path
        Resolved directory of the build's public part (``BUILD/public`` or a copy of it).
    build_id
        Build identifier (the build directory's name when the manifest has none).
    city
        City name.
    finished
        When the build finished (ISO 8601), if known.
    attribution
        Attribution statements of the inputs.

    """

    path: Path
    build_id: str
    city: str
    finished: str | None
    attribution: tuple[str, ...]


@dataclass(frozen=True)
class CollectionInfo:
    """Metadata of one feature collection, from the build's output catalogue.

    Attributes
    ----------
    id
        Collection id (the catalogue's layer name).
    title, description
        Human-readable title and description.
    bbox
        Extent in CRS84: ``(min lon, min lat, max lon, max lat)``.
    count
        Number of features.
    id_column
        Attribute holding the feature id.
    columns
        The attributes served as feature properties, in served order, as the catalogue
        declares them (type, unit, description, extensive, sources, null reason).
    titles
        Short titles of attributes, where the build gives one (the ``indicators`` table's
        titles of the indicator columns).
    diagnosis
        Whether the features have a diagnosis (the catalogue's grids).

    """

    id: str
    title: str
    description: str
    bbox: BBox
    count: int
    id_column: str
    columns: tuple[Column, ...]
    titles: Mapping[str, str] = field(default_factory=dict)
    diagnosis: bool = False

    @property
    def properties(self) -> tuple[str, ...]:
        """Names of the attributes served as feature properties, in order."""
        return tuple(c.name for c in self.columns)


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


@dataclass(frozen=True)
class PropertyFilter:
    """Keep the features whose property ``name`` equals ``value`` (NULL never matches).

    Attributes
    ----------
    name
        A property of the collection.
    value
        The value, typed as the catalogue declares the property.

    """

    name: str
    value: str | int | float | bool


@dataclass(frozen=True)
class SortKey:
    """One key of ``sortby``: a property, ascending unless ``descending``; NULLs always last."""

    name: str
    descending: bool = False


@dataclass(frozen=True)
class Selection:
    """What a request selects beyond paging: a box, property filters, an order, properties.

    Attributes
    ----------
    bbox
        Keep features whose geometry intersects this CRS84 box; ``min lon > max lon`` means a
        box crossing the antimeridian.
    filters
        Keep features matching every filter.
    sortby
        Order by these keys (the layer's stored order breaks ties); empty: stored order.
    properties
        Serve only these properties, in this order; None: every property.

    """

    bbox: BBox | None = None
    filters: tuple[PropertyFilter, ...] = ()
    sortby: tuple[SortKey, ...] = ()
    properties: tuple[str, ...] | None = None

    @property
    def plain(self) -> bool:
        """Whether the selection is at most a box (the pre-serialised fast path)."""
        return not self.filters and not self.sortby and self.properties is None


class Provider(ABC):
    """The data behind the API: what routes call to list collections and read features."""

    @property
    @abstractmethod
    def info(self) -> BuildInfo:
        """Describe the build (used by ``/`` and ``/healthz``)."""

    @abstractmethod
    def collections(self) -> list[CollectionInfo]:
        """List the collections, in the order they are listed (used by ``/collections``)."""

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
        self,
        collection_id: str,
        *,
        bbox: BBox | None = None,
        offset: int = 0,
        limit: int = 10,
        selection: Selection | None = None,
    ) -> ItemsPage:
        """Return a page of features (used by ``/collections/{collectionId}/items``).

        Parameters
        ----------
        collection_id
            The collection.
        bbox
            Keep features whose geometry intersects this CRS84 box; ``min lon > max lon``
            means a box crossing the antimeridian (ignored when ``selection`` is given).
        offset
            Number of matching features to skip.
        limit
            Largest number of features returned.
        selection
            Box, property filters, order and properties; None: ``bbox`` alone.

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

    def frame(
        self, collection_id: str, selection: Selection, *, offset: int = 0, limit: int | None = None
    ) -> gpd.GeoDataFrame:
        """Return the selected features as a frame in CRS84, for the downloads.

        The frame has the id column, the selected properties and the geometry (used by the CSV
        and GeoPackage downloads).

        Raises
        ------
        geo_usm.errors.NotFoundError
            If there is no such collection, or this provider offers no downloads.

        """
        raise NotFoundError(f"collection '{collection_id}' cannot be downloaded")

    def diagnosis(self, collection_id: str, feature_id: str) -> dict[str, Any]:
        """Return the diagnosis of one feature of a grid (see :mod:`geo_usm.diagnosis`).

        Raises
        ------
        geo_usm.errors.NotFoundError
            If the collection is not a grid, or has no such feature.

        """
        raise NotFoundError(f"collection '{collection_id}' has no diagnoses")


@dataclass(frozen=True)
class _Layer:
    info: CollectionInfo
    features: list[bytes]
    index: dict[str, int]
    tree: shapely.STRtree
    frame: pd.DataFrame  # the properties, without geometry, in stored order
    geometries: np.ndarray  # CRS84
    cuts: list[int]  # length of each feature's text before its properties object


class BuildProvider(Provider):
    """Serve the collections of a geo-usm build, read once into memory.

    Parameters
    ----------
    build_dir
        The build directory, a link to it, or a copy of its ``public/`` part alone; a link is
        resolved now, so a build published later at the same path is picked up only by a
        restart.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If ``build_dir`` is not a geo-usm build (or was made by a geo-usm without the
        public/private layout).
    geo_usm.errors.BuildError
        If the manifest has no valid output catalogue, the catalogue declares no collection, or
        a collection cannot be read, lacks a CRS or its id column, differs from its declared
        columns, or repeats ids.

    """

    def __init__(self, build_dir: str | Path):
        public = store.public_dir(build_dir)
        manifest = _load_manifest(public)
        self._info = _build_info(public, manifest)
        declared = _load_catalog(public, manifest).collections()  # checked before reading
        if not declared:
            msg = "the build's catalogue declares no public layer with geometry"
            raise BuildError(msg, path=public / store.MANIFEST, hint=_REBUILD)
        names = [layer.name for layer in declared]
        if len(set(names)) != len(names):
            msg = f"the build's catalogue declares a collection twice: {names}"
            raise BuildError(msg, path=public / store.MANIFEST, hint=_REBUILD)
        catalog = _load_catalog(public, manifest)
        tables = _read_tables(public, catalog)
        titles = _titles(tables.get("indicators"))
        self._layers = {layer.name: self._load(layer, titles) for layer in declared}
        self._diagnoses = Diagnoses(
            catalog,
            {name: layer.frame for name, layer in self._layers.items()},
            tables,
            build_id=self._info.build_id,
        )

    @property
    def info(self) -> BuildInfo:
        """Describe the build."""
        return self._info

    def collections(self) -> list[CollectionInfo]:
        """List the collections in catalogue order."""
        return [layer.info for layer in self._layers.values()]

    def collection(self, collection_id: str) -> CollectionInfo:
        """Describe one collection."""
        return self._layer(collection_id).info

    def items(
        self,
        collection_id: str,
        *,
        bbox: BBox | None = None,
        offset: int = 0,
        limit: int = 10,
        selection: Selection | None = None,
    ) -> ItemsPage:
        """Return a page of features, in the layer's stored order unless sorted."""
        layer = self._layer(collection_id)
        start, stop = max(offset, 0), max(offset, 0) + max(limit, 0)
        if selection is not None and not selection.plain:
            positions = _select(layer, selection)
            page = positions[start:stop]
            if selection.properties is None:
                return ItemsPage(len(positions), [layer.features[i] for i in page])
            return ItemsPage(len(positions), _reserialise(layer, page, selection.properties))
        if selection is not None:
            bbox = selection.bbox
        if bbox is None:
            return ItemsPage(len(layer.features), layer.features[start:stop])
        hits = _query(layer.tree, bbox)
        return ItemsPage(len(hits), [layer.features[i] for i in hits[start:stop]])

    def frame(
        self, collection_id: str, selection: Selection, *, offset: int = 0, limit: int | None = None
    ) -> gpd.GeoDataFrame:
        """Return the selected features as a frame in CRS84: id, properties, geometry."""
        layer = self._layer(collection_id)
        positions = _select(layer, selection)
        stop = None if limit is None else max(offset, 0) + max(limit, 0)
        positions = positions[max(offset, 0) : stop]
        id_column = layer.info.id_column
        names = list(selection.properties or layer.info.properties)
        columns = [id_column, *(n for n in names if n != id_column)]
        data = layer.frame.iloc[positions][columns].reset_index(drop=True)
        return gpd.GeoDataFrame(data, geometry=layer.geometries[positions], crs="OGC:CRS84")

    def diagnosis(self, collection_id: str, feature_id: str) -> dict[str, Any]:
        """Return the diagnosis of one feature of a grid."""
        layer = self._layer(collection_id)
        if not layer.info.diagnosis:
            grids = ", ".join(self._diagnoses.grids()) or "none"
            msg = f"collection '{collection_id}' is not a grid; diagnoses exist for: {grids}"
            raise NotFoundError(msg)
        return self._diagnoses.diagnose(collection_id, feature_id)

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

    def _load(self, declared: OutputLayer, titles: Mapping[str, str]) -> _Layer:
        name, id_column = declared.name, declared.id_column
        where = self._info.path / Path(declared.file).name
        try:
            frame = store.read_layer(self._info.path, declared)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
            msg = f"cannot read layer '{name}': {exc}"
            raise BuildError(msg, path=where, hint=_REBUILD) from None
        problem = _problem(declared, frame)
        if problem or not isinstance(frame, gpd.GeoDataFrame) or id_column is None:
            raise BuildError(problem or "unreadable layer", path=where, hint=_REBUILD)
        ids = frame[id_column].astype(str)
        if ids.duplicated().any():
            dup = ", ".join(sorted(set(ids[ids.duplicated()]))[:5])
            msg = f"layer '{name}' repeats '{id_column}' values: {dup}"
            raise BuildError(msg, path=where, hint=_REBUILD)

        geoms = np.asarray(frame.to_crs("OGC:CRS84").geometry.values, dtype=object)
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, COORDINATE_DECIMALS))
        features, cuts = _serialise(ids.tolist(), geoms, frame, declared.columns)
        bbox = WORLD  # an empty layer has no extent of its own
        if len(geoms) and not shapely.is_missing(geoms).all():
            minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
            if all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
                bbox = (minx, miny, maxx, maxy)
        info = CollectionInfo(
            id=name,
            title=declared.title,
            description=declared.description,
            bbox=bbox,
            count=len(frame),
            id_column=id_column,
            columns=declared.columns,
            titles={c.name: titles[c.name] for c in declared.columns if c.name in titles},
            diagnosis=declared.grid,
        )
        return _Layer(
            info,
            features,
            dict(zip(ids.tolist(), range(len(ids)), strict=True)),
            shapely.STRtree(geoms),
            pd.DataFrame(frame.drop(columns=[frame.geometry.name])).reset_index(drop=True),
            geoms,
            cuts,
        )


def _problem(declared: OutputLayer, frame: pd.DataFrame) -> str | None:
    """Return why a layer read from the build cannot be served as declared, if it cannot."""
    name, id_column = declared.name, declared.id_column
    if not isinstance(frame, gpd.GeoDataFrame):
        return f"layer '{name}' has no geometry"
    if frame.crs is None:
        return f"layer '{name}' has no CRS"
    if id_column is None:
        return f"layer '{name}' has no id column in the catalogue"
    stored = [str(c) for c in frame.columns if c != frame.geometry.name]
    if stored != declared.column_names:
        return (
            f"layer '{name}' does not match the catalogue: columns {stored}, "
            f"declared {declared.column_names}"
        )
    if frame[id_column].isna().any():
        return f"layer '{name}' has empty '{id_column}' values"
    return None


def _load_manifest(public: Path) -> dict[str, Any]:
    try:
        return store.load_manifest(public)
    except (OSError, ValueError) as exc:  # unreadable, or not JSON
        msg = f"cannot read the manifest: {exc}"
        raise BuildError(msg, path=public / store.MANIFEST, hint=_REBUILD) from None


def _load_catalog(public: Path, manifest: dict[str, Any]) -> Catalog:
    if not isinstance(manifest, dict) or "catalog" not in manifest:
        msg = "the manifest has no output catalogue (a build made by an older geo-usm)"
        raise BuildError(msg, path=public / store.MANIFEST, hint=_REBUILD)
    try:
        return store.load_catalog(manifest)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        msg = f"the manifest's output catalogue is invalid: {exc}"
        raise BuildError(msg, path=public / store.MANIFEST, hint=_REBUILD) from None


def _build_info(public: Path, manifest: dict[str, Any]) -> BuildInfo:
    city = manifest.get("city")
    city_name = city.get("name") if isinstance(city, dict) else city
    attribution = manifest.get("attribution") or []
    if isinstance(attribution, str):
        attribution = [attribution]
    finished = manifest.get("finished")
    build = public.parent if public.name == store.PUBLIC else public
    return BuildInfo(
        path=public,
        build_id=str(manifest.get("build_id") or build.name),
        city=str(city_name or "the city"),
        finished=str(finished) if finished else None,
        attribution=tuple(str(a) for a in attribution if a),
    )


def _values(series: pd.Series, column: Column) -> list[Any]:
    """Return a column's JSON-ready values; integral floats of an integer column become ints."""
    values = [json_value(v) for v in series.tolist()]
    if column.type == "integer":  # a NULL makes the reader return floats
        values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    return values


def _serialise(
    ids: Sequence[str], geoms: np.ndarray, frame: pd.DataFrame, columns: Sequence[Column]
) -> tuple[list[bytes], list[int]]:
    """Serialise every feature to a compact GeoJSON ``Feature`` (UTF-8 bytes).

    The properties are ``columns``, in order, taken from ``frame``. Also returns, per feature,
    the length of its text before the properties object (to re-serialise a selection).
    """
    geometry_json = shapely.to_geojson(geoms)
    names = [c.name for c in columns]
    values = [_values(frame[c.name], c) for c in columns]
    features, cuts = [], []
    for i, fid in enumerate(ids):
        properties = {name: column[i] for name, column in zip(names, values, strict=True)}
        head = (
            '{"type":"Feature","id":'
            + json.dumps(fid, ensure_ascii=False)
            + ',"geometry":'
            + (geometry_json[i] or "null")
            + ',"properties":'
        ).encode()
        tail = json.dumps(properties, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        features.append(head + tail.encode() + b"}")
        cuts.append(len(head))
    return features, cuts


def _select(layer: _Layer, selection: Selection) -> list[int]:
    """Return the positions of the features a selection keeps, in its order."""
    frame = layer.frame
    if selection.bbox is not None:
        frame = frame.iloc[_query(layer.tree, selection.bbox)]
    for condition in selection.filters:
        frame = frame[_matches(frame[condition.name], condition.value)]
    for key in reversed(selection.sortby):  # a stable sort per key, the last key first
        frame = frame.sort_values(
            key.name, ascending=not key.descending, kind="stable", na_position="last"
        )
    return [int(i) for i in frame.index]  # the frame's index is the stored position


def _matches(series: pd.Series, value: str | int | float | bool) -> pd.Series:
    """Return where ``series`` equals ``value``; NULL never matches."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return pd.Series(False, index=series.index)
    if isinstance(value, str):
        return series.astype(object).map(lambda v: isinstance(v, str) and v == value).astype(bool)
    if isinstance(value, bool):
        return series.map(lambda v: isinstance(v, bool | np.bool_) and bool(v) == value).astype(
            bool
        )
    numbers = pd.to_numeric(series, errors="coerce")
    return (numbers == value).fillna(False).astype(bool)


def _reserialise(layer: _Layer, positions: Sequence[int], names: Sequence[str]) -> list[bytes]:
    """Return features with only the properties ``names``, in that order."""
    columns = {c.name: c for c in layer.info.columns}
    rows = layer.frame.iloc[list(positions)]
    values = [_values(rows[name], columns[name]) for name in names]
    out = []
    for k, i in enumerate(positions):
        properties = {name: column[k] for name, column in zip(names, values, strict=True)}
        text = json.dumps(properties, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        out.append(layer.features[i][: layer.cuts[i]] + text.encode() + b"}")
    return out


def _read_tables(public: Path, catalog: Catalog) -> dict[str, pd.DataFrame]:
    """Read the public tables the diagnoses use: indicators, their gaps, the sections' tables."""
    wanted = {"indicators", "indicator_gaps", *(t for s in SECTIONS for t in s.tables)}
    tables = {}
    for layer in catalog.layers:
        if layer.store != "public" or layer.access != "public" or layer.name not in wanted:
            continue
        try:
            tables[layer.name] = store.read_layer(public, layer)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
            msg = f"cannot read layer '{layer.name}': {exc}"
            raise BuildError(msg, path=public / Path(layer.file).name, hint=_REBUILD) from None
    return tables


def _titles(indicators: pd.DataFrame | None) -> dict[str, str]:
    """Return indicator id -> title from the ``indicators`` table (empty without it)."""
    if indicators is None or not {"id", "title"} <= set(indicators.columns):
        return {}
    return {
        str(i): str(t)
        for i, t in zip(indicators["id"], indicators["title"], strict=True)
        if isinstance(t, str) and t
    }


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
