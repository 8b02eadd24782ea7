"""Property tests of the CSV reader: every physical line is accounted for, values are exact.

Files are generated with any mix of delimiters, quotes, CRLF/LF/CR line breaks (between records
and inside quoted fields), trailing delimiters, blank lines and encodings. The reader must return
``n_read`` equal to the number of data records and raise nothing but ``InputError``. Well-formed
files are also read with GDAL (pyogrio's CSV driver) as an independent reader.
"""

import re

import pandas as pd
import pyogrio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_usm.errors import InputError
from geo_usm.io import read_source
from geo_usm.io.text import MISPLACED_QUOTE, UNBALANCED_QUOTE, WRONG_FIELD_COUNT

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DELIMITERS = [",", ";", "\t", "|"]
NEWLINES = ["\n", "\r\n", "\r"]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]
BREAK = re.compile(r"\r\n|\r|\n")


#: Field text: letters, digits, spaces, quotes, every delimiter, line breaks and accents.
def _texts(tokens, min_size=0, max_size=8):
    return st.lists(st.sampled_from(tokens), min_size=min_size, max_size=max_size).map("".join)


field_text = _texts([*'aZ1 "é,;\t|\n\r', "\r\n", "ü"])


def _quote(value: str, sep: str, always: bool) -> str:
    if always or any(c in value for c in (sep, '"', "\r", "\n")) or value != value.strip(" \t"):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def well_formed(draw):
    sep = draw(st.sampled_from(DELIMITERS))
    width = draw(st.integers(2, 5))
    names = [f"c{i}" for i in range(width)]
    rows = draw(st.lists(st.lists(field_text, min_size=width, max_size=width), max_size=12))
    quote_all = draw(st.booleans())
    trailing = draw(st.booleans())
    newline_choice = st.sampled_from(NEWLINES)
    lines = [sep.join(_quote(n, sep, quote_all) for n in names)]
    for row in rows:
        for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
            lines.append(draw(st.sampled_from(["", "  "])))  # blank lines are not records
        text = sep.join(_quote(v, sep, quote_all) for v in row)
        lines.append(text + (sep if trailing else ""))
    out = ""
    for line in lines:
        out += line + draw(newline_choice)
    if draw(st.booleans()):
        out = out.rstrip("\r\n")  # no line break after the last record
    encoding = draw(st.sampled_from(ENCODINGS))
    explicit = draw(st.booleans())
    return out, sep, names, rows, encoding, explicit


def _write(tmp_path_factory, text: str, encoding: str, name: str = "t.csv"):
    path = tmp_path_factory.mktemp("csv") / name
    path.write_bytes(text.encode(encoding))
    return path


@SETTINGS
@given(case=well_formed())
def test_well_formed_files_read_exactly(tmp_path_factory, case):
    text, sep, names, rows, encoding, explicit = case
    path = _write(tmp_path_factory, text, encoding)
    declared = "utf-8" if encoding == "utf-8-sig" else encoding
    raw = read_source(path, delimiter=sep if explicit else None, encoding=declared)
    assert raw.malformed == []
    assert raw.n_read == len(rows)
    assert list(raw.frame.columns) == names
    assert raw.frame.astype(object).values.tolist() == rows
    assert raw.numbers.tolist() == list(range(1, len(rows) + 1))


@st.composite
def corrupted(draw):
    """Simple rows (no quotes) among which some are broken in a known way."""
    sep = draw(st.sampled_from(DELIMITERS))
    width = draw(st.integers(2, 4))
    simple = st.text(alphabet="abcXYZ019 ", min_size=1, max_size=6).map(lambda s: "v" + s)
    kinds = st.sampled_from(["good", "good", "good", "stray", "literal", "junk", "extra"])
    rows = []
    for _ in range(draw(st.integers(1, 15))):
        values = draw(st.lists(simple, min_size=width, max_size=width))
        kind = draw(kinds)
        col = draw(st.integers(0, width - 1))
        cells = list(values)
        if kind == "stray":  # an opening quote never closed
            cells[col] = '"' + cells[col]
        elif kind == "literal":  # a quote inside an unquoted field is an ordinary character
            cells[col] = cells[col][:1] + '"' + cells[col][1:]
            values = cells
        elif kind == "junk":  # something after a closing quote
            cells[col] = '"' + cells[col][:1] + '"' + cells[col][1:]
        elif kind == "extra":
            cells.append("vextra")
        rows.append((kind, sep.join(cells), values))
    newline = draw(st.sampled_from(NEWLINES))
    header = sep.join(f"c{i}" for i in range(width))
    text = newline.join([header] + [line for _, line, _ in rows]) + newline
    return text, sep, rows, draw(st.sampled_from(ENCODINGS))


@SETTINGS
@given(case=corrupted())
def test_broken_rows_are_rejected_one_by_one(tmp_path_factory, case):
    text, sep, rows, encoding = case
    path = _write(tmp_path_factory, text, encoding)
    declared = "utf-8" if encoding == "utf-8-sig" else encoding
    raw = read_source(path, delimiter=sep, encoding=declared)
    assert raw.n_read == len(rows)
    reasons = {"stray": UNBALANCED_QUOTE, "junk": MISPLACED_QUOTE, "extra": WRONG_FIELD_COUNT}
    want_bad = [
        (i + 1, line, reasons[kind]) for i, (kind, line, _) in enumerate(rows) if kind in reasons
    ]
    assert raw.malformed == want_bad
    good = [(i + 1, values) for i, (kind, _, values) in enumerate(rows) if kind not in reasons]
    assert raw.numbers.tolist() == [n for n, _ in good]
    assert raw.frame.astype(object).values.tolist() == [v for _, v in good]
    assert raw.lines.tolist() == list(range(2, len(rows) + 2))


garbage = _texts([*'a1 "\t,;|\n\r', "\r\n", '""', "é"], max_size=120)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    body=garbage,
    sep=st.sampled_from(DELIMITERS),
    encoding=st.sampled_from(ENCODINGS),
    explicit=st.booleans(),
)
def test_any_text_is_accounted_for_line_by_line(tmp_path_factory, body, sep, encoding, explicit):
    header = sep.join(["c0", "c1", "c2"])
    text = header + "\n" + body
    path = _write(tmp_path_factory, text, encoding)
    declared = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        raw = read_source(path, delimiter=sep if explicit else None, encoding=declared)
    except InputError:
        return
    physical = BREAK.split(text)
    if text.endswith(("\n", "\r")):
        physical = physical[:-1]
    blank_chars = " \t".replace(raw.delimiter, "")
    is_blank = [line.strip(blank_chars) == "" for line in physical]
    starts = raw.lines.tolist() if raw.lines is not None else []
    assert len(starts) == raw.n_read
    assert starts == sorted(set(starts))
    # every line after the header up to the first record is blank
    first = starts[0] if starts else len(physical) + 1
    assert all(is_blank[1 : first - 1])
    bad = {n: (t, why) for n, t, why in raw.malformed}
    rows = dict(zip(raw.numbers.tolist(), raw.frame.astype(object).values.tolist(), strict=True))
    assert set(bad) | set(rows) == set(range(1, raw.n_read + 1))
    for r, start in enumerate(starts, start=1):
        stop = starts[r] if r < len(starts) else len(physical) + 1
        if r in bad:
            own = 1 + len(BREAK.findall(bad[r][0]))
            assert bad[r][0].startswith(physical[start - 1])
        else:
            own = 1 + sum(len(BREAK.findall(v)) for v in rows[r])
        assert stop - start >= own
        assert all(is_blank[start - 1 + own : stop - 1]), (r, start, own, stop)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    sep=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    rows=st.lists(
        st.lists(
            _texts([*'aZ1 "é,;\t\n', "\r\n"], min_size=1),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=10,
    ),
    quote_all=st.booleans(),
)
def test_values_equal_gdal_csv_driver(tmp_path_factory, sep, newline, rows, quote_all):
    names = ["alpha", "beta", "gamma"]
    lines = [sep.join(names)] + [sep.join(_quote(v, sep, quote_all) for v in row) for row in rows]
    path = _write(tmp_path_factory, newline.join(lines) + newline, "utf-8")
    raw = read_source(path, delimiter=sep)
    gdal = pyogrio.read_dataframe(path, read_geometry=False)
    assert list(gdal.columns) == names
    # GDAL turns a CRLF inside a quoted field into LF; geo-usm keeps the text as written.
    ours = raw.frame.astype(object).map(lambda v: v.replace("\r\n", "\n"))
    theirs = pd.DataFrame(gdal).astype(object).where(gdal.notna(), "")
    assert ours.values.tolist() == theirs.values.tolist()
    assert raw.n_read == len(gdal) == len(rows)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_quoted_line_breaks_of_every_kind(tmp_path, encoding):
    text = 'id;note\r\n1;"one\ntwo"\r\n2;"three\r\nfour"\r\n3;"five\rsix"\r\n\r\n4;plain\r\n'
    path = tmp_path / "notes.csv"
    path.write_bytes(text.encode(encoding))
    declared = "utf-8" if encoding == "utf-8-sig" else encoding
    raw = read_source(path, encoding=declared)
    assert raw.n_read == 4
    assert raw.malformed == []
    assert raw.frame["note"].tolist() == ["one\ntwo", "three\r\nfour", "five\rsix", "plain"]
    assert raw.lines.tolist() == [2, 4, 6, 9]
