"""Read source files into a raw table, keeping every record and its original values.

Tabular sources (CSV/TSV, Excel, GTFS ``stops.txt``) are read as text so that a rejected row can
be reported exactly as it was written; text tables go through :mod:`geo_usm.io.text`, which
accounts for every physical line. Vector sources (GeoPackage, GeoJSON, Shapefile, OSM PBF,
FlatGeobuf...) are read with pyogrio, GeoParquet with geopandas. Any of them may be compressed:
``name.csv.gz`` (gzip) or a ``.zip`` archive holding the file. Reading never drops a record: rows
that cannot even be split into fields are returned as :attr:`RawTable.malformed`.

Before anything is read the path is checked (:func:`geo_usm.io.sniff.check_file`: a regular file,
readable, within a size limit) and its first bytes are compared with its extension, so that a
zip archive, an image or a web page saved under a table's name is reported as what it is.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NoReturn

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_usm.errors import InputError
from geo_usm.io.sniff import (
    HEAD_BYTES,
    MAX_FILE_BYTES,
    check_file,
    describe,
    human_size,
    quote,
    read_head,
    sniff,
    usual_suffix,
)
from geo_usm.io.text import (
    MISPLACED_QUOTE,
    NUL_BYTE,
    UNBALANCED_QUOTE,
    WRONG_FIELD_COUNT,
    check_header,
    read_text_table,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MISPLACED_QUOTE",
    "NUL_BYTE",
    "UNBALANCED_QUOTE",
    "WRONG_FIELD_COUNT",
    "RawTable",
    "file_sha256",
    "read_polygons",
    "read_source",
]

TABULAR = {".csv", ".tsv", ".txt", ".tab"}
EXCEL = {".xlsx", ".xlsm", ".xls"}
PARQUET = {".parquet", ".geoparquet"}
#: Vector formats looked for inside a zip archive (a Shapefile by its ``.shp`` part).
VECTOR = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gml", ".kml", ".sqlite", ".geojsonl"}
#: Column defaults for a GTFS stops.txt read as a ``transit`` layer.
GTFS_STOPS_COLUMNS = {
    "lon": "stop_lon",
    "lat": "stop_lat",
    "record_id": "stop_id",
    "name": "stop_name",
}
#: Content kinds (see :func:`geo_usm.io.sniff.sniff`) accepted for each kind of source.
_TEXT_KINDS = {"text", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"}
_NOT_DATA = {"png", "jpeg", "gif", "pdf", "docx", "html", "empty"}
_EXPECTED = {
    ".gpkg": {"gpkg", "sqlite"},
    ".sqlite": {"gpkg", "sqlite"},
    ".fgb": {"fgb"},
    ".shp": {"shp"},
    ".geojson": {"json", "text"},
    ".gml": {"xml", "text"},
    ".kml": {"xml", "text"},
}
#: Where a city file names the file to read inside a zip archive, for hints (the readers do not
#: know which entry of the city file they read for).
MEMBER_KEYS = "layers.<name>.member, or units.member / study_area.member for boundaries"
_WKT = re.compile(
    r"^\s*(SRID=\d+;\s*)?(MULTI)?(POLYGON|POINT|LINESTRING|GEOMETRYCOLLECTION|CURVEPOLYGON|"
    r"MULTISURFACE)\s*(Z|M|ZM)?\s*(\(|EMPTY)",
    re.IGNORECASE,
)


@dataclass
class RawTable:
    """A source file's records before any parsing.

    Attributes
    ----------
    path : Path
        The file read (the archive, for a member of a zip archive).
    frame : pandas.DataFrame
        One row per record, attribute columns with their original values (text for tabular
        sources). Row ``i`` is record number ``i + 1`` of the source unless
        :attr:`record_numbers` says otherwise.
    geometry : numpy.ndarray or None
        Shapely geometries of a vector source (``None`` entries for missing ones).
    crs : pyproj.CRS or None
        The CRS the source declares, if any.
    malformed : list of tuple
        ``(record_number, raw_text, reason)`` of text records that cannot be split into fields
        (:data:`WRONG_FIELD_COUNT`, :data:`UNBALANCED_QUOTE`, :data:`MISPLACED_QUOTE`) or
        that hold a NUL byte (:data:`NUL_BYTE`);
        ``raw_text`` is the record as written (for an unbalanced quote, the line it opens on).
    default_columns : dict
        Column mapping implied by the format (GTFS), overridden by the city file.
    record_numbers : numpy.ndarray or None
        1-based record number of each row of ``frame`` when malformed rows were set aside or
        rows were reordered (otherwise row ``i`` is record ``i + 1``).
    notes : list of str
        What the reader had to decide and the user should know (a trailing delimiter ignored, a
        byte-order mark overriding the declared encoding, the member read from an archive...).
    lines : numpy.ndarray or None
        For a text table, the 1-based physical line of the file on which each record starts,
        indexed by record number - 1 (malformed records included); ``None`` for other sources.
    member : str or None
        The member read when ``path`` is a zip archive.
    delimiter, encoding : str or None
        For a text table, the delimiter and the text encoding it was read with.

    """

    path: Path
    frame: pd.DataFrame
    geometry: np.ndarray | None = None
    crs: CRS | None = None
    malformed: list[tuple[int, str, str]] = field(default_factory=list)
    default_columns: dict[str, str] = field(default_factory=dict)
    record_numbers: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    lines: np.ndarray | None = None
    member: str | None = None
    delimiter: str | None = None
    encoding: str | None = None

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


@dataclass
class _Options:
    layer: str | None
    delimiter: str | None
    encoding: str
    sheet: str | int | None
    where: str | None
    member: str | None
    max_bytes: int


@dataclass
class _Content:
    """What is read: a plain file, a gzip-compressed file or a member of a zip archive."""

    path: Path
    name: str
    kind: str
    gdal: str
    load: Callable[[], bytes]
    plain: bool = True
    member: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix.lower()

    def handle(self) -> Path | io.BytesIO:
        """Return a path or an in-memory file for pandas and pyarrow."""
        return self.path if self.plain else io.BytesIO(self.load())


def read_source(
    path: Path,
    *,
    layer: str | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    sheet: str | int | None = None,
    where: str | None = None,
    member: str | None = None,
) -> RawTable:
    """Read one source file.

    Parameters
    ----------
    path
        The file. Its extension says what it is (the first bytes must agree): a text table
        (``.csv .tsv .txt .tab``), Excel, (Geo)Parquet or a vector format GDAL reads. A ``.gz``
        suffix (``thefts.csv.gz``, ``wards.gpkg.gz``) means gzip-compressed. A ``.zip`` archive
        is read as a GTFS feed when it holds a ``stops.txt``, otherwise its one table or vector
        file (CSV, Excel, Parquet, GeoJSON, GeoPackage, Shapefile, FlatGeobuf...) is read.
    layer
        Layer of a multi-layer vector file.
    delimiter
        Field separator of a text table; chosen among comma, tab, semicolon and pipe from the
        first lines when ``None``.
    encoding
        Text encoding of a text table. A byte-order mark (UTF-8, UTF-16, UTF-32) overrides it.
    sheet
        Excel sheet name or 0-based index (default the first sheet).
    where
        OGR SQL attribute filter applied to a vector source. Features it excludes are not read.
    member
        The file to read inside a zip archive (its name, or its path in the archive), needed
        when the archive holds several candidates.

    Returns
    -------
    RawTable

    Raises
    ------
    InputError
        If the path is missing, not a regular readable file, larger than
        :data:`MAX_FILE_BYTES` (also once decompressed), not what its extension says, or cannot
        be read at all; the message says what to do.

    """
    path = Path(path)
    suffix = path.suffix.lower()
    is_gdb = suffix == ".gdb"
    max_bytes = MAX_FILE_BYTES  # looked up at each call, so that it can be changed
    check_file(path, max_bytes, allow_dir=is_gdb)
    if where and (suffix in TABULAR or suffix in EXCEL or suffix in PARQUET or suffix == ".zip"):
        msg = "format.where (an OGR SQL filter) only applies to vector files such as GeoPackage"
        raise InputError(msg, path=path, hint="remove it, or filter the table with 'categories'")
    opts = _Options(layer, delimiter, encoding, sheet, where, member, max_bytes)
    if is_gdb and path.is_dir():
        return _read_vector(str(path), path, layer, where)
    head = read_head(path)
    kind = sniff(head, zip_names=_zip_names(path) if head.startswith(b"PK") else None)
    if kind == "empty":
        raise InputError("the file is empty (0 bytes)", path=path, hint="export the data again")
    if member is not None and suffix != ".zip":
        msg = f"member {member!r} is set, but member only applies to a zip archive"
        hint = f"remove member from this file's entry in the city file ({MEMBER_KEYS})"
        raise InputError(msg, path=path, hint=hint)
    container = (
        "gzip"
        if suffix == ".gz" or kind == "gzip"
        else "zip"
        if suffix == ".zip" or kind == "zip"
        else None
    )
    try:
        if container == "gzip":
            content = _gzip_content(path, kind, opts)
        elif container == "zip":
            content = _zip_content(path, kind, opts)
        else:
            content = _Content(path, path.name, kind, str(path), lambda: _read_bounded(path, opts))
        return _read_content(content, opts)
    except zipfile.BadZipFile as exc:
        msg = f"the zip archive is damaged ({exc})"
        raise InputError(msg, path=path, hint="download or create the archive again") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # zlib and EOFError come from decompressing: a gzip file, a zip member or a workbook
        if container == "gzip":
            msg = f"the gzip file is damaged or truncated ({exc})"
            hint = "download or compress the file again"
        elif container == "zip":
            msg = (
                f"the zip archive is damaged or truncated: a member cannot be decompressed ({exc})"
            )
            hint = "download or create the archive again"
        else:
            msg = f"the file is damaged or truncated: part of it cannot be decompressed ({exc})"
            hint = "download or export the file again"
        raise InputError(msg, path=path, hint=hint) from None
    except NotImplementedError as exc:
        msg = f"the zip archive uses a compression method that cannot be read ({exc})"
        hint = "re-create the archive with standard (deflate) compression"
        raise InputError(msg, path=path, hint=hint) from None
    except (OSError, pyarrow.ArrowException, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read file: {quote(str(exc))}", path=path) from None


def _read_bounded(path: Path, opts: _Options) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(opts.max_bytes + 1)
    if len(data) > opts.max_bytes:  # the file grew after it was checked
        raise _too_large(path, opts.max_bytes, "is")
    return data


def _too_large(path: Path, limit: int, verb: str) -> InputError:
    msg = f"the file {verb} more than the {human_size(limit)} limit for one input"
    return InputError(msg, path=path, hint="split it into smaller files (e.g. one per year)")


def _rename_hint(name: str, kind: str) -> str:
    """Return what to do with a file whose content (``kind``) does not match its name."""
    if kind in {"png", "jpeg", "gif", "pdf", "docx", "binary"}:
        return (
            "geo-usm reads tables and vector files: export the data as CSV, GeoPackage or GeoJSON"
        )
    if kind == "html":
        return "download the data again (save the file itself, not the page that links to it)"
    if kind in {"bzip2", "xz", "zstd", "7z", "rar", "tar"}:
        return "extract it, or compress the data file alone with gzip (.gz) or zip (.zip)"
    if kind == "tiff":
        return "a raster is read by a layer of kind 'raster'; this layer needs a table or vectors"
    if kind == "ods":
        return "open it and save it as .xlsx or CSV"
    if kind in {"gzip", "zip"}:
        return f"rename it to {name}{usual_suffix(kind)} so that it is decompressed when read"
    p = PurePosixPath(name)
    base = PurePosixPath(p.stem) if p.suffix.lower() in {".gz", ".zip"} else p
    if kind in _TEXT_KINDS - {"text"} and base.suffix.lower() not in TABULAR:
        return "save it as UTF-8 text"
    if kind in _TEXT_KINDS and base.suffix.lower() in TABULAR:
        return f"rename it to {base}"
    return f"rename it to {base.stem}{usual_suffix(kind)}"


def _mismatch(path: Path, name: str, kind: str, expected: str) -> InputError:
    what = "the file" if name == path.name else f"{name} (inside {path.name})"
    msg = f"{what} is empty" if kind == "empty" else f"{what} is {describe(kind)}, not {expected}"
    return InputError(msg, path=path, hint=_rename_hint(name, kind))


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _gzip_content(path: Path, kind: str, opts: _Options) -> _Content:
    if kind != "gzip":
        raise _mismatch(path, path.name, kind, "a gzip-compressed file")
    if path.suffix.lower() != ".gz":
        msg = f"{path.name} is gzip-compressed, but its name does not end with .gz"
        raise InputError(msg, path=path, hint=f"rename it to {path.name}.gz")
    inner = path.name[:-3]
    with gzip.open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    inner_kind = sniff(head)
    limit = opts.max_bytes

    def load() -> bytes:
        with gzip.open(path, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise _too_large(path, limit, "decompresses to")
        return data

    content = _Content(path, inner, inner_kind, f"/vsigzip/{path.resolve()}", load, plain=False)
    if not content.suffix or content.suffix not in TABULAR | EXCEL | PARQUET | VECTOR:
        guess = {"text": ".csv", "json": ".geojson", "gpkg": ".gpkg", "parquet": ".parquet"}
        if inner_kind not in guess:
            msg = f"cannot tell what {path.name} holds ({describe(inner_kind)} once decompressed)"
            hint = "name it after the compressed format, e.g. thefts.csv.gz or wards.gpkg.gz"
            if inner_kind in {"tar", "zip", "gzip", "bzip2", "xz", "zstd", "7z", "rar"}:
                hint = "extract it, or compress the data file alone with gzip (.gz) or zip (.zip)"
            raise InputError(msg, path=path, hint=hint)
        content.name = inner + guess[inner_kind]
        content.notes.append(f"{path.name} holds {describe(inner_kind)}: read as {content.name}")
    if content.suffix not in TABULAR | EXCEL | PARQUET:
        _check_decompressed_size(path, limit)
    return content


def _check_decompressed_size(path: Path, limit: int) -> None:
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            total += len(chunk)
            if total > limit:
                raise _too_large(path, limit, "decompresses to")


def _is_candidate(name: str) -> bool:
    p = PurePosixPath(name)
    if any(part.startswith(".") or part == "__MACOSX" for part in p.parts):
        return False
    return p.suffix.lower() in TABULAR | EXCEL | PARQUET | VECTOR


def _zip_content(path: Path, kind: str, opts: _Options) -> _Content:
    if kind != "zip":
        raise _mismatch(path, path.name, kind, "a zip archive")
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        if path.suffix.lower() != ".zip":
            listing = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            msg = f"the file is a zip archive (holding {listing}), not a {path.suffix} file"
            hint = f"rename it to {path.name}.zip (geo-usm reads the file inside a zip archive)"
            raise InputError(msg, path=path, hint=hint)
        gdbs = sorted({"/".join(PurePosixPath(n).parts[:d]) for n in names if (d := _gdb_depth(n))})
        if opts.member is not None:
            info = _find_member(path, infos, gdbs, opts.member)
        else:
            stops = [i for i in infos if PurePosixPath(i.filename).name == "stops.txt"]
            candidates = [i for i in infos if _is_candidate(i.filename)]
            if stops:
                info = stops[0]
            elif gdbs and not candidates:
                info = gdbs[0] if len(gdbs) == 1 else _several(path, gdbs)
            elif len(candidates) == 1 and not gdbs:
                info = candidates[0]
            elif not candidates:
                listing = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
                msg = f"the zip archive holds no table or vector file (it holds: {listing})"
                hint = "zip the CSV, GeoPackage, GeoJSON or Shapefile itself"
                raise InputError(msg, path=path, hint=hint)
            else:
                info = _several(path, [i.filename for i in candidates] + gdbs)
        if isinstance(info, str):  # a File Geodatabase directory
            gdal = f"/vsizip/{path.resolve()}/{info}"
            return _Content(path, info, "gdb", gdal, lambda: b"", plain=False, member=info)
        if info.flag_bits & 0x1:
            msg = f"{info.filename} in the zip archive is password-protected"
            raise InputError(msg, path=path, hint="re-create the archive without a password")
        if info.file_size > opts.max_bytes:
            raise _too_large(path, opts.max_bytes, f"holds {info.filename}, which is")
        with zf.open(info) as fh:
            head = fh.read(HEAD_BYTES)
    member = info.filename
    inner_suffix = PurePosixPath(member).suffix.lower()
    if inner_suffix in {".zip", ".gz"}:
        msg = f"{member} in the zip archive is itself compressed"
        raise InputError(msg, path=path, hint="extract it and give the inner archive's path")
    limit = opts.max_bytes

    def load() -> bytes:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise _too_large(path, limit, f"holds {member}, which is")
        return data

    gdal = f"/vsizip/{path.resolve()}/{member}"
    content = _Content(path, member, sniff(head), gdal, load, plain=False, member=member)
    if opts.member is None and len(infos) > 1:
        content.notes.append(f"read {member} from the zip archive")
    return content


def _gdb_depth(name: str) -> int:
    parts = PurePosixPath(name).parts
    for i, part in enumerate(parts[:-1]):
        if part.lower().endswith(".gdb"):
            return i + 1
    return 0


def _several(path: Path, names: list[str]) -> NoReturn:
    listing = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    msg = f"the zip archive holds several data files: {listing}"
    hint = f"set member = {names[0]!r} (or another of them) in the city file ({MEMBER_KEYS})"
    raise InputError(msg, path=path, hint=hint)


def _find_member(
    path: Path, infos: list[zipfile.ZipInfo], gdbs: list[str], member: str
) -> zipfile.ZipInfo | str:
    wanted = member.strip("/")
    exact = [i for i in infos if i.filename == wanted]
    if exact:
        return exact[0]
    if wanted in gdbs:
        return wanted
    by_name = [i for i in infos if PurePosixPath(i.filename).name == wanted]
    if len(by_name) == 1:
        return by_name[0]
    names = [i.filename for i in infos]
    listing = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    what = "several members are named" if by_name else "no member"
    msg = f"{what} {member!r} in the zip archive; it holds: {listing}"
    hint = f"set member to one of these paths in the city file ({MEMBER_KEYS})"
    raise InputError(msg, path=path, hint=hint)


def _read_content(content: _Content, opts: _Options) -> RawTable:
    path, suffix, kind = content.path, content.suffix, content.kind
    if opts.where and suffix in TABULAR | EXCEL | PARQUET:
        msg = "format.where (an OGR SQL filter) only applies to vector files such as GeoPackage"
        raise InputError(msg, path=path, hint="remove it, or filter the table with 'categories'")
    if suffix in TABULAR:
        if kind not in _TEXT_KINDS:
            raise _mismatch(path, content.name, kind, "a delimited text table (CSV)")
        table = read_text_table(
            content.load(),
            path,
            delimiter=opts.delimiter,
            encoding=opts.encoding,
            prefer_tab=suffix in {".tsv", ".tab"},
        )
        raw = RawTable(
            path=path,
            frame=table.frame,
            malformed=table.malformed,
            record_numbers=table.record_numbers,
            notes=content.notes + table.notes,
            lines=table.lines,
            member=content.member,
            delimiter=table.delimiter,
            encoding=table.encoding,
        )
        if PurePosixPath(content.name).name.lower() == "stops.txt":
            raw.default_columns = dict(GTFS_STOPS_COLUMNS)
        return raw
    if suffix in EXCEL:
        if kind not in {"xlsx", "ole2", "zip"}:
            raise _mismatch(path, content.name, kind, "an Excel workbook")
        raw = _read_excel(content.handle(), path, opts.sheet, kind)
    elif suffix in PARQUET:
        if kind != "parquet":
            raise _mismatch(path, content.name, kind, "a Parquet file")
        raw = _read_parquet(content.handle(), path)
    else:
        expected = _EXPECTED.get(suffix)
        if (
            kind in _NOT_DATA
            or kind in {"zip", "gzip", "xlsx", "ole2", "parquet"}
            or (expected is not None and kind not in expected and kind != "gdb")
        ):
            raise _mismatch(path, content.name, kind, f"a {suffix or 'vector'} file")
        raw = _read_vector(content.gdal, path, opts.layer, opts.where)
    raw.member = content.member
    raw.notes[:0] = content.notes
    return raw


def _read_excel(
    source: Path | io.BytesIO, path: Path, sheet: str | int | None, kind: str
) -> RawTable:
    try:
        book = pd.ExcelFile(source)
    except ImportError:
        msg = f"{describe(kind)} needs an extra package to be read"
        raise InputError(msg, path=path, hint="save the workbook as .xlsx in Excel") from None
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        msg = f"not a readable Excel workbook ({quote(str(exc))})"
        hint = "open it in Excel and save it again as .xlsx (without a password)"
        raise InputError(msg, path=path, hint=hint) from None
    with book:
        sheet_names = [str(n) for n in book.sheet_names]
        sheets = ", ".join(sheet_names[:20])
        if len(sheet_names) > 20:
            sheets += f", ... ({len(sheet_names)} sheets)"
        if isinstance(sheet, str) and sheet not in sheet_names:
            msg = f"no sheet {sheet!r}; the sheets are: {sheets}"
            raise InputError(msg, path=path, hint="fix format.sheet in the city file")
        if isinstance(sheet, int) and not 0 <= sheet < len(sheet_names):
            n = len(sheet_names)
            msg = (
                f"no sheet {sheet} (format.sheet counts from 0): the workbook has {n} "
                f"sheet{'s' if n != 1 else ''}: {sheets}"
            )
            hint = f"set format.sheet to a sheet's name, or to an index from 0 to {n - 1}"
            raise InputError(msg, path=path, hint=hint)
        chosen = sheet if sheet is not None else 0
        try:
            grid = pd.read_excel(book, sheet_name=chosen, header=None, dtype=str)
        except (ValueError, IndexError) as exc:
            msg = f"cannot read sheet {chosen!r}: {quote(str(exc))}"
            raise InputError(msg, path=path, hint="check format.sheet in the city file") from None
    grid = grid.astype(object).where(grid.notna(), "")
    name = sheet_names[chosen] if isinstance(chosen, int) else chosen
    if grid.empty or (grid == "").all(axis=None):
        if len(sheet_names) > 1:
            which = "the first sheet" if sheet is None else "sheet"
            msg = f"{which} {name!r} is empty; the sheets are: {sheets}"
            hint = "set format.sheet in the city file to the sheet that holds the data"
        else:
            msg = f"the workbook's only sheet, {name!r}, is empty"
            hint = "export the data again"
        raise InputError(msg, path=path, hint=hint)
    names = [str(v).strip() for v in grid.iloc[0].tolist()]
    where = f"sheet {chosen!r}, row 1"
    check_header(names[:-1] if names and names[-1] == "" else names, path, where)
    frame = grid.iloc[1:].reset_index(drop=True)
    frame.columns = names
    if names[-1] == "" and len(names) > 1:
        if (frame.iloc[:, -1] == "").all():
            frame = frame.iloc[:, :-1]
        else:
            check_header(names, path, where)
    return RawTable(path=path, frame=frame)


def _read_parquet(source: Path | io.BytesIO, path: Path) -> RawTable:
    try:
        gdf = gpd.read_parquet(source)
    except ValueError:  # plain Parquet without geo metadata
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return RawTable(path=path, frame=pd.read_parquet(source).reset_index(drop=True))
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    return RawTable(path=path, frame=frame, geometry=np.asarray(gdf.geometry.values), crs=gdf.crs)


_GDAL_SYNTAX = re.compile(
    r"(prefix|<DRIVER>|'CSV:|\"CSV:|/vsi|open option|config option|-oo |GDAL_|OGR_|CPL_)",
    re.IGNORECASE,
)


def gdal_message(exc: Exception, gdal_path: str, name: str) -> str:
    """Return GDAL's message for a user: no path syntax the city file does not accept.

    GDAL's messages repeat the (possibly ``/vsizip/``) path it was given and may suggest
    prefixing the path with a driver name (``CSV:path``) or setting open options, which a city
    file cannot do; those sentences are removed and the path replaced by the file's name.
    """
    text = str(exc).replace(gdal_path, name)
    sentences = re.split(r"(?<=[.;])\s+", text)
    kept = [s for s in sentences if not _GDAL_SYNTAX.search(s)]
    text = " ".join(kept).strip().rstrip(";").strip()
    text = text.replace(
        "not recognized as being in a supported file format",
        "is not in a format GDAL recognises",
    ).replace("not recognized as a supported file format", "is not in a format GDAL recognises")
    if len(text) > 200:
        text = text[:200] + "..."
    return text or "GDAL cannot open it"


#: Most distinct GDAL warnings kept as notes of one read.
MAX_GDAL_NOTES = 5
#: Warning categories meant for developers: passed on, not turned into notes.
_DEV_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _read_vector(gdal: str, path: Path, layer: str | None, where: str | None) -> RawTable:
    """Read a vector file with pyogrio; GDAL's warnings become notes instead of reaching stderr.

    GDAL warns about what it could not read in a feature (a GeoJSON point without coordinates
    is read with no geometry, then rejected as such): its messages are kept, without path
    syntax, once each with a count, as notes of the table.
    """
    name = gdal.rsplit("/", 1)[-1] if gdal.startswith("/vsi") else path.name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = _read_vector_frame(gdal, path, name, layer, where)
    counts: Counter[str] = Counter()
    for w in caught:
        if issubclass(w.category, _DEV_WARNINGS):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        counts[gdal_message(Exception(str(w.message)), gdal, name)] += 1
    for text, n in list(counts.items())[:MAX_GDAL_NOTES]:
        times = f" ({n:,} times)" if n > 1 else ""
        raw.notes.append(f"GDAL warned while reading {name}{times}: {text}")
    if len(counts) > MAX_GDAL_NOTES:
        raw.notes.append(f"... and {len(counts) - MAX_GDAL_NOTES} other GDAL warning(s)")
    return raw


def _read_vector_frame(
    gdal: str, path: Path, name: str, layer: str | None, where: str | None
) -> RawTable:
    hint = "check that the file is a complete GeoPackage, GeoJSON, Shapefile or FlatGeobuf"
    try:
        if layer is None:
            layers = pyogrio.list_layers(gdal)
            if len(layers) > 1:
                names = ", ".join(str(n) for n in layers[:, 0])
                raise InputError(
                    f"file has several layers ({names})",
                    path=path,
                    hint="set 'layer' in the city file",
                )
        try:
            gdf = pyogrio.read_dataframe(gdal, layer=layer, where=where)
        except pyogrio.errors.FieldError as exc:
            msg = f"invalid 'where' filter {where!r}: {gdal_message(exc, gdal, name)}"
            raise InputError(msg, path=path) from None
        except pyogrio.errors.DataLayerError:
            names = ", ".join(str(n) for n in pyogrio.list_layers(gdal)[:, 0])
            msg = f"no layer {layer!r}; the layers are: {names}"
            raise InputError(msg, path=path, hint="fix 'layer' in the city file") from None
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        msg = f"cannot read {name}: {gdal_message(exc, gdal, name)}"
        raise InputError(msg, path=path, hint=hint) from None
    if isinstance(gdf, gpd.GeoDataFrame):
        geometry = np.asarray(gdf.geometry.values)
        frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        return RawTable(path, frame.reset_index(drop=True), geometry, gdf.crs)
    return RawTable(path=path, frame=pd.DataFrame(gdf).reset_index(drop=True))


def read_polygons(
    path: Path,
    *,
    layer: str | None = None,
    wkt: str | None = None,
    crs: str | None = None,
    member: str | None = None,
    sheet: str | int | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> gpd.GeoDataFrame:
    """Read a polygon layer (admin units, study area), refusing one without a CRS.

    Invalid polygons are repaired with :func:`shapely.make_valid` (reference boundaries are
    often slightly invalid); non-polygonal parts that a repair creates are dropped.

    Parameters
    ----------
    path
        A vector file, or a table (CSV, Excel, Parquet) with a WKT column; possibly compressed
        or in a zip archive, as for :func:`read_source`.
    layer
        Layer of a multi-layer vector file.
    wkt
        Name of the column holding each polygon as WKT (``SRID=n;`` prefixes accepted) or WKB;
        the geometry of the file is then taken from it.
    crs
        CRS of the WKT column (anything pyproj accepts, e.g. ``"EPSG:27700"``). Required with
        ``wkt`` unless the file declares a CRS; also sets the CRS of a vector file without one.
    member, sheet, delimiter, encoding
        As for :func:`read_source`.

    Returns
    -------
    geopandas.GeoDataFrame
        Attribute columns and the polygons; ``attrs["repaired"]`` counts repaired polygons and
        ``attrs["notes"]`` holds the reader's notes.

    Raises
    ------
    InputError
        If the file is missing or unreadable, has a record that cannot be read, no geometry
        (saying which column looks like WKT, if any), a WKT value that is not valid (naming the
        record, line and column), no CRS, or geometries that are not polygons.

    """
    raw = read_source(
        path, layer=layer, member=member, sheet=sheet, delimiter=delimiter, encoding=encoding
    )
    if raw.malformed:
        number, text, reason = raw.malformed[0]
        more = f" (and {len(raw.malformed) - 1} more)" if len(raw.malformed) > 1 else ""
        msg = f"record {number}{_line(raw, number)} cannot be read{more}: {reason}: {quote(text)}"
        raise InputError(msg, path=path, hint="fix the line: a boundary file cannot lose rows")
    declared = _parse_crs(crs, path) if crs is not None else None
    frame = raw.frame
    if wkt is not None:
        if wkt not in frame.columns:
            cols = ", ".join(repr(str(c)) for c in frame.columns[:20])
            msg = f"no column {wkt!r} (wkt); the columns are: {cols}"
            raise InputError(msg, path=path, hint="fix 'wkt' in the city file")
        geoms, srid = _wkt_geometries(raw, wkt, path)
        frame = frame.drop(columns=[wkt])
        file_crs = raw.crs if raw.crs is not None else srid
    else:
        if raw.geometry is None:
            raise _no_geometry(raw, path)
        geoms, file_crs = raw.geometry, raw.crs
    if declared is not None and file_crs is not None and not declared.equals(file_crs):
        msg = f"the file declares the CRS {file_crs.to_string()} but crs is {crs!r}"
        raise InputError(msg, path=path, hint="remove 'crs' or make it match the file")
    out_crs = declared if declared is not None else file_crs
    if out_crs is None:
        hint = (
            "set crs (e.g. 'EPSG:27700') for the WKT column in the city file"
            if wkt is not None
            else "save it with a CRS (e.g. EPSG:27700), or set crs in the city file"
        )
        raise InputError("file has no CRS", path=path, hint=hint)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid])
        geoms = geoms.copy()
        geoms[invalid] = [_polygonal(g) for g in repaired]
    kinds = shapely.get_type_id(geoms)
    not_polygon = np.flatnonzero(~np.isin(kinds, [3, 6]))
    if not_polygon.size:
        i = int(not_polygon[0])
        what = "missing" if geoms[i] is None else f"a {geoms[i].geom_type}"
        msg = (
            f"boundary layer must contain only polygons: {not_polygon.size} record(s) are not, "
            f"the first is record {int(raw.numbers[i])} ({what})"
        )
        hint = "point units.path / study_area.path (and layer) at the boundary polygons"
        raise InputError(msg, path=path, hint=hint)
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs=out_crs)
    gdf.attrs["repaired"] = int(invalid.sum())
    gdf.attrs["notes"] = list(raw.notes)
    return gdf


def _line(raw: RawTable, number: int) -> str:
    if raw.lines is None or number - 1 >= len(raw.lines):
        return ""
    return f" (line {int(raw.lines[number - 1])})"


def _parse_crs(crs: str, path: Path) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError:
        msg = f"crs {crs!r} is not a CRS pyproj knows"
        raise InputError(msg, path=path, hint="use an EPSG code such as 'EPSG:27700'") from None


def _wkt_geometries(raw: RawTable, column: str, path: Path) -> tuple[np.ndarray, CRS | None]:
    values = raw.frame[column]
    numbers = raw.numbers
    if len(values) and isinstance(values.dropna().iloc[0] if values.notna().any() else "", bytes):
        geoms = shapely.from_wkb(values.to_numpy(dtype=object), on_invalid="ignore")
        texts = values.astype(str)
        srid = None
    else:
        texts = values.astype("string").fillna("").str.strip()
        prefix = texts.str.extract(r"^SRID=(\d+);", expand=False)
        codes = prefix.dropna().unique()
        srid = CRS.from_epsg(int(codes[0])) if len(codes) == 1 else None
        if len(codes) > 1:
            msg = f"column {column!r} mixes SRIDs ({', '.join(map(str, codes[:5]))})"
            raise InputError(msg, path=path, hint="use one CRS for every row")
        body = texts.str.replace(r"^SRID=\d+;\s*", "", regex=True)
        geoms = shapely.from_wkt(body.to_numpy(dtype=object), on_invalid="ignore")
    bad = np.flatnonzero(pd.isna(geoms) | (texts.to_numpy(dtype=object) == ""))
    if bad.size:
        shown = []
        for i in bad[:3].tolist():
            n = int(numbers[i])
            shown.append(f"record {n}{_line(raw, n)}: {quote(str(texts.iloc[i]), 80)}")
        msg = (
            f"{bad.size} value(s) of column {column!r} (wkt) are not valid WKT or are empty: "
            + "; ".join(shown)
        )
        hint = "fix these rows: a boundary file cannot lose a unit"
        raise InputError(msg, path=path, hint=hint)
    return np.asarray(geoms, dtype=object), srid


def _no_geometry(raw: RawTable, path: Path) -> InputError:
    for name in raw.frame.columns:
        column = raw.frame[name]
        sample = column[column.notna()].head(20)
        if sample.empty:
            continue
        first = sample.iloc[0]
        if isinstance(first, bytes):
            msg = f"file has no geometry, but column {str(name)!r} looks like WKB"
            hint = f"set wkt = {str(name)!r} and crs for this boundary layer in the city file"
            return InputError(msg, path=path, hint=hint)
        texts = sample.astype(str)
        texts = texts[texts.str.strip() != ""]
        if len(texts) and texts.str.match(_WKT).all():
            msg = f"file has no geometry, but column {str(name)!r} looks like WKT"
            hint = f"set wkt = {str(name)!r} and crs (e.g. 'EPSG:27700') in the city file"
            return InputError(msg, path=path, hint=hint)
    hint = (
        "boundaries need polygons: a vector file (GeoPackage, GeoJSON, Shapefile) or a table "
        "with a WKT column (set wkt and crs)"
    )
    return InputError("file has no geometry", path=path, hint=hint)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if shapely.get_type_id(geom) == 7:  # GeometryCollection
        parts = [g for g in shapely.get_parts(geom) if shapely.get_type_id(g) in (3, 6)]
        return shapely.union_all(parts)
    return geom
