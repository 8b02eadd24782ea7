"""``usm serve`` as a user runs it: port errors exit 2 with one line, --base-url, Ctrl+C,
several builds."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

USM = [sys.executable, "-m", "geo_usm.cli"]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*USM, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("port", [99999, 0])
def test_port_out_of_range_exits_2(build_dir: Path, port: int) -> None:
    line = _one_error_line(run("serve", build_dir, "--port", port))
    assert f"--port must be a port number from 1 to 65535, not {port}" in line


def test_port_in_use_exits_2_naming_the_port(build_dir: Path, taken_port: int) -> None:
    line = _one_error_line(run("serve", build_dir, "--port", taken_port))
    assert f"port {taken_port} on 127.0.0.1 is already in use" in line
    assert "choose another port with --port" in line


def test_host_not_of_this_machine_exits_2(build_dir: Path) -> None:
    line = _one_error_line(run("serve", build_dir, "--host", "192.0.2.1", "--port", 8000))
    assert "--host 192.0.2.1 is not an address of this machine" in line


def test_invalid_base_url_exits_2(build_dir: Path) -> None:
    line = _one_error_line(run("serve", build_dir, "--base-url", "example.org/usm"))
    assert "invalid setting base_url (USM_BASE_URL)" in line


def test_not_a_build_exits_2(tmp_path: Path) -> None:
    result = run("serve", tmp_path, "--port", _free_port())
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_serve_with_base_url_then_ctrl_c(build_dir: Path) -> None:
    port = _free_port()
    base = "https://maps.example.org/usm"
    command = [*USM, "serve", str(build_dir), "--port", str(port), "--base-url", base]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                assert process.poll() is None, process.communicate()
                try:
                    response = client.get(f"http://127.0.0.1:{port}/collections")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.2)
            assert response.status_code == 200
            assert response.json()["links"][0]["href"] == f"{base}/collections"
            head = client.head(f"http://127.0.0.1:{port}/collections")
            assert head.status_code == 200 and head.content == b""
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}/ (links: {base}/)" in out
    assert "Traceback" not in err


def test_serve_several_builds(build_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "public"
    shutil.copytree(build_dir / "public", other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["city"] = {"name": "Otherton"}
    (other / "manifest.json").write_text(json.dumps(manifest))
    port = _free_port()
    command = [*USM, "serve", str(build_dir), str(other.parent), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                assert process.poll() is None, process.communicate()
                try:
                    response = client.get(f"http://127.0.0.1:{port}/cities")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.2)
            ids = [c["id"] for c in response.json()["cities"]]
            assert ids == ["camden-synthetic", "otherton"]
            landing = client.get(f"http://127.0.0.1:{port}/cities/otherton/").json()
            assert landing["build"]["city"] == "Otherton"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "cities: /cities/camden-synthetic/, /cities/otherton/" in out
