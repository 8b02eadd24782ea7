"""A vectorised Mapbox Vector Tile 2.1 encoder: every tile of a layer at every zoom, with numpy.

:func:`encode_layer` turns a layer (geometries in Web Mercator, EPSG:3857, and its attributes
prepared once by :func:`prepare_attributes`) into one encoded MVT ``Layer`` message per tile it
touches, at every zoom of a range, keyed by PMTiles tile id; the caller concatenates the layers
of a tile (an MVT tile is a repeated field of layers) and compresses it.

How (per zoom level, all features at once)
-------------------------------------------
- Tiles: the tiles a feature may touch come from its bounds widened by the buffer; the
  (feature, tile) pairs are exploded with numpy. Each pair is clipped to its tile plus the
  buffer (``shapely.lib.clip_by_rect``, the ufunc, broadcast over per-pair rectangles); pairs
  whose feature lies within the buffered tile are not clipped, and pairs whose clip is empty or
  collapses are dropped.
- Geometry: the coordinates of all pairs (``shapely.get_coordinates`` with ``return_index``
  over the parts and rings) are quantised to the tile's 4096 units (y down), consecutive
  duplicate points removed, rings with fewer than 3 distinct points or no area dropped (with
  the holes of a dropped exterior ring), exterior rings made clockwise on screen (positive area
  by the surveyor's formula in tile coordinates) and holes counter-clockwise; then the command
  integers, zigzag deltas (the cursor runs through the whole feature) and ClosePath are laid out
  with array arithmetic.
- Attributes: every distinct value of the layer is encoded once as a ``Value`` message (string,
  double for floats, int or sint for integers, bool); NULLs are omitted. Per tile, the keys and
  values tables hold only what the tile's features use, each value once: the values several
  tags share are deduplicated per tile by sorting packed ``(tile, value, position)`` integers;
  a value only one tag uses cannot repeat within a tile and is appended in tag order (doubles as
  11-byte items). The tags are ``(key, value)`` indexes into the tables.
- Protobuf: the byte size of every feature follows from the varint sizes of its tags and
  geometry integers, so the features of a zoom are one byte array written at computed
  positions (varints seven bits at a time, for all values at once); a tile's features are one
  slice of it. Only the assembly of each tile (a few byte strings) is a Python loop.
- Cost: ``benchmarks/bench_tiles_encode.py`` times it against GDAL's MVT writer on the same
  synthetic grid (the encoder and the gzip of its tiles are reported apart).

Simplification (``simplification`` in tile units, per zoom) is for basemap lines and polygons
only; grids are never simplified.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

#: Units per tile side.
EXTENT = 4096
#: Default buffer around a tile, in tile units.
BUFFER = 80
#: Radius of the Web Mercator sphere (WGS84 semi-major axis), in metres.
EARTH_RADIUS = 6378137.0
#: Half the side of the Web Mercator square, in metres.
HALF_WORLD = math.pi * EARTH_RADIUS
#: Latitude of the edges of the Web Mercator square, in degrees.
MAX_LATITUDE = math.degrees(math.atan(math.sinh(math.pi)))
#: MVT geometry types.
POINT, LINESTRING, POLYGON = 1, 2, 3

Ints = NDArray[np.int64]
UInts = NDArray[np.uint64]
Bytes = NDArray[np.uint8]

#: Distinct values listed in the summary of a string or boolean column.
SUMMARY_VALUES = 100

_MOVE_TO_1 = 9  # command 1, count 1
_CLOSE_PATH = 15  # command 7, count 1


# --- protobuf primitives --------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """Return the protobuf varint of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _narrow(values: NDArray[np.integer]) -> NDArray[np.unsignedinteger]:
    """Return non-negative integers as uint32 when they fit (half the memory traffic)."""
    v = np.asarray(values)
    if len(v) and int(v.max()) < 2**32:
        return v.astype(np.uint32, copy=False)
    return v.astype(np.uint64, copy=False)


#: The last fields of every layer: extent (field 5) and version 2 (field 15).
_LAYER_TAIL = b"\x28" + varint(EXTENT) + b"\x78\x02"


def varint_sizes(values: NDArray[np.integer]) -> Ints:
    """Return the number of bytes of the varint of each (non-negative) value."""
    v = _narrow(values)
    sizes = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        big = v >= (1 << (7 * k))
        if not big.any():
            break
        sizes += big
    return sizes


def encode_varints(values: NDArray[np.integer]) -> Bytes:
    """Return the concatenated varints of non-negative integers, in order."""
    v = _narrow(values)
    kind = v.dtype.type
    sizes = varint_sizes(v)
    ends = np.cumsum(sizes)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    starts = ends - sizes
    low = kind(0x7F)
    for k in range(int(sizes.max()) if len(sizes) else 0):
        if k:
            sel = np.flatnonzero(sizes > k)
            part, size, where = v[sel] >> kind(7 * k), sizes[sel], starts[sel] + k
        else:
            part, size, where = v, sizes, starts
        byte = (part & low).astype(np.uint8)
        byte |= (size > k + 1).view(np.uint8) << np.uint8(7)
        out[where] = byte
    return out


def _write_varints(out: Bytes, positions: Ints, values: NDArray[np.integer], sizes: Ints) -> None:
    """Write the varints of values (of known byte sizes) into ``out`` at their positions."""
    v = _narrow(values)
    kind = v.dtype.type
    for k in range(int(sizes.max()) if len(sizes) else 0):
        if k:
            sel = np.flatnonzero(sizes > k)
            part, size, where = v[sel] >> kind(7 * k), sizes[sel], positions[sel] + k
        else:
            part, size, where = v, sizes, positions
        byte = (part & kind(0x7F)).astype(np.uint8)
        byte |= (size > k + 1).view(np.uint8) << np.uint8(7)
        out[where] = byte


def _pack(
    tokens: Sequence[tuple[Ints, NDArray[np.integer]]],
    last: NDArray[np.integer],
    has_last: NDArray[np.bool_] | None = None,
) -> tuple[Bytes, Ints]:
    """Varint-encode a few tokens per row (then ``last`` where ``has_last``); bytes and sizes.

    ``tokens`` are ``(count per row (0 or 1), values of the rows that have one)``.
    """
    n = len(tokens[0][0])
    segments = [(c, np.asarray(v).astype(np.uint64)) for c, v in tokens]
    present = np.ones(n, dtype=np.int64) if has_last is None else has_last.astype(np.int64)
    segments.append((present, np.asarray(last).astype(np.uint64)))
    flat = _interleave(n, segments)
    sizes = varint_sizes(flat)
    row_of = np.repeat(np.arange(n), sum(c for c, _ in segments))
    return encode_varints(flat), np.bincount(row_of, weights=sizes, minlength=n).astype(np.int64)


def zigzag(values: NDArray[np.integer]) -> UInts:
    """Return the zigzag encoding of signed integers (``(n << 1) ^ (n >> 63)``)."""
    n = np.asarray(values, dtype=np.int64)
    return ((n << 1) ^ (n >> 63)).astype(np.uint64)


def ragged_index(starts: Ints, lengths: Ints) -> Ints:
    """Return the concatenated ranges ``starts[i] : starts[i] + lengths[i]``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, dtype=np.int64) - offsets, lengths) + np.arange(total)


def _segment_sum(values: Ints, group: Ints, n: int) -> Ints:
    return np.bincount(group, weights=values, minlength=n).astype(np.int64)


def _interleave(n: int, segments: Sequence[tuple[Ints, UInts]]) -> UInts:
    """Lay out per-row segments ``(lengths, values)`` row by row, segment after segment."""
    total = np.zeros(n, dtype=np.int64)
    for lengths, _ in segments:
        total += lengths
    out = np.empty(int(total.sum()), dtype=np.uint64)
    cursor = np.cumsum(total) - total
    for lengths, values in segments:
        out[ragged_index(cursor, lengths)] = values
        cursor = cursor + lengths
    return out


# --- attributes -----------------------------------------------------------------------------------


@dataclass
class Attributes:
    """A layer's attributes, encoded once for all its tiles.

    Attributes
    ----------
    key_fields
        Per column, its encoded ``keys`` entry (field 3 of a layer).
    value_bytes, value_offsets
        Every distinct value's encoded ``values`` entry (field 4 of a layer), concatenated, and
        the offsets of each (one more than the values).
    tag_ptr
        Per feature, where its tags start in ``tag_key`` / ``tag_value`` (one more than the
        features).
    tag_key, tag_value
        Column index and value index of each non-NULL attribute value, feature by feature.
    shared
        Per value, whether several tags use it (only those can repeat within a tile).
    floats
        First value index and count of the doubles (the first, fixed-size block of values).
    summaries
        Per column: ``type`` (``number``, ``string`` or ``boolean``), ``count`` (distinct
        values), ``min`` and ``max`` of numbers, the first :data:`SUMMARY_VALUES` distinct
        strings or booleans as ``values`` (Mapbox ``tilestats`` attributes, without the name).

    """

    key_fields: list[bytes]
    value_bytes: Bytes
    value_offsets: Ints
    tag_ptr: Ints
    tag_key: Ints
    tag_value: Ints
    summaries: list[dict[str, object]]
    shared: NDArray[np.bool_]
    floats: tuple[int, int]

    @property
    def n_values(self) -> int:
        """Number of distinct values."""
        return len(self.value_offsets) - 1


def _value_messages(tokens: list[UInts]) -> tuple[Bytes, Ints]:
    """Varint-encode per-value token rows of equal length; return bytes and per-value sizes."""
    matrix = np.stack(tokens, axis=1)
    sizes = varint_sizes(matrix).sum(axis=1)
    return encode_varints(matrix.ravel()), sizes


def _float_values(values: NDArray[np.float64]) -> tuple[Bytes, Ints]:
    out = np.empty((len(values), 11), dtype=np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = 0x22, 9, 0x19  # values entry, 9 bytes, double_value
    out[:, 3:] = values.astype("<f8").view(np.uint8).reshape(-1, 8)
    return out.ravel(), np.full(len(values), 11, dtype=np.int64)


def _int_values(values: Ints) -> tuple[Bytes, Ints]:
    negative = values < 0
    payload = np.where(negative, zigzag(values), values.astype(np.uint64))
    field = np.where(negative, 0x30, 0x20).astype(np.uint64)  # sint_value (6) or int_value (4)
    inner = 1 + varint_sizes(payload)
    n = len(values)
    return _value_messages(
        [np.full(n, 0x22, dtype=np.uint64), inner.astype(np.uint64), field, payload]
    )


def _bool_values(values: NDArray[np.bool_]) -> tuple[Bytes, Ints]:
    out = np.empty((len(values), 4), dtype=np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = 0x22, 2, 0x38  # values entry, 2 bytes, bool_value
    out[:, 3] = values.astype(np.uint8)
    return out.ravel(), np.full(len(values), 4, dtype=np.int64)


def _string_values(values: Sequence[str]) -> tuple[Bytes, Ints]:
    encoded = []
    for text in values:
        raw = text.encode("utf-8")
        inner = b"\x0a" + varint(len(raw)) + raw
        encoded.append(b"\x22" + varint(len(inner)) + inner)
    sizes = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), sizes


def _column(series: pd.Series, kind: str) -> tuple[str, NDArray[np.bool_], np.ndarray]:
    """Return ``(type, valid mask, values)`` of a column, its type one of float/int/bool/str."""
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind in ("integer", "float") or (kind not in ("string", "boolean", "datetime") and numeric):
        if pd.api.types.is_integer_dtype(dtype):
            valid = ~series.isna().to_numpy()
            ints = series.to_numpy(dtype=np.int64, na_value=0)
            return "int", valid, ints[valid]
        if numeric:
            floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            floats = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        valid = ~np.isnan(floats)
        floats = floats[valid]
        if (
            kind == "integer"
            and np.all(np.isfinite(floats))
            and np.all(floats == np.round(floats))
            and np.all(np.abs(floats) < 2**63)
        ):
            return "int", valid, floats.astype(np.int64)
        return "float", valid, floats
    valid = ~series.isna().to_numpy()
    if kind == "boolean" or pd.api.types.is_bool_dtype(dtype):
        return "bool", valid, series.to_numpy(dtype=object)[valid].astype(bool)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        texts = series[valid].dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(dtype=object)
        return "str", valid, texts
    values = series.to_numpy(dtype=object)[valid]
    if pd.api.types.infer_dtype(values, skipna=False) not in ("string", "empty"):
        values = np.array([str(v) for v in values], dtype=object)
    return "str", valid, values


def _columns(
    frame: pd.DataFrame, fields: Mapping[str, str]
) -> list[tuple[str, NDArray[np.bool_], np.ndarray]]:
    """Return :func:`_column` of each field; float64 numeric columns are read in one block."""
    names = list(fields)
    dtypes = frame.dtypes
    bulk = [
        name
        for name in names
        if str(fields[name]) in ("integer", "float") and dtypes[name] == np.float64
    ]
    found: dict[str, tuple[str, NDArray[np.bool_], np.ndarray]] = {}
    if bulk:
        matrix = np.ascontiguousarray(frame[bulk].to_numpy(dtype=np.float64).T)
        valid = ~np.isnan(matrix)
        for j, name in enumerate(bulk):
            values = matrix[j][valid[j]]
            kind = "float"
            if (
                str(fields[name]) == "integer"
                and np.all(np.isfinite(values))
                and np.all(values == np.round(values))
                and np.all(np.abs(values) < 2**63)
            ):
                kind, values = "int", values.astype(np.int64)
            found[name] = (kind, valid[j], values)
    return [found.get(name) or _column(frame[name], str(fields[name])) for name in names]


_EMPTY_TYPES = {"float": "number", "int": "number", "bool": "boolean"}


def prepare_attributes(frame: pd.DataFrame, fields: Mapping[str, str]) -> Attributes:
    """Encode the attributes of a layer once: keys, distinct values, tags per feature.

    Parameters
    ----------
    frame
        The features (rows) and their attribute columns; other columns are ignored.
    fields
        Column name to type (``string``, ``integer``, ``float``, ``boolean``, ``datetime``), in
        key order. Floats are written as doubles, integers as int (or sint when negative),
        booleans as bool, strings and datetimes (ISO 8601) as strings; an integer column with a
        fractional value is written as doubles. NULL (None, NaN, NA) values are left out.

    Returns
    -------
    attributes : Attributes
        The encoded keys, values and tags.

    """
    names = list(fields)
    n = len(frame)
    columns = _columns(frame, fields)
    by_type: dict[str, list[int]] = {"float": [], "int": [], "bool": [], "str": []}
    for i, (kind, _, _) in enumerate(columns):
        by_type[kind].append(i)
    ids = np.full((n, len(names)), -1, dtype=np.int64)
    summaries: list[dict[str, object]] = [{} for _ in names]
    chunks: list[Bytes] = []
    sizes: list[Ints] = []
    base = 0
    n_floats = 0
    for kind, members in by_type.items():
        if not members:
            continue
        pooled = np.concatenate([columns[i][2] for i in members])
        if not len(pooled):
            continue
        if kind == "str":
            uniques, inverse = np.unique(pooled.astype(str), return_inverse=True)
            data, size = _string_values([str(u) for u in uniques])
        else:
            uniques, inverse = np.unique(pooled, return_inverse=True)
            if kind == "float":
                data, size = _float_values(uniques)
            elif kind == "int":
                data, size = _int_values(uniques)
            else:
                data, size = _bool_values(uniques)
        start = 0
        for i in members:
            valid = columns[i][1]
            count = int(valid.sum())
            own = inverse[start : start + count]
            ids[valid, i] = base + own
            start += count
            distinct = uniques[np.unique(own)]
            summary: dict[str, object] = {"count": len(distinct)}
            if kind in ("float", "int"):
                summary["type"] = "number"
                if len(distinct):
                    summary["min"], summary["max"] = float(distinct[0]), float(distinct[-1])
            else:
                summary["type"] = "string" if kind == "str" else "boolean"
                summary["values"] = [
                    str(v) if kind == "str" else bool(v) for v in distinct[:SUMMARY_VALUES]
                ]
            summaries[i] = summary
        chunks.append(data)
        sizes.append(size)
        base += len(uniques)
        if kind == "float":
            n_floats = len(uniques)
    value_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(value_sizes)]).astype(np.int64)
    present = ids >= 0
    rows, cols = np.nonzero(present)
    tag_value = ids[rows, cols]
    key_fields = []
    for name in names:
        raw = name.encode("utf-8")
        key_fields.append(b"\x1a" + varint(len(raw)) + raw)
    return Attributes(
        key_fields=key_fields,
        value_bytes=np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint8),
        value_offsets=offsets,
        tag_ptr=np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int64),
        tag_key=cols.astype(np.int64),
        tag_value=tag_value,
        shared=np.bincount(tag_value, minlength=base) > 1,
        floats=(0, n_floats),
        summaries=[
            summary or {"count": 0, "type": _EMPTY_TYPES.get(kind, "string")}
            for summary, kind in zip(
                summaries, (columns[i][0] for i in range(len(names))), strict=True
            )
        ],
    )


def wgs84_to_mercator(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Project WGS84 (lon/lat, x/y order) geometries to Web Mercator (EPSG:3857), vectorised.

    Spherical Mercator on the WGS84 semi-major axis, latitudes clamped to +-85.0511 degrees
    (the square of the tile matrix set).
    """

    def forward(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        lat = np.radians(np.clip(coords[:, 1], -MAX_LATITUDE, MAX_LATITUDE))
        x = np.radians(coords[:, 0]) * EARTH_RADIUS
        y = np.log(np.tan(np.pi / 4 + lat / 2)) * EARTH_RADIUS
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, forward), dtype=object)


# --- tiles and geometry ---------------------------------------------------------------------------


def _family(geoms: NDArray[np.object_]) -> Ints:
    """Return the MVT geometry type of each geometry (0 for none or empty)."""
    type_ids = shapely.get_type_id(geoms)
    family = np.zeros(len(geoms), dtype=np.int64)
    family[np.isin(type_ids, (0, 4))] = POINT
    family[np.isin(type_ids, (1, 2, 5))] = LINESTRING
    family[np.isin(type_ids, (3, 6))] = POLYGON
    family[shapely.is_empty(geoms) | shapely.is_missing(geoms)] = 0
    return family


def tile_ids(z: int, x: Ints, y: Ints) -> Ints:
    """Return PMTiles tile ids (Hilbert order within each zoom) of tiles, vectorised.

    Equal to ``pmtiles.tile.zxy_to_tileid`` (``z`` up to 31).
    """
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    acc = np.full(x.shape, ((1 << (2 * z)) - 1) // 3, dtype=np.int64)
    for a in range(z - 1, -1, -1):
        s = 1 << a
        rx, ry = x & s, y & s
        acc += ((3 * rx) ^ ry) << a
        flip = (ry == 0) & (rx != 0)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        swap = ry == 0
        x, y = np.where(swap, y, x), np.where(swap, x, y)
    return acc


def tile_pairs(bounds: NDArray[np.float64], z: int, buffer: float = BUFFER) -> tuple[Ints, ...]:
    """Return the (feature, tile) pairs of a zoom: the tiles each feature's box touches.

    Parameters
    ----------
    bounds
        ``(n, 4)`` feature bounds in EPSG:3857 (NaN for empty geometries).
    z
        Zoom level.
    buffer
        Buffer in tile units: a feature within it of a tile is in the tile.

    Returns
    -------
    tuple of arrays
        ``feature, x, y`` per pair, grouped by feature.

    """
    size = 2 * HALF_WORLD / 2**z
    pad = size * buffer / EXTENT
    last = 2**z - 1
    ok = np.isfinite(bounds).all(axis=1)
    idx = np.flatnonzero(ok)
    b = bounds[ok]

    def cell(v: NDArray[np.float64]) -> Ints:
        return np.clip(np.floor(v / size), 0, last).astype(np.int64)

    x0 = cell(b[:, 0] - pad + HALF_WORLD)
    x1 = cell(b[:, 2] + pad + HALF_WORLD)
    y0 = cell(HALF_WORLD - b[:, 3] - pad)
    y1 = cell(HALF_WORLD - b[:, 1] + pad)
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    counts = nx * ny
    feature = np.repeat(idx, counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    nxr = np.repeat(nx, counts)
    return feature, np.repeat(x0, counts) + within % nxr, np.repeat(y0, counts) + within // nxr


@dataclass
class _Streams:
    """Geometry command streams of pairs: values, and length (in integers) per pair."""

    values: UInts
    lengths: Ints


def _quantise(
    coords: NDArray[np.float64],
    pair: Ints,
    left: NDArray[np.float64],
    top: NDArray[np.float64],
    scale: float,
) -> tuple[Ints, Ints]:
    qx = np.rint((coords[:, 0] - left[pair]) * scale).astype(np.int64)
    qy = np.rint((top[pair] - coords[:, 1]) * scale).astype(np.int64)
    return qx, qy


def _dedup(qx: Ints, qy: Ints, group: Ints) -> NDArray[np.bool_]:
    """Mask keeping each point unless it repeats the previous point of its group."""
    keep = np.ones(len(qx), dtype=bool)
    if len(qx) > 1:
        keep[1:] = (qx[1:] != qx[:-1]) | (qy[1:] != qy[:-1]) | (group[1:] != group[:-1])
    return keep


def _deltas(qx: Ints, qy: Ints, pair: Ints) -> tuple[UInts, UInts]:
    """Zigzag deltas from the previous point of the same pair (the first from the origin)."""
    dx, dy = qx.copy(), qy.copy()
    if len(qx) > 1:
        same = pair[1:] == pair[:-1]
        dx[1:] -= np.where(same, qx[:-1], 0)
        dy[1:] -= np.where(same, qy[:-1], 0)
    return zigzag(dx), zigzag(dy)


def _starts(group: Ints, n: int) -> tuple[Ints, Ints]:
    counts = np.bincount(group, minlength=n).astype(np.int64)
    return np.cumsum(counts) - counts, counts


def _parts(geoms: NDArray[np.object_]) -> tuple[NDArray[np.object_], Ints]:
    """Return the parts of geometries and the index of each part's geometry, in order.

    Like ``shapely.get_parts(..., return_index=True)``, but single geometries are passed
    through rather than copied.
    """
    multi = np.flatnonzero(shapely.get_type_id(geoms) >= 4)
    if not len(multi):
        return geoms, np.arange(len(geoms))
    split, which = shapely.get_parts(geoms[multi], return_index=True)
    single = np.ones(len(geoms), dtype=bool)
    single[multi] = False
    parts = np.concatenate([geoms[single], split])
    index = np.concatenate([np.flatnonzero(single), multi[which]])
    order = np.argsort(index, kind="stable")
    return parts[order], index[order]


def _polygon_streams(
    clipped: NDArray[np.object_], left: NDArray[np.float64], top: NDArray[np.float64], scale: float
) -> _Streams:
    n = len(clipped)
    parts, part_pair = _parts(clipped)
    keep = shapely.get_type_id(parts) == 3
    parts, part_pair = parts[keep], part_pair[keep]
    # a polygon without holes stands for its exterior ring (no ring copied); others give rings
    holed = np.flatnonzero(shapely.get_num_interior_rings(parts) > 0)
    if len(holed):
        split, which = shapely.get_rings(parts[holed], return_index=True)
        single = np.ones(len(parts), dtype=bool)
        single[holed] = False
        rings = np.concatenate([parts[single], split])
        ring_part = np.concatenate([np.flatnonzero(single), holed[which]])
        order = np.argsort(ring_part, kind="stable")
        rings, ring_part = rings[order], ring_part[order]
    else:
        rings, ring_part = parts, np.arange(len(parts))
    n_rings = len(rings)
    exterior = np.ones(n_rings, dtype=bool)
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    # drop each ring's closing point
    last = np.ones(len(coord_ring), dtype=bool)
    last[:-1] = coord_ring[1:] != coord_ring[:-1]
    coords, coord_ring = coords[~last], coord_ring[~last]
    ring_pair = part_pair[ring_part]
    qx, qy = _quantise(coords, ring_pair[coord_ring], left, top, scale)
    keep = _dedup(qx, qy, coord_ring)
    qx, qy, coord_ring = qx[keep], qy[keep], coord_ring[keep]
    # a ring whose last point is its first again after quantisation loses it
    start, count = _starts(coord_ring, n_rings)
    end = start + count - 1
    has = count > 1
    closing = np.zeros(len(qx), dtype=bool)
    closing[end[has]] = (qx[end[has]] == qx[start[has]]) & (qy[end[has]] == qy[start[has]])
    qx, qy, coord_ring = qx[~closing], qy[~closing], coord_ring[~closing]
    start, count = _starts(coord_ring, n_rings)
    # twice the signed area (surveyor's formula, tile coordinates: y down)
    position = np.arange(len(qx))
    following = position + 1
    ring_end = start + count - 1
    at_end = position == ring_end[coord_ring]
    following[at_end] = start[coord_ring[at_end]]
    cross = qx * qy[following] - qx[following] * qy
    area2 = _segment_sum(cross, coord_ring, n_rings)
    ok = (count >= 3) & (area2 != 0)
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[ring_part[exterior]] = ok[exterior]
    ok &= part_ok[ring_part]
    # exterior rings: positive area (clockwise on screen); holes: negative
    reverse = np.where(exterior, area2 < 0, area2 > 0)
    j = position - start[coord_ring]
    order = np.where(reverse[coord_ring], start[coord_ring] + count[coord_ring] - 1 - j, position)
    qx, qy = qx[order], qy[order]
    kept = ok[coord_ring]
    qx, qy, coord_ring = qx[kept], qy[kept], coord_ring[kept]
    rings_kept = np.flatnonzero(ok)
    count = count[rings_kept]
    pair_of_ring = ring_pair[rings_kept]
    pair_of_point = ring_pair[coord_ring]
    dx, dy = _deltas(qx, qy, pair_of_point)
    ring_len = 2 * count + 3
    ring_start = np.cumsum(ring_len) - ring_len
    out = np.empty(int(ring_len.sum()), dtype=np.uint64)
    out[ring_start] = _MOVE_TO_1
    out[ring_start + 3] = (2 + ((count - 1) << 3)).astype(np.uint64)
    out[ring_start + ring_len - 1] = _CLOSE_PATH
    local = np.arange(len(qx)) - np.repeat(np.cumsum(count) - count, count)
    slot = np.repeat(ring_start, count) + np.where(local == 0, 1, 2 * local + 2)
    out[slot], out[slot + 1] = dx, dy
    return _Streams(out, _segment_sum(ring_len, pair_of_ring, n))


def _line_streams(
    clipped: NDArray[np.object_], left: NDArray[np.float64], top: NDArray[np.float64], scale: float
) -> _Streams:
    n = len(clipped)
    parts, part_pair = _parts(clipped)
    keep = np.isin(shapely.get_type_id(parts), (1, 2))
    parts, part_pair = parts[keep], part_pair[keep]
    coords, coord_part = shapely.get_coordinates(parts, return_index=True)
    qx, qy = _quantise(coords, part_pair[coord_part], left, top, scale)
    keep = _dedup(qx, qy, coord_part)
    qx, qy, coord_part = qx[keep], qy[keep], coord_part[keep]
    _, count = _starts(coord_part, len(parts))
    ok = count >= 2
    kept = ok[coord_part]
    qx, qy, coord_part = qx[kept], qy[kept], coord_part[kept]
    lines = np.flatnonzero(ok)
    count = count[lines]
    dx, dy = _deltas(qx, qy, part_pair[coord_part])
    line_len = 2 * count + 2
    line_start = np.cumsum(line_len) - line_len
    out = np.empty(int(line_len.sum()), dtype=np.uint64)
    out[line_start] = _MOVE_TO_1
    out[line_start + 3] = (2 + ((count - 1) << 3)).astype(np.uint64)
    local = np.arange(len(qx)) - np.repeat(np.cumsum(count) - count, count)
    slot = np.repeat(line_start, count) + np.where(local == 0, 1, 2 * local + 2)
    out[slot], out[slot + 1] = dx, dy
    return _Streams(out, _segment_sum(line_len, part_pair[lines], n))


def _point_streams(
    clipped: NDArray[np.object_], left: NDArray[np.float64], top: NDArray[np.float64], scale: float
) -> _Streams:
    n = len(clipped)
    parts, part_pair = _parts(clipped)
    keep = (shapely.get_type_id(parts) == 0) & ~shapely.is_empty(parts)
    parts, part_pair = parts[keep], part_pair[keep]
    coords = shapely.get_coordinates(parts)
    qx, qy = _quantise(coords, part_pair, left, top, scale)
    dx, dy = _deltas(qx, qy, part_pair)
    _, count = _starts(part_pair, n)
    has = count > 0
    length = np.where(has, 2 * count + 1, 0)
    start = np.cumsum(length) - length
    out = np.empty(int(length.sum()), dtype=np.uint64)
    out[start[has]] = (1 + (count[has] << 3)).astype(np.uint64)
    local = np.arange(len(qx)) - np.repeat(np.cumsum(count) - count, count)
    slot = np.repeat(start, count) + 1 + 2 * local
    out[slot], out[slot + 1] = dx, dy
    return _Streams(out, length)


_STREAMS = {POLYGON: _polygon_streams, LINESTRING: _line_streams, POINT: _point_streams}


def _clip(
    geoms: NDArray[np.object_],
    bounds: NDArray[np.float64],
    left: NDArray[np.float64],
    top: NDArray[np.float64],
    size: float,
    pad: float,
) -> NDArray[np.object_]:
    """Clip each pair's geometry to its buffered tile, unless it lies within it."""
    xmin, xmax = left - pad, left + size + pad
    ymin, ymax = top - size - pad, top + pad
    inside = (
        (bounds[:, 0] >= xmin)
        & (bounds[:, 2] <= xmax)
        & (bounds[:, 1] >= ymin)
        & (bounds[:, 3] <= ymax)
    )
    out = geoms.copy()
    cut = np.flatnonzero(~inside)
    if len(cut):
        out[cut] = shapely.lib.clip_by_rect(geoms[cut], xmin[cut], ymin[cut], xmax[cut], ymax[cut])
    return out


def _rank_in_tile(tile: Ints, n_tiles: int) -> tuple[Ints, Ints]:
    """Rank of each item within its tile (items in tile order), and the count per tile."""
    count = np.bincount(tile, minlength=n_tiles).astype(np.int64)
    return np.arange(len(tile)) - (np.cumsum(count) - count)[tile], count


def _gather_values(attributes: Attributes, values: Ints) -> bytes:
    """Return the encoded ``values`` entries of value ids, concatenated."""
    offsets = attributes.value_offsets
    lengths = offsets[values + 1] - offsets[values]
    return attributes.value_bytes[ragged_index(offsets[values], lengths)].tobytes()


def _values_tables(
    tile_of_tag: Ints, value: Ints, n_tiles: int, attributes: Attributes
) -> tuple[Ints, list[tuple[bytes, Ints]]]:
    """Per tag its index in its tile's values table, and the tables' encodings.

    A tile's values table lists each value its features use once: first the values several
    tags of the layer share (deduplicated by sorting packed ``(tile, value, position)``
    integers), then the doubles and the other values that only one tag uses (no duplicate is
    possible: a feature is in a tile once), in tag order.

    Returns
    -------
    local : array
        Per tag, its value's index in its tile's table.
    parts : list
        Three ``(bytes, offsets)``: the encoded entries of the three groups, tile after tile,
        and where each tile's starts and ends (``n_tiles + 1`` offsets).

    """
    n = len(value)
    local = np.empty(n, dtype=np.int64)
    shared = attributes.shared[value]
    first_float, n_floats = attributes.floats
    is_float = (value >= first_float) & (value < first_float + n_floats)
    groups = [np.flatnonzero(shared), np.flatnonzero(~shared & is_float)]
    groups.append(np.flatnonzero(~shared & ~is_float))
    parts: list[tuple[bytes, Ints]] = []
    # values shared by several tags: sorted and deduplicated per tile
    rows = groups[0]
    key = tile_of_tag[rows] * max(attributes.n_values, 1) + value[rows]
    pos_bits = max(len(rows).bit_length(), 1)
    if int(n_tiles * max(attributes.n_values, 1)).bit_length() + pos_bits <= 63:
        packed = np.sort((key << pos_bits) | np.arange(len(rows), dtype=np.int64))
        keys = packed >> pos_bits
        new = np.ones(len(rows), dtype=bool)
        new[1:] = keys[1:] != keys[:-1]
        uniq = keys[new]
        inverse = np.empty(len(rows), dtype=np.int64)
        inverse[packed & ((1 << pos_bits) - 1)] = np.cumsum(new) - 1
    else:  # pragma: no cover - beyond 2**63 (tile, value, position) combinations
        uniq, inverse = np.unique(key, return_inverse=True)
    uniq_tile = uniq // max(attributes.n_values, 1)
    uniq_value = uniq % max(attributes.n_values, 1)
    rank, before = _rank_in_tile(uniq_tile, n_tiles)
    local[rows] = rank[inverse]
    lengths = np.diff(attributes.value_offsets)[uniq_value]
    parts.append((_gather_values(attributes, uniq_value), _offsets(lengths, uniq_tile, n_tiles)))
    # doubles used by one tag: fixed-size rows, in tag order
    rows = groups[1]
    rank, count = _rank_in_tile(tile_of_tag[rows], n_tiles)
    local[rows] = before[tile_of_tag[rows]] + rank
    before = before + count
    start = attributes.value_offsets[first_float]
    # 11-byte items (numpy copies a void item at once, not byte by byte)
    items = attributes.value_bytes[start : start + 11 * n_floats].view(np.dtype((np.void, 11)))
    parts.append(
        (
            np.take(items, value[rows] - first_float).tobytes(),
            np.concatenate([[0], np.cumsum(count) * 11]).astype(np.int64),
        )
    )
    # other values used by one tag, in tag order
    rows = groups[2]
    rank, count = _rank_in_tile(tile_of_tag[rows], n_tiles)
    local[rows] = before[tile_of_tag[rows]] + rank
    lengths = np.diff(attributes.value_offsets)[value[rows]]
    parts.append(
        (_gather_values(attributes, value[rows]), _offsets(lengths, tile_of_tag[rows], n_tiles))
    )
    return local, parts


def _offsets(lengths: Ints, tile: Ints, n_tiles: int) -> Ints:
    """Byte offsets of each tile's part (``n_tiles + 1``) from item lengths in tile order."""
    per_tile = _segment_sum(lengths, tile, n_tiles)
    return np.concatenate([[0], np.cumsum(per_tile)]).astype(np.int64)


def iter_layer(
    name: str,
    geometry: NDArray[np.object_] | Sequence[shapely.Geometry],
    attributes: Attributes,
    minzoom: int,
    maxzoom: int,
    *,
    buffer: float = BUFFER,
    simplification: float = 0.0,
    ids: NDArray[np.integer] | None = None,
) -> Iterator[dict[int, bytes]]:
    """Encode a layer into every tile it touches, zoom after zoom from ``minzoom`` to ``maxzoom``.

    Parameters
    ----------
    name
        The MVT layer name.
    geometry
        The features' geometries in EPSG:3857 (None or empty: no feature in any tile).
    attributes
        The features' attributes, from :func:`prepare_attributes` (same rows).
    minzoom, maxzoom
        Zoom levels, inclusive.
    buffer
        Buffer around each tile, in tile units: features are clipped to the tile plus it.
    simplification
        Tolerance in tile units of ``shapely.simplify`` (topology kept) at each zoom, for lines
        and polygons; 0 for none (grids).
    ids
        Non-negative integer feature ids (``Feature.id``), or None for none.

    Yields
    ------
    dict
        Per zoom, PMTiles tile id to the encoded ``Layer`` as a tile's field 3 (tag, length,
        message): tiles of one archive are made by concatenating their layers.

    """
    geoms = np.asarray(geometry, dtype=object)
    family = _family(geoms)
    name_raw = name.encode("utf-8")
    head = b"\x0a" + varint(len(name_raw)) + name_raw
    feature_ids = None if ids is None else np.asarray(ids).astype(np.uint64)
    base_bounds = shapely.bounds(geoms)
    for z in range(minzoom, maxzoom + 1):
        size = 2 * HALF_WORLD / 2**z
        zgeoms, bounds = geoms, base_bounds
        if simplification > 0:
            # lines need no topology kept (Douglas-Peucker, fast); polygons do
            tolerance = simplification * size / EXTENT
            zgeoms = geoms.copy()
            for kind, keep_topology in ((LINESTRING, False), (POLYGON, True)):
                rows = np.flatnonzero(family == kind)
                zgeoms[rows] = shapely.simplify(
                    geoms[rows], tolerance, preserve_topology=keep_topology
                )
            bounds = shapely.bounds(zgeoms)
        feature, tx, ty = tile_pairs(bounds, z, buffer)
        yield _encode_zoom(
            z, zgeoms, bounds, family, feature, tx, ty, attributes, feature_ids, head, buffer
        )


def encode_layer(
    name: str,
    geometry: NDArray[np.object_] | Sequence[shapely.Geometry],
    attributes: Attributes,
    minzoom: int,
    maxzoom: int,
    *,
    buffer: float = BUFFER,
    simplification: float = 0.0,
    ids: NDArray[np.integer] | None = None,
) -> dict[int, bytes]:
    """Encode a layer into every tile it touches: :func:`iter_layer`'s zooms in one dict."""
    tiles: dict[int, bytes] = {}
    for zoom in iter_layer(
        name,
        geometry,
        attributes,
        minzoom,
        maxzoom,
        buffer=buffer,
        simplification=simplification,
        ids=ids,
    ):
        tiles.update(zoom)
    return tiles


def _encode_zoom(
    z: int,
    geoms: NDArray[np.object_],
    bounds: NDArray[np.float64],
    family: Ints,
    feature: Ints,
    tx: Ints,
    ty: Ints,
    attributes: Attributes,
    ids: UInts | None,
    head: bytes,
    buffer: float,
) -> dict[int, bytes]:
    size = 2 * HALF_WORLD / 2**z
    pad = size * buffer / EXTENT
    scale = EXTENT / size
    # order pairs by tile, then feature
    order = np.lexsort((feature, ty, tx))
    feature, tx, ty = feature[order], tx[order], ty[order]
    left = -HALF_WORLD + tx * size
    top = HALF_WORLD - ty * size
    clipped = _clip(geoms[feature], bounds[feature], left, top, size, pad)
    n = len(feature)
    geom_len = np.zeros(n, dtype=np.int64)
    chunks: list[tuple[Ints, UInts, Ints]] = []
    for kind, encoder in _STREAMS.items():
        rows = np.flatnonzero(family[feature] == kind)
        if not len(rows):
            continue
        streams = encoder(clipped[rows], left[rows], top[rows], scale)
        geom_len[rows] = streams.lengths
        chunks.append((rows, streams.values, streams.lengths))
    if len(chunks) == 1:
        geom_values = chunks[0][1]
    else:  # several geometry types in one layer: back into pair order
        rows = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
        values = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.uint64)
        lengths = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.int64)
        starts = np.cumsum(lengths) - lengths
        back = np.argsort(rows, kind="stable")
        geom_values = values[ragged_index(starts[back], lengths[back])]
    keep = geom_len > 0
    if not keep.any():
        return {}
    if not keep.all():
        start = np.cumsum(geom_len) - geom_len
        geom_values = geom_values[ragged_index(start[keep], geom_len[keep])]
        feature, tx, ty, geom_len = feature[keep], tx[keep], ty[keep], geom_len[keep]
        n = len(feature)
    # tiles
    new_tile = np.ones(n, dtype=bool)
    new_tile[1:] = (tx[1:] != tx[:-1]) | (ty[1:] != ty[:-1])
    tile_first = np.flatnonzero(new_tile)
    n_tiles = len(tile_first)
    pair_tile = np.cumsum(new_tile) - 1
    # tags
    n_tags = attributes.tag_ptr[feature + 1] - attributes.tag_ptr[feature]
    tag_index = ragged_index(attributes.tag_ptr[feature], n_tags)
    tag_key = attributes.tag_key[tag_index]
    tile_of_tag = np.repeat(pair_tile, n_tags)
    n_keys = len(attributes.key_fields)
    used = np.zeros((n_tiles, max(n_keys, 1)), dtype=bool)
    used[tile_of_tag, tag_key] = True
    local_key = (np.cumsum(used, axis=1) - 1)[tile_of_tag, tag_key]
    local_value, value_parts = _values_tables(
        tile_of_tag, attributes.tag_value[tag_index], n_tiles, attributes
    )
    # byte layout of each feature (field 2 of the layer): head (field tag, length, id, tags'
    # tag and length), tags, middle (type, geometry's tag and length), geometry
    tag_ptr = np.concatenate([[0], np.cumsum(n_tags)])
    key_size = np.ones(len(local_key), np.int64) if n_keys < 128 else varint_sizes(local_key)
    value_size = varint_sizes(local_value)
    tag_end = np.cumsum(key_size + value_size)
    tag_cum = np.concatenate([[0], tag_end])
    tag_bytes = tag_cum[tag_ptr[1:]] - tag_cum[tag_ptr[:-1]]
    geom_size = varint_sizes(geom_values)
    geom_ptr = np.concatenate([[0], np.cumsum(geom_len)])
    geom_cum = np.concatenate([[0], np.cumsum(geom_size)])
    geom_bytes = geom_cum[geom_ptr[1:]] - geom_cum[geom_ptr[:-1]]
    has_tags = n_tags > 0
    ones = np.ones(n, dtype=np.int64)
    middle = _pack(
        [(ones, np.full(n, 0x18)), (ones, family[feature]), (ones, np.full(n, 0x22))],
        geom_bytes,
    )
    feature_bytes = (
        np.where(has_tags, 1 + varint_sizes(tag_bytes), 0) + tag_bytes + middle[1] + geom_bytes
    )
    head_tokens: list[tuple[Ints, NDArray[np.integer]]] = [
        (ones, np.full(n, 0x12)),
        (ones, feature_bytes),
    ]
    if ids is not None:
        feature_bytes = feature_bytes + 1 + varint_sizes(ids[feature])
        head_tokens[1] = (ones, feature_bytes)
        head_tokens += [(ones, np.full(n, 8)), (ones, ids[feature])]
    head_tokens.append((has_tags.astype(np.int64), np.full(int(has_tags.sum()), 0x12)))
    front = _pack(head_tokens, tag_bytes[has_tags], has_tags)
    pair_bytes = front[1] + tag_bytes + middle[1] + geom_bytes
    pair_end = np.cumsum(pair_bytes)
    pair_start = pair_end - pair_bytes
    encoded = np.empty(int(pair_end[-1]), dtype=np.uint8)
    encoded[ragged_index(pair_start, front[1])] = front[0]
    tags_at = pair_start + front[1]
    pair_of_tag = np.repeat(np.arange(n), n_tags)
    tag_pos = (tag_end - key_size - value_size) + (tags_at - tag_cum[tag_ptr[:-1]])[pair_of_tag]
    if n_keys < 128:
        encoded[tag_pos] = local_key.astype(np.uint8)
    else:
        _write_varints(encoded, tag_pos, local_key, key_size)
    _write_varints(encoded, tag_pos + key_size, local_value, value_size)
    middle_at = tags_at + tag_bytes
    encoded[ragged_index(middle_at, middle[1])] = middle[0]
    geom_at = middle_at + middle[1]
    pair_of_geom = np.repeat(np.arange(n), geom_len)
    geom_pos = geom_cum[:-1] + (geom_at - geom_cum[geom_ptr[:-1]])[pair_of_geom]
    _write_varints(encoded, geom_pos, geom_values, geom_size)
    tile_start = pair_start[tile_first]
    tile_end = np.append(tile_start[1:], pair_end[-1])
    blob = encoded.tobytes()
    ids_of_tiles = tile_ids(z, tx[tile_first], ty[tile_first]).tolist()
    keys = attributes.key_fields
    key_tables: dict[bytes, bytes] = {}
    out: dict[int, bytes] = {}
    for t in range(n_tiles):
        pattern = used[t].tobytes()
        table = key_tables.get(pattern)
        if table is None:
            table = b"".join(keys[k] for k in np.flatnonzero(used[t])) if n_keys else b""
            key_tables[pattern] = table
        body = b"".join(
            (
                head,
                blob[tile_start[t] : tile_end[t]],
                table,
                *(part[offsets[t] : offsets[t + 1]] for part, offsets in value_parts),
                _LAYER_TAIL,
            )
        )
        out[ids_of_tiles[t]] = b"\x1a" + varint(len(body)) + body
    return out
