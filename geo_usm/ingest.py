"""Turn a raw source table into a layer kind's canonical columns, vectorised.

:func:`parse_layer` is pure: a :class:`~geo_usm.io.RawTable` and the layer's configuration in, a
:class:`ParsedLayer` out, holding canonical columns, locations and, for every record, either no
reason (still accepted) or the first reason it was rejected. The pipeline then applies the
spatial tests (study area, admin units) and :meth:`ParsedLayer.split` returns accepted records and
rejects. Every record read ends in exactly one of the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo_usm.cityfile import LayerConfig
from geo_usm.errors import InputError
from geo_usm.io import RawTable
from geo_usm.schema import SEX_VALUES, FieldSpec, LayerKind
from geo_usm.units import to_crs

WGS84 = CRS.from_epsg(4326)

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
            numbers, texts = zip(*self.raw.malformed, strict=True)
            extra = pd.DataFrame(
                {
                    "layer": self.name,
                    "source_file": self.raw.path.name,
                    "source_row": np.asarray(numbers, dtype=np.int64),
                    "reason": "wrong number of fields (check the delimiter and quoting)",
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
        parsed.reject(outside, "category not in the configured list (layers.*.categories)")
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
        why[~valid] = [f"invalid geometry: {r}" for r in shapely.is_valid_reason(geoms[~valid])]
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
        to_wgs = Transformer.from_crs(src_crs, WGS84, always_xy=True)
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
        to_work = Transformer.from_crs(WGS84, working_crs, always_xy=True)
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
        parsed.reject(bad, f"unparseable number ('{col}')")
        if spec.type == "integer":
            parsed.reject(
                np.isfinite(values) & (values != np.round(values)), f"not a whole number ('{col}')"
            )
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        parsed.reject(
            np.isfinite(values) & ((values < lo) | (values > hi)),
            f"value out of range [{spec.min}, {spec.max}] ('{col}')",
        )
        if spec.default is not None:
            values = np.where(missing, float(spec.default), values)
        cols[fname] = _to_int(values) if spec.type == "integer" else values
    elif spec.type == "sex":
        lowered = text.str.lower()
        canon = lowered.map(SEX_LOOKUP)
        unrecognised = (~missing) & canon.isna().to_numpy()
        if unrecognised.any():
            examples = sorted(set(text[unrecognised].astype(str)))[:5]
            parsed.notes.append(
                f"{int(unrecognised.sum())} value(s) of '{col}' not recognised as a sex "
                f"({', '.join(examples)}) were recorded as 'unknown'"
            )
        cols[fname] = canon.where(~missing, None).fillna("unknown").where(~missing, None)
        assert set(cols[fname].dropna()) <= set(SEX_VALUES)
    elif spec.type == "boolean":
        lowered = text.str.lower()
        truthy = lowered.isin(list(_TRUE)).to_numpy()
        falsy = lowered.isin(list(_FALSE)).to_numpy()
        parsed.reject(~missing & ~truthy & ~falsy, f"not a yes/no value ('{col}')")
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
