"""Reading the small hand-written TOML files (city files, layer kinds) safely."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from geo_usm.errors import GeoUsmError

#: Largest hand-written TOML file read (a city file is a few kilobytes).
MAX_TOML_BYTES = 4 * 1024 * 1024


def read_toml(path: Path, error: type[GeoUsmError], what: str) -> tuple[dict[str, Any], bytes]:
    """Read a hand-written TOML file, refusing anything that is not a small UTF-8 file.

    Returns the parsed table and the file's bytes. A FIFO or a device is refused before it is
    opened for reading (it could block or never end), and so is a file over
    :data:`MAX_TOML_BYTES`.

    Raises
    ------
    GeoUsmError
        Of the class ``error``, naming the file and what to do.

    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{what} not found", path=path, hint="check the path") from None
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", path=path, hint="check the path") from None
    if not stat.S_ISREG(info.st_mode):
        mode = info.st_mode
        kind = (
            "a directory"
            if stat.S_ISDIR(mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode)
            else "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise error(f"is {kind}, not a file", path=path, hint=f"give the path of the {what}")
    if info.st_size > MAX_TOML_BYTES:
        raise error(
            f"is {info.st_size:,} bytes: too large for a hand-written TOML file",
            path=path,
            hint="check the path",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        kind = "UTF-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "not UTF-8"
        raise error(
            f"the file is {kind} text (byte {exc.start}, line {line})",
            path=path,
            hint="save it as UTF-8 (TOML files are UTF-8)",
        ) from None
    try:
        return tomllib.loads(text), raw
    except tomllib.TOMLDecodeError as exc:
        raise error(f"not valid TOML: {exc}", path=path) from None
