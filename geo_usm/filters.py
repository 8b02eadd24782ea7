"""Row filters: one safe subset of SQL ``WHERE`` for every input format.

A layer's ``format.where`` selects the records of a source before they are parsed. The filter is
parsed and evaluated by geo-usm itself, on the table of original values a reader returns (text
for CSV/TSV/Excel, native types for Parquet and vector files), so it means the same for a CSV,
an Excel sheet, a GeoPackage or an OSM PBF extract. Nothing in a filter is ever executed: the
text is tokenised and parsed into a small tree of conditions, and each condition is evaluated
with numpy/pandas over whole columns.

Syntax
------
A subset of SQL ``WHERE`` (the filters written for GDAL/OGR and SQLite keep working)::

    filter     := or_expr
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | predicate
    predicate  := "(" or_expr ")"
                | operand compare operand
                | operand [NOT] IN "(" literal ( "," literal )* ")"
                | operand IS [NOT] NULL
                | operand [NOT] LIKE string
                | operand [NOT] BETWEEN operand AND operand
    compare    := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    operand    := column | literal
    literal    := string | number
    column     := bare name: letters, digits, "_", not starting with a digit; or
                  "double quoted" ("" inside is one ")
    string     := 'single quoted' ('' inside is one ')
    number     := [-] digits [. digits]  |  [-] . digits

Keywords (``AND OR NOT IN IS NULL LIKE BETWEEN``) are case-insensitive; a column named like a
keyword must be double-quoted. ``AND`` binds tighter than ``OR``; ``NOT`` applies to the
condition that follows. There are no functions, arithmetic, comments, ``;`` or sub-queries.

Semantics
---------
- **NULL and three-valued logic.** A value is NULL when it is missing: ``None``, ``NaN``,
  ``NaT``, or a text that is empty or only whitespace (in a CSV every field is text and an empty
  field is NULL). A comparison involving NULL is *unknown*; ``NOT unknown`` is unknown,
  ``unknown AND false`` is false, ``unknown OR true`` is true; a row is kept only when the filter
  is *true*. ``x IS NULL`` is the way to select missing values (``x = ''`` never holds).
- **Text.** Text values are compared as written after stripping surrounding whitespace, case- and
  accent-sensitively, in code-point order (SQLite's ``BINARY`` collation). String literals are
  used as written (not stripped).
- **Numbers.** When either side of a comparison is a number (a numeric literal, or a column of
  numbers or booleans) the comparison is numeric: text is converted with
  :func:`pandas.to_numeric`, and a text that is not a number is unknown (the row is not kept). A
  quoted literal compared with a numeric column must itself be a number (``pop > '5'`` works,
  ``pop = 'high'`` is an error). Booleans are the numbers 1 and 0 (as in SQLite and GDAL).
  Comparisons are made in int64/float64 (integers are exact up to 2**53 when mixed with
  decimals). Numbers are written with a ``.`` decimal point: ``'1,5'`` in a text column is not a
  number.
- **Datetimes.** A datetime column (vector and Parquet sources) is compared with a quoted ISO 8601
  date or date-time, ``date >= '2021-07-01'`` or ``'2021-07-01T12:00:00+01:00'``; a literal
  without offset is read in the column's own time zone. Comparing a datetime column with a
  number, a text column or a non-ISO text is an error.
- **LIKE** matches the whole value: ``%`` is any run of characters (also none), ``_`` exactly one
  character. As in SQLite it ignores case for the ASCII letters only (``'Park' LIKE 'park'`` is
  true, ``'É' LIKE 'é'`` is false); there is no ``ESCAPE`` clause. GDAL's own OGR SQL LIKE is
  case-sensitive since GDAL 3.1, so a pattern that relies on case selects more rows here. LIKE on
  a number matches its text (``5``, ``2.5``, ``5.0`` for a float 5); on a datetime, its local text
  ``YYYY-MM-DD HH:MM:SS`` (``d LIKE '2021-07%'`` is July 2021).
- **IN** is a list of ``=``; **BETWEEN** ``a AND b`` is ``>= a AND <= b`` (both bounds included).
- **Columns** are matched exactly (case-sensitive); an absent column raises
  :class:`UnknownColumnError`, which lists the columns of the table. Columns of other types
  (object columns of Python values, categories...) are compared as their text (``str``).

Differences from GDAL's OGR SQL, where a filter written for it behaves otherwise: OGR SQL
compares texts with ``<``, ``<=``, ``>``, ``>=`` ignoring case (here: code-point order, as SQLite)
and its ``LIKE`` respects case (here: ASCII case ignored, as SQLite, i.e. OGR SQL's ``ILIKE``);
OGR SQL refuses a text column compared with a number (here: numeric comparison). ``=``, ``<>``,
``IN``, ``IS NULL``, ``BETWEEN`` and ``NOT`` select the same rows.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from geo_usm.errors import CityFileError, GeoUsmError

__all__ = [
    "Filter",
    "FilterEvaluationError",
    "FilterSyntaxError",
    "UnknownColumnError",
    "parse_filter",
]

#: Deepest nesting of parentheses a filter may use (bounds the parser's recursion).
MAX_DEPTH = 100
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "BETWEEN"})
_SYNTAX_HINT = (
    "a filter is a subset of SQL WHERE: column = 'text', column > 5, column IN ('a', 'b'), "
    "column IS [NOT] NULL, column [NOT] LIKE '%text%', column BETWEEN 1 AND 5, "
    "combined with AND, OR, NOT and parentheses"
)
_OPERATORS = "=, !=, <>, <, <=, >, >=, IN, NOT IN, IS [NOT] NULL, [NOT] LIKE, [NOT] BETWEEN"
_CHAR_HINTS = {
    ";": "a filter is one condition: ';' and SQL statements are not allowed",
    "&": "write AND",
    "|": "write OR",
    "!": "write NOT, or != for 'not equal'",
    "`": 'quote column names with double quotes, e.g. "Crime type"',
    "[": 'quote column names with double quotes, e.g. "Crime type"',
    "-": "a filter has no arithmetic or comments; a negative number is written -5",
    "+": "a filter has no arithmetic",
    "*": "a filter has no arithmetic",
    "/": "a filter has no arithmetic or comments",
    "%": "'%' is a wildcard inside a LIKE pattern: column LIKE '%text%'",
}
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?"
)


class FilterSyntaxError(CityFileError):
    """A filter's text is not in the filter syntax.

    Attributes
    ----------
    text : str
        The filter as written.
    position : int
        1-based character where the problem is.

    """

    def __init__(self, message: str, *, text: str, position: int, hint: str | None = None):
        self.text = text
        self.position = position
        super().__init__(message, hint=hint)


class FilterEvaluationError(GeoUsmError):
    """A filter does not fit the table it is applied to (a literal of the wrong type)."""


class UnknownColumnError(FilterEvaluationError):
    """A filter names a column that the table does not have.

    Attributes
    ----------
    missing : tuple of str
        The filter's columns absent from the table.
    available : tuple of str
        The table's columns.

    """

    def __init__(
        self, message: str, *, missing: tuple[str, ...], available: tuple[str, ...], hint: str
    ):
        self.missing = missing
        self.available = available
        super().__init__(message, hint=hint)


# --------------------------------------------------------------------------------------------
# Tokens and syntax tree


TokenKind: TypeAlias = Literal["word", "name", "string", "number", "op", "punct", "end"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    value: str  # keyword upper-cased, name/string unescaped, operator/punct as written
    start: int  # 0-based offset in the text
    end: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.value.upper() in words


@dataclass(frozen=True)
class Column:
    """A column reference."""

    name: str
    start: int
    quoted: bool = False


@dataclass(frozen=True)
class Const:
    """A literal: a text or a number."""

    value: str | int | float
    start: int


Operand: TypeAlias = Column | Const


@dataclass(frozen=True)
class Compare:
    """``left <op> right``, op one of ``= != < <= > >=``."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class InList:
    """``operand [NOT] IN (values)``."""

    operand: Operand
    values: tuple[Const, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull:
    """``operand IS [NOT] NULL``."""

    operand: Operand
    negated: bool


@dataclass(frozen=True)
class Like:
    """``operand [NOT] LIKE pattern``."""

    operand: Operand
    pattern: str
    negated: bool


@dataclass(frozen=True)
class Between:
    """``operand [NOT] BETWEEN low AND high``."""

    operand: Operand
    low: Operand
    high: Operand
    negated: bool


@dataclass(frozen=True)
class Not:
    """``NOT condition``."""

    child: Node


@dataclass(frozen=True)
class And:
    """``a AND b AND ...``."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """``a OR b OR ...``."""

    children: tuple[Node, ...]


Node: TypeAlias = Compare | InList | IsNull | Like | Between | Not | And | Or


# --------------------------------------------------------------------------------------------
# Parsing

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<number>-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))
    |(?P<string>'[^']*(?:''[^']*)*')
    |(?P<name>"[^"]*(?:""[^"]*)*")
    |(?P<word>[^\W\d]\w*)
    |(?P<op><>|<=|>=|!=|==|=|<|>)
    |(?P<punct>[(),])
    """,
    re.VERBOSE,
)


def _fail(text: str, start: int, message: str, hint: str | None = None) -> FilterSyntaxError:
    msg = f"{message} at character {start + 1} of: {text}"
    return FilterSyntaxError(msg, text=text, position=start + 1, hint=hint)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == "'":
                hint = "close the text with a single quote; write a quote inside a text as ''"
                raise _fail(text, pos, "unterminated text", hint)
            if ch == '"':
                hint = 'close the column name with a double quote; write a " inside it as ""'
                raise _fail(text, pos, "unterminated column name", hint)
            hint = _CHAR_HINTS.get(ch, f"the operators are {_OPERATORS}")
            raise _fail(text, pos, f"unexpected character {ch!r}", hint)
        kind = m.lastgroup
        end = m.end()
        if kind == "number" and end < len(text) and (text[end] == "." or text[end].isalnum()):
            bad = re.match(r"[\w.]+", text[m.start() :]) or m
            hint = "numbers are written like 12, -3 or 4.5 (no exponent, no thousands separator)"
            raise _fail(text, pos, f"malformed number {bad.group(0)!r}", hint)
        raw = m.group(0)
        if kind == "string":
            tokens.append(_Token("string", raw[1:-1].replace("''", "'"), pos, end))
        elif kind == "name":
            name = raw[1:-1].replace('""', '"')
            if not name:
                raise _fail(text, pos, "empty column name", 'write a name between "quotes"')
            tokens.append(_Token("name", name, pos, end))
        elif kind == "word":
            tokens.append(_Token("word", raw, pos, end))
        elif kind in ("number", "op", "punct"):
            tokens.append(_Token(kind, raw, pos, end))  # type: ignore[arg-type]
        pos = end
    tokens.append(_Token("end", "", len(text), len(text)))
    return tokens


class _Parser:
    """Recursive-descent parser of the grammar in the module docstring."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.opened: list[int] = []  # start of each open parenthesis

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def unexpected(self, tok: _Token, hint: str) -> FilterSyntaxError:
        if tok.kind == "end":
            return _fail(self.text, tok.start, "unexpected end of filter", hint)
        shown = self.text[tok.start : tok.end]
        return _fail(self.text, tok.start, f"unexpected {shown!r}", hint)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            hint = "write a condition such as highway = 'bus_stop', or remove the filter"
            raise FilterSyntaxError("the filter is empty", text=self.text, position=1, hint=hint)
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            if tok.value == ")":
                raise self.unexpected(tok, "this ')' closes no '('")
            raise self.unexpected(tok, "expected AND, OR or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.peek().is_keyword("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.peek().is_keyword("AND"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        negations = 0
        while self.peek().is_keyword("NOT"):
            self.advance()
            negations += 1
        node = self.predicate()
        return Not(node) if negations % 2 else node  # NOT NOT x is x, also for unknown

    def predicate(self) -> Node:
        tok = self.peek()
        if tok.value == "(" and tok.kind == "punct":
            if len(self.opened) >= MAX_DEPTH:
                raise _fail(self.text, tok.start, "parentheses nested too deeply")
            self.advance()
            self.opened.append(tok.start)
            node = self.or_expr()
            close = self.peek()
            if close.kind != "punct" or close.value != ")":
                where = self.opened[-1] + 1
                hint = f"expected AND, OR or ')' to close the '(' at character {where}"
                raise self.unexpected(close, hint)
            self.advance()
            self.opened.pop()
            return node
        left = self.operand()
        tok = self.peek()
        if tok.kind == "op":
            self.advance()
            op = {"==": "=", "<>": "!="}.get(tok.value, tok.value)
            return Compare(op, left, self.operand())
        if tok.is_keyword("IS"):
            self.advance()
            negated = self.peek().is_keyword("NOT")
            if negated:
                self.advance()
            null = self.peek()
            if not null.is_keyword("NULL"):
                hint = "IS is only used in IS NULL and IS NOT NULL; compare values with ="
                raise self.unexpected(null, hint)
            self.advance()
            return IsNull(left, negated)
        negated = tok.is_keyword("NOT")
        if negated:
            self.advance()
            tok = self.peek()
            if not tok.is_keyword("IN", "LIKE", "BETWEEN"):
                raise self.unexpected(tok, "expected IN, LIKE or BETWEEN after NOT")
        if tok.is_keyword("IN"):
            self.advance()
            return InList(left, self.in_list(), negated)
        if tok.is_keyword("LIKE"):
            self.advance()
            pattern = self.peek()
            if pattern.kind != "string":
                raise self.unexpected(pattern, "LIKE takes a quoted pattern such as '%park%'")
            self.advance()
            return Like(left, pattern.value, negated)
        if tok.is_keyword("BETWEEN"):
            self.advance()
            low = self.operand()
            if not self.peek().is_keyword("AND"):
                raise self.unexpected(self.peek(), "expected AND: x BETWEEN low AND high")
            self.advance()
            return Between(left, low, self.operand(), negated)
        if tok.kind == "punct" and tok.value == "(":
            hint = "function calls are not supported; a condition is column = 'value'"
            raise self.unexpected(tok, hint)
        raise self.unexpected(tok, f"expected an operator ({_OPERATORS})")

    def operand(self) -> Operand:
        tok = self.peek()
        if tok.kind == "string":
            self.advance()
            return Const(tok.value, tok.start)
        if tok.kind == "number":
            self.advance()
            number: int | float = float(tok.value) if "." in tok.value else int(tok.value)
            return Const(number, tok.start)
        if tok.kind == "name":
            self.advance()
            return Column(tok.value, tok.start, quoted=True)
        if tok.kind == "word" and tok.value.upper() not in _KEYWORDS:
            self.advance()
            return Column(tok.value, tok.start)
        if tok.is_keyword("NULL"):
            raise self.unexpected(tok, "NULL is only used in IS NULL and IS NOT NULL")
        hint = 'expected a column name, a quoted text or a number (quote a keyword: "in")'
        raise self.unexpected(tok, hint)

    def in_list(self) -> tuple[Const, ...]:
        tok = self.peek()
        if tok.kind != "punct" or tok.value != "(":
            raise self.unexpected(tok, "IN takes a list in parentheses: IN ('a', 'b')")
        self.advance()
        values: list[Const] = []
        while True:
            tok = self.peek()
            if tok.kind not in ("string", "number"):
                raise self.unexpected(tok, "IN takes a list of quoted texts and numbers")
            operand = self.operand()
            assert isinstance(operand, Const)
            values.append(operand)
            tok = self.advance()
            if tok.kind == "punct" and tok.value == ")":
                return tuple(values)
            if tok.kind != "punct" or tok.value != ",":
                raise self.unexpected(tok, "expected ',' or ')' in the IN list")


def _walk(node: Node) -> Iterator[Operand]:
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, And | Or):
            stack.extend(item.children)
        elif isinstance(item, Not):
            stack.append(item.child)
        elif isinstance(item, Compare):
            yield from (item.left, item.right)
        elif isinstance(item, Between):
            yield from (item.operand, item.low, item.high)
        else:
            yield item.operand


def parse_filter(text: str) -> Filter:
    """Parse a row filter.

    Parameters
    ----------
    text
        The filter, in the syntax of :mod:`geo_usm.filters`.

    Returns
    -------
    Filter

    Raises
    ------
    FilterSyntaxError
        If the text is not a filter; the message says what is wrong and at which character.

    """
    root = _Parser(text).parse()
    names = frozenset(o.name for o in _walk(root) if isinstance(o, Column))
    return Filter(text=text, root=root, columns=names)


# --------------------------------------------------------------------------------------------
# Evaluation

Kind: TypeAlias = Literal["text", "number", "datetime"]
#: A truth value over the rows: (true, false) masks; unknown is neither. Arrays or scalars.
Truth: TypeAlias = tuple[Any, Any]
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass
class _Values:
    """An operand's values over the rows, with conversions computed once.

    A text column is held factorised: ``raw`` holds its distinct stripped texts followed by
    ``''`` and ``codes`` the position of each row's text in ``raw`` (``-1``, the final ``''``,
    where NULL). Text operations run once per distinct text and are spread to the rows with
    ``codes``: columns of categories, tags and codes have few distinct values.
    """

    kind: Kind
    label: str  # how messages name it: "column 'x'" or "the literal 'abc'"
    literal: bool
    raw: Any  # numeric array / DatetimeArray / distinct texts, or a scalar for a literal
    null: Any  # bool array, or a numpy bool for a literal
    tz: Any = None
    codes: np.ndarray | None = None
    _cache: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def per_text(self, function: Callable[[Any], Any]) -> Any:
        """Apply a vectorised function to the rows' texts (once per distinct text)."""
        if self.codes is not None:
            return np.asarray(function(self.raw))[self.codes]
        return function(self.text()[0])

    def text(self) -> tuple[Any, Any]:
        """Return the values as stripped text (``''`` where NULL) and the NULL mask."""
        if "text" not in self._cache:
            if self.codes is not None:
                values = self.raw[self.codes]
            elif self.kind == "text" or self.literal:
                values = self.raw if self.kind == "text" else str(self.raw)
            elif self.kind == "number":
                text = pd.Series(self.raw, dtype=object).astype(str).to_numpy(dtype=object)
                values = np.where(self.null, "", text)
            else:
                text = pd.Series(self.raw).dt.strftime("%Y-%m-%d %H:%M:%S")
                values = text.fillna("").to_numpy(dtype=object)
            self._cache["text"] = (values, self.null)
        return self._cache["text"]

    def number(self, other: _Values) -> tuple[Any, Any]:
        """Return the values as numbers and the NULL mask (text that is no number is NULL)."""
        if self.kind == "number":
            return self.raw, self.null
        if self.kind == "datetime":
            raise _type_error(self, other)
        if "number" not in self._cache:
            if self.literal:
                number = pd.to_numeric(pd.Series([self.raw], dtype=object), errors="coerce")
                if number.isna().all():
                    msg = f"{self.label} is not a number but is compared with {other.label}"
                    hint = "compare numbers with numbers: write the number without quotes"
                    raise FilterEvaluationError(msg, hint=hint)
                self._cache["number"] = (number.iloc[0].item(), np.False_)
            else:

                def to_number(text: Any) -> Any:
                    number = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce")
                    if number.dtype not in (np.int64, np.float64):
                        number = number.astype(np.float64)
                    return number.to_numpy()

                values = self.per_text(to_number)
                null = self.null | pd.isna(values)
                self._cache["number"] = (values, null)
        return self._cache["number"]

    def datetime(self, other: _Values) -> tuple[Any, Any]:
        """Return datetime values and NULL mask; a literal is parsed in ``other``'s zone."""
        if self.kind == "datetime":
            return self.raw, self.null
        if not (self.literal and self.kind == "text"):
            raise _type_error(other, self)
        value = str(self.raw).strip()
        if not _ISO_DATETIME.fullmatch(value):
            msg = f"{self.label} is not an ISO 8601 date but is compared with {other.label}"
            raise FilterEvaluationError(
                msg, hint="write dates as '2021-07-01' or '2021-07-01 18:30'"
            )
        try:
            stamp = pd.Timestamp(value)
        except ValueError:
            stamp = None
        if stamp is None or stamp is pd.NaT:
            msg = f"{self.label} is not a valid date but is compared with {other.label}"
            raise FilterEvaluationError(
                msg, hint="write dates as '2021-07-01' or '2021-07-01 18:30'"
            )
        if stamp.tz is None and other.tz is not None:
            stamp = stamp.tz_localize(other.tz)
        elif stamp.tz is not None and other.tz is None:
            msg = f"{self.label} has a time zone but {other.label} has none"
            raise FilterEvaluationError(msg, hint="write the date without an offset")
        return stamp, np.False_


def _type_error(a: _Values, b: _Values) -> FilterEvaluationError:
    msg = f"cannot compare {a.label} ({a.kind}) with {b.label} ({b.kind})"
    hint = "compare a datetime column with a quoted ISO date such as '2021-07-01'"
    return FilterEvaluationError(msg, hint=hint)


def _column_values(name: str, series: pd.Series) -> _Values:
    """Classify a column as number, datetime or text and extract its values and NULL mask."""
    label = f"column {name!r}"
    null = series.isna().to_numpy(dtype=bool)
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_timestamp(dtype.pyarrow_dtype):
        unit, tz = dtype.pyarrow_dtype.unit, dtype.pyarrow_dtype.tz
        series = series.astype(pd.DatetimeTZDtype(unit, tz) if tz else f"datetime64[{unit}]")
        dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        values = series.astype("boolean").to_numpy(np.int64, na_value=0)
        return _Values("number", label, False, values, null)
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_complex_dtype(dtype):
        if ptypes.is_integer_dtype(dtype) and dtype != np.uint64:
            return _Values("number", label, False, series.to_numpy(np.int64, na_value=0), null)
        values = series.to_numpy(np.float64, na_value=np.nan)
        return _Values("number", label, False, values, null)
    if ptypes.is_datetime64_any_dtype(dtype):
        tz = dtype.tz if isinstance(dtype, pd.DatetimeTZDtype) else None
        return _Values("datetime", label, False, series.array, null, tz=tz)
    codes, uniques = pd.factorize(series)  # NULL (None, NaN, NA, NaT) is code -1
    distinct = np.asarray(uniques, dtype=object)
    if ptypes.infer_dtype(distinct, skipna=False) not in ("string", "empty"):
        # other objects (numbers, dates, bytes...) are compared as their text; factorise that
        # text, as 5, 5.0 and True are one value to pandas but three texts
        text = pd.Series(np.where(null, "", series.to_numpy(dtype=object)), dtype=object)
        codes, uniques = pd.factorize(text.astype(str).to_numpy(dtype=object))
        codes[null] = -1
        distinct = np.asarray(uniques, dtype=object)
    stripped = pd.Series(distinct, dtype=object).str.strip().to_numpy(dtype=object)
    raw = np.concatenate([stripped, np.array([""], dtype=object)])
    codes = np.where(raw[codes] == "", -1, codes)  # empty or whitespace-only: NULL
    return _Values("text", label, False, raw, codes < 0, codes=codes)


def _const_values(const: Const) -> _Values:
    kind: Kind = "text" if isinstance(const.value, str) else "number"
    return _Values(kind, f"the literal {const.value!r}", True, const.value, np.False_)


def _like_regex(pattern: str) -> re.Pattern[str]:
    """Translate a LIKE pattern into an anchored regex that cannot backtrack badly.

    The pattern is split at ``%`` into fixed-length pieces (``_`` is one character). The first
    piece must match at the start, the last at the end, and each middle piece is matched at its
    leftmost place after the previous one, inside an atomic group: leftmost matching is optimal
    for fixed-length pieces, and atomic groups keep the match time linear.
    """

    def piece(text: str) -> str:
        out = []
        for ch in text:
            if ch == "_":
                out.append(".")
            elif ch.isascii() and ch.isalpha():
                out.append(f"[{ch.lower()}{ch.upper()}]")
            else:
                out.append(re.escape(ch))
        return "".join(out)

    pieces = [piece(p) for p in pattern.split("%")]
    if len(pieces) == 1:
        body = pieces[0]
    else:
        middle = "".join(f"(?>.*?{p})" for p in pieces[1:-1] if p)
        body = f"{pieces[0]}{middle}.*{pieces[-1]}"
    return re.compile(rf"\A{body}\Z", re.DOTALL)


@dataclass(frozen=True)
class Filter:
    """A parsed row filter; build it with :func:`parse_filter`.

    Attributes
    ----------
    text : str
        The filter as written.
    root : Node
        Its syntax tree.
    columns : frozenset of str
        The columns it reads.

    """

    text: str
    root: Node = field(repr=False)
    columns: frozenset[str] = field(repr=False)

    def __str__(self) -> str:
        return self.text

    def evaluate(self, frame: pd.DataFrame) -> np.ndarray:
        """Return which rows of a table the filter keeps.

        Parameters
        ----------
        frame
            The table of original values (text columns for text sources; numbers, booleans and
            datetimes as a vector or Parquet source gives them).

        Returns
        -------
        numpy.ndarray
            Boolean mask, one entry per row: True where the filter is true (the row is kept),
            False where it is false or unknown.

        Raises
        ------
        UnknownColumnError
            If a column the filter names is not in ``frame``.
        FilterEvaluationError
            If a literal does not fit the column it is compared with (``pop = 'high'`` on a
            numeric column, a non-ISO date against a datetime column).

        """
        self._check_columns(frame)
        columns: dict[str, _Values] = {}

        def values(operand: Operand) -> _Values:
            if isinstance(operand, Const):
                return _const_values(operand)
            if operand.name not in columns:
                series = frame[operand.name]
                if isinstance(series, pd.DataFrame):
                    msg = f"the table has several columns named {operand.name!r}"
                    raise FilterEvaluationError(msg, hint="rename the duplicate columns")
                columns[operand.name] = _column_values(operand.name, series)
            return columns[operand.name]

        true, _ = self._truth(self.root, values)
        return np.broadcast_to(np.asarray(true, dtype=bool), (len(frame),)).copy()

    def _check_columns(self, frame: pd.DataFrame) -> None:
        available = [str(c) for c in frame.columns]
        missing = sorted(c for c in self.columns if c not in frame.columns)
        if not missing:
            return
        names = ", ".join(repr(c) for c in missing)
        msg = (
            f"the filter {self.text!r} uses column(s) {names} that the table does not have; "
            f"its columns are: {', '.join(available)}"
        )
        hints = []
        lower = {c.lower(): c for c in available}
        for name in missing:
            close = lower.get(name.lower()) or next(
                iter(difflib.get_close_matches(name, available, n=1)), None
            )
            if close:
                hints.append(f"did you mean {close!r} instead of {name!r}?")
        if any(o.quoted for o in _walk(self.root) if isinstance(o, Column) and o.name in missing):
            hints.append("text values are written in single quotes: highway = 'bus_stop'")
        hint = " ".join(hints) or 'column names are case-sensitive; quote names with spaces: "a b"'
        raise UnknownColumnError(msg, missing=tuple(missing), available=tuple(available), hint=hint)

    def _truth(self, node: Node, values: Callable[[Operand], _Values]) -> Truth:
        if isinstance(node, And):
            true, false = self._truth(node.children[0], values)
            for child in node.children[1:]:
                t, f = self._truth(child, values)
                true, false = true & t, false | f
            return true, false
        if isinstance(node, Or):
            true, false = self._truth(node.children[0], values)
            for child in node.children[1:]:
                t, f = self._truth(child, values)
                true, false = true | t, false & f
            return true, false
        if isinstance(node, Not):
            true, false = self._truth(node.child, values)
            return false, true
        if isinstance(node, Compare):
            return _compare(node.op, values(node.left), values(node.right))
        if isinstance(node, InList):
            item = values(node.operand)
            true, false = _compare("=", item, _const_values(node.values[0]))
            for const in node.values[1:]:
                t, f = _compare("=", item, _const_values(const))
                true, false = true | t, false & f
            return (false, true) if node.negated else (true, false)
        if isinstance(node, Between):
            item = values(node.operand)
            t1, f1 = _compare(">=", item, values(node.low))
            t2, f2 = _compare("<=", item, values(node.high))
            true, false = t1 & t2, f1 | f2
            return (false, true) if node.negated else (true, false)
        if isinstance(node, IsNull):
            null = values(node.operand).null
            return (~null, null) if node.negated else (null, ~null)
        item = values(node.operand)
        rx = _like_regex(node.pattern)
        if item.literal:
            match: Any = rx.match(item.text()[0]) is not None
        else:
            match = item.per_text(
                lambda text: pd.Series(text, dtype=object).str.match(rx).to_numpy(dtype=bool)
            )
        true, false = match & ~item.null, ~match & ~item.null
        return (false, true) if node.negated else (true, false)


def _compare(op: str, a: _Values, b: _Values) -> Truth:
    """Compare two operands: as datetimes, else as numbers, else as text (see the module doc)."""
    if "datetime" in (a.kind, b.kind):
        va, na = a.datetime(b) if a.kind != "datetime" else (a.raw, a.null)
        vb, nb = b.datetime(a) if b.kind != "datetime" else (b.raw, b.null)
        if a.kind == b.kind and (a.tz is None) != (b.tz is None):
            raise FilterEvaluationError(
                f"cannot compare {a.label} and {b.label}: only one has a time zone"
            )
    elif "number" in (a.kind, b.kind):
        va, na = a.number(b)
        vb, nb = b.number(a)
    elif b.literal and not a.literal:  # compare each distinct text once
        result = a.per_text(lambda text: _COMPARE[op](text, b.raw))
        return _truth_of(np.asarray(result, dtype=bool), a.null)
    elif a.literal and not b.literal:
        result = b.per_text(lambda text: _COMPARE[op](a.raw, text))
        return _truth_of(np.asarray(result, dtype=bool), b.null)
    else:
        va, na = a.text()
        vb, nb = b.text()
    return _truth_of(np.asarray(_COMPARE[op](va, vb), dtype=bool), na | nb)


def _truth_of(result: Any, null: Any) -> Truth:
    """Combine a comparison's result with the NULL mask of its operands."""
    known = ~null
    return result & known, ~result & known
