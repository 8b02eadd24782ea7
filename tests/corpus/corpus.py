"""The corpus machinery: what a case is, how it is run, and what every case must satisfy.

A :class:`Case` is declarative: files to write (text or bytes), a city file, a command and the
outcome it must produce. :func:`run_case` writes the case into its own directory next to a copy
of the toy units and runs the command as a user would:

* in-process through the real ``usm`` command (click's runner: the same exit codes and messages
  as the console script, without starting Python again), which is fast; the
  :class:`~geo_usm.pipeline.Result` is caught on its way to the CLI so that the per-layer
  accounting can be checked;
* or, with ``subprocess=True``, as ``python -m geo_usm.cli ...`` with a timeout (and an
  address-space limit with ``memory_limit``): for devices that could block or exhaust the test
  process, for ``usm serve`` and for signals.

:func:`check_outcome` holds the promises every case is held to (see the README in this folder).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyogrio
import pytest
from click.testing import CliRunner

USM = [sys.executable, "-m", "geo_usm.cli"]
#: Exit codes a case may expect: success, a user's problem, Ctrl+C, SIGTERM. Never 1 (a bug).
ALLOWED_EXITS = (0, 2, 128 + signal.SIGINT, 128 + signal.SIGTERM)
#: Default ceiling on the whole of stderr when a command refuses (one clear message).
MAX_MESSAGE = 3000


@dataclass(frozen=True)
class Case:
    """One malformed (or tricky) input and the outcome it must produce.

    Attributes
    ----------
    name
        The test id: ``<group>-<what>``, lower-case words joined by ``-``, unique in the
        corpus (``pytest tests/corpus -k csv-`` runs a group).
    files
        Files to write, relative to the case directory: text (written as UTF-8) or bytes.
    city
        The city file's text (``city.toml``); ``None`` writes none.
    command
        ``validate``, ``build`` or ``serve``.
    args
        Further arguments; ``{dir}`` is the case directory. ``build`` gets
        ``--out {dir}/out`` unless ``--out`` is given.
    target
        The command's first argument (default ``{dir}/city.toml``; ``{dir}/out`` for
        ``serve``). ``serve`` run in-process cannot start a server: it fails the case.
    setup
        Called with the case directory after the files are written: FIFOs, symlinks, vector
        files, a previous build...
    env
        Environment variables set for the command (``USM_*`` settings of ``usm serve``).
    exit
        Expected exit code: 0 or 2 (130/143 for signals); 1 is never expected.
    says
        Substrings the output must contain: stderr when the exit code is not 0, else stdout.
    names
        A substring the refusal must contain to name the file at fault (default: the case
        directory, i.e. a path of the case); ``""`` skips it (for ``--port``, which names no
        file, give the key instead).
    layers
        Expected accounting per layer: ``{"crimes": {"read": 11, "accepted": 10, ...}}`` (any
        subset of read, accepted, rejected, filtered, snapped).
    reasons
        Expected rejects per layer: ``{"crimes": {"unbalanced quote": 1}}``, substring of the
        reason -> number. Exhaustive: every reject must match one of the substrings.
    notes
        Substrings that must appear in a layer's notes (build summary).
    max_message
        Ceiling on the length of stderr when refused.
    hint
        A refusal must say what to do: a hint line (``  -> ...``). ``False`` for click's own
        usage errors, which end with ``Try 'usm ... --help'``.
    subprocess, timeout, memory_limit
        Run as a child process, killed after ``timeout`` seconds, with its address space limited
        to ``memory_limit`` bytes.
    run
        Replaces the command entirely: called with the case directory, returns an
        :class:`Outcome` (interrupts and other multi-step scenarios).
    check
        Extra assertions, called with the case directory and the outcome.
    bug
        A known bug: the case is marked ``xfail(strict=True)`` with this reason.

    """

    name: str
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    city: str | None = None
    command: str = "validate"
    args: tuple[str, ...] = ()
    target: str = "{dir}/city.toml"
    setup: Callable[[Path], None] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    exit: int = 0
    says: tuple[str, ...] = ()
    names: str | None = None
    layers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    reasons: Mapping[str, Mapping[str, int]] | None = None
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_message: int = MAX_MESSAGE
    hint: bool = True
    subprocess: bool = False
    timeout: float = 60.0
    memory_limit: int | None = None
    run: Callable[[Path], Outcome] | None = None
    check: Callable[[Path, Outcome], None] | None = None
    bug: str | None = None

    def param(self) -> Any:
        """Return the pytest parameter (id = name; xfail when it shows a known bug)."""
        marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {self.bug}")] if self.bug else []
        return pytest.param(self, id=self.name, marks=marks)


@dataclass
class Outcome:
    """What a command did: exit code, output, and the build's result when in-process."""

    exit: int
    stdout: str
    stderr: str
    result: Any = None
    seconds: float = 0.0
    timed_out: bool = False
    caught: list[str] = field(default_factory=list)


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> None:
    """Write a case's files (text as UTF-8, exactly; bytes as they are)."""
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))


def argv(case: Case, directory: Path) -> list[str]:
    """Return the command line of a case (without the program)."""
    args = [a.replace("{dir}", str(directory)) for a in case.args]
    target = case.target.replace("{dir}", str(directory))
    if case.command == "serve" and case.target == "{dir}/city.toml":
        target = str(directory / "out")
    if case.command == "build" and "--out" not in args:
        args += ["--out", str(directory / "out")]
    return [case.command, target, *args]


def run_in_process(arguments: list[str], monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Run ``usm`` in this process, catching the pipeline's result on its way to the CLI."""
    import geo_usm.pipeline as pipeline
    from geo_usm.cli import main

    caught: dict[str, Any] = {}

    def catching(func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caught["result"] = result = func(*args, **kwargs)
            return result

        return wrapper

    monkeypatch.setattr(pipeline, "validate", catching(pipeline.validate))
    monkeypatch.setattr(pipeline, "build", catching(pipeline.build))
    term = signal.getsignal(signal.SIGTERM)  # `usm build` installs its own handler
    t = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            r = CliRunner().invoke(main, arguments, catch_exceptions=True)
    finally:
        signal.signal(signal.SIGTERM, term)
    stderr = r.stderr
    # What the console script would print: a Python warning line, or an escaped traceback.
    for w in seen:
        stderr += f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n"
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        stderr += f"Traceback (escaped the CLI): {type(r.exception).__name__}: {r.exception}\n"
    return Outcome(
        exit=r.exit_code,
        stdout=r.stdout,
        stderr=stderr,
        result=caught.get("result"),
        seconds=time.perf_counter() - t,
        caught=[str(w.message) for w in seen],
    )


def run_subprocess(
    arguments: list[str],
    *,
    cwd: Path,
    timeout: float,
    memory_limit: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``python -m geo_usm.cli`` with a timeout (a hang is an outcome, not a stuck suite)."""

    def limit() -> None:  # pragma: no cover - runs in the child
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    t = time.perf_counter()
    try:
        r = subprocess.run(
            [*USM, *arguments],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            preexec_fn=limit,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return Outcome(-1, out, err, seconds=timeout, timed_out=True)
    return Outcome(r.returncode, r.stdout, r.stderr, seconds=time.perf_counter() - t)


def prepare(case: Case, directory: Path, units: Path) -> None:
    """Create the case directory: the toy units, the case's files, its city file, its setup."""
    directory.mkdir(parents=True)
    shutil.copyfile(units, directory / "units.gpkg")
    write_files(directory, case.files)
    if case.city is not None:
        (directory / "city.toml").write_bytes(case.city.encode("utf-8"))
    if case.setup is not None:
        case.setup(directory)


def run_case(case: Case, directory: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Run a prepared case and return its outcome."""
    if case.run is not None:
        return case.run(directory)
    arguments = argv(case, directory)
    if case.subprocess:
        return run_subprocess(
            arguments,
            cwd=directory,
            timeout=case.timeout,
            memory_limit=case.memory_limit,
            env=case.env,
        )
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.command == "serve":
        import uvicorn

        def started(self: Any, *args: Any, **kwargs: Any) -> None:
            msg = "the server started: usm serve did not refuse"
            raise RuntimeError(msg)

        monkeypatch.setattr(uvicorn.Server, "run", started)  # never block the test process
    return run_in_process(arguments, monkeypatch)


def snapshot(directory: Path) -> set[str]:
    """Every path below a directory (symlinks not followed), to prove nothing was written."""
    out = set()
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(root, name), directory))
    return out


def check_outcome(case: Case, directory: Path, outcome: Outcome) -> None:
    """Assert what every case promises, then the case's own expectations."""
    shown = f"\n--- stdout ---\n{outcome.stdout[-3000:]}\n--- stderr ---\n{outcome.stderr[-3000:]}"
    assert case.exit in ALLOWED_EXITS, f"a case may not expect exit {case.exit}"
    assert not outcome.timed_out, f"timed out after {case.timeout:.0f} s (hangs){shown}"
    assert outcome.exit != 1, f"exit 1: an internal error (a bug){shown}"
    assert outcome.exit == case.exit, f"exit {outcome.exit}, expected {case.exit}{shown}"
    assert "Traceback" not in outcome.stderr, f"a traceback for a user's mistake{shown}"
    assert "Traceback" not in outcome.stdout, f"a traceback for a user's mistake{shown}"
    assert "Warning: " not in outcome.stderr, f"a Python warning reached the user{shown}"
    text = outcome.stdout if outcome.exit == 0 else outcome.stderr
    for needle in case.says:
        assert needle in text, f"the output does not say {needle!r}{shown}"
    if outcome.exit == 2:
        assert len(outcome.stderr) <= case.max_message, (
            f"the message is {len(outcome.stderr):,} characters (at most {case.max_message:,})"
            f"{shown}"
        )
        if case.hint:
            assert "\n  -> " in outcome.stderr, f"the message does not say what to do{shown}"
        names = str(directory) if case.names is None else case.names
        assert names in outcome.stderr, f"the message does not name {names!r}{shown}"
    if outcome.result is not None:
        check_accounting(case, directory, outcome)
    elif case.layers or case.reasons or case.notes:
        manifest = directory / "out" / "public" / "manifest.json"
        assert manifest.is_file(), "the case expects per-layer accounting but nothing was built"
        check_manifest_layers(case, json.loads(manifest.read_text(encoding="utf-8")))
    if case.check is not None:
        case.check(directory, outcome)


def check_accounting(case: Case, directory: Path, outcome: Outcome) -> None:
    """Every record read is accepted, rejected with a reason, or filtered; reasons as expected."""
    reports = {r.name: r for r in outcome.result.layers}
    for name, r in reports.items():
        assert r.read == r.accepted + r.rejected + r.filtered, (
            f"layer {name}: read {r.read} != accepted {r.accepted} + rejected {r.rejected} "
            f"+ filtered {r.filtered}"
        )
        assert sum(r.rejects_by_reason.values()) == r.rejected, (name, r.rejects_by_reason)
    as_dicts = {
        name: {
            **r.as_dict(),
            "rejects_by_reason": r.rejects_by_reason,
            "notes": r.notes,
        }
        for name, r in reports.items()
    }
    check_layers(case, as_dicts)
    if case.command == "build" and outcome.exit == 0:
        manifest = json.loads(
            (directory / "out" / "public" / "manifest.json").read_text(encoding="utf-8")
        )
        check_manifest_layers(case, manifest)
        check_records(directory / "out" / "private" / "records.gpkg", reports)


def check_manifest_layers(case: Case, manifest: dict[str, Any]) -> None:
    """The manifest's per-layer accounting adds up and matches the case."""
    layers = manifest["layers"]
    for name, entry in layers.items():
        total = entry["accepted"] + entry["rejected"] + entry.get("filtered", 0)
        assert entry["read"] == total, (name, entry)
    check_layers(case, layers)


def check_layers(case: Case, layers: Mapping[str, Mapping[str, Any]]) -> None:
    """Compare per-layer counts, reject reasons and notes with the case's expectations."""
    for name, expected in case.layers.items():
        assert name in layers, f"no layer {name} in {sorted(layers)}"
        got = {k: layers[name][k] for k in expected}
        assert got == dict(expected), f"layer {name}: {got} != {dict(expected)}"
    for name, expected_reasons in (case.reasons or {}).items():
        by_reason: Mapping[str, int] = layers[name]["rejects_by_reason"]
        matched = dict.fromkeys(expected_reasons, 0)
        for reason, n in by_reason.items():
            hits = [k for k in expected_reasons if k in reason]
            assert hits, f"layer {name}: unexpected reject reason {reason!r} ({n})"
            matched[hits[0]] += n
        assert matched == dict(expected_reasons), f"layer {name}: {by_reason}"
    for name, needles in case.notes.items():
        notes = " | ".join(layers[name]["notes"])
        for needle in needles:
            assert needle in notes, f"layer {name}: no note saying {needle!r} in: {notes}"


def check_records(gpkg: Path, reports: Mapping[str, Any]) -> None:
    """The private store holds each accepted record and each reject: none vanished."""
    present = {name for name, _ in pyogrio.list_layers(gpkg)}
    rejects = pyogrio.read_dataframe(gpkg, layer="rejects", read_geometry=False)
    for name, r in reports.items():
        n_rejects = int((rejects["layer"] == name).sum())
        assert n_rejects == r.rejected, (
            f"{name}: {n_rejects} rows in rejects, {r.rejected} rejected"
        )
        assert (rejects.loc[rejects["layer"] == name, "reason"].str.len() > 0).all()
        if r.accepted and name in present:
            n = pyogrio.read_info(gpkg, layer=name)["features"]
            assert n == r.accepted, f"{name}: {n} records stored, {r.accepted} accepted"
