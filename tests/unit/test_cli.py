"""The CLI as a user runs it: exit codes 0 / 2 / 1, messages without tracebacks."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geo_usm import __version__
from tests.unit.test_ingest import CITY, ROWS, make_units

USM = [sys.executable, "-m", "geo_usm.cli"]


def run(*args, cwd=None):
    return subprocess.run(
        [*USM, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


@pytest.fixture
def city(tmp_path) -> Path:
    make_units(tmp_path)
    header = "folio;este;norte;fecha_hora;tipo;sexo_victima;edad_victima"
    (tmp_path / "delitos.csv").write_text("\n".join([header] + [r for r, _ in ROWS]) + "\n")
    (tmp_path / "city.toml").write_text(CITY)
    return tmp_path / "city.toml"


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert __version__ in r.stdout


def test_validate_then_build_then_rebuild(city, tmp_path):
    r = run("validate", city)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout
    assert not (tmp_path / "out").exists()
    r = run("build", city, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "delitos" in r.stdout and "published" in r.stdout
    assert "hotspots units:" in r.stdout and "density surface:" in r.stdout
    first = (tmp_path / "out").resolve()
    r = run("build", city, "--out", tmp_path / "out")
    assert r.returncode == 0
    assert (tmp_path / "out").resolve() != first
    assert (tmp_path / "out" / "public" / "manifest.json").is_file()


def test_user_errors_exit_2_without_traceback(city, tmp_path):
    r = run("validate", tmp_path / "missing.toml")
    assert r.returncode == 2
    assert "city file not found" in r.stderr
    assert "Traceback" not in r.stderr
    city.write_text(city.read_text().replace('"fecha_hora"', '"fecha"'))
    r = run("build", city, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert "column 'fecha' (mapped to 'datetime') is not in the file" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = run("--debug", "build", city, "--out", tmp_path / "out")
    assert "Traceback" in r.stderr


def test_failed_build_keeps_previous_build(city, tmp_path):
    out = tmp_path / "out"
    assert run("build", city, "--out", out).returncode == 0
    before = (out / "public" / "manifest.json").read_text()
    (tmp_path / "delitos.csv").unlink()
    r = run("build", city, "--out", out)
    assert r.returncode == 2
    assert (out / "public" / "manifest.json").read_text() == before
    assert not list(out.parent.glob(".out.builds/*.partial"))


def test_refuses_to_overwrite_a_foreign_directory(city, tmp_path):
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    r = run("build", city, "--out", foreign)
    assert r.returncode == 2
    assert "not a geo-usm build" in r.stderr
    assert (foreign / "thesis.txt").read_text() == "precious"


def test_sigterm_mid_build_leaves_no_debris_and_keeps_the_published_build(city, tmp_path):
    out = tmp_path / "out"
    assert run("build", city, "--out", out).returncode == 0
    before = (out / "public" / "manifest.json").read_text()
    proc = subprocess.Popen(
        [*USM, "build", str(city), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    root = tmp_path / ".out.builds"
    deadline = time.monotonic() + 120
    while not list(root.glob("*.partial")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert (out / "public" / "manifest.json").read_text() == before
    assert not list(root.glob("*.partial"))


def test_next_build_removes_what_a_killed_build_left(city, tmp_path):
    out = tmp_path / "out"
    root = tmp_path / ".out.builds"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    stale = root / "20200101T000000Z-deadbeef.partial"
    (stale / "public").mkdir(parents=True)
    (root / "20200101T000000Z-deadbeef.lock").write_text(dead)  # its build was killed
    (stale / "public" / "diagnosis.gpkg-journal").write_bytes(b"x")
    orphan = root / "20200101T000001Z-cafecafe.partial"  # killed before writing its owner
    orphan.mkdir()
    link = tmp_path / ".out.link-20200101T000000Z-deadbeef"
    link.symlink_to("nowhere")
    assert run("build", city, "--out", out).returncode == 0
    assert not stale.exists() and not orphan.exists() and not link.is_symlink()
    assert not list(root.glob("*.lock"))
    assert (out / "public" / "manifest.json").exists()


def test_out_below_a_regular_file_is_refused_before_any_work(city, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run("build", city, "--out", tmp_path / "afile" / "out")
    assert r.returncode == 2, r.stderr
    assert "is a file, not a directory" in r.stderr
    assert "Traceback" not in r.stderr
