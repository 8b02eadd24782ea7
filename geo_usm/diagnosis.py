"""The diagnosis of one feature of a grid, assembled from a build's public part.

A diagnosis gathers, for one hexagon or admin unit, everything the build says about it: every
indicator of the ``indicators`` table with its metadata and value (or NULL with the reason
``indicator_gaps`` records), the indices with their ranges and explanations, the peer group,
the hotspot and trend status and the progress. It is one JSON-ready dictionary that the API
serves at ``/collections/{grid}/items/{id}/diagnosis`` and any program can build on.

What goes into each section comes from the build's output catalogue and its ``indicators``
table, never from a fixed list of columns: :data:`SECTIONS` says which catalogue columns (by
prefix or suffix) and which public tables (by layer name) belong to a section, and a section the
build does not have is ``None`` with its reason in ``unavailable``. Grid columns that are
neither the grid's own, nor indicators, nor in a section are listed under ``other`` so nothing
the build declares is lost. Public tables without geometry are read through
:func:`geo_usm.store.read_layer`; a table is matched to a feature by its ``grid`` and ``feature``
columns, by the grid's id column, or by the feature's peer group.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo_usm import store
from geo_usm.catalog import Catalog, Column, OutputLayer
from geo_usm.errors import NotFoundError

#: The ``feature`` value of ``indicator_gaps`` rows that apply to every feature of a grid.
EVERY_FEATURE = "*"


@dataclass(frozen=True)
class Section:
    """Which catalogue columns and public tables make one section of a diagnosis.

    Attributes
    ----------
    name
        Key of the section in the diagnosis.
    title
        What the section tells, for people and for the ``unavailable`` reasons.
    prefixes, suffixes
        A grid column belongs to the section when its name starts with one of ``prefixes``
        or ends with one of ``suffixes``.
    tables
        Names of public layers whose rows about the feature belong to the section.

    """

    name: str
    title: str
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()

    def has_column(self, name: str) -> bool:
        """Return whether a grid column belongs to this section."""
        return name.startswith(self.prefixes) or name.endswith(self.suffixes)


#: The sections besides the indicators, in the order of the document.
SECTIONS: tuple[Section, ...] = (
    Section(
        "indices",
        "composite risk and resilience indices",
        suffixes=("_index", "_index_p05", "_index_p95", "_explanation"),
        tables=("explanations",),
    ),
    Section("peer_group", "peer group", prefixes=("peer_group",), tables=("peer_groups",)),
    Section(
        "hotspot",
        "hotspot status (Getis-Ord Gi*, local Moran's I)",
        prefixes=("gi_", "lisa_", "hotspot"),
        tables=("hotspots", "priority_areas"),  # hotspot_evaluation is per grid, not feature
    ),
    Section(
        "trend",
        "trend over time (time series, emerging hotspots)",
        prefixes=("trend", "emerging"),
        tables=("time_series", "emerging_hotspots"),
    ),
    Section("progress", "progress towards targets", prefixes=("progress",), tables=("progress",)),
)

_INDEX_SUFFIX = "_index"
_RANGE = ("_p05", "_p95")


def json_value(value: Any) -> Any:
    """Return a JSON-ready Python value: NaN, NA and NaT become None, numpy scalars plain.

    Parameters
    ----------
    value
        A value read from a layer.

    Returns
    -------
    Any

    """
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


def _parsed(text: Any) -> Any:
    """Return a JSON text as the value it holds; anything else as it is."""
    value = json_value(text)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _index_columns(layer: OutputLayer) -> dict[str, list[str]]:
    """Return each index column of a grid (``<stem>_index``) with its companion columns.

    The companions of an index are the other columns named ``<stem>_...`` (its range
    ``_index_p05``/``_index_p95``, ``<stem>_explanation``, its components by dimension...).
    """
    names = layer.column_names
    out: dict[str, list[str]] = {}
    for name in names:
        if name.endswith(_INDEX_SUFFIX):
            stem = name.removesuffix(_INDEX_SUFFIX) + "_"
            out[name] = [n for n in names if n.startswith(stem) and n != name]
    return out


def _column_entry(column: Column, value: Any) -> dict[str, Any]:
    return {
        "value": _parsed(value),
        "unit": column.unit or None,
        "description": column.description,
        **({"null_reason": column.null_reason} if column.null_reason else {}),
    }


@dataclass(frozen=True)
class _Grid:
    layer: OutputLayer
    frame: pd.DataFrame  # without geometry, indexed by the id as text
    position: Mapping[str, int]


class Diagnoses:
    """The diagnoses of every feature of a build's grids.

    Parameters
    ----------
    catalog
        The build's output catalogue.
    grids
        Grid layer name -> its frame (geometry, if any, is ignored), as read from the build.
    tables
        Public layer name -> its frame, for the tables the sections and indicators read
        (``indicators``, ``indicator_gaps`` and those of :data:`SECTIONS`); absent ones are
        absent from the build.
    build_id
        Id of the build, repeated in each diagnosis.

    """

    def __init__(
        self,
        catalog: Catalog,
        grids: Mapping[str, pd.DataFrame],
        tables: Mapping[str, pd.DataFrame],
        *,
        build_id: str,
    ):
        self.catalog = catalog
        self.build_id = build_id
        self._grids: dict[str, _Grid] = {}
        for layer in catalog.collections():
            if not layer.grid or layer.id_column is None or layer.name not in grids:
                continue
            frame = grids[layer.name]
            geometry = getattr(frame, "_geometry_column_name", None)
            frame = pd.DataFrame(frame.drop(columns=[geometry] if geometry else []))
            ids = frame[layer.id_column].astype(str).tolist()
            self._grids[layer.name] = _Grid(
                layer, frame, dict(zip(ids, range(len(ids)), strict=True))
            )
        self._indicators = tables.get("indicators")
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._gaps: dict[tuple[str, str], dict[str, str]] = {}
        gaps = tables.get("indicator_gaps")
        if gaps is not None and len(gaps):
            for grid, feature, indicator, reason in gaps[
                ["grid", "feature", "indicator", "null_reason"]
            ].itertuples(index=False):
                self._gaps.setdefault((str(grid), str(feature)), {})[str(indicator)] = str(reason)
        self._tables: dict[str, pd.DataFrame] = {}
        self._keys: dict[str, dict[tuple[str, str], np.ndarray]] = {}
        for name, frame in tables.items():
            if name in ("indicators", "indicator_gaps"):
                continue
            geometry = getattr(frame, "_geometry_column_name", None)
            if geometry:
                frame = pd.DataFrame(frame.drop(columns=[geometry]))
            frame = frame.reset_index(drop=True)
            self._tables[name] = frame  # rows become records when a diagnosis asks for them
            if "grid" in frame.columns and "feature" in frame.columns:
                groups = frame.groupby(["grid", "feature"], sort=False, observed=True).indices
                self._keys[name] = {(str(g), str(f)): v for (g, f), v in groups.items()}

    @classmethod
    def from_build(
        cls, build_dir: str | Path, *, grids: Mapping[str, pd.DataFrame] | None = None
    ) -> Diagnoses:
        """Read what the diagnoses need from a build (or a copy of its public part).

        Parameters
        ----------
        build_dir
            The build directory.
        grids
            The grid layers already read (name -> frame); the others are read now.

        Returns
        -------
        Diagnoses

        """
        public = store.public_dir(build_dir)
        manifest = store.load_manifest(public)
        catalog = store.load_catalog(manifest)
        frames = dict(grids or {})
        for layer in catalog.collections():
            if layer.grid and layer.name not in frames:
                frames[layer.name] = store.read_layer(public, layer)
        wanted = {"indicators", "indicator_gaps", *(t for s in SECTIONS for t in s.tables)}
        tables = {
            layer.name: store.read_layer(public, layer)
            for layer in catalog.layers
            if layer.store == "public" and layer.access == "public" and layer.name in wanted
        }
        return cls(catalog, frames, tables, build_id=str(manifest.get("build_id") or ""))

    def grids(self) -> list[str]:
        """Return the names of the grids whose features have a diagnosis."""
        return list(self._grids)

    def diagnose(self, grid: str, feature_id: str) -> dict[str, Any]:
        """Return the diagnosis of one feature.

        Parameters
        ----------
        grid
            Grid layer name (``units``, ``hex``, ``hex_r<N>``).
        feature_id
            The feature's id (``unit_id`` or ``h3``).

        Returns
        -------
        dict
            JSON-ready: ``grid``, ``id``, ``build_id``, ``indicators`` (a list), one key per
            section of :data:`SECTIONS` (None when the build lacks it), ``other`` (further
            columns of the grid) and ``unavailable`` (section -> reason).

        Raises
        ------
        geo_usm.errors.NotFoundError
            If the grid or the feature does not exist.

        """
        entry = self._grids.get(grid)
        if entry is None:
            known = ", ".join(self._grids) or "none"
            msg = f"'{grid}' is not a grid with diagnoses; the grids are: {known}"
            raise NotFoundError(msg)
        position = entry.position.get(feature_id)
        if position is None:
            raise NotFoundError(f"grid '{grid}' has no feature '{feature_id}'")
        row = entry.frame.iloc[position]
        layer = entry.layer
        indicators, indicator_names = self._indicator_entries(entry, feature_id, row)
        own = {layer.id_column}
        doc: dict[str, Any] = {
            "grid": grid,
            "id": feature_id,
            "build_id": self.build_id,
            "grid_title": layer.title,
            "indicators": indicators,
        }
        unavailable: dict[str, str] = {}
        if self._indicators is None:
            unavailable["indicators"] = "this build has no indicators table"
        claimed = own | indicator_names
        indices = _index_columns(layer)
        in_indices = set(indices).union(*indices.values())
        for section in SECTIONS:
            columns = [
                c
                for c in layer.columns
                if section.has_column(c.name)
                or (section.name == "indices" and c.name in in_indices)
            ]
            claimed |= {c.name for c in columns}
            tables = {
                name: rows
                for name in section.tables
                if (rows := self._rows(name, entry, feature_id, row)) is not None
            }
            if not columns and not tables:
                doc[section.name] = None
                unavailable[section.name] = f"this build has no {section.title}" + (
                    f" (no layer {', '.join(section.tables)})" if section.tables else ""
                )
                continue
            if section.name == "indices":
                doc[section.name] = self._indices(layer, row, tables)
            else:
                doc[section.name] = {
                    "columns": {c.name: _column_entry(c, row[c.name]) for c in columns},
                    "tables": tables,
                }
        doc["other"] = {
            c.name: _column_entry(c, row[c.name]) for c in layer.columns if c.name not in claimed
        }
        doc["unavailable"] = unavailable
        return doc

    def _sorted(self, grid: str, name: str, values: pd.Series) -> np.ndarray:
        """Return the sorted non-null numeric values of a grid column (cached)."""
        key = (grid, name)
        if key not in self._cache:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            self._cache[key] = np.sort(numbers[np.isfinite(numbers)])
        return self._cache[key]

    def _indicator_entries(
        self, entry: _Grid, feature_id: str, row: pd.Series
    ) -> tuple[list[dict[str, Any]], set[str]]:
        table = self._indicators
        if table is None:
            return [], set()
        layer, frame = entry.layer, entry.frame
        grid = layer.name
        here = self._gaps.get((grid, feature_id), {})
        everywhere = self._gaps.get((grid, EVERY_FEATURE), {})
        out, names = [], set()
        for record in table.to_dict("records"):
            name = str(record.get("id"))
            if name not in frame.columns:
                continue
            names.add(name)
            value = json_value(row[name])
            known = self._sorted(grid, name, frame[name])
            coverage = _parsed(record.get("coverage"))
            with_value = (
                coverage.get(grid) if isinstance(coverage, dict) else None
            )  # the build's count; the frame's count when it has none
            with_value = int(with_value) if isinstance(with_value, int) else len(known)
            reason = None
            if value is None:
                reason = (
                    here.get(name)
                    or everywhere.get(name)
                    or json_value(record.get("null_reason"))
                    or "no value recorded for this feature"
                )
            percentile = None
            if isinstance(value, int | float) and not isinstance(value, bool) and len(known):
                rank = np.searchsorted(known, value, side="right")
                percentile = round(100.0 * float(rank) / len(known), 2)
            sources = json_value(record.get("sources")) or ""
            out.append(
                {
                    "id": name,
                    "title": json_value(record.get("title")),
                    "unit": json_value(record.get("unit")),
                    "direction": json_value(record.get("direction")),
                    "dimension": json_value(record.get("dimension")),
                    "tier": json_value(record.get("tier")),
                    "method": json_value(record.get("method")),
                    "parameters": _parsed(record.get("parameters")),
                    "weight": json_value(record.get("weight")),
                    "min_input": json_value(record.get("min_input")),
                    "sources": [s for s in str(sources).split(",") if s],
                    "description": json_value(record.get("description")),
                    "value": value,
                    "quality": "value" if value is not None else "null",
                    "null_reason": reason,
                    "percentile": percentile,
                    "coverage": {
                        "features_with_value": with_value,
                        "features": len(frame),
                        "share": round(with_value / len(frame), 4) if len(frame) else None,
                    },
                }
            )
        return out, names

    def _indices(
        self, layer: OutputLayer, row: pd.Series, tables: dict[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, others in _index_columns(layer).items():
            item = _column_entry(layer.column(name), row[name])
            stem = name.removesuffix(_INDEX_SUFFIX)
            low, high = (f"{name}{s}" for s in _RANGE)
            if low in others and high in others:
                item["range"] = {"p05": json_value(row[low]), "p95": json_value(row[high])}
            if f"{stem}_explanation" in others:
                item["explanation"] = _parsed(row[f"{stem}_explanation"])
            details = [c for c in others if c not in (low, high, f"{stem}_explanation")]
            if details:
                item["details"] = {c: _column_entry(layer.column(c), row[c]) for c in details}
            out[name] = item
        return {"indices": out, "tables": tables}

    def _rows(
        self, name: str, entry: _Grid, feature_id: str, row: pd.Series
    ) -> list[dict[str, Any]] | None:
        """Return the rows of table ``name`` about the feature (None if the build lacks it).

        A table with ``grid`` and ``feature`` columns gives its rows of the feature, then its
        rows of every feature (``feature`` ``*``) that agree with the feature on the columns
        both have (a peer group's profile for the feature's group); a table keyed by the grid's
        id column gives the rows of that id; other tables say nothing of single features.
        """
        frame = self._tables.get(name)
        if frame is None:
            return None
        grid = entry.layer.name
        keys = self._keys.get(name)
        if keys is not None:
            own = _records(frame, keys.get((grid, feature_id), ()))
            shared = [c for c in frame.columns if c in row.index and c not in ("grid", "feature")]
            if not shared:
                return own
            wanted = [_same(row[c]) for c in shared]
            every = [
                r
                for r in _records(frame, keys.get((grid, EVERY_FEATURE), ()))
                if [_same(r[c]) for c in shared] == wanted
            ]
            return own + every
        id_column = entry.layer.id_column
        if id_column and id_column in frame.columns:
            matching = np.flatnonzero(frame[id_column].astype(str).to_numpy() == feature_id)
            return _records(frame, matching)
        return []


def _records(frame: pd.DataFrame, positions: Any) -> list[dict[str, Any]]:
    """Return the rows at ``positions`` as JSON-ready records (in their order)."""
    rows = frame.iloc[np.asarray(positions, dtype=np.int64)]
    return [{str(k): _parsed(v) for k, v in r.items()} for r in rows.to_dict("records")]


def _same(value: Any) -> Any:
    """Return a value comparable across tables (1 and 1.0 are the same peer group)."""
    value = json_value(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
