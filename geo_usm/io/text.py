"""Read a delimited text table (CSV, TSV...) so that every physical line is accounted for.

The file's bytes are decoded (a byte-order mark decides UTF-8, UTF-16 or UTF-32; otherwise the
declared encoding), then split into physical lines (LF, CRLF or CR). Each data line is classified
with array operations only: a line whose double quotes follow RFC 4180 and balance is a complete
record, and its number of fields is the number of delimiters outside quotes plus one. These
*clean* lines, the bulk of any real file, are parsed in one call of pandas' C parser. The few
other lines (an odd number of quotes, a quote in the middle of a field, a NUL byte) are read one
by one around the anomaly:

* a line whose quotes are well placed and balanced is a record (a quote inside an unquoted field
  is an ordinary character, as pandas and the csv module read it);
* a closing quote followed by anything but the delimiter or the line end makes the line a
  malformed record (:data:`MISPLACED_QUOTE`);
* a quoted field that runs onto the following lines is a legitimate multi-line record when it is
  closed on the next line with an odd number of quotes, within :data:`MAX_RECORD_LINES` lines and
  :data:`MAX_RECORD_BYTES` bytes, and the record then has exactly as many fields as the header;
  otherwise the line is a malformed record (:data:`UNBALANCED_QUOTE`) and the lines after it are
  read normally, so that one stray quote never swallows the rest of the file;
* a record with more fields than the header is malformed (:data:`WRONG_FIELD_COUNT`), except
  one empty last field when most records end with the delimiter and the header does not (then
  every record is read without it, with a note); a record with fewer fields is padded with
  empty strings;
* a record that could be read but holds a NUL byte is malformed (:data:`NUL_BYTE`): a value
  with a NUL cannot be stored as read (the GeoPackage would cut it there). A file with many
  NUL bytes is refused as binary before any record is read.

Blank lines (empty, or only spaces and tabs) are not records. Every other physical line belongs to
exactly one record, accepted or malformed, and each record knows the line it starts on.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geo_usm.errors import InputError
from geo_usm.io.sniff import BOMS, quote

#: Reject reasons of records that cannot be split into fields.
WRONG_FIELD_COUNT = "wrong number of fields (check the delimiter and quoting)"
UNBALANCED_QUOTE = "unbalanced quote (a quoted field is not closed)"
MISPLACED_QUOTE = "misplaced quote (a closing quote must be followed by the delimiter or line end)"
NUL_BYTE = "NUL byte in a field (binary data in a text file?)"
#: Largest number of physical lines, and of bytes, of one record with quoted line breaks.
MAX_RECORD_LINES = 100
MAX_RECORD_BYTES = 1024**2
#: Longest header line accepted (a longer one means a wrong encoding or not a table).
MAX_HEADER_CHARS = 65536
#: Delimiters tried when none is given, in order of preference on a tie.
DELIMITERS = (",", "\t", ";", "|")
#: Non-blank lines after the header used to choose the delimiter.
SNIFF_LINES = 50

_OK, _OPEN, _JUNK, _BROKEN = 0, 1, 2, 3
_QUOTE = ord('"')
_UTF8 = {"utf-8", "utf-8-sig"}


@dataclass
class TextTable:
    """A text table's records (see :class:`geo_usm.io.RawTable` for the attributes)."""

    frame: pd.DataFrame
    malformed: list[tuple[int, str, str]]
    record_numbers: np.ndarray | None
    lines: np.ndarray
    delimiter: str
    encoding: str
    notes: list[str] = field(default_factory=list)


def split_record(text: str, sep: str) -> tuple[list[str], int]:
    """Split one record into fields, RFC 4180 style.

    A field starting with a double quote is quoted: it ends at a quote followed by the delimiter
    or the end of the text, and ``""`` inside it is one quote. A quote elsewhere in an unquoted
    field is an ordinary character (as pandas and the csv module read it).

    Returns
    -------
    fields : list of str
    status : int
        ``_OK``; ``_OPEN`` when the text ends inside a quoted field; ``_JUNK`` when a closing
        quote is followed by something else than the delimiter; ``_BROKEN`` when a line break
        outside quotes ends the record before the end of the text.

    """
    fields: list[str] = []
    i = 0
    n = len(text)
    while True:
        if i < n and text[i] == '"':
            parts: list[str] = []
            j = i + 1
            while True:
                k = text.find('"', j)
                if k < 0:
                    parts.append(text[j:])
                    fields.append("".join(parts))
                    return fields, _OPEN
                parts.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    parts.append('"')
                    j = k + 2
                    continue
                break
            fields.append("".join(parts))
            i = k + 1
            if i == n:
                return fields, _OK
            if text[i] != sep:
                return fields, _BROKEN if text[i] in "\r\n" else _JUNK
            i += 1
            continue
        k = text.find(sep, i)
        value = text[i:] if k < 0 else text[i:k]
        if "\n" in value or "\r" in value:
            return fields, _BROKEN
        fields.append(value)
        if k < 0:
            return fields, _OK
        i = k + 1


def normalise_delimiter(delimiter: str, path: Path) -> str:
    """Return the one-character delimiter a city file means ("tab" and a backslash-t too)."""
    if delimiter.lower() in {"tab", "\\t"}:
        return "\t"
    if len(delimiter) != 1 or delimiter in '"\r\n':
        msg = f"format.delimiter must be one character other than a quote, not {delimiter!r}"
        raise InputError(msg, path=path, hint="for example ',', ';', '|' or '\\t' (tab)")
    return delimiter


def decode_to_utf8(raw: bytes, encoding: str, path: Path) -> tuple[bytes, str, list[str]]:
    """Decode a text file's bytes and return them as UTF-8 without a byte-order mark.

    Parameters
    ----------
    raw
        The file's bytes.
    encoding
        The declared encoding. A byte-order mark (UTF-8, UTF-16, UTF-32) overrides it, with a note.
    path
        The file, for messages.

    Returns
    -------
    data : bytes
        UTF-8 text.
    encoding : str
        The encoding actually used.
    notes : list of str
        What the user should know (a byte-order mark that overrode the declared encoding).

    Raises
    ------
    InputError
        For an unknown encoding, bytes that are not valid in it, UTF-16 text without a
        byte-order mark read as 8-bit text (and the reverse), or binary content.

    """
    try:
        declared = codecs.lookup(encoding).name
    except LookupError:
        msg = f"unknown encoding {encoding!r}"
        hint = "set format.encoding to a codec name such as 'utf-8', 'cp1252' or 'utf-16'"
        raise InputError(msg, path=path, hint=hint) from None
    notes: list[str] = []
    codec = declared
    body = raw
    for bom, bom_codec in BOMS:
        if raw.startswith(bom):
            body = raw[len(bom) :]
            codec = bom_codec
            family = bom_codec.split("-")[0] + "-" + bom_codec.split("-")[1]
            if not declared.startswith(family):
                note = f"the file starts with a {family.upper()} byte-order mark: read as such"
                if declared not in _UTF8:
                    note += f" (not as format.encoding {encoding!r})"
                notes.append(note)
            break
    else:
        head = raw[:65536]
        nul = head.count(0)
        wide = declared.startswith(("utf-16", "utf-32"))
        if wide and head and nul == 0:
            msg = (
                f"format.encoding is {encoding!r} but the file has no NUL bytes: it is 8-bit "
                "text (such as UTF-8 or Windows-1252), not UTF-16/UTF-32"
            )
            hint = "remove format.encoding (UTF-8 is the default) or set the right one"
            raise InputError(msg, path=path, hint=hint)
        if not wide and nul:
            odd, even = head[1::2].count(0), head[0::2].count(0)
            half = len(head) // 2
            if odd > 0.6 * half or even > 0.6 * half:
                order = "le" if odd > even else "be"
                msg = "the file looks like UTF-16 text without a byte-order mark"
                hint = f"set format.encoding = 'utf-16-{order}' in the city file"
                raise InputError(msg, path=path, hint=hint)
            if nul > 0.05 * len(head):
                msg = "the file contains NUL bytes: it is a binary file, not a text table"
                hint = "check 'path' in the city file; export the data as CSV"
                raise InputError(msg, path=path, hint=hint)
        if wide and declared in {"utf-16", "utf-32"}:
            odd, even = head[1::2].count(0), head[0::2].count(0)
            codec = f"{declared}-{'le' if odd >= even else 'be'}"
    if codec in _UTF8:
        _validate_utf8(body, encoding, path)  # the bytes are already UTF-8
        return body, "utf-8", notes
    try:
        return body.decode(codec).encode("utf-8"), codec, notes
    except UnicodeDecodeError as exc:
        raise _decode_error(body, exc, encoding, codec, path) from None


def _validate_utf8(body: bytes, encoding: str, path: Path, chunk: int = 1 << 24) -> None:
    """Check that ``body`` is UTF-8, a few megabytes at a time (cut after a line break)."""
    start = 0
    while start < len(body):
        stop = body.find(b"\n", start + chunk) + 1 or len(body)
        try:
            body[start:stop].decode("utf-8")
        except UnicodeDecodeError as exc:
            exc.start += start
            raise _decode_error(body, exc, encoding, "utf-8", path) from None
        start = stop


def _decode_error(
    body: bytes, exc: UnicodeDecodeError, declared: str, codec: str, path: Path
) -> InputError:
    pos = exc.start
    if codec.startswith(("utf-16", "utf-32")):
        msg = f"not valid {codec.upper()} text at byte {pos:,} ({exc.reason})"
        return InputError(msg, path=path, hint="check format.encoding in the city file")
    line_no = body.count(b"\n", 0, pos) + 1
    start = body.rfind(b"\n", 0, pos) + 1
    end = body.find(b"\n", pos)
    line = body[start : end if end >= 0 else len(body)].decode(codec, errors="backslashreplace")
    msg = f"not valid {declared} text at line {line_no} (byte {pos:,}): {quote(line)}"
    hint = "set format.encoding in the city file to the file's encoding"
    if codec in _UTF8:
        try:
            body.decode("cp1252")
            hint = (
                "set format.encoding = 'cp1252' (Windows-1252, usual for files saved by Excel) "
                "or 'latin-1' in the city file"
            )
        except UnicodeDecodeError:
            pass
    return InputError(msg, path=path, hint=hint)


def _physical_lines(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return start, content end and next start of every physical line (LF, CRLF or CR)."""
    n = arr.size
    term = np.flatnonzero(arr == 10)
    cr = np.flatnonzero(arr == 13)
    if cr.size:
        following = np.zeros(cr.size, dtype=np.uint8)
        inside = cr + 1 < n
        following[inside] = arr[cr[inside] + 1]
        lone = cr[following != 10]
        if lone.size:  # old Mac line breaks (alone or mixed with others)
            term = np.sort(np.concatenate([term, lone]))
    ends = term.copy()
    if cr.size:
        crlf = (arr[term] == 10) & (term > 0)
        crlf[crlf] = arr[term[crlf] - 1] == 13
        ends[crlf] -= 1
    starts = np.concatenate([[0], term + 1]).astype(np.int64)
    ends = np.concatenate([ends, [n]]).astype(np.int64)
    nexts = np.concatenate([term + 1, [n]]).astype(np.int64)
    if starts[-1] == n:  # the text ends with a line break: no last, empty line
        starts, ends, nexts = starts[:-1], ends[:-1], nexts[:-1]
    return starts, ends, nexts


def _blank_lines(
    data: bytes, arr: np.ndarray, s: np.ndarray, e: np.ndarray, sep: str
) -> np.ndarray:
    blank = e == s
    spaces = [c for c in (32, 9) if chr(c) != sep]
    first = arr[np.minimum(s, max(arr.size - 1, 0))] if arr.size else np.zeros(0, np.uint8)
    maybe = np.flatnonzero(~blank & np.isin(first, spaces))
    if maybe.size > 256:  # many lines start with a space: count their other bytes at once
        other = np.concatenate([[0], np.cumsum(~np.isin(arr, spaces), dtype=np.int64)])
        blank[maybe] = other[e[maybe]] == other[s[maybe]]
        return blank
    strip = bytes(spaces)
    for i in maybe.tolist():  # a few lines starting with a space or a tab
        if not data[s[i] : e[i]].strip(strip):
            blank[i] = True
    return blank


def _sniff_delimiter(header: str, sample: list[str], prefer_tab: bool) -> str:
    order = ("\t", ",", ";", "|") if prefer_tab else DELIMITERS
    best, best_score = None, -1
    for cand in order:
        width = len(split_record(header, cand)[0])
        if width < 2:
            continue
        agree = 0
        for line in sample:
            n = len(split_record(line, cand)[0])
            agree += n == width or (n == width + 1 and line.endswith(cand))
        if agree > best_score:
            best, best_score = cand, agree
    return best or order[0]


def check_header(names: list[str], path: Path, where: str) -> None:
    """Refuse duplicate column names and several unnamed columns.

    Parameters
    ----------
    names
        Column names, stripped.
    path
        The file, for messages.
    where
        Where the header is, for messages ("line 1", "sheet 'datos' row 1").

    Raises
    ------
    InputError
        If a name appears twice, or several columns have no name (which one is meant would be
        ambiguous).

    """
    counts = Counter(names)
    dupes = [n for n, c in counts.items() if c > 1 and n != ""]
    if dupes:
        parts = []
        for name in dupes[:5]:
            cols = [str(i + 1) for i, n in enumerate(names) if n == name]
            parts.append(f"{quote(name, 60)} (columns {', '.join(cols)})")
        msg = f"duplicate column names in the header ({where}): {'; '.join(parts)}"
        hint = "rename the columns in the file so that each name appears once"
        raise InputError(msg, path=path, hint=hint)
    empty = [str(i + 1) for i, n in enumerate(names) if n == ""]
    if len(empty) > 1:
        listed = ", ".join(empty[:10]) + (", ..." if len(empty) > 10 else "")
        msg = f"{len(empty)} columns of the header ({where}) have no name: columns {listed}"
        raise InputError(msg, path=path, hint="give every column a name in the header line")


def read_text_table(
    data: bytes,
    path: Path,
    *,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    prefer_tab: bool = False,
) -> TextTable:
    """Read a delimited text table, accounting for every physical line.

    Parameters
    ----------
    data
        The file's bytes.
    path
        The file, for messages.
    delimiter
        Field separator; chosen among comma, tab, semicolon and pipe from the first lines when
        ``None``.
    encoding
        Declared text encoding (see :func:`decode_to_utf8`).
    prefer_tab
        Prefer a tab when choosing the delimiter (``.tsv`` and ``.tab`` files).

    Returns
    -------
    TextTable

    Raises
    ------
    InputError
        If the text cannot be decoded, is empty, the header is unusable (unbalanced quote,
        duplicate or several empty names, one column while another delimiter is evident) or a
        line is longer than a header can be.

    """
    utf8, used, notes = decode_to_utf8(data, encoding, path)
    arr = np.frombuffer(utf8, dtype=np.uint8)
    starts, ends, nexts = _physical_lines(arr)
    sep_guess = normalise_delimiter(delimiter, path) if delimiter else ","
    blank = _blank_lines(utf8, arr, starts, ends, sep_guess)
    filled = np.flatnonzero(~blank)
    if filled.size == 0:
        what = "only blank lines" if utf8 else "only a byte-order mark" if data else "no text"
        msg = f"the file is empty (no header line: it holds {what})"
        raise InputError(msg, path=path, hint="export the data again")
    h = int(filled[0])
    if ends[h] - starts[h] > MAX_HEADER_CHARS * 4:
        raise _long_header(path, encoding, h)
    header = utf8[starts[h] : ends[h]].decode("utf-8")
    if len(header) > MAX_HEADER_CHARS:
        raise _long_header(path, encoding, h)
    if delimiter:
        sep = sep_guess
    else:
        sample_idx = filled[1 : SNIFF_LINES + 1]
        sample = [utf8[starts[i] : ends[i]].decode("utf-8") for i in sample_idx]
        sep = _sniff_delimiter(header, sample, prefer_tab)
        if sep != sep_guess:
            blank = _blank_lines(utf8, arr, starts, ends, sep)
    names = _header_names(header, sep, h, path, explicit=bool(delimiter))
    reader = _Lines(utf8, arr, starts[h + 1 :], ends[h + 1 :], nexts[h + 1 :], blank[h + 1 :])
    table = reader.read(names, sep, path, f"line {h + 1}")
    table.lines += h + 2  # 0-based data line index -> 1-based line number in the file
    table.encoding = used
    table.notes[:0] = notes
    return table


def _long_header(path: Path, encoding: str, h: int) -> InputError:
    msg = (
        f"the header (line {h + 1}) is longer than {MAX_HEADER_CHARS:,} characters: "
        "this is not a delimited table, or it is read with the wrong encoding"
    )
    hint = f"check format.encoding (now {encoding!r}) and that 'path' is a CSV table"
    return InputError(msg, path=path, hint=hint)


def _header_names(header: str, sep: str, h: int, path: Path, *, explicit: bool) -> list[str]:
    fields, status = split_record(header, sep)
    if status != _OK:
        what = "an unbalanced quote" if status == _OPEN else "a misplaced quote"
        msg = f"the header (line {h + 1}) has {what}: {quote(header)}"
        raise InputError(msg, path=path, hint="fix the quotes of the header line")
    names = [f.strip() for f in fields]
    if len(names) == 1 and explicit:
        for other in DELIMITERS:
            if other != sep and len(split_record(header, other)[0]) >= 2:
                msg = (
                    f"with the delimiter {sep!r}, the header is one column {quote(header)}; "
                    f"the file looks {other!r}-separated"
                )
                hint = f"set format.delimiter = {other!r} in the city file"
                raise InputError(msg, path=path, hint=hint)
    check_header(names[:-1] if names[-1] == "" else names, path, f"line {h + 1}")
    return names


@dataclass
class _Extra:
    """A record read apart from the bulk: its first line, its text and its fields."""

    line: int
    text: str
    fields: list[str]
    trailing: bool

    @classmethod
    def of(cls, line: int, text: str, fields: list[str], width: int) -> _Extra | None:
        """Return the record, or None if it has too many fields (beyond a trailing one)."""
        trailing = len(fields) == width + 1 and fields[-1] == ""
        if trailing:
            fields = fields[:-1]
        if len(fields) > width:
            return None
        return cls(line, text, fields, trailing)


class _Lines:
    """The data lines of a text table, classified with array operations."""

    def __init__(
        self,
        data: bytes,
        arr: np.ndarray,
        s: np.ndarray,
        e: np.ndarray,
        nexts: np.ndarray,
        blank: np.ndarray,
    ):
        self.data, self.arr = data, arr
        self.s, self.e, self.nexts, self.blank = s, e, nexts, blank

    def text(self, i: int) -> str:
        return self.data[self.s[i] : self.e[i]].decode("utf-8")

    def _features(self, sep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return per line: quote count, number of fields, and whether quoting is RFC-proper."""
        s, e, arr = self.s, self.e, self.arr
        m = s.size
        first = int(s[0]) if m else arr.size
        sep_bytes = sep.encode("utf-8")
        if len(sep_bytes) != 1:  # a non-ASCII delimiter: every line is read one by one
            return np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, bool)
        sb = sep_bytes[0]
        qpos = np.flatnonzero(arr == _QUOTE)
        qpos = qpos[np.searchsorted(qpos, first) :]
        dpos = np.flatnonzero(arr == sb)
        dpos = dpos[np.searchsorted(dpos, first) :]
        qs = np.searchsorted(qpos, s)
        qcount = np.searchsorted(qpos, e) - qs
        ds = np.searchsorted(dpos, s)
        dcount = np.searchsorted(dpos, e) - ds
        proper = np.ones(m, dtype=bool)
        if qpos.size == 0:
            fields = dcount + 1
        else:
            # Parity of the quotes before a position *within its line*: the global parity
            # flipped on lines after an odd number of quotes (every quote and delimiter lies
            # inside one line, so each line's share is found by repetition).
            shift = (qs & 1).astype(bool)
            outside = ((np.searchsorted(qpos, dpos) & 1).astype(bool)) == np.repeat(shift, dcount)
            csum = np.concatenate([[0], np.cumsum(outside)])
            fields = csum[ds + dcount] - csum[ds] + 1
            opening = ((np.arange(qpos.size) & 1).astype(bool)) == np.repeat(shift, qcount)
            prev = arr[np.maximum(qpos - 1, 0)]
            nxt = arr[np.minimum(qpos + 1, arr.size - 1)]
            at_start = (prev == 10) | (prev == 13) | (qpos == first)
            at_end = (nxt == 10) | (nxt == 13) | (qpos + 1 == arr.size)
            opens_ok = at_start | (prev == sb) | (prev == _QUOTE)
            closes_ok = at_end | (nxt == sb) | (nxt == _QUOTE)
            wrong = np.flatnonzero(np.where(opening, ~opens_ok, ~closes_ok))
            proper[np.searchsorted(s, qpos[wrong], side="right") - 1] = False
        if 0 in arr[first:]:
            nul = np.flatnonzero(arr == 0)
            proper[np.searchsorted(s, nul[nul >= first], side="right") - 1] = False
        return qcount, fields, proper

    def read(self, names: list[str], sep: str, path: Path, where: str) -> TextTable:
        s, e, blank = self.s, self.e, self.blank
        m = s.size
        width = len(names)
        notes: list[str] = []
        qcount, nfields, proper = self._features(sep)
        clean = ~blank & ((qcount & 1) == 0) & proper
        single_byte = len(sep.encode("utf-8")) == 1
        last = self.arr[np.maximum(e - 1, 0)] if m else np.zeros(0, np.uint8)
        ends_sep = (e > s) & (last == ord(sep)) if single_byte else np.zeros(m, dtype=bool)
        bad: list[tuple[int, str, str]] = []
        extras: list[_Extra] = []
        interesting = np.flatnonzero(~clean & ~blank)
        if interesting.size:
            odd = np.flatnonzero((qcount & 1) == 1) if single_byte else None
            consumed = self._anomalies(interesting, odd, sep, width, extras, bad)
            clean &= ~consumed
        # Lines ending with one delimiter too many: read as a trailing delimiter when most
        # records do so (and the header does not), else they have a wrong number of fields.
        n_records = int(clean.sum()) + len(extras)
        n_trailing = int(np.count_nonzero(clean & (nfields == width + 1) & ends_sep))
        n_trailing += sum(x.trailing for x in extras)
        trailing = names[-1] != "" and 2 * n_trailing > n_records
        if trailing:
            notes.append(
                f"the data lines end with the delimiter {sep!r} but the header does not: the "
                "empty last field was ignored (otherwise every column would shift by one)"
            )
        else:
            bad += [(x.line, x.text, WRONG_FIELD_COUNT) for x in extras if x.trailing]
            extras = [x for x in extras if not x.trailing]
        ncols = width + 1 if trailing else width
        too_many = clean & (nfields > ncols)
        if trailing:
            too_many |= clean & (nfields == ncols) & ~ends_sep
        bad += [(i, self.text(i), WRONG_FIELD_COUNT) for i in np.flatnonzero(too_many).tolist()]
        keep = clean & ~too_many
        frame = self._parse_clean(keep, sep, ncols)
        if trailing:
            frame = frame.iloc[:, :width]
        frame.columns = names
        kept = np.flatnonzero(keep)
        if extras:
            rows = [x.fields + [""] * (width - len(x.fields)) for x in extras]
            frame = pd.concat([frame, pd.DataFrame(rows, columns=names, dtype=str)])
        extra_lines = np.asarray([x.line for x in extras], dtype=np.int64)
        row_lines = np.concatenate([kept, extra_lines])
        bad_lines = np.asarray([b[0] for b in bad], dtype=np.int64)
        all_lines = np.concatenate([row_lines, bad_lines])
        order = np.argsort(all_lines, kind="stable")
        record_of = np.empty(all_lines.size, dtype=np.int64)
        record_of[order] = np.arange(1, all_lines.size + 1)
        numbers: np.ndarray | None = None
        if extras:
            row_order = np.argsort(row_lines, kind="stable")
            frame = frame.iloc[row_order]
            numbers = record_of[: row_lines.size][row_order]
        elif bad:
            numbers = record_of[: row_lines.size]
        malformed = sorted(
            (int(record_of[row_lines.size + k]), text, why) for k, (_, text, why) in enumerate(bad)
        )
        n_wrong = sum(why == WRONG_FIELD_COUNT for _, _, why in bad)
        if n_wrong and 2 * n_wrong > all_lines.size:
            notes.append(
                f"{n_wrong} of {all_lines.size} records have more fields than the header's "
                f"{width}: check the delimiter (the file was read with {sep!r}) and the quotes"
            )
        if names[-1] == "" and width > 1 and (frame.iloc[:, -1] == "").all():
            frame = frame.iloc[:, :-1]
            notes.append(
                "the header and the data lines end with the delimiter: the empty, unnamed last "
                "column was ignored"
            )
        elif names[-1] == "" and names.count("") > 1:
            check_header(names, path, where)
        return TextTable(
            frame=frame.reset_index(drop=True),
            malformed=malformed,
            record_numbers=numbers,
            lines=np.sort(all_lines),
            delimiter=sep,
            encoding="utf-8",
            notes=notes,
        )

    def _anomalies(
        self,
        interesting: np.ndarray,
        odd: np.ndarray | None,
        sep: str,
        width: int,
        extras: list[_Extra],
        bad: list[tuple[int, str, str]],
    ) -> np.ndarray:
        """Read the lines the array pass could not classify, one by one; return consumed lines.

        A record with one empty field too many is kept with ``trailing`` set: whether the file
        ends its lines with a delimiter is decided once every record is known.
        """
        consumed = np.zeros(self.s.size, dtype=bool)
        resume = 0
        for k in interesting.tolist():
            if k < resume:
                continue
            line = self.text(k)
            fields, status = split_record(line, sep)
            if status == _OK:
                extra = _Extra.of(k, line, fields, width)
                if extra is None:
                    bad.append((k, line, WRONG_FIELD_COUNT))
                elif "\x00" in line:  # a value cannot be stored as read: reject the record
                    bad.append((k, line, NUL_BYTE))
                else:
                    extras.append(extra)
                continue
            if status != _OPEN:
                bad.append((k, line, MISPLACED_QUOTE))
                continue
            end = self._closing_line(k, odd)
            if end is not None:
                span = self.data[self.s[k] : self.e[end]].decode("utf-8")
                fields, status = split_record(span, sep)
                extra = _Extra.of(k, span, fields, width) if status == _OK else None
                if extra is not None and len(extra.fields) == width:  # a whole multi-line record
                    if "\x00" in span:
                        bad.append((k, span, NUL_BYTE))
                    else:
                        extras.append(extra)
                    consumed[k + 1 : end + 1] = True
                    resume = end + 1
                    continue
            bad.append((k, line, UNBALANCED_QUOTE))
        return consumed

    def _closing_line(self, k: int, odd: np.ndarray | None) -> int | None:
        """Return the line that may close a quoted field opened on line ``k``, within limits."""
        if odd is None:
            limit = min(k + MAX_RECORD_LINES, self.s.size)
            candidates = range(k + 1, limit)
            for j in candidates:
                if self.data[self.s[j] : self.e[j]].count(b'"') % 2:
                    return j if self.e[j] - self.s[k] <= MAX_RECORD_BYTES else None
            return None
        idx = int(np.searchsorted(odd, k, side="right"))
        if idx >= odd.size:
            return None
        j = int(odd[idx])
        if j - k >= MAX_RECORD_LINES or self.e[j] - self.s[k] > MAX_RECORD_BYTES:
            return None
        return j

    def _parse_clean(self, keep: np.ndarray, sep: str, ncols: int) -> pd.DataFrame:
        """Parse the clean lines in one call of pandas' C parser."""
        n_keep = int(keep.sum())
        if n_keep == 0:
            return pd.DataFrame({i: pd.Series([], dtype=str) for i in range(ncols)})
        if n_keep == keep.size:
            body = self.data[self.s[0] :]
        else:
            flags = np.diff(np.concatenate([[0], keep.astype(np.int8), [0]]))
            run_starts = np.flatnonzero(flags == 1)
            run_ends = np.flatnonzero(flags == -1)
            body = b"".join(
                self.data[self.s[a] : self.nexts[b - 1]]
                for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True)
            )
        try:
            frame = pd.read_csv(
                io.BytesIO(body),
                sep=sep,
                header=None,
                names=list(range(ncols)),
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                quoting=csv.QUOTE_MINIMAL,
                doublequote=True,
                engine="c",
                encoding="utf-8",
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            frame = None
        if frame is None or len(frame) != n_keep:  # safety net: never expected
            rows = []
            for i in np.flatnonzero(keep).tolist():
                fields = split_record(self.text(i), sep)[0]
                rows.append((fields + [""] * ncols)[:ncols])
            frame = pd.DataFrame(rows, columns=list(range(ncols)), dtype=str)
        return frame
