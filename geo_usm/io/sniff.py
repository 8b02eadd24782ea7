"""Check that an input path is a readable regular file and tell what its bytes really are.

A city file names its sources by path; the extension says what the user *thinks* the file is.
:func:`check_file` refuses what is not a regular file (a directory, a device such as
``/dev/zero``, a named pipe, a symbolic-link loop) or is larger than a limit, each with its own
message, before anything is read. :func:`sniff` looks at the first bytes (magic numbers, byte-order
marks, the first text characters) so that a zip archive named ``.csv`` or a web page saved as
``.csv`` is reported as what it is, with what to do, instead of a decoding error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from geo_usm.errors import InputError

#: Largest input file read (and largest decompressed size of a compressed one), in bytes.
MAX_FILE_BYTES = 2 * 1024**3
#: Longest excerpt of a file's content quoted in a message.
MAX_QUOTE_CHARS = 200
#: Bytes read from the start of a file to tell its kind.
HEAD_BYTES = 8192

#: Kinds :func:`sniff` returns, with how a message names them and the usual extension.
KINDS: dict[str, tuple[str, str]] = {
    "zip": ("a zip archive", ".zip"),
    "xlsx": ("an Excel workbook (.xlsx)", ".xlsx"),
    "ods": ("an OpenDocument spreadsheet (.ods)", ".ods"),
    "docx": ("a Word or PowerPoint document", ".docx"),
    "gzip": ("a gzip-compressed file", ".gz"),
    "bzip2": ("a bzip2-compressed file", ".bz2"),
    "xz": ("an xz-compressed file", ".xz"),
    "zstd": ("a zstd-compressed file", ".zst"),
    "7z": ("a 7-Zip archive", ".7z"),
    "rar": ("a RAR archive", ".rar"),
    "tar": ("a tar archive", ".tar"),
    "ole2": ("an old-format Excel workbook (.xls) or a password-protected Office file", ".xls"),
    "png": ("a PNG image", ".png"),
    "jpeg": ("a JPEG image", ".jpg"),
    "gif": ("a GIF image", ".gif"),
    "tiff": ("a TIFF image (perhaps a GeoTIFF raster)", ".tif"),
    "pdf": ("a PDF document", ".pdf"),
    "sqlite": ("an SQLite database", ".sqlite"),
    "gpkg": ("a GeoPackage", ".gpkg"),
    "parquet": ("a Parquet file", ".parquet"),
    "fgb": ("a FlatGeobuf file", ".fgb"),
    "shp": ("the .shp part of a Shapefile", ".shp"),
    "pbf": ("an OpenStreetMap PBF extract", ".osm.pbf"),
    "utf-32-le": ("UTF-32 text", ".csv"),
    "utf-32-be": ("UTF-32 text", ".csv"),
    "utf-16-le": ("UTF-16 text", ".csv"),
    "utf-16-be": ("UTF-16 text", ".csv"),
    "html": ("an HTML web page (perhaps an error page saved instead of the data)", ".html"),
    "xml": ("an XML document (GML, KML or another XML format)", ".xml"),
    "json": ("a JSON or GeoJSON document", ".geojson"),
    "binary": ("a binary file of an unknown kind", ""),
    "text": ("a text file", ".csv"),
    "empty": ("an empty file", ""),
}

#: Text encodings announced by a byte-order mark, longest mark first.
BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def describe(kind: str) -> str:
    """Return how a message names a kind returned by :func:`sniff` ("a PNG image")."""
    return KINDS.get(kind, (kind, ""))[0]


def usual_suffix(kind: str) -> str:
    """Return the extension files of a kind usually have (``""`` if none)."""
    return KINDS.get(kind, ("", ""))[1]


def quote(text: str, limit: int = MAX_QUOTE_CHARS) -> str:
    """Return ``text`` for a message: ``repr``-quoted and cut to ``limit`` characters."""
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


def human_size(n: int) -> str:
    """Return a byte count as a short human-readable size ("2.0 GiB")."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - loop always returns


def _stat_error(path: Path, exc: OSError) -> InputError:
    code = exc.errno
    if code == errno.ELOOP:
        msg = "is a symbolic link loop (too many levels of symbolic links)"
        return InputError(msg, path=path, hint="fix or remove the symbolic link")
    if code == errno.ENOENT:
        if os.path.islink(path):
            target = os.readlink(path)
            msg = f"is a symbolic link to a missing file ({target})"
            return InputError(msg, path=path, hint="fix the link or point 'path' at the real file")
        return InputError("input file not found", path=path, hint="check 'path' in the city file")
    if code == errno.ENOTDIR:
        msg = "input file not found: a part of the path is a file, not a directory"
        return InputError(msg, path=path, hint="check 'path' in the city file")
    if code in (errno.EACCES, errno.EPERM):
        msg = "permission denied: the file (or a directory above it) cannot be read"
        return InputError(msg, path=path, hint="give the user running usm read access to it")
    if code == errno.ENAMETOOLONG:
        return InputError("the path is too long", path=path, hint="use a shorter path")
    return InputError(f"cannot access the file ({exc.strerror})", path=path)


def check_file(path: Path, max_bytes: int = MAX_FILE_BYTES, *, allow_dir: bool = False) -> int:
    """Check that ``path`` is a regular, readable file no larger than ``max_bytes``.

    Parameters
    ----------
    path
        The input path.
    max_bytes
        Largest size accepted.
    allow_dir
        Accept a directory (an ESRI File Geodatabase ``.gdb`` is one).

    Returns
    -------
    int
        The file's size in bytes (0 for an accepted directory).

    Raises
    ------
    InputError
        If the path does not exist, is a symbolic-link loop, a directory, a device, a named pipe
        or a socket, cannot be read, or is larger than ``max_bytes``.

    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _stat_error(path, exc) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        if allow_dir:
            return 0
        inside = sorted(p.name for p in Path(path).iterdir() if not p.name.startswith("."))[:8]
        listing = f"; it contains: {', '.join(inside)}" if inside else " (it is empty)"
        msg = f"is a directory, not a file{listing}"
        raise InputError(msg, path=path, hint="set 'path' to one of the files in it")
    if not stat.S_ISREG(mode):
        what = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a character device (such as /dev/zero or a terminal)"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        msg = f"is {what}, not a regular file: it cannot be read as an input"
        raise InputError(msg, path=path, hint="save the data to a file and give that file's path")
    if info.st_size > max_bytes:
        msg = (
            f"the file is {human_size(info.st_size)}, more than the {human_size(max_bytes)} "
            "limit for one input"
        )
        raise InputError(msg, path=path, hint="split it into smaller files (e.g. one per year)")
    if not os.access(path, os.R_OK):
        raise _stat_error(path, PermissionError(errno.EACCES, "Permission denied"))
    return int(info.st_size)


def read_head(path: Path, n: int = HEAD_BYTES) -> bytes:
    """Return the first ``n`` bytes of a regular file (checked by :func:`check_file`)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise _stat_error(path, exc) from None


def _zip_kind(names: list[str]) -> str:
    lowered = {n.lower() for n in names}
    if "xl/workbook.xml" in lowered or "xl/workbook.bin" in lowered:
        return "xlsx"
    if "mimetype" in lowered and any(n.startswith("content.xml") for n in lowered):
        return "ods"
    if "word/document.xml" in lowered or "ppt/presentation.xml" in lowered:
        return "docx"
    return "zip"


def sniff(head: bytes, *, zip_names: list[str] | None = None) -> str:
    """Return what the first bytes of a file say it is.

    Parameters
    ----------
    head
        The first bytes of the file (a few kilobytes).
    zip_names
        Member names when the file is a zip archive, to tell a workbook from a plain archive.

    Returns
    -------
    str
        A key of :data:`KINDS`: a binary format ("zip", "gzip", "png", "sqlite", "gpkg",
        "parquet"...), a text encoding announced by a byte-order mark ("utf-16-le"...), a text
        kind recognised from the first characters ("html", "xml", "json"), "text", "binary"
        (NUL bytes and no known signature) or "empty".

    """
    if not head:
        return "empty"
    signatures = (
        (b"PK\x03\x04", "zip"),
        (b"PK\x05\x06", "zip"),
        (b"\x1f\x8b", "gzip"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"7z\xbc\xaf\x27\x1c", "7z"),
        (b"Rar!\x1a\x07", "rar"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"\xff\xd8\xff", "jpeg"),
        (b"GIF87a", "gif"),
        (b"GIF89a", "gif"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"II+\x00", "tiff"),
        (b"%PDF", "pdf"),
        (b"PAR1", "parquet"),
        (b"fgb\x03", "fgb"),
        (b"\x00\x00\x27\x0a", "shp"),
    )
    for magic, kind in signatures:
        if head.startswith(magic):
            if kind == "zip" and zip_names is not None:
                return _zip_kind(zip_names)
            return kind
    if head.startswith(b"SQLite format 3\x00"):
        return "gpkg" if head[68:72] in (b"GPKG", b"GP10", b"GP11") else "sqlite"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if head[4:15] == b"\n\tOSMHeader":  # length of the first blob header, then its type
        return "pbf"
    for bom, encoding in BOMS:
        if head.startswith(bom):
            return "text" if encoding == "utf-8" else encoding
    if head.count(0) > 0.05 * len(head):  # a few NUL bytes may be stray in a text file
        return _nul_kind(head)
    return _text_kind(head)


def _nul_kind(head: bytes) -> str:
    """Tell UTF-16 text without a byte-order mark from other binary content."""
    even, odd = head[0::2].count(0), head[1::2].count(0)
    n = len(head) // 2
    if n >= 2:
        if odd > 0.6 * n and even < 0.1 * n:
            return "utf-16-le"
        if even > 0.6 * n and odd < 0.1 * n:
            return "utf-16-be"
    return "binary"


def _text_kind(head: bytes) -> str:
    start = head.lstrip(b" \t\r\n")[:256].lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if start.startswith((b"<?xml", b"<kml", b"<gml", b"<wfs", b"<osm", b"<gpx", b"<svg")):
        return "xml"
    if start.startswith((b"{", b"[{", b"[\n", b"[ ")) or start == b"[":
        return "json"
    return "text"
