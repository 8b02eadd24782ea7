"""Interrupted and failed builds: nothing published is lost, no debris stays.

Each case first publishes the toy city at ``out`` (in-process), then starts a slower build of
the same city (an H3 resolution 12 grid: about 15,000 cells to write) as a child process and
signals it while it writes its staging directory. SIGTERM and Ctrl+C must unwind (exit 143 and
130, staging removed); SIGKILL cannot be caught, so its ``.partial`` directory stays until the
next build removes it, while ``usm serve`` keeps serving the previous build.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.corpus.corpus import USM, Case, Outcome, run_subprocess
from tests.corpus.toy import city, csv, layer, rows

FILES = {"crimes.csv": csv(rows(2000))}
CITY = city()
SLOW = city(layer(), top="h3_resolutions = [9, 12]")


def publish_first(directory: Path) -> None:
    """Publish the toy city at ``out`` and keep its manifest as ``before.json``."""
    from geo_usm.pipeline import build

    build(directory / "city.toml", directory / "out")
    (directory / "slow.toml").write_text(SLOW, encoding="utf-8")
    manifest = directory / "out" / "public" / "manifest.json"
    (directory / "before.json").write_bytes(manifest.read_bytes())


def builds(directory: Path) -> Path:
    return directory / ".out.builds"


def partials(directory: Path) -> list[Path]:
    return sorted(builds(directory).glob("*.partial"))


def unchanged(directory: Path) -> None:
    """The published build is the one from before, byte for byte, and it is whole."""
    manifest = directory / "out" / "public" / "manifest.json"
    assert manifest.read_bytes() == (directory / "before.json").read_bytes(), "manifest changed"
    assert (directory / "out" / "public" / "diagnosis.gpkg").is_file()
    assert (directory / "out").is_symlink()


def signal_mid_write(directory: Path, signum: int) -> tuple[subprocess.Popen, str, str]:
    """Start the slow build, send ``signum`` once it writes its staging directory."""
    proc = subprocess.Popen(
        [*USM, "build", str(directory / "slow.toml"), "--out", str(directory / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=directory,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any((p / "public" / "diagnosis.gpkg").exists() for p in partials(directory)):
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the build ended before it could be interrupted mid-write"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc, out, err


def unwinds(signum: int):
    """A run: interrupt the slow build; it must exit 128 + signum, leaving no debris."""

    def run(directory: Path) -> Outcome:
        proc, out, err = signal_mid_write(directory, signum)
        return Outcome(proc.returncode, out, err)

    return run


def after_unwind(directory: Path, outcome: Outcome) -> None:
    unchanged(directory)
    assert partials(directory) == [], "the staging directory was left behind"
    assert not list(directory.glob(".out.link-*")), "a half-swapped link was left behind"
    assert sorted(p.name for p in builds(directory).iterdir()) == [
        json.loads((directory / "before.json").read_text())["build_id"]
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def killed_then_rebuilt(directory: Path) -> Outcome:
    """SIGKILL mid-write while the previous build is served; then build again."""
    before = json.loads((directory / "before.json").read_text())["build_id"]
    port = free_port()
    server = subprocess.Popen(
        [*USM, "serve", str(directory / "out"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                assert get_json(f"{base}/healthz")["build_id"] == before
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "usm serve did not start"
                time.sleep(0.05)
        proc, _, err = signal_mid_write(directory, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL, err
        # what SIGKILL cannot clean up stays; what was published is untouched and still served
        left = partials(directory)
        assert len(left) == 1, left
        unchanged(directory)
        assert get_json(f"{base}/healthz")["build_id"] == before
        assert get_json(f"{base}/collections/hex/items?limit=1")["features"]
    finally:
        server.send_signal(signal.SIGINT)
        _, server_err = server.communicate(timeout=60)
    assert server.returncode == 0, f"usm serve after Ctrl+C: exit {server.returncode}"
    assert "Traceback" not in server_err, server_err
    # the next build removes the debris and publishes
    outcome = run_subprocess(
        ["build", str(directory / "city.toml"), "--out", str(directory / "out")],
        cwd=directory,
        timeout=120,
    )
    assert not left[0].exists(), "the next build did not remove the killed build's .partial"
    assert partials(directory) == []
    published = json.loads((directory / "out" / "public" / "manifest.json").read_text())
    assert published["build_id"] != before
    return outcome


def stale_debris(directory: Path) -> None:
    """What killed builds leave: staging dirs (one without its owner) and a half-swapped link."""
    publish_first(directory)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    stale = builds(directory) / "20200101T000000Z-deadbeef.partial"
    (stale / "public").mkdir(parents=True)
    (stale / ".owner-pid").write_text(dead)
    (stale / "public" / "diagnosis.gpkg-journal").write_bytes(b"x")
    (builds(directory) / "20200101T000001Z-cafecafe.partial").mkdir()
    os.symlink("nowhere", directory / ".out.link-20200101T000000Z-deadbeef")


def debris_removed(directory: Path, outcome: Outcome) -> None:
    assert partials(directory) == []
    assert not list(directory.glob(".out.link-*"))


def keeps_previous(directory: Path, outcome: Outcome) -> None:
    unchanged(directory)
    assert partials(directory) == []


CASES = [
    Case(
        "interrupt-sigterm-mid-write",
        files=FILES,
        city=CITY,
        setup=publish_first,
        run=unwinds(signal.SIGTERM),
        exit=128 + signal.SIGTERM,
        says=("terminated; nothing was published",),
        names="",
        hint=False,
        check=after_unwind,
    ),
    Case(
        "interrupt-ctrl-c-mid-write",
        files=FILES,
        city=CITY,
        setup=publish_first,
        run=unwinds(signal.SIGINT),
        exit=128 + signal.SIGINT,
        says=("interrupted; nothing was published",),
        names="",
        hint=False,
        check=after_unwind,
    ),
    Case(
        "interrupt-sigkill-mid-write-then-rebuild",
        files=FILES,
        city=CITY,
        setup=publish_first,
        run=killed_then_rebuilt,
        layers={"crimes": {"read": 2000, "accepted": 2000, "rejected": 0}},
    ),
    Case(
        "interrupt-debris-of-killed-builds-removed",
        files=FILES,
        city=CITY,
        setup=stale_debris,
        command="build",
        check=debris_removed,
    ),
    Case(
        "interrupt-failed-build-keeps-previous",
        # the input disappears between two builds: exit 2, the published build stays
        files=FILES,
        city=CITY,
        setup=lambda d: (publish_first(d), (d / "crimes.csv").unlink()),
        command="build",
        exit=2,
        says=("crimes.csv: input file not found",),
        check=keeps_previous,
    ),
    Case(
        "interrupt-refused-layer-keeps-previous",
        # the new data is all rejected: the layer is refused, the published build stays
        files=FILES,
        city=CITY,
        setup=lambda d: (
            publish_first(d),
            (d / "crimes.csv").write_text(csv([r.replace("2024", "yyyy") for r in rows(10)])),
        ),
        command="build",
        exit=2,
        says=("none of its 10 rows was accepted",),
        check=keeps_previous,
    ),
]
