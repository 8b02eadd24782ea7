"""Read source files into a raw table, keeping every record and its original values.

Tabular sources (CSV/TSV, Excel, GTFS ``stops.txt``) are read as text so that a rejected row can
be reported exactly as it was written. Vector sources (GeoPackage, GeoJSON, Shapefile, OSM PBF,
FlatGeobuf...) are read with pyogrio, GeoParquet with geopandas. Reading never drops a record:
rows that cannot even be split into fields are returned as :attr:`RawTable.malformed`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow
import pyogrio
import shapely
from pyproj import CRS

from geo_usm.errors import InputError

TABULAR = {".csv", ".tsv", ".txt", ".tab"}
EXCEL = {".xlsx", ".xlsm", ".xls"}
PARQUET = {".parquet", ".geoparquet"}
WRONG_FIELD_COUNT = "wrong number of fields (check the delimiter and quoting)"
#: Column defaults for a GTFS stops.txt read as a ``transit`` layer.
GTFS_STOPS_COLUMNS = {
    "lon": "stop_lon",
    "lat": "stop_lat",
    "record_id": "stop_id",
    "name": "stop_name",
}


@dataclass
class RawTable:
    """A source file's records before any parsing.

    Attributes
    ----------
    path : Path
        The file read.
    frame : pandas.DataFrame
        One row per record, attribute columns with their original values (text for tabular
        sources). Row ``i`` is record number ``i + 1`` of the source.
    geometry : numpy.ndarray or None
        Shapely geometries of a vector source (``None`` entries for missing ones).
    crs : pyproj.CRS or None
        The CRS the source declares, if any.
    malformed : list of tuple
        ``(record_number, raw_text, reason)`` of tabular records that cannot be split into
        fields (wrong number of fields, unbalanced quote...).
    default_columns : dict
        Column mapping implied by the format (GTFS), overridden by the city file.
    record_numbers : numpy.ndarray or None
        1-based record number of each row of ``frame`` when malformed rows were set aside
        (otherwise row ``i`` is record ``i + 1``).

    """

    path: Path
    frame: pd.DataFrame
    geometry: np.ndarray | None = None
    crs: CRS | None = None
    malformed: list[tuple[int, str, str]] = field(default_factory=list)
    default_columns: dict[str, str] = field(default_factory=dict)
    record_numbers: np.ndarray | None = None

    @property
    def numbers(self) -> np.ndarray:
        """1-based record number of each row of :attr:`frame`."""
        if self.record_numbers is not None:
            return self.record_numbers
        return np.arange(1, len(self.frame) + 1, dtype=np.int64)

    @property
    def n_read(self) -> int:
        """Number of records read, malformed rows included."""
        return len(self.frame) + len(self.malformed)


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_source(
    path: Path,
    *,
    layer: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | int | None = None,
    where: str | None = None,
) -> RawTable:
    """Read one source file.

    Parameters
    ----------
    path
        The file. ``.zip`` files are read as GTFS feeds (their ``stops.txt``).
    layer
        Layer of a multi-layer vector file.
    delimiter
        Field separator of a text table; sniffed from the first lines when ``None``.
    encoding
        Text encoding of a text table. A UTF-8 byte-order mark is always accepted.
    sheet
        Excel sheet name or 0-based index (default the first sheet).
    where
        OGR SQL attribute filter applied to a vector source. Features it excludes are not read.

    Returns
    -------
    RawTable

    Raises
    ------
    InputError
        If the file is missing or cannot be read at all.

    """
    if not path.exists():
        raise InputError("input file not found", path=path, hint="check 'path' in the city file")
    suffix = path.suffix.lower()
    if where and (suffix in TABULAR or suffix in EXCEL or suffix in PARQUET or suffix == ".zip"):
        msg = "format.where (an OGR SQL filter) only applies to vector files such as GeoPackage"
        raise InputError(msg, path=path, hint="remove it, or filter the table with 'categories'")
    try:
        if suffix == ".zip":
            return _read_gtfs_zip(path, encoding)
        if suffix in TABULAR:
            text = _decode(path.read_bytes(), path, encoding)
            table = _read_text_table(text, path, delimiter, default_tab=suffix in {".tsv", ".tab"})
            if path.name.lower() == "stops.txt":
                table.default_columns = dict(GTFS_STOPS_COLUMNS)
            return table
        if suffix in EXCEL:
            return _read_excel(path, sheet)
        if suffix in PARQUET:
            return _read_parquet(path)
        return _read_vector(path, layer, where)
    except (
        OSError,
        csv.Error,
        zipfile.BadZipFile,
        pd.errors.EmptyDataError,
        pyarrow.ArrowException,
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
    ) as exc:
        raise InputError(f"cannot read file: {exc}", path=path) from None


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in {"utf-8", "utf8"} else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = f"not valid {encoding} text (byte {exc.start}, line {line})"
        raise InputError(
            msg, path=path, hint="set format.encoding in the city file, e.g. 'latin-1' or 'cp1252'"
        ) from None
    except LookupError:
        raise InputError(f"unknown encoding '{encoding}'", path=path) from None


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_text_table(
    text: str, path: Path, delimiter: str | None, *, default_tab: bool = False
) -> RawTable:
    if not text.strip():
        raise InputError("the file is empty", path=path)
    sep = delimiter or ("\t" if default_tab else _sniff_delimiter(text))
    kwargs = {"sep": sep, "dtype": str, "keep_default_na": False, "skip_blank_lines": True}
    try:
        frame = pd.read_csv(io.StringIO(text), **kwargs)  # type: ignore[call-overload]
    except pd.errors.ParserError:
        frame, numbers, malformed = _read_text_table_slow(text, sep)
        frame.columns = [str(c).strip() for c in frame.columns]
        return RawTable(path=path, frame=frame, malformed=malformed, record_numbers=numbers)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(path=path, frame=frame.reset_index(drop=True))


def _read_text_table_slow(
    text: str, sep: str
) -> tuple[pd.DataFrame, np.ndarray, list[tuple[int, str, str]]]:
    """Split a table with ragged rows, keeping the well-formed rows and reporting the rest.

    Only used when the fast C parser refuses the file (a row with too many fields); each record
    keeps its position so that the well-formed ones and the malformed ones are numbered as in
    the source. Short rows are padded with empty fields, as the fast parser reads them.
    """
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header = next(reader)
    good: list[list[str]] = []
    good_numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    record = 0
    for row in reader:
        if not row:
            continue
        record += 1
        if len(row) <= len(header):  # short rows: trailing fields empty, as pandas reads them
            good.append(row + [""] * (len(header) - len(row)))
            good_numbers.append(record)
        else:
            bad.append((record, sep.join(row), WRONG_FIELD_COUNT))
    frame = pd.DataFrame(good, columns=header, dtype=str)
    return frame, np.asarray(good_numbers, dtype=np.int64), bad


def _read_gtfs_zip(path: Path, encoding: str) -> RawTable:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "stops.txt"]
        if not names:
            raise InputError("zip file has no GTFS stops.txt", path=path)
        text = _decode(zf.read(names[0]), path, encoding)
    table = _read_text_table(text, path, ",")
    table.default_columns = dict(GTFS_STOPS_COLUMNS)
    return table


def _read_excel(path: Path, sheet: str | int | None) -> RawTable:
    try:
        book = pd.ExcelFile(path)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable Excel workbook ({exc})", path=path) from None
    with book:
        if isinstance(sheet, str) and sheet not in book.sheet_names:
            names = ", ".join(map(str, book.sheet_names))
            msg = f"no sheet {sheet!r}; the sheets are: {names}"
            raise InputError(msg, path=path, hint="fix format.sheet in the city file")
        try:
            frame = book.parse(sheet_name=sheet if sheet is not None else 0, dtype=str)
        except (ValueError, IndexError) as exc:
            raise InputError(f"cannot read sheet {sheet!r}: {exc}", path=path) from None
    frame = frame.astype(object).where(frame.notna(), "")
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(path=path, frame=frame.reset_index(drop=True))


def _read_parquet(path: Path) -> RawTable:
    try:
        gdf = gpd.read_parquet(path)
    except ValueError:  # plain Parquet without geo metadata
        return RawTable(path=path, frame=pd.read_parquet(path).reset_index(drop=True))
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    return RawTable(path=path, frame=frame, geometry=np.asarray(gdf.geometry.values), crs=gdf.crs)


def _read_vector(path: Path, layer: str | None, where: str | None) -> RawTable:
    if layer is None:
        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            names = ", ".join(str(n) for n in layers[:, 0])
            raise InputError(
                f"file has several layers ({names})", path=path, hint="set 'layer' in the city file"
            )
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer, where=where)
    except pyogrio.errors.DataLayerError:
        names = ", ".join(str(n) for n in pyogrio.list_layers(path)[:, 0])
        msg = f"no layer {layer!r}; the layers are: {names}"
        raise InputError(msg, path=path, hint="fix 'layer' in the city file") from None
    except pyogrio.errors.FieldError as exc:
        raise InputError(f"invalid 'where' filter {where!r}: {exc}", path=path) from None
    if isinstance(gdf, gpd.GeoDataFrame):
        geometry = np.asarray(gdf.geometry.values)
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        return RawTable(path, frame.reset_index(drop=True), geometry, gdf.crs)
    return RawTable(path=path, frame=pd.DataFrame(gdf).reset_index(drop=True))


def read_polygons(path: Path, *, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a polygon layer (admin units, study area), refusing one without a CRS.

    Invalid polygons are repaired with :func:`shapely.make_valid` (reference boundaries are
    often slightly invalid); non-polygonal parts that a repair creates are dropped.

    Raises
    ------
    InputError
        If the file is missing, has no polygons or no CRS.

    """
    raw = read_source(path, layer=layer)
    if raw.geometry is None:
        raise InputError("file has no geometry", path=path, hint="boundaries need polygons")
    if raw.crs is None:
        raise InputError("file has no CRS", path=path, hint="save it with a CRS (e.g. EPSG:27700)")
    geoms = raw.geometry
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid])
        geoms = geoms.copy()
        geoms[invalid] = [_polygonal(g) for g in repaired]
    kinds = shapely.get_type_id(geoms)
    if not np.isin(kinds, [3, 6]).all():
        raise InputError("boundary layer must contain only polygons", path=path)
    gdf = gpd.GeoDataFrame(raw.frame, geometry=geoms, crs=raw.crs)
    gdf.attrs["repaired"] = int(invalid.sum())
    return gdf


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if shapely.get_type_id(geom) == 7:  # GeometryCollection
        parts = [g for g in shapely.get_parts(geom) if shapely.get_type_id(g) in (3, 6)]
        return shapely.union_all(parts)
    return geom
