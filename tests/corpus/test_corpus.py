"""The corpus of malformed inputs: every case gives its documented outcome, never a bug.

Each case (see ``tests/corpus/README.md``) is written into its own directory next to a copy of
the toy units and run as a user would run ``usm``. Every case asserts its exit code (0 or 2,
never 1), no traceback, its key message or reject reasons, and that every record read was
accepted, rejected with a reason or filtered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.corpus import (
    cases_camden,
    cases_city,
    cases_csv,
    cases_dates,
    cases_interrupts,
    cases_paths,
    cases_records,
    cases_serve,
)
from tests.corpus.corpus import Case, check_outcome, prepare, run_case, snapshot
from tests.corpus.toy import make_units

GROUPS = {
    "csv": cases_csv.CASES,
    "date": cases_dates.CASES,
    "city": cases_city.CASES,
    "path": cases_paths.CASES,
    "record": cases_records.CASES,
    "serve": cases_serve.CASES,
    "interrupt": cases_interrupts.CASES,
    "camden": cases_camden.CASES,
}
ALL = [case for cases in GROUPS.values() for case in cases]


@pytest.fixture(scope="session")
def toy_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy city's four 1 km squares, written once per session."""
    return make_units(tmp_path_factory.mktemp("toy"))


def test_corpus_is_well_formed():
    names = [c.name for c in ALL]
    assert len(names) == len(set(names)), "case names must be unique"
    for group, cases in GROUPS.items():
        for case in cases:
            assert re.fullmatch(rf"{group}-[a-z0-9]+(-[a-z0-9]+)*", case.name), case.name
            assert case.exit != 1, f"{case.name}: exit 1 is a bug, never an expectation"
    assert len(ALL) >= 70


@pytest.mark.parametrize("case", [c.param() for c in ALL])
def test_case(case: Case, toy_units: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    directory = tmp_path / "case"
    prepare(case, directory, toy_units)
    before = snapshot(directory)
    outcome = run_case(case, directory, monkeypatch)
    check_outcome(case, directory, outcome)
    if case.command == "validate" and case.run is None:
        assert snapshot(directory) == before, "validate wrote something"
