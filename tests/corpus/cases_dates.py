"""Dates: implausible years, words, bare years, month columns, split dates, formats, ranges."""

from __future__ import annotations

import re

from tests.corpus.corpus import Case
from tests.corpus.toy import COLUMNS, city, csv, layer, rows

R = rows(10)
#: The same ten rows with a month (``2024-03``) instead of a datetime.
MONTHS = [re.sub(r"(\d{4}-\d{2})-\d{2}T10:00", r"\1", r) for r in R]
MONTH_COLUMNS = COLUMNS.replace('datetime = "date"', 'month = "date"')
UNPARSEABLE = "unparseable date"
OUTSIDE = "date outside the plausible range"


def one_bad(
    value: str,
    reason: str,
    *,
    month: bool = False,
    fmt: str = "",
    bug: str | None = None,
    name: str | None = None,
) -> Case:
    """Ten good rows and one whose date is ``value``: that one is rejected for ``reason``."""
    slug = name or re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    bad = f"D1,-0.134636,51.526572,{value},Robbery"
    return Case(
        f"date-{'month' if month else 'datetime'}-{slug}",
        files={"crimes.csv": csv([*(MONTHS if month else R), bad])},
        city=city(layer(columns=MONTH_COLUMNS if month else COLUMNS, fmt=fmt)),
        layers={"crimes": {"read": 11, "accepted": 10, "rejected": 1}},
        reasons={"crimes": {reason: 1}},
        bug=bug,
    )


PARTS_HEADER = "id,lon,lat,y,m,d,category"
PARTS_COLUMNS = COLUMNS.replace(
    'datetime = "date"', 'datetime = { year = "y", month = "m", day = "d" }'
)
PARTS = [f"S{i},-0.134636,51.526572,2024,3,{i},Robbery" for i in range(1, 11)]


def parts(slug: str, y: str, m: str, d: str, reason: str | None) -> Case:
    """A date split over year, month and day columns; ``reason`` None means accepted."""
    return Case(
        f"date-parts-{slug}",
        files={
            "crimes.csv": csv(
                [*PARTS, f"B1,-0.134636,51.526572,{y},{m},{d},Robbery"], header=PARTS_HEADER
            )
        },
        city=city(layer(columns=PARTS_COLUMNS)),
        layers={"crimes": {"read": 11, "accepted": 11 if reason is None else 10}},
        reasons={"crimes": {reason: 1} if reason else {}},
    )


CASES = [
    # datetime column, no format: every one of these is a reject with a reason
    one_bad("3000-01", UNPARSEABLE),
    one_bad("0000-01", UNPARSEABLE),
    one_bad("9999-12-31", OUTSIDE),
    one_bad("2200-05-01", OUTSIDE),
    one_bad("1899-12-31", OUTSIDE),
    one_bad("June", UNPARSEABLE),
    one_bad("now", UNPARSEABLE),
    one_bad("today", UNPARSEABLE),
    one_bad("tomorrow", UNPARSEABLE),
    one_bad("2019", UNPARSEABLE, name="bare-year"),
    one_bad("2024-13-01", UNPARSEABLE, name="month-13"),
    one_bad("2024-02-31", UNPARSEABLE, name="31-february"),
    one_bad("2024-03-01T25:00", UNPARSEABLE, name="hour-25"),
    one_bad("45000", UNPARSEABLE, name="excel-serial"),
    one_bad(
        "March 02T10:00",
        UNPARSEABLE,
        fmt="date_range = [1700-01-01, 2260-12-31]",
        name="no-year-with-time",
    ),
    # datetime column read with a format
    one_bad(
        "now",
        UNPARSEABLE,
        fmt='datetime_format = "%Y-%m-%dT%H:%M"',
        name="now-with-format",
    ),
    one_bad(
        "today",
        UNPARSEABLE,
        fmt='datetime_format = "%Y-%m-%dT%H:%M"',
        name="today-with-format",
    ),
    # month column
    one_bad("3000-01", OUTSIDE, month=True),
    one_bad("0000-01", OUTSIDE, month=True),
    one_bad("2200-05", OUTSIDE, month=True, name="year-2200"),
    one_bad("June", UNPARSEABLE, month=True),
    one_bad("2019", UNPARSEABLE, month=True, name="bare-year"),
    one_bad("2024-13", UNPARSEABLE, month=True, name="month-13"),
    one_bad("tomorrow", UNPARSEABLE, month=True),
    one_bad("now", UNPARSEABLE, month=True),
    one_bad("today", UNPARSEABLE, month=True),
    # formats the city file refuses
    Case(
        "date-month-format-without-year",
        files={"crimes.csv": csv(MONTHS)},
        city=city(layer(columns=MONTH_COLUMNS, fmt='month_format = "%m"')),
        exit=2,
        says=("layers.crimes.format.month_format", "must contain a year"),
    ),
    Case(
        "date-datetime-format-without-day",
        files={"crimes.csv": csv(R)},
        city=city(layer(fmt='datetime_format = "%Y-%m"')),
        exit=2,
        says=("layers.crimes.format.datetime_format", "must contain a year, a month and a day"),
    ),
    Case(
        "date-datetime-and-month-both-mapped",
        files={"crimes.csv": csv(R)},
        city=city(layer(columns=COLUMNS + 'month = "date"\n')),
        exit=2,
        says=("either 'datetime' or 'month'",),
    ),
    # split dates
    parts("month-13", "2024", "13", "1", UNPARSEABLE),
    parts("31-february", "2024", "2", "31", UNPARSEABLE),
    parts("29-february-leap-year", "2024", "2", "29", None),
    parts("29-february-2023", "2023", "2", "29", UNPARSEABLE),
    parts("day-0", "2024", "1", "0", UNPARSEABLE),
    parts("year-0", "0", "1", "1", UNPARSEABLE),
    parts("fractional-day", "2024", "1", "1.5", UNPARSEABLE),
    parts("month-name", "2024", "March", "1", UNPARSEABLE),
    parts("missing-month", "2024", "", "1", "missing date"),
    Case(
        "date-parts-with-a-gap",
        files={"crimes.csv": csv(PARTS, header=PARTS_HEADER)},
        city=city(
            layer(
                columns=COLUMNS.replace('datetime = "date"', 'datetime = { year = "y", day = "d" }')
            )
        ),
        exit=2,
        says=("layers.crimes.columns.datetime",),
    ),
    # date_range
    Case(
        "date-range-narrowed",
        # the rows fall on 2 to 11 March: three are before the 5th
        files={"crimes.csv": csv(R)},
        city=city(layer(fmt="date_range = [2024-03-05, 2024-03-20]")),
        layers={"crimes": {"read": 10, "accepted": 7, "rejected": 3}},
        reasons={"crimes": {"outside the plausible range 2024-03-05 to 2024-03-20": 3}},
    ),
    Case(
        "date-range-reversed",
        files={"crimes.csv": csv(R)},
        city=city(layer(fmt="date_range = [2024-03-20, 2024-03-05]")),
        exit=2,
        says=("layers.crimes.format.date_range", "[earliest, latest]"),
    ),
    Case(
        "date-range-one-date",
        files={"crimes.csv": csv(R)},
        city=city(layer(fmt="date_range = [2024-03-05]")),
        exit=2,
        says=("layers.crimes.format.date_range",),
    ),
    Case(
        "date-range-excludes-everything",
        files={"crimes.csv": csv(R)},
        city=city(layer(fmt="date_range = [2020-01-01, 2020-12-31]")),
        exit=2,
        says=("none of its 10 rows was accepted", "date outside the plausible range"),
    ),
    Case(
        "date-mostly-unparseable",
        # a wrong date layout on most rows: the layer is refused above max_reject_share
        files={
            "crimes.csv": csv(
                [re.sub(r"2024-03-(\d\d)T10:00", r"\1-2024-03", r) for r in R[:7]] + R[7:]
            )
        },
        city=city(),
        exit=2,
        says=("7 of 10 rows (70%) rejected for one reason: unparseable date", "max_reject_share"),
    ),
    Case(
        "date-mostly-unparseable-share-raised",
        files={
            "crimes.csv": csv(
                [re.sub(r"2024-03-(\d\d)T10:00", r"\1-2024-03", r) for r in R[:7]] + R[7:]
            )
        },
        city=city(layer(extra="max_reject_share = 0.8")),
        layers={"crimes": {"read": 10, "accepted": 3, "rejected": 7}},
        reasons={"crimes": {UNPARSEABLE: 7}},
    ),
]
