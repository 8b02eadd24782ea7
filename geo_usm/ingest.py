"""Ingest: turn a source file into a layer kind's canonical records, vectorised.

:func:`parse_layer` is pure: a :class:`~geo_usm.io.RawTable` and the layer's configuration in, a
:class:`ParsedLayer` out, holding canonical columns, locations and, for every record, either no
reason (still accepted) or the first reason it was rejected. :func:`ingest_layer` reads the file,
parses it, applies the spatial tests (study area, admin units, H3 cells) and returns
:class:`Records`: accepted records and rejects. Every record read ends in exactly one of the two.

A record is rejected only for what makes it unusable: its location, a required field, a
duplicate id, the date of a temporal record. An invalid optional attribute (a victim age of -1,
a wattage of "n/a") is cleaned to NULL and the record kept; the cleaned values are counted per
field and reason in the layer's report.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_usm.cityfile import City, ColumnMapping, ColumnValue, DateParts, LayerConfig
from geo_usm.errors import InputError
from geo_usm.filters import FilterEvaluationError, parse_filter
from geo_usm.geo import WGS84, cells_to_strings, point_cells, to_crs, transformer
from geo_usm.io import RawTable, file_sha256, read_raster, read_source
from geo_usm.schema import COUNT_KEY, SEX_VALUES, FieldSpec, LayerKind

if TYPE_CHECKING:
    from geo_usm.units import SpatialFrame

OUTSIDE_STUDY_AREA = "outside the study area"
OUTSIDE_UNITS = "inside the study area but in no admin unit (gap in the units layer)"
CATEGORY_FILTER = "category not in the configured list (layers.*.categories)"
PLACEHOLDER = "placeholder location (layers.*.placeholders)"
NO_UNIT_CODE = "unit code matches no admin unit"
#: Smallest number and share of a layer's points on one exact coordinate that is reported as a
#: possible placeholder location ("location not known").
PLACEHOLDER_MIN_RECORDS = 20
PLACEHOLDER_MIN_SHARE = 0.05
#: Largest count a row of a count table may carry.
MAX_COUNT = 10**9
#: Default plausible dates: from 1900 to one year after the build.
EARLIEST_DATE = dt.date(1900, 1, 1)
#: A UTC offset after a time of day ("22:15Z", "22:15:00+01:00"), not the day of "2024-03-03".
_OFFSET = (
    r"(\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)"
    r"(?:\s*\([A-Za-z ]+\))?$"
)
_MONTH_NAMES = r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
#: Reasons that say where a record is or what the city chose to keep, not that it is broken.
NODATA_PIXEL = "nodata pixel"
PIXEL_OUTSIDE_STUDY_AREA = "pixel centre " + OUTSIDE_STUDY_AREA
PIXEL_OUTSIDE_UNITS = "pixel centre " + OUTSIDE_UNITS
SELECTION_REASONS = (
    OUTSIDE_STUDY_AREA,
    OUTSIDE_UNITS,
    CATEGORY_FILTER,
    NODATA_PIXEL,
    PIXEL_OUTSIDE_STUDY_AREA,
    PIXEL_OUTSIDE_UNITS,
    PLACEHOLDER,
    NO_UNIT_CODE,
)

_SEX_ALIASES = {
    "female": (
        "f",
        "female",
        "woman",
        "women",
        "girl",
        "w",
        "fem",
        "mujer",
        "femenino",
        "femenina",
        "femme",
        "féminin",
        "feminin",
        "weiblich",
        "mulher",
        "feminino",
        "donna",
        "vrouw",
    ),
    "male": (
        "m",
        "h",
        "male",
        "man",
        "men",
        "boy",
        "hombre",
        "masculino",
        "homme",
        "masculin",
        "männlich",
        "maennlich",
        "homem",
        "uomo",
        "man.",
    ),
    "other": (
        "other",
        "x",
        "d",
        "nonbinary",
        "non-binary",
        "non binary",
        "otro",
        "otra",
        "autre",
        "divers",
        "outro",
    ),
    "unknown": (
        "unknown",
        "u",
        "n/a",
        "na",
        "not stated",
        "not known",
        "desconocido",
        "inconnu",
        "unbekannt",
        "ns/nr",
        "prefer not to say",
    ),
}
SEX_LOOKUP = {alias: canon for canon, aliases in _SEX_ALIASES.items() for alias in aliases}
_TRUE = {"true", "t", "yes", "y", "1", "si", "sí", "oui", "ja"}
_FALSE = {"false", "f", "no", "n", "0", "non", "nein"}

_GEOM_TYPES = {"point": (0,), "line": (1, 2, 5), "polygon": (3, 6)}
_GEOM_NAMES = {"point": "point", "line": "line", "polygon": "polygon"}


@dataclass
class ParsedLayer:
    """A layer's records after parsing, before the spatial tests.

    Attributes
    ----------
    name, kind : str
        Layer name in the city file and its kind.
    raw : RawTable
        The source records (original values, for rejects).
    columns : pandas.DataFrame
        Canonical attribute columns, one row per record of ``raw.frame``.
    geometry : numpy.ndarray
        Shapely geometry per record in the working CRS (``None`` when unknown).
    lon, lat : numpy.ndarray
        WGS84 coordinates of point records (NaN when unknown); empty for other geometries.
    reasons : numpy.ndarray
        ``None`` for records still accepted, else the reason for rejecting it.
    notes : list of str
        Things the user should know that did not reject a record.
    cleaned_reasons : dict
        Per field, why each record's value was cleaned to NULL (``None``: kept).
    codes : numpy.ndarray or None
        The admin-unit code of each record of a layer located by unit code.
    time_known : numpy.ndarray or None
        For temporal kinds, whether each record's datetime carries a time of day (a month, or
        a date without a time, does not).

    """

    name: str
    kind: LayerKind
    raw: RawTable
    columns: pd.DataFrame
    geometry: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    reasons: np.ndarray
    notes: list[str] = field(default_factory=list)
    cleaned_reasons: dict[str, np.ndarray] = field(default_factory=dict)
    codes: np.ndarray | None = None
    time_known: np.ndarray | None = None

    def clean(self, fname: str, mask: np.ndarray, reason: str) -> np.ndarray:
        """Record why the values in ``mask`` are cleaned to NULL (the first reason wins).

        Returns the mask, to blank the values. They are counted by :meth:`cleaned` among the
        records finally accepted only.
        """
        reasons = self.cleaned_reasons.setdefault(fname, np.full(len(mask), None, dtype=object))
        reasons[mask & pd.isna(reasons)] = reason
        return mask

    def invalid(self, fname: str, spec: FieldSpec, mask: np.ndarray, reason: str) -> np.ndarray:
        """Handle invalid values: reject the record for a required field, else clean the value.

        Returns the mask, to blank the values.
        """
        if spec.required:
            self.reject(mask, reason)
            return mask
        return self.clean(fname, mask, reason)

    def cleaned(self) -> dict[str, dict[str, int]]:
        """Count the cleaned values of accepted records, per field and reason."""
        ok = self.ok
        out = {}
        for fname, reasons in self.cleaned_reasons.items():
            kept = reasons[ok]
            kept = kept[~pd.isna(kept)]
            if len(kept):
                out[fname] = {str(k): int(v) for k, v in pd.Series(kept).value_counts().items()}
        return out

    def reject(self, mask: np.ndarray, reason: str | np.ndarray) -> None:
        """Reject the records in ``mask`` that have no reason yet (the first reason wins)."""
        target = mask & _ok(self.reasons)
        if isinstance(reason, np.ndarray):
            self.reasons[target] = reason[target]
        else:
            self.reasons[target] = reason

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of records not rejected so far."""
        return _ok(self.reasons)

    def split(self) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
        """Return accepted columns, their geometries, and the rejects table.

        The rejects table has one row per rejected record, malformed text rows included, with
        ``layer``, ``source_file``, ``source_row`` (1-based record number), ``reason`` and
        ``original`` (the record's source values as JSON).
        """
        ok = self.ok
        accepted = self.columns.loc[ok].reset_index(drop=True)
        bad = ~ok
        originals = _originals_json(self.raw.frame.loc[bad])
        rejects = pd.DataFrame(
            {
                "layer": self.name,
                "source_file": self.raw.path.name,
                "source_row": self.raw.numbers[bad],
                "reason": self.reasons[bad].astype(str),
                "original": originals,
            }
        )
        if self.raw.malformed:
            numbers, texts, why = zip(*self.raw.malformed, strict=True)
            extra = pd.DataFrame(
                {
                    "layer": self.name,
                    "source_file": self.raw.path.name,
                    "source_row": np.asarray(numbers, dtype=np.int64),
                    "reason": list(why),
                    "original": [json.dumps({"line": t}, ensure_ascii=False) for t in texts],
                }
            )
            rejects = pd.concat([rejects, extra]).sort_values("source_row", kind="stable")
        return accepted, self.geometry[ok], rejects.reset_index(drop=True)


def _ok(reasons: np.ndarray) -> np.ndarray:
    return pd.isna(reasons)


def _originals_json(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [json.dumps(r, ensure_ascii=False, default=str) for r in records]


def _text(series: pd.Series, na_values: set[str]) -> pd.Series:
    """Return stripped text with empty strings and ``na_values`` as missing (None)."""
    text = series.astype("string").str.strip()
    missing = text.isna() | (text == "") | text.isin(list(na_values))
    return text.astype(object).where(~missing, None)


def _numbers(text: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers; return values (NaN when missing or bad) and a mask of unparseable ones."""
    present = text.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(text.dtype):
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        return values, np.zeros(len(text), dtype=bool)
    strings = text.astype("string")
    if decimal == ",":
        strings = strings.str.replace(",", ".", regex=False)
    strings = strings.str.replace(" ", "", regex=False).str.replace("\u00a0", "", regex=False)
    values = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = present & ~np.isfinite(values)
    return values, bad


Mapping = dict[str, ColumnMapping]


def _label(mapping: Mapping, key: str) -> str:
    """Return how a mapped key is named in messages: its column(s), or 'constant'."""
    value = mapping[key]
    if isinstance(value, str):
        return value
    if isinstance(value, ColumnValue):
        return "constant from the city file"
    return "+".join(value.columns)


def _column(raw: RawTable, col: str, key: str, name: str) -> pd.Series:
    """Return a source column, or say which columns the file has and what to fix."""
    if col in raw.frame.columns:
        return raw.frame[col]
    names = [str(c) for c in raw.frame.columns]
    shown = ", ".join(n if len(n) <= 40 else n[:37] + "..." for n in names[:15])
    if len(names) > 15:
        shown += f" ... ({len(names)} columns)"
    hint = f"fix layers.{name}.columns.{key} in the city file"
    if len(names) == 1:
        other = next((d for d in (";", ",", "\t", "|") if d in names[0]), None)
        if other is not None:
            hint = (
                f"the header was read as one column containing {other!r}: set "
                f"layers.{name}.format.delimiter = {other!r}"
            )
    raise InputError(
        f"layer '{name}': column '{col}' (mapped to '{key}') is not in the file; "
        f"columns are: {shown[:400]}",
        path=raw.path,
        hint=hint,
    )


def _source(raw: RawTable, mapping: Mapping, key: str, name: str) -> pd.Series | None:
    """Return the text of a mapped key: a source column, or a constant repeated."""
    col = mapping.get(key)
    if col is None:
        return None
    if isinstance(col, ColumnValue):
        value = col.value
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return pd.Series(text, index=raw.frame.index, dtype=object)
    assert isinstance(col, str), f"{key}: date parts are read by _parse_time"
    return _column(raw, col, key, name)


def _check_columns(raw: RawTable, mapping: Mapping, name: str) -> None:
    """Fail on the first mapped column the file does not have, before any parsing."""
    for key, col in mapping.items():
        if isinstance(col, str):
            _column(raw, col, key, name)
        elif isinstance(col, DateParts):
            for part in col.columns:
                _column(raw, part, key, name)


def parse_layer(
    raw: RawTable,
    name: str,
    config: LayerConfig,
    kind: LayerKind,
    working_crs: CRS,
    timezone: str | None = None,
) -> ParsedLayer:
    """Parse a raw table into the canonical columns of its kind.

    Parameters
    ----------
    raw
        The records as read.
    name
        Layer name in the city file (used in messages and rejects).
    config
        The layer's city-file entry (column mapping, format options, categories).
    kind
        The layer kind definition (canonical fields).
    working_crs
        The city's metric CRS; geometries are returned in it.
    timezone
        The city's time zone: datetimes with a UTC offset are converted to its local time
        (without one, the wall-clock time written is kept).

    Returns
    -------
    ParsedLayer

    Raises
    ------
    InputError
        If a mapped column is absent, or no CRS is known for the locations.

    """
    mapping: Mapping = {**raw.default_columns, **config.columns}
    fmt = config.format
    na_values = set(fmt.na_values)
    n = len(raw.frame)
    reasons = np.full(n, None, dtype=object)
    columns = pd.DataFrame(index=pd.RangeIndex(n))
    columns["source_row"] = raw.numbers
    parsed = ParsedLayer(
        name=name,
        kind=kind,
        raw=raw,
        columns=columns,
        geometry=np.full(n, None, dtype=object),
        lon=np.full(n, np.nan),
        lat=np.full(n, np.nan),
        reasons=reasons,
    )
    # Resolve every mapped column first so that all missing columns are fatal before parsing.
    _check_columns(raw, mapping, name)
    _parse_location(parsed, mapping, config, working_crs)
    if kind.geometry == "point":
        _reject_placeholders(parsed, mapping, config, working_crs)
    if kind.temporal:
        _parse_time(parsed, mapping, config, timezone)
    if kind.count_field:
        _parse_count(parsed, mapping, config)
    for fname, spec in kind.fields.items():
        _parse_field(parsed, fname, spec, mapping, config, na_values)
    if config.categories is not None and "category" in columns:
        allowed = set(config.categories)
        present = columns["category"].notna().to_numpy()
        outside = present & ~columns["category"].isin(allowed).to_numpy()
        parsed.reject(outside, CATEGORY_FILTER)
    for fname, spec in kind.fields.items():
        if spec.unique and fname in columns:
            _reject_duplicates(
                parsed, columns[fname], f"duplicate {fname} (an earlier row has the same value)"
            )
    return parsed


def _parse_location(
    parsed: ParsedLayer, mapping: Mapping, config: LayerConfig, working_crs: CRS
) -> None:
    raw, name, geom_kind = parsed.raw, parsed.name, parsed.kind.geometry
    if "unit_code" in mapping:
        text = _text(_source(raw, mapping, "unit_code", name), set(config.format.na_values))  # type: ignore[arg-type]
        parsed.reject(
            text.isna().to_numpy(), f"missing unit code ('{_label(mapping, 'unit_code')}')"
        )
        parsed.codes = text.to_numpy(dtype=object)
        return
    if "lon" in mapping or "x" in mapping:
        if geom_kind != "point":
            raise InputError(
                f"layer '{name}': kind '{parsed.kind.kind}' needs {geom_kind} geometries, "
                "not x/y or lon/lat columns",
                path=raw.path,
                hint="map a 'wkt' column or use a file with its own geometry",
            )
        xk, yk = ("lon", "lat") if "lon" in mapping else ("x", "y")
        src_crs = CRS.from_user_input(config.crs) if config.crs else WGS84
        xs = _source(raw, mapping, xk, name)
        ys = _source(raw, mapping, yk, name)
        assert xs is not None and ys is not None
        x, xbad = _numbers(_text(xs, set(config.format.na_values)), config.format.decimal)
        y, ybad = _numbers(_text(ys, set(config.format.na_values)), config.format.decimal)
        missing = ~np.isfinite(x) & ~xbad | ~np.isfinite(y) & ~ybad
        cols = f"'{_label(mapping, xk)}', '{_label(mapping, yk)}'"
        parsed.reject(missing, f"missing coordinates ({cols})")
        parsed.reject(xbad | ybad, f"unparseable coordinates ({cols})")
        _set_points(parsed, x, y, src_crs, working_crs)
        return
    if "wkt" in mapping:
        text = _text(_source(raw, mapping, "wkt", name), set(config.format.na_values))  # type: ignore[arg-type]
        geoms = shapely.from_wkt(text.to_numpy(), on_invalid="ignore")
        label = _label(mapping, "wkt")
        parsed.reject(text.isna().to_numpy(), f"missing geometry ('{label}')")
        parsed.reject(pd.isna(geoms), f"unparseable WKT ('{label}')")
        empty = np.zeros(len(geoms), dtype=bool)
        empty[~pd.isna(geoms)] = shapely.is_empty(geoms[~pd.isna(geoms)])
        parsed.reject(empty, f"empty geometry ('{label}')")
        if config.crs is None:
            raise InputError(
                f"layer '{name}': no CRS known for the WKT column '{label}'",
                path=raw.path,
                hint=f"set layers.{name}.crs, e.g. 'EPSG:4326'",
            )
        _set_geometries(
            parsed, np.asarray(geoms, dtype=object), CRS.from_user_input(config.crs), working_crs
        )
        return
    if raw.geometry is None:
        raise InputError(
            f"layer '{name}': the file has no geometry and no location columns are mapped",
            path=raw.path,
            hint=f"map lon/lat, x/y (with crs), wkt or unit_code in layers.{name}.columns",
        )
    src = CRS.from_user_input(config.crs) if config.crs else raw.crs
    if src is None:
        raise InputError(
            f"layer '{name}': the file declares no CRS",
            path=raw.path,
            hint=f"set layers.{name}.crs in the city file, e.g. 'EPSG:4326'",
        )
    geoms = raw.geometry
    missing = pd.isna(geoms) | shapely.is_empty(geoms)
    parsed.reject(np.asarray(missing, dtype=bool), "missing or empty geometry")
    _set_geometries(parsed, geoms, CRS.from_user_input(src), working_crs)


def _set_geometries(parsed: ParsedLayer, geoms: np.ndarray, src_crs: CRS, working_crs: CRS) -> None:
    geom_kind = parsed.kind.geometry
    ok = parsed.ok
    types = np.full(len(geoms), -1)
    types[ok] = shapely.get_type_id(geoms[ok])
    wrong = ok & ~np.isin(types, _GEOM_TYPES[geom_kind])
    parsed.reject(wrong, f"geometry is not a {_GEOM_NAMES[geom_kind]}")
    if geom_kind == "point":
        x = np.full(len(geoms), np.nan)
        y = np.full(len(geoms), np.nan)
        pts = parsed.ok
        x[pts] = shapely.get_x(geoms[pts])
        y[pts] = shapely.get_y(geoms[pts])
        _set_points(parsed, x, y, src_crs, working_crs)
        return
    ok = parsed.ok
    valid = np.ones(len(geoms), dtype=bool)
    valid[ok] = shapely.is_valid(geoms[ok])
    if (~valid).any():
        why = np.full(len(geoms), None, dtype=object)
        # GEOS appends the location ("Self-intersection[x y]"); reasons are published in the
        # manifest as counts, so keep the kind of problem and drop the coordinates
        why[~valid] = [
            "invalid geometry: " + r.split("[", 1)[0]
            for r in shapely.is_valid_reason(geoms[~valid])
        ]
        parsed.reject(~valid, why)
    ok = parsed.ok
    out = np.full(len(geoms), None, dtype=object)
    if ok.any():
        out[ok] = to_crs(geoms[ok], src_crs, working_crs)
    parsed.geometry = out


def _set_points(
    parsed: ParsedLayer, x: np.ndarray, y: np.ndarray, src_crs: CRS, working_crs: CRS
) -> None:
    # NaN/inf coordinates that a parsed number cannot give (NaN in WKT, inf in a GeoPackage)
    parsed.reject(parsed.ok & ~(np.isfinite(x) & np.isfinite(y)), "coordinates not finite")
    ok = parsed.ok & np.isfinite(x) & np.isfinite(y)
    if src_crs.is_geographic:
        lon, lat = x, y
    else:
        to_wgs = transformer(src_crs, WGS84)
        lon = np.full(len(x), np.nan)
        lat = np.full(len(x), np.nan)
        lon[ok], lat[ok] = to_wgs.transform(x[ok], y[ok], errcheck=False)
    out_of_range = ok & ~(
        np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    )
    parsed.reject(out_of_range, f"coordinates out of range for {src_crs.to_string()}")
    parsed.reject(parsed.ok & (x == 0) & (y == 0), "coordinates (0, 0): a placeholder, not a place")
    ok = parsed.ok
    parsed.lon = np.where(ok, lon, np.nan)
    parsed.lat = np.where(ok, lat, np.nan)
    if src_crs == working_crs:
        wx, wy = x, y
    else:
        to_work = transformer(WGS84, working_crs)
        wx = np.full(len(x), np.nan)
        wy = np.full(len(x), np.nan)
        wx[ok], wy[ok] = to_work.transform(lon[ok], lat[ok])
    geoms = np.full(len(x), None, dtype=object)
    geoms[ok] = shapely.points(wx[ok], wy[ok])
    parsed.geometry = geoms


def _reject_placeholders(
    parsed: ParsedLayer, mapping: Mapping, config: LayerConfig, working_crs: CRS
) -> None:
    """Reject records at the placeholders the city file lists; report suspicious points.

    A point holding an unusual share of the layer is reported as a possible "location not
    known" that the file does not declare.
    """
    spec = config.placeholders
    if spec is not None and spec.column is not None:
        text = _column(parsed.raw, spec.column, "placeholders.column", parsed.name)
        marked = text.astype("string").str.strip().isin(spec.values).to_numpy(dtype=bool)
        parsed.reject(marked, PLACEHOLDER)
    if "unit_code" in mapping:
        return
    ok = parsed.ok & np.isfinite(parsed.lon)
    if spec is not None and spec.points and ok.any():
        if config.crs:
            src = CRS.from_user_input(config.crs)
        elif "lon" in mapping or parsed.raw.crs is None:
            src = WGS84
        else:
            src = CRS.from_user_input(parsed.raw.crs)
        pts = np.asarray(spec.points, dtype=float)
        where = to_crs(shapely.points(pts[:, 0], pts[:, 1]), src, working_crs)
        near = np.zeros(len(ok), dtype=bool)
        near[ok] = shapely.dwithin(
            parsed.geometry[ok][:, None], where[None, :], spec.tolerance_m
        ).any(axis=1)
        parsed.reject(near, PLACEHOLDER)
    ok = parsed.ok & np.isfinite(parsed.lon)
    n = int(ok.sum())
    if n < PLACEHOLDER_MIN_RECORDS:
        return
    coords = np.column_stack([parsed.lon[ok], parsed.lat[ok]])
    points, counts = np.unique(coords, axis=0, return_counts=True)
    flagged = np.flatnonzero(
        (counts >= PLACEHOLDER_MIN_RECORDS) & (counts >= PLACEHOLDER_MIN_SHARE * n)
    )
    for i in flagged[np.argsort(-counts[flagged])][:5]:
        parsed.notes.append(
            f"possible placeholder location: {counts[i]:,} of {n:,} records "
            f"({counts[i] / n:.0%}) sit on the one point lon {points[i, 0]:.6f}, lat "
            f"{points[i, 1]:.6f}; if it means 'location not known', list it in "
            f"layers.{parsed.name}.placeholders.points (in the layer's coordinates)"
        )


def _parse_count(parsed: ParsedLayer, mapping: Mapping, config: LayerConfig) -> None:
    """Read the number of records each row stands for (1 without a count column)."""
    n = len(parsed.columns)
    source = _source(parsed.raw, mapping, COUNT_KEY, parsed.name)
    if source is None:
        parsed.columns[COUNT_KEY] = pd.arrays.IntegerArray(
            np.ones(n, dtype=np.int64), np.zeros(n, dtype=bool)
        )
        return
    label = _label(mapping, COUNT_KEY)
    text = _text(source, set(config.format.na_values))
    values, bad = _numbers(text, config.format.decimal)
    parsed.reject(text.isna().to_numpy(), f"missing count ('{label}')")
    invalid = bad | np.isfinite(values) & ((values < 0) | (values != np.round(values)))
    parsed.reject(invalid, f"count is not a whole number >= 0 ('{label}')")
    huge = np.isfinite(values) & (values > MAX_COUNT)
    parsed.reject(huge, f"count larger than {MAX_COUNT:,} ('{label}'): not a count of incidents")
    invalid |= huge
    parsed.columns[COUNT_KEY] = _to_int(np.where(invalid, np.nan, values))


def date_bounds(config: LayerConfig) -> tuple[dt.date, dt.date]:
    """Return the earliest and latest plausible date of a layer's records."""
    if config.format.date_range is not None:
        lo, hi = config.format.date_range
        return lo, hi
    today = dt.datetime.now(dt.UTC).date()
    return EARLIEST_DATE, today.replace(year=today.year + 1, day=min(today.day, 28))


def _parse_time(
    parsed: ParsedLayer, mapping: Mapping, config: LayerConfig, timezone: str | None = None
) -> None:
    fmt = config.format
    cols = parsed.columns
    na = set(fmt.na_values)
    key = "month" if "month" in mapping else "datetime" if "datetime" in mapping else None
    parsed.time_known = np.zeros(len(cols), dtype=bool)
    if key is None:
        cols["datetime"] = pd.Series(pd.NaT, index=cols.index, dtype="datetime64[ns]")
        cols["month"] = pd.Series(None, index=cols.index, dtype=object)
        return
    spec = mapping[key]
    label = _label(mapping, key)
    hint = ""
    if isinstance(spec, DateParts):
        values, missing, bad = _from_parts(
            parsed, spec, fmt.datetime_format, na, fmt.dayfirst, timezone
        )
        timed = spec.time if spec.date is not None else spec.hour
        if key == "datetime" and timed is not None:
            parsed.time_known = _text(parsed.raw.frame[timed], na).notna().to_numpy()
    else:
        pattern = fmt.month_format if key == "month" else fmt.datetime_format
        text = _text(_source(parsed.raw, mapping, key, parsed.name), na)  # type: ignore[arg-type]
        values = _to_datetime(
            text,
            pattern,
            dayfirst=fmt.dayfirst,
            min_parts=2 if key == "month" else 3,
            timezone=timezone if key == "datetime" else None,
        )
        missing = text.isna().to_numpy()
        bad = ~missing & values.isna().to_numpy()
        hint = f" (expected {pattern})" if pattern else ""
        if key == "datetime" and pattern:
            has_time = any(d in pattern for d in ("%H", "%I", "%X", "%c", "%T", "%R"))
            parsed.time_known = np.full(len(cols), has_time) & ~missing
        elif key == "datetime":
            parsed.time_known = text.str.contains(r"\d{1,2}:\d{2}", na=False).to_numpy(dtype=bool)
    parsed.reject(missing, f"missing date ('{label}')")
    parsed.reject(bad, f"unparseable date ('{label}'){hint}")
    lo, hi = date_bounds(config)
    stamps = values.to_numpy(dtype="datetime64[us]")
    outside = ~np.isnat(stamps) & (
        (stamps < np.datetime64(lo, "us")) | (stamps >= np.datetime64(hi, "us") + 86_400_000_000)
    )
    parsed.reject(
        outside,
        f"date outside the plausible range {lo.isoformat()} to {hi.isoformat()} ('{label}'; "
        f"set layers.{parsed.name}.format.date_range to widen it)",
    )
    values = pd.Series(np.where(outside | np.isnat(stamps), np.datetime64("NaT", "us"), stamps))
    values.index = cols.index
    if key == "month":
        values = values.dt.to_period("M").dt.to_timestamp()
    cols["datetime"] = values.astype("datetime64[ns]")
    cols["month"] = values.dt.strftime("%Y-%m").astype(object).where(values.notna(), None)


def _from_parts(
    parsed: ParsedLayer,
    spec: DateParts,
    pattern: str | None,
    na: set[str],
    dayfirst: bool,
    timezone: str | None = None,
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Build datetimes from a date and a time column, or from year, month, day... columns.

    Returns the values (NaT where missing or invalid), the missing mask and the invalid mask.
    A missing time of day (a date without its hour) keeps the date at 00:00 and is counted.
    """
    raw = parsed.raw
    if spec.date is not None:
        date = _text(raw.frame[spec.date], na)
        text = date
        if spec.time is not None:
            time_text = _text(raw.frame[spec.time], na)
            no_time = date.notna().to_numpy() & time_text.isna().to_numpy()
            parsed.clean("datetime", no_time, f"missing time of day ('{spec.time}'): 00:00 used")
            text = (date + " " + time_text.fillna("00:00")).where(date.notna(), None)
        values = _to_datetime(text, pattern, dayfirst=dayfirst, min_parts=3, timezone=timezone)
        missing = date.isna().to_numpy()
        return values, missing, ~missing & values.isna().to_numpy()
    n = len(raw.frame)
    named = {k: getattr(spec, k) for k in ("year", "month", "day", "hour", "minute", "second")}
    parts: dict[str, np.ndarray] = {}
    missing = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    for part, col in named.items():
        if col is None:
            parts[part] = np.full(n, 1.0 if part == "day" else 0.0)
            continue
        text = _text(raw.frame[col], na)
        values, unparseable = _numbers(text, ".")
        absent = text.isna().to_numpy()
        if part in ("year", "month", "day"):
            missing |= absent
        else:
            parsed.clean("datetime", absent & ~missing, f"missing {part} ('{col}'): 0 used")
            values = np.where(absent, 0.0, values)
        bad |= unparseable | np.isfinite(values) & (values != np.round(values))
        parts[part] = values
    limits = {"year": (1, 9999), "month": (1, 12), "day": (1, 31), "hour": (0, 23)}
    limits |= {"minute": (0, 59), "second": (0, 59)}
    for part, (low, high) in limits.items():
        v = parts[part]
        bad |= np.isfinite(v) & ((v < low) | (v > high))
    good = ~missing & ~bad
    # years outside pandas' range are rejected as implausible dates afterwards, not here
    year = np.clip(np.where(good, parts["year"], 2000), 1700, 2200)
    frame = pd.DataFrame({k: np.where(good, v, 1).astype(np.int64) for k, v in parts.items()})
    frame["year"] = year.astype(np.int64)
    stamps = pd.to_datetime(frame, errors="coerce").astype("datetime64[us]")
    stamps = stamps.where(good)
    bad |= ~missing & ~bad & stamps.isna().to_numpy()  # 31 February
    out_of_years = good & ((parts["year"] < 1700) | (parts["year"] > 2200))
    # keep an implausible year visible to the range check: the far bound of the range
    far = np.where(
        parts["year"] < 1700, np.datetime64("1700-01-01", "us"), np.datetime64("2200-12-31", "us")
    )
    stamps = pd.Series(np.where(out_of_years, far, stamps.to_numpy()), index=raw.frame.index)
    return stamps, missing, bad


def _to_datetime(
    text: pd.Series,
    pattern: str | None,
    *,
    dayfirst: bool,
    min_parts: int,
    timezone: str | None = None,
) -> pd.Series:
    """Parse dates vectorised, keeping the local wall-clock time of offset-qualified values.

    Without an explicit format, ISO 8601 is tried first and any other common layout after it;
    a value needs at least ``min_parts`` numbers or month names (a year alone, "now" or
    "tomorrow" are not dates). A trailing UTC offset (``Z``, ``+01:00``) is dropped so that
    22:15 stays 22:15 whatever offset the source wrote (safety analysis cares about the local
    hour of day). With a ``timezone`` (the city file's), an offset-qualified value is instead
    converted to that zone's local time (``2024-07-01T21:15Z`` is 22:15 in Europe/London).
    Returns microsecond datetimes (NaT where unparseable).
    """
    present = text.dropna().astype(str)
    # "now", "today" are words pandas reads as the current date: a date has digits
    present = present[present.str.contains(r"\d", regex=True)]
    if pattern and "%z" in pattern:
        # offsets may differ row by row (summer time): read them all as UTC, then either
        # convert to the city's zone or put back the wall-clock time each row wrote
        aware = pd.to_datetime(present, format=pattern, errors="coerce", utc=True)
        if timezone:
            out = aware.dt.tz_convert(timezone).dt.tz_localize(None)
        else:
            wall = pd.to_datetime(
                present.str.replace(r"\s*(?:Z|[+-]\d{2}:?\d{2})$", "", regex=True),
                format=pattern.replace("%z", "").strip(),
                errors="coerce",
            )
            out = wall.where(aware.notna())
        out = out.astype("datetime64[us]")
    elif pattern:
        out = pd.to_datetime(present, format=pattern, errors="coerce")
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_localize(None)
        out = out.astype("datetime64[us]")
    else:
        written = present
        present = present.str.replace(_OFFSET, r"\1", regex=True)
        parts = present.str.count(r"\d+") + present.str.contains(_MONTH_NAMES).astype(int)
        plausible = (parts >= min_parts).to_numpy()
        first = _naive(pd.to_datetime(present, format="ISO8601", errors="coerce"))
        retry = first.isna().to_numpy() & plausible
        out = first.copy()
        if retry.any():
            second = _naive(
                pd.to_datetime(present[retry], format="mixed", dayfirst=dayfirst, errors="coerce")
            )
            out.loc[second.index] = second
        if timezone:
            changed = written.str.replace(_OFFSET, "", regex=True).ne(written).to_numpy()
            offset = changed & plausible
            if offset.any():
                aware = pd.to_datetime(
                    written[offset], format="mixed", dayfirst=dayfirst, errors="coerce", utc=True
                )
                local = aware.dt.tz_convert(timezone).dt.tz_localize(None).astype("datetime64[us]")
                out.loc[local.index] = local.where(local.notna(), out.loc[local.index])
        out = out.where(plausible)
    # a value without a year ("02/03 10:00", "March 02T10:00") is read as year 1 or 1900
    year = out.dt.year
    no_year = (year == 1900) & ~present.str.contains("1900|00", regex=True)
    no_year |= (year < 1000) & ~present.str.contains(r"(?<!\d)0\d{3}(?!\d)", regex=True)
    out = out.where(~no_year)
    return pd.Series(out, index=present.index).reindex(text.index).astype("datetime64[us]")


def _naive(values: pd.Series) -> pd.Series:
    """Return microsecond datetimes without a time zone (wall-clock time kept)."""
    if values.dtype == object:  # mixed offsets pandas could not unify
        values = pd.to_datetime(values, errors="coerce", utc=True)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_localize(None)
    return values.astype("datetime64[us]")


def _parse_field(
    parsed: ParsedLayer,
    fname: str,
    spec: FieldSpec,
    mapping: Mapping,
    config: LayerConfig,
    na_values: set[str],
) -> None:
    cols, n = parsed.columns, len(parsed.columns)
    source = _source(parsed.raw, mapping, fname, parsed.name)
    if source is None:
        if spec.required:
            raise InputError(
                f"layer '{parsed.name}': required field '{fname}' is not mapped",
                path=parsed.raw.path,
                hint=f"add {fname} = '<column>' to layers.{parsed.name}.columns",
            )
        default = spec.default
        if spec.type in ("integer", "float"):
            cols[fname] = np.full(n, np.nan if default is None else float(default))
        else:
            cols[fname] = pd.Series(default, index=cols.index, dtype=object)
        return
    col = _label(mapping, fname)
    text = _text(source, na_values)
    missing = text.isna().to_numpy()
    if spec.required:
        parsed.reject(missing, f"missing required value ('{col}')")
    if spec.type in ("integer", "float"):
        values, bad = _numbers(text, config.format.decimal)
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        problems = [
            (bad, f"unparseable number ('{col}')"),
            (
                np.isfinite(values) & (values != np.round(values)) & (spec.type == "integer"),
                f"not a whole number ('{col}')",
            ),
            (
                np.isfinite(values) & ((values < lo) | (values > hi)),
                f"value out of range [{spec.min}, {spec.max}] ('{col}')",
            ),
        ]
        for mask, reason in problems:
            values = np.where(parsed.invalid(fname, spec, mask, reason), np.nan, values)
        if spec.default is not None:  # missing or cleaned: the kind's default (a weight of 1)
            values = np.where(np.isnan(values), float(spec.default), values)
        cols[fname] = _to_int(values) if spec.type == "integer" else values
    elif spec.type == "sex":
        lowered = text.str.lower()
        canon = lowered.map(SEX_LOOKUP)
        unrecognised = (~missing) & canon.isna().to_numpy()
        if unrecognised.any():
            # the values themselves are not quoted: they may identify a person, and the
            # reason is published in the manifest
            parsed.clean(
                fname, unrecognised, f"not recognised as a sex: recorded as 'unknown' ('{col}')"
            )
        cols[fname] = canon.where(~missing, None).fillna("unknown").where(~missing, None)
        assert set(cols[fname].dropna()) <= set(SEX_VALUES)
    elif spec.type == "boolean":
        lowered = text.str.lower()
        truthy = lowered.isin(list(_TRUE)).to_numpy()
        falsy = lowered.isin(list(_FALSE)).to_numpy()
        parsed.invalid(fname, spec, ~missing & ~truthy & ~falsy, f"not a yes/no value ('{col}')")
        flags = pd.array(truthy, dtype="boolean")
        flags[~truthy & ~falsy] = pd.NA
        cols[fname] = flags
    else:
        cols[fname] = text


def _to_int(values: np.ndarray) -> pd.arrays.IntegerArray:
    finite = np.isfinite(values)
    out = np.zeros(len(values), dtype=np.int64)
    out[finite] = values[finite].astype(np.int64)
    return pd.arrays.IntegerArray(out, ~finite)


def _reject_duplicates(parsed: ParsedLayer, values: pd.Series, reason: str) -> None:
    """Reject the records (still accepted) repeating an earlier record's value."""
    candidate = parsed.ok & values.notna().to_numpy()
    dup = np.zeros(len(values), dtype=bool)
    dup[candidate] = values[candidate].duplicated(keep="first").to_numpy()
    parsed.reject(dup, reason)


@dataclass
class LayerReport:
    """What happened to one input layer: the accounting written to the manifest.

    ``read = accepted + rejected + filtered``: ``filtered`` rows were dropped by the layer's
    ``where`` filter (the city's choice, not a fault); ``snapped`` accepted points lay just
    outside the units and were assigned to the nearest one (``snap_m``).
    """

    name: str
    kind: str
    path: str
    sha256: str
    read: int
    accepted: int
    rejected: int
    filtered: int = 0
    snapped: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False
    attribution: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the manifest entry."""
        return dict(self.__dict__)


@dataclass
class Records:
    """A layer after ingest and the spatial tests: accepted records and rejects.

    Attributes
    ----------
    name : str
        Layer name in the city file.
    kind : LayerKind
        Its kind.
    config : LayerConfig
        Its city-file entry.
    report : LayerReport
        The accounting.
    table : pandas.DataFrame or None
        Accepted records in canonical columns (vector layers), plus ``unit_id`` and ``h3`` for
        points.
    geometry : numpy.ndarray or None
        Accepted geometries in the working CRS (vector layers).
    rejects : pandas.DataFrame or None
        Rejected records with reasons and original values (vector layers).
    unit : numpy.ndarray or None
        Admin-unit position of each accepted point or raster pixel.
    cells : dict
        H3 resolution to the uint64 cell of each accepted point or raster pixel.
    values : numpy.ndarray or None
        Raster pixel values.
    time_known : numpy.ndarray or None
        Whether each accepted record of a temporal layer has a time of day.
    source : Path or None
        The file of a raster layer (aggregated exactly by :mod:`geo_usm.zonal`).
    outside : numpy.ndarray or None
        Geometries (working CRS) of the records rejected only for lying outside the study
        area or the units: not counted anywhere, but a lamp or a stop just across the
        boundary still lights or serves the streets inside (coverage and distances use them).

    """

    name: str
    kind: LayerKind
    config: LayerConfig
    report: LayerReport
    table: pd.DataFrame | None = None
    geometry: np.ndarray | None = None
    rejects: pd.DataFrame | None = None
    unit: np.ndarray | None = None
    cells: dict[int, np.ndarray] = field(default_factory=dict)
    values: np.ndarray | None = None
    time_known: np.ndarray | None = None
    outside: np.ndarray | None = None
    source: Path | None = None


def ingest_layer(city: City, name: str, frame: SpatialFrame) -> Records:
    """Read, parse and locate one input layer of a city.

    Raises
    ------
    InputError
        If the file cannot be used at all (missing, unreadable, mapped column absent, no CRS).

    """
    t0 = time.perf_counter()
    cfg = city.config.layers[name]
    kind = city.kinds[cfg.kind]
    if kind.geometry == "raster":
        records = _ingest_raster(city, name, cfg, kind, frame)
    else:
        records = _ingest_vector(city, name, cfg, kind, frame)
    records.report.seconds = round(time.perf_counter() - t0, 3)
    return records


def check_source(city: City, name: str) -> None:
    """Read and parse one layer without the admin units (when they cannot be used).

    Finds what does not depend on the units: a missing or unreadable file, a mapped column the
    file does not have, a filter that does not fit, a raster without a CRS.

    Raises
    ------
    GeoUsmError
        The first such problem of the layer.

    """
    cfg = city.config.layers[name]
    kind = city.kinds[cfg.kind]
    path = city.resolve(cfg.path)
    if kind.geometry == "raster":
        read_raster(path, band=cfg.band, crs=cfg.crs, name=name)
        return
    raw, _ = _read_filtered(path, name, cfg)
    parse_layer(raw, name, cfg, kind, WGS84, city.config.timezone)


def layer_problems(report: LayerReport, config: LayerConfig) -> list[str]:
    """Return why a layer's outcome is implausible enough to stop a build.

    A layer with no record at all, with rows but no accepted record, or whose rows are mostly
    rejected for one reason that is neither spatial nor the city's own category filter (a
    wrong date format, a wrong coordinate column), is almost always a mistake in the city
    file. ``may_be_empty`` and
    ``max_reject_share`` in the layer's entry accept such outcomes deliberately.
    """
    problems: list[str] = []
    if report.accepted == 0 and config.may_be_empty:
        return problems
    if report.read > 0 and report.filtered == report.read:
        problems.append(
            f"layer '{report.name}': its where filter dropped all {report.read:,} rows "
            f"({config.format.where!r}); its counts would read as zeros"
        )
    elif report.read == 0:
        problems.append(
            f"layer '{report.name}': the source has no record (an empty file or a filter that "
            "keeps nothing); its counts would read as zeros"
        )
    elif report.accepted == 0:
        top = max(report.rejects_by_reason.items(), key=lambda kv: kv[1], default=("", 0))
        problems.append(
            f"layer '{report.name}': none of its {report.read:,} rows was accepted"
            + (f" (most common reason: {top[0]})" if top[0] else "")
        )
    else:
        for reason, n in report.rejects_by_reason.items():
            if reason in SELECTION_REASONS:
                continue
            if n / (report.read - report.filtered) > config.max_reject_share:
                kept = report.read - report.filtered
                problems.append(
                    f"layer '{report.name}': {n:,} of {kept:,} rows "
                    f"({n / kept:.0%}) rejected for one reason: {reason}"
                )
    return problems


def _report(
    name: str,
    kind: LayerKind,
    cfg: LayerConfig,
    path: Path,
    *,
    read: int,
    accepted: int,
    rejects_by_reason: dict[str, int],
    notes: list[str],
    cleaned: dict[str, dict[str, int]] | None = None,
    filtered: int = 0,
    snapped: int = 0,
) -> LayerReport:
    return LayerReport(
        name=name,
        kind=kind.kind,
        path=str(cfg.path),
        sha256=file_sha256(path),
        read=read,
        accepted=accepted,
        rejected=read - accepted - filtered,
        filtered=filtered,
        snapped=snapped,
        rejects_by_reason=rejects_by_reason,
        cleaned=cleaned or {},
        notes=notes,
        synthetic=cfg.synthetic,
        attribution=cfg.attribution,
    )


def _reason_counts(rejects: pd.DataFrame) -> dict[str, int]:
    if rejects.empty:
        return {}
    return {str(k): int(v) for k, v in rejects["reason"].value_counts().items()}


def _ingest_vector(
    city: City, name: str, cfg: LayerConfig, kind: LayerKind, frame: SpatialFrame
) -> Records:
    path = city.resolve(cfg.path)
    raw, filtered = _read_filtered(path, name, cfg)
    parsed = parse_layer(raw, name, cfg, kind, frame.crs, city.config.timezone)
    unit = None
    cells: dict[int, np.ndarray] = {}
    snapped = 0
    if parsed.codes is not None:
        if kind.geometry == "table":
            # a table of values per unit has one row per unit
            codes = pd.Series(parsed.codes).astype("string").str.strip()
            _reject_duplicates(
                parsed, codes, "duplicate unit code (an earlier row has the same code)"
            )
        unit = _locate_by_code(parsed, frame)
        if kind.geometry == "table":
            missing = len(frame.units) - len(np.unique(unit))
            if missing:
                parsed.notes.append(
                    f"{missing:,} of {len(frame.units):,} units have no row: their values are "
                    "NULL (no data), not 0"
                )
    elif kind.geometry == "point":
        unit, cells, snapped = _locate_points(parsed, frame, cfg.snap_m)
    else:
        ok = parsed.ok
        hits = np.zeros(len(ok), dtype=bool)
        hits[ok] = frame.in_study_area(parsed.geometry[ok])
        parsed.reject(ok & ~hits, OUTSIDE_STUDY_AREA)
    spatial = np.isin(parsed.reasons.astype(str), [OUTSIDE_STUDY_AREA, OUTSIDE_UNITS])
    outside = parsed.geometry[spatial & ~pd.isna(parsed.geometry)]
    accepted, geometry, rejects = parsed.split()
    if unit is not None and kind.geometry == "point":
        accepted["unit_id"] = frame.units["unit_id"].to_numpy()[unit]
        accepted["h3"] = cells_to_strings(cells[frame.resolutions[0]]) if cells else None
    notes = raw.notes + parsed.notes
    if snapped:
        notes.append(
            f"{snapped:,} point(s) up to {cfg.snap_m:g} m outside the units assigned to the "
            "nearest unit (snap_m)"
        )
    if parsed.codes is not None and kind.geometry == "point":
        notes.append("located by admin-unit code: counted on units, no data on hexagons")
    report = _report(
        name,
        kind,
        cfg,
        path,
        read=raw.n_read + filtered,
        accepted=len(accepted),
        rejects_by_reason=_reason_counts(rejects),
        cleaned=parsed.cleaned(),
        notes=notes,
        filtered=filtered,
        snapped=snapped,
    )
    time_known = None if parsed.time_known is None else parsed.time_known[parsed.ok]
    return Records(
        name,
        kind,
        cfg,
        report,
        accepted,
        geometry,
        rejects,
        unit,
        cells,
        time_known=time_known,
        outside=outside,
    )


def _read_filtered(path: Path, name: str, cfg: LayerConfig) -> tuple[RawTable, int]:
    """Read a layer's source as its city-file entry says; return it and the rows filtered."""
    fmt = cfg.format
    raw = read_source(
        path,
        layer=cfg.layer,
        member=cfg.member,
        delimiter=fmt.delimiter,
        encoding=fmt.encoding,
        sheet=fmt.sheet,
    )
    return raw, _apply_filter(raw, name, cfg)


def _apply_filter(raw: RawTable, name: str, cfg: LayerConfig) -> int:
    """Drop the rows the layer's ``where`` filter excludes; return how many it dropped."""
    if not cfg.format.where:
        return 0
    flt = parse_filter(cfg.format.where)
    try:
        keep = np.asarray(flt.evaluate(raw.frame), dtype=bool)
    except FilterEvaluationError as exc:
        raise InputError(
            f"layer '{name}': format.where: {exc.message}",
            path=raw.path,
            hint=exc.hint or f"fix layers.{name}.format.where",
        ) from None
    if keep.all():
        return 0
    numbers = raw.numbers[keep]
    raw.frame = raw.frame.loc[keep].reset_index(drop=True)
    raw.record_numbers = numbers
    if raw.geometry is not None:
        raw.geometry = raw.geometry[keep]
    return int((~keep).sum())


def _locate_by_code(parsed: ParsedLayer, frame: SpatialFrame) -> np.ndarray:
    """Assign records to admin units by their unit code; unknown codes are rejected."""
    assert parsed.codes is not None
    ids = pd.Index(frame.units["unit_id"].astype(str))
    ok = parsed.ok
    position = np.full(len(ok), -1, dtype=np.int64)
    position[ok] = ids.get_indexer(pd.Series(parsed.codes[ok]).astype(str).str.strip())
    unknown = ok & (position < 0)
    if unknown.any():
        counts = pd.Series(parsed.codes[unknown]).value_counts()
        listed = ", ".join(f"{c!s:.30} ({n})" for c, n in counts.head(10).items())
        more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
        parsed.notes.append(
            f"{int(unknown.sum()):,} record(s) with unit codes that match no admin unit: "
            f"{listed}{more} (codes that changed between boundary editions?)"
        )
    parsed.reject(unknown, NO_UNIT_CODE)
    return position[parsed.ok]


def _locate_points(
    parsed: ParsedLayer, frame: SpatialFrame, snap_m: float
) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """Assign points to the study area, units and cells; snap near misses if asked."""
    ok = parsed.ok
    where = frame.assign(parsed.lon[ok], parsed.lat[ok])
    unit, inside = where.unit.copy(), where.inside.copy()
    cells = {r: c.copy() for r, c in where.cells.items()}
    snapped = 0
    if snap_m > 0:
        lost = np.flatnonzero(~(inside & (unit >= 0)))
        pos, lon, lat = frame.snap(parsed.geometry[ok][lost], snap_m)
        hit = pos >= 0
        snapped = int(hit.sum())
        if snapped:
            target = lost[hit]
            unit[target], inside[target] = pos[hit], True
            for r in cells:
                cells[r][target] = point_cells(lon[hit], lat[hit], r)
    outside = np.zeros(len(ok), dtype=bool)
    outside[ok] = ~inside
    parsed.reject(outside, OUTSIDE_STUDY_AREA)
    gap = np.zeros(len(ok), dtype=bool)
    gap[ok] = inside & (unit < 0)
    parsed.reject(gap, OUTSIDE_UNITS)
    keep = inside & (unit >= 0)
    return unit[keep], {r: c[keep] for r, c in cells.items()}, snapped


def _ingest_raster(
    city: City, name: str, cfg: LayerConfig, kind: LayerKind, frame: SpatialFrame
) -> Records:
    path = city.resolve(cfg.path)
    pixels = read_raster(
        path,
        band=cfg.band,
        crs=cfg.crs,
        name=name,
        within=tuple(shapely.bounds(frame.study_wgs).tolist()),  # type: ignore[arg-type]
    )
    if pixels.crs.is_geographic:
        lon, lat = pixels.x, pixels.y
    else:
        lon, lat = transformer(pixels.crs, WGS84).transform(pixels.x, pixels.y)
    where = frame.assign(np.asarray(lon), np.asarray(lat))
    keep = where.inside & (where.unit >= 0)
    reasons = Counter(
        {
            NODATA_PIXEL: pixels.n_nodata,
            PIXEL_OUTSIDE_STUDY_AREA: int((~where.inside).sum()) + pixels.n_outside,
            PIXEL_OUTSIDE_UNITS: int((where.inside & (where.unit < 0)).sum()),
        }
    )
    report = _report(
        name,
        kind,
        cfg,
        path,
        read=pixels.n_pixels,
        accepted=int(keep.sum()),
        rejects_by_reason={k: v for k, v in reasons.items() if v},
        notes=[
            "raster pixels are counted here by their centre and not listed in the rejects "
            "layer; their values are aggregated exactly, each pixel weighted by the share of "
            "its area inside each unit and hexagon"
        ],
    )
    return Records(name, kind, cfg, report, source=path)
