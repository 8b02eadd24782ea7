"""``usm serve``: ports, hosts, settings, and directories that are not (whole) builds.

The README promises a one-line message (exit 2) for each: the message itself says what to do,
so these cases do not ask for a ``->`` hint. In-process cases cannot start a server (the
runner makes that a failure); three cases run the real command in a child process.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from tests.corpus.corpus import Case, Outcome, argv, run_subprocess
from tests.corpus.toy import city, csv, rows

FILES = {"crimes.csv": csv(rows(10))}


def built(directory: Path) -> None:
    """Build the toy city at ``out`` (in-process, before the case runs)."""
    from geo_usm.pipeline import build

    build(directory / "city.toml", directory / "out")


def copy_of_public(then=None):
    """A setup: build, copy ``out/public`` to ``copy/``, then alter the copy."""

    def setup(directory: Path) -> None:
        built(directory)
        shutil.copytree(directory / "out" / "public", directory / "copy")
        if then is not None:
            then(directory / "copy")

    return setup


def serve(name: str, *args: str, says: tuple[str, ...], names: str, **kw) -> Case:
    kw.setdefault("setup", built)
    kw.setdefault("files", FILES)
    return Case(
        name,
        city=city(),
        command="serve",
        args=args,
        exit=2,
        says=says,
        names=names,
        hint=False,
        **kw,
    )


def port_in_use(directory: Path) -> Outcome:
    """Hold a port, then ask ``usm serve`` for it (as a child process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        case = PORT_IN_USE
        outcome = run_subprocess(
            [*argv(case, directory), "--port", str(port)], cwd=directory, timeout=60
        )
    assert f"port {port} on 127.0.0.1 is already in use" in outcome.stderr, outcome.stderr
    return outcome


PORT_IN_USE = serve(
    "serve-port-in-use",
    says=("is already in use", "choose another port with --port"),
    names="port ",
    run=port_in_use,
)

CASES = [
    serve(
        "serve-port-99999",
        "--port",
        "99999",
        says=("--port must be a port number from 1 to 65535, not 99999",),
        names="--port",
        subprocess=True,
    ),
    PORT_IN_USE,
    serve(
        "serve-not-a-build",
        says=("not a geo-usm build (no public/manifest.json)", "usm build"),
        names="docs",
        files={"docs/readme.txt": "hello"},
        setup=None,
        target="{dir}/docs",
        subprocess=True,
    ),
    serve(
        "serve-port-0",
        "--port",
        "0",
        says=("--port must be a port number from 1 to 65535, not 0",),
        names="--port",
    ),
    serve(
        "serve-port-not-a-number",
        "--port",
        "http",
        says=("'http' is not a valid integer",),
        names="--port",
    ),
    serve(
        "serve-host-not-on-this-machine",
        "--host",
        "192.0.2.1",
        says=("--host 192.0.2.1 is not an address of this machine",),
        names="--host",
    ),
    serve(
        "serve-missing-directory",
        says=("not a geo-usm build",),
        names="nothing-here",
        setup=None,
        target="{dir}/nothing-here",
    ),
    serve(
        "serve-private-part",
        says=("not a geo-usm build",),
        names="private",
        target="{dir}/out/private",
    ),
    serve(
        "serve-manifest-not-json",
        says=("cannot read the manifest",),
        names="manifest.json",
        setup=copy_of_public(lambda p: (p / "manifest.json").write_text("{not json")),
        target="{dir}/copy",
    ),
    serve(
        "serve-manifest-without-catalogue",
        says=("the manifest has no output catalogue",),
        names="manifest.json",
        setup=copy_of_public(lambda p: (p / "manifest.json").write_text("{}")),
        target="{dir}/copy",
    ),
    serve(
        "serve-diagnosis-missing",
        says=("diagnosis.gpkg", "rebuild it"),
        names="diagnosis.gpkg",
        setup=copy_of_public(lambda p: (p / "diagnosis.gpkg").unlink()),
        target="{dir}/copy",
    ),
    serve(
        "serve-diagnosis-not-a-geopackage",
        says=("diagnosis.gpkg", "rebuild it"),
        names="diagnosis.gpkg",
        setup=copy_of_public(lambda p: (p / "diagnosis.gpkg").write_text("garbage")),
        target="{dir}/copy",
    ),
    serve(
        "serve-setting-not-a-number",
        says=("invalid setting max_limit (USM_MAX_LIMIT)",),
        names="USM_MAX_LIMIT",
        env={"USM_MAX_LIMIT": "many"},
    ),
    serve(
        "serve-base-url-not-a-url",
        "--base-url",
        "example.org/usm",
        says=("base_url must be an absolute http(s) URL",),
        names="example.org/usm",
    ),
]

assert all(c.command == "serve" for c in CASES)
