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

from geo_usm.cityfile import City, LayerConfig
from geo_usm.errors import InputError
from geo_usm.geo import WGS84, cells_to_strings, to_crs, transformer
from geo_usm.io import RawTable, file_sha256, read_raster, read_source
from geo_usm.schema import SEX_VALUES, FieldSpec, LayerKind

if TYPE_CHECKING:
    from geo_usm.units import SpatialFrame

OUTSIDE_STUDY_AREA = "outside the study area"
OUTSIDE_UNITS = "inside the study area but in no admin unit (gap in the units layer)"
CATEGORY_FILTER = "category not in the configured list (layers.*.categories)"
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


def _source(raw: RawTable, mapping: dict[str, str], key: str, name: str) -> pd.Series | None:
    col = mapping.get(key)
    if col is None:
        return None
    if col not in raw.frame.columns:
        sample = ", ".join(map(str, list(raw.frame.columns)[:15]))
        raise InputError(
            f"layer '{name}': column '{col}' (mapped to '{key}') is not in the file; "
            f"columns are: {sample}",
            path=raw.path,
            hint=f"fix layers.{name}.columns.{key} in the city file",
        )
    return raw.frame[col]


def parse_layer(
    raw: RawTable, name: str, config: LayerConfig, kind: LayerKind, working_crs: CRS
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

    Returns
    -------
    ParsedLayer

    Raises
    ------
    InputError
        If a mapped column is absent, or no CRS is known for the locations.

    """
    mapping = {**raw.default_columns, **config.columns}
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
    for key in mapping:
        _source(raw, mapping, key, name)
    _parse_location(parsed, mapping, config, working_crs)
    if kind.temporal:
        _parse_time(parsed, mapping, config)
    for fname, spec in kind.fields.items():
        _parse_field(parsed, fname, spec, mapping, config, na_values)
    if config.categories is not None and "category" in columns:
        allowed = set(config.categories)
        present = columns["category"].notna().to_numpy()
        outside = present & ~columns["category"].isin(allowed).to_numpy()
        parsed.reject(outside, CATEGORY_FILTER)
    for fname, spec in kind.fields.items():
        if spec.unique and fname in columns:
            _reject_duplicates(parsed, fname)
    return parsed


def _parse_location(
    parsed: ParsedLayer, mapping: dict[str, str], config: LayerConfig, working_crs: CRS
) -> None:
    raw, name, geom_kind = parsed.raw, parsed.name, parsed.kind.geometry
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
        parsed.reject(missing, f"missing coordinates ('{mapping[xk]}', '{mapping[yk]}')")
        parsed.reject(xbad | ybad, f"unparseable coordinates ('{mapping[xk]}', '{mapping[yk]}')")
        _set_points(parsed, x, y, src_crs, working_crs)
        return
    if "wkt" in mapping:
        text = _text(_source(raw, mapping, "wkt", name), set(config.format.na_values))  # type: ignore[arg-type]
        geoms = shapely.from_wkt(text.to_numpy(), on_invalid="ignore")
        parsed.reject(text.isna().to_numpy(), f"missing geometry ('{mapping['wkt']}')")
        parsed.reject(pd.isna(geoms), f"unparseable WKT ('{mapping['wkt']}')")
        if config.crs is None:
            raise InputError(
                f"layer '{name}': no CRS known for the WKT column '{mapping['wkt']}'",
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
            hint=f"map lon/lat, x/y (with crs) or wkt in layers.{name}.columns",
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


def _parse_time(parsed: ParsedLayer, mapping: dict[str, str], config: LayerConfig) -> None:
    fmt = config.format
    cols = parsed.columns
    pattern: str | None
    if "month" in mapping:
        key, pattern = "month", fmt.month_format
    elif "datetime" in mapping:
        key, pattern = "datetime", fmt.datetime_format
    else:
        cols["datetime"] = pd.Series(pd.NaT, index=cols.index, dtype="datetime64[ns]")
        cols["month"] = pd.Series(None, index=cols.index, dtype=object)
        return
    text = _text(_source(parsed.raw, mapping, key, parsed.name), set(fmt.na_values))  # type: ignore[arg-type]
    values = _to_datetime(text, pattern, dayfirst=fmt.dayfirst)
    missing = text.isna().to_numpy()
    parsed.reject(missing, f"missing date ('{mapping[key]}')")
    hint = f" (expected {pattern})" if pattern else ""
    parsed.reject(~missing & values.isna().to_numpy(), f"unparseable date ('{mapping[key]}'){hint}")
    if key == "month":
        values = values.dt.to_period("M").dt.to_timestamp()
    cols["datetime"] = values.astype("datetime64[ns]")
    cols["month"] = values.dt.strftime("%Y-%m").astype(object).where(values.notna(), None)


def _to_datetime(text: pd.Series, pattern: str | None, *, dayfirst: bool) -> pd.Series:
    """Parse dates vectorised, keeping the local wall-clock time of offset-qualified values.

    Without an explicit format, ISO 8601 is tried first and any other common layout after it;
    a trailing UTC offset (``Z``, ``+01:00``) is dropped so that 22:15 stays 22:15 whatever
    offset the source wrote (safety analysis cares about local hour of day).
    """
    kwargs: dict[str, Any] = {"errors": "coerce", "dayfirst": dayfirst}
    present = text.dropna().astype(str)
    if pattern:
        out = pd.to_datetime(present, format=pattern, **kwargs)
    else:
        present = present.str.replace(r"(?<=\d)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", "", regex=True)
        out = pd.to_datetime(present, format="ISO8601", **kwargs)
        retry = out.isna()
        if retry.any():
            out[retry] = pd.to_datetime(present[retry], format="mixed", **kwargs)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_localize(None)
    return pd.Series(out, index=present.index).reindex(text.index)


def _parse_field(
    parsed: ParsedLayer,
    fname: str,
    spec: FieldSpec,
    mapping: dict[str, str],
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
    col = mapping[fname]
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


def _reject_duplicates(parsed: ParsedLayer, fname: str) -> None:
    values = parsed.columns[fname]
    candidate = parsed.ok & values.notna().to_numpy()
    dup = np.zeros(len(values), dtype=bool)
    dup[candidate] = values[candidate].duplicated(keep="first").to_numpy()
    parsed.reject(dup, f"duplicate {fname} (an earlier row has the same value)")


@dataclass
class LayerReport:
    """What happened to one input layer: the accounting written to the manifest."""

    name: str
    kind: str
    path: str
    sha256: str
    read: int
    accepted: int
    rejected: int
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
    if report.read == 0:
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
            if n / report.read > config.max_reject_share:
                problems.append(
                    f"layer '{report.name}': {n:,} of {report.read:,} rows "
                    f"({n / report.read:.0%}) rejected for one reason: {reason}"
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
) -> LayerReport:
    return LayerReport(
        name=name,
        kind=kind.kind,
        path=str(cfg.path),
        sha256=file_sha256(path),
        read=read,
        accepted=accepted,
        rejected=read - accepted,
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
    fmt = cfg.format
    raw = read_source(
        path,
        layer=cfg.layer,
        delimiter=fmt.delimiter,
        encoding=fmt.encoding,
        sheet=fmt.sheet,
        where=fmt.where,
    )
    parsed = parse_layer(raw, name, cfg, kind, frame.crs)
    unit = None
    cells: dict[int, np.ndarray] = {}
    ok = parsed.ok
    if kind.geometry == "point":
        where = frame.assign(parsed.lon[ok], parsed.lat[ok])
        outside = np.zeros(len(ok), dtype=bool)
        outside[ok] = ~where.inside
        parsed.reject(outside, OUTSIDE_STUDY_AREA)
        gap = np.zeros(len(ok), dtype=bool)
        gap[ok] = where.inside & (where.unit < 0)
        parsed.reject(gap, OUTSIDE_UNITS)
        keep = where.inside & (where.unit >= 0)
        unit = where.unit[keep]
        cells = {r: c[keep] for r, c in where.cells.items()}
    else:
        hits = np.zeros(len(ok), dtype=bool)
        hits[ok] = frame.in_study_area(parsed.geometry[ok])
        parsed.reject(ok & ~hits, OUTSIDE_STUDY_AREA)
    accepted, geometry, rejects = parsed.split()
    if unit is not None:
        accepted["unit_id"] = frame.units["unit_id"].to_numpy()[unit]
        accepted["h3"] = cells_to_strings(cells[frame.resolutions[0]])
    report = _report(
        name,
        kind,
        cfg,
        path,
        read=raw.n_read,
        accepted=len(accepted),
        rejects_by_reason=_reason_counts(rejects),
        cleaned=parsed.cleaned(),
        notes=parsed.notes,
    )
    return Records(name, kind, cfg, report, accepted, geometry, rejects, unit, cells)


def _ingest_raster(
    city: City, name: str, cfg: LayerConfig, kind: LayerKind, frame: SpatialFrame
) -> Records:
    path = city.resolve(cfg.path)
    pixels = read_raster(path, band=cfg.band, crs=cfg.crs, name=name)
    if pixels.crs.is_geographic:
        lon, lat = pixels.x, pixels.y
    else:
        lon, lat = transformer(pixels.crs, WGS84).transform(pixels.x, pixels.y)
    where = frame.assign(np.asarray(lon), np.asarray(lat))
    keep = where.inside & (where.unit >= 0)
    reasons = Counter(
        {
            NODATA_PIXEL: pixels.n_nodata,
            PIXEL_OUTSIDE_STUDY_AREA: int((~where.inside).sum()),
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
            "raster pixels are counted, not listed in the rejects layer; each pixel is "
            "assigned by its centre"
        ],
    )
    cells = {r: c[keep] for r, c in where.cells.items()}
    return Records(
        name, kind, cfg, report, unit=where.unit[keep], cells=cells, values=pixels.values[keep]
    )
