"""The ``usm`` command line: validate, build and serve a city's diagnosis.

Exit codes: 0 success, 2 a problem the user can fix (bad city file, bad input, bad arguments),
1 an internal error (a bug: rerun with ``--debug`` and report the traceback).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from geo_usm import __version__
from geo_usm.errors import GeoUsmError, ProblemsError
from geo_usm.pipeline import Progress as PipelineProgress

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class _RichProgress(PipelineProgress):
    """Draws a spinner or bar per pipeline step (quiet when not on a terminal)."""

    def __init__(self, progress: Progress):
        self.progress = progress

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        task_id = self.progress.add_task(description, total=total)
        yield lambda n: self.progress.advance(task_id, n)
        self.progress.update(task_id, total=1, completed=1)


@contextmanager
def _progress() -> Iterator[_RichProgress]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(
        *columns, console=console, transient=False, disable=not console.is_terminal
    ) as progress:
        yield _RichProgress(progress)


def _run(ctx: click.Context, func: Callable[[], Any]) -> Any:
    """Run a command body, mapping errors to messages and exit codes."""
    debug = ctx.find_root().params.get("debug", False)
    try:
        return func()
    except ProblemsError as exc:
        console.print(f"[bold red]{len(exc.problems)} problem(s) found:[/]")
        for p in exc.problems:
            console.print(f"- {p}", markup=False, highlight=False)
        if debug:
            raise
        sys.exit(2)
    except GeoUsmError as exc:
        console.print("[bold red]error:[/] ", end="")
        console.print(str(exc), markup=False, highlight=False)
        if debug:
            raise
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; nothing was published")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}",
            markup=True,
            highlight=False,
        )
        console.print("This is a bug in geo-usm. Rerun with --debug and report the traceback.")
        sys.exit(1)


def _indicator_summary(indicators: dict[str, Any]) -> None:
    """Print how many features of each grid have a value of each indicator."""
    if not indicators:
        return
    available, missing = [], []
    for name, entry in indicators.items():
        if entry["null_reason"]:
            missing.append(f"{name} ({entry['null_reason']})")
        else:
            cover = ", ".join(f"{g} {n:,}" for g, n in entry["coverage"].items())
            available.append(f"{name} [{cover}]")
    out.print(f"indicators with values: {len(available)} of {len(indicators)}", highlight=False)
    for line in available:
        out.print(f"  {line}", highlight=False, markup=False)
    for line in missing:
        out.print(f"  not available: {line}", highlight=False, markup=False)


def _p(value: float | None) -> str:
    """Format a p-value for people."""
    if value is None:
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p {value:.3f}"


def _analysis_summary(manifest: dict[str, Any]) -> None:
    """Print the headlines of the hotspots, trends, progress, indices and density surface."""
    lines = []
    for grid, entry in manifest.get("hotspots", {}).get("grids", {}).items():
        found = entry.get("crime_count", {})
        if "null_reason" in found:
            lines.append(f"hotspots {grid}: {found['null_reason']}")
        elif found:
            moran = found["global_moran"]
            lines.append(
                f"hotspots {grid}: {found['hot']} hot, {found['cold']} cold (Gi*, FDR); "
                f"global Moran's I {moran['I']:.3f} ({_p(moran['p_norm'])})"
            )
    for key, entry in manifest.get("trends", {}).get("emerging_hotspots", {}).items():
        if isinstance(entry, dict):
            patterns = ", ".join(f"{p} {n:,}" for p, n in entry["patterns"].items())
            lines.append(f"emerging hotspots {key}: {patterns}")
    for target, entry in manifest.get("progress", {}).get("targets", {}).items():
        low, high = entry["ci"]
        track = {True: "on track", False: "not on track", None: "track unknown"}
        lines.append(
            f"progress {target}: {entry['baseline']:,.0f} -> {entry['current']:,.0f}, rate "
            f"ratio {entry['rate_ratio']:.3f} (95 % CI {low:.3f}-{high:.3f}, {_p(entry['p'])}), "
            f"{track[entry['on_track']]}"
        )
    for grid, entry in manifest.get("indices", {}).items():
        for name, index in entry.get("indices", {}).items():
            reason = index.get("null_reason")
            used = ", ".join(index.get("indicators", [])) or "none"
            lines.append(f"{name} {grid}: " + (f"NULL: {reason}" if reason else f"from {used}"))
    density = manifest.get("density", {})
    if "bands" in density:
        band = density["bands"][0]
        share = band["integral_share"]
        inside = f"{share:.1%} of {band['points']:,.0f} crimes inside" if share else "no crimes"
        lines.append(
            f"density surface: bandwidth {density['bandwidth_m']:,.0f} m, cells "
            f"{density['cell_size_m']:g} m, {inside}"
        )
    for line in lines:
        out.print(line, highlight=False, markup=False)


def _terminated(signum: int, frame: object) -> None:
    """On SIGTERM, unwind like Ctrl+C: the staging directory is removed, nothing published."""
    console.print("terminated; nothing was published (the previous build stays)")
    raise SystemExit(128 + signum)


def _report(result: Any, title: str) -> None:
    """Print the per-layer accounting table, then reject reasons and notes."""
    table = Table(title=title)
    table.add_column("layer")
    table.add_column("kind")
    for col in ("read", "filtered", "accepted", "rejected", "seconds"):
        table.add_column(col, justify="right")
    for r in result.layers:
        name = r.name + (" (SYNTHETIC)" if r.synthetic else "")
        table.add_row(
            name,
            r.kind,
            f"{r.read:,}",
            f"{r.filtered:,}",
            f"{r.accepted:,}",
            f"{r.rejected:,}",
            f"{r.seconds:.2f}",
        )
    out.print(table)
    notes = result.manifest.get("layers", {})
    for r in result.layers:
        for reason, n in r.rejects_by_reason.items():
            out.print(f"  {r.name}: {n:,} rejected: {reason}", highlight=False, markup=False)
        for fname, reasons in r.cleaned.items():
            for reason, n in reasons.items():
                out.print(
                    f"  {r.name}: {n:,} value(s) of {fname} cleaned to NULL (record kept): "
                    f"{reason}",
                    highlight=False,
                    markup=False,
                )
        for note in notes.get(r.name, {}).get("notes", r.notes):
            out.print(f"  {r.name}: note: {note}", highlight=False, markup=False)
    out.print(f"units: {result.n_units:,}   working CRS: {result.crs_note}", highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="usm")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug: bool) -> None:
    """geo-usm: an Urban Safety Monitor (neighbourhood safety diagnosis)."""


_THREADS = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Worker threads (default: the number of CPUs).",
)


@main.command()
@click.argument("city_file", type=click.Path(path_type=Path))
@_THREADS
@click.pass_context
def validate(ctx: click.Context, city_file: Path, threads: int | None) -> None:
    """Check CITY_FILE and every input; report all problems at once. Writes nothing."""
    from geo_usm.pipeline import validate as run_validate

    def body() -> None:
        with _progress() as progress:
            result = run_validate(city_file, progress=progress, threads=threads)
        _report(result, f"{result.city.config.name}: what a build would keep")
        out.print("[green]valid[/]: no fatal problems")

    _run(ctx, body)


@main.command()
@click.argument("city_file", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to publish the build (replaced atomically).",
)
@_THREADS
@click.pass_context
def build(ctx: click.Context, city_file: Path, out_dir: Path, threads: int | None) -> None:
    """Build the diagnosis of CITY_FILE and publish it at --out."""
    from geo_usm.pipeline import build as run_build

    def body() -> None:
        signal.signal(signal.SIGTERM, _terminated)
        try:
            with _progress() as progress:
                result = run_build(city_file, out_dir, progress=progress, threads=threads)
        finally:  # published (or failed): a later SIGTERM must not claim otherwise
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _report(result, f"{result.city.config.name}: build {result.build_id}")
        hexes = ", ".join(f"res {r}: {n:,}" for r, n in result.n_hex.items())
        out.print(f"hexes: {hexes}")
        _indicator_summary(result.manifest.get("indicators", {}))
        _analysis_summary(result.manifest)
        stages = ", ".join(
            f"{name} {sec:.2f}"
            for name, sec in result.stages.items()
            if not name.startswith("layer ")
        )
        out.print(f"seconds per stage: {stages}", highlight=False)
        out.print(
            f"published {out_dir} in {result.seconds:.1f} s "
            f"(public: {out_dir}/public, private: {out_dir}/private)",
            highlight=False,
        )

    _run(ctx, body)


@main.command()
@click.argument("build_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=int, help="Port to listen on (1-65535)."
)
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="Public URL of the landing page, written in every link, e.g. "
    "https://example.org/usm (default: USM_BASE_URL; unset, links follow each request's "
    "Host header).",
)
@click.pass_context
def serve(
    ctx: click.Context, build_dirs: tuple[Path, ...], host: str, port: int, base_url: str | None
) -> None:
    """Serve BUILD_DIRS (builds, or copies of their public/ part) as OGC API - Features.

    With several builds, each is served under /cities/{cityId}/ (GET /cities lists them) and
    the first also at the root.

    Other settings come from USM_* environment variables (see the README). Exit codes: 0 after
    Ctrl+C, 2 a problem you can fix (port out of range or in use, not a build, invalid
    setting), 1 a bug.
    """

    def body() -> None:
        import errno
        import socket

        import pydantic
        import uvicorn

        from api.main import create_app
        from api.settings import Settings

        if not 1 <= port <= 65535:
            raise GeoUsmError(f"--port must be a port number from 1 to 65535, not {port}")
        try:
            given: dict[str, Any] = {"build_dir": build_dirs[0]}
            if len(build_dirs) > 1:  # else USM_EXTRA_BUILD_DIRS applies
                given["extra_build_dirs"] = list(build_dirs[1:])
            if base_url is not None:  # else USM_BASE_URL applies
                given["base_url"] = base_url
            settings = Settings(**given)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))} (USM_{str(e['loc'][0]).upper()}): "
                + str(e["msg"]).removeprefix("Value error, ")
                for e in exc.errors()
            )
            raise GeoUsmError(f"invalid setting {problems}") from None

        # Bind before loading the build, so that a taken port is reported at once, and hand
        # the bound socket to uvicorn (which would otherwise exit with its own code 3).
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise GeoUsmError(f"--host {host} is not a host name or address: {exc}") from None
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            reasons = {
                errno.EADDRINUSE: f"port {port} on {host} is already in use: stop the program "
                "using it or choose another port with --port",
                errno.EACCES: f"no permission to listen on port {port}: choose a port above "
                "1023 with --port",
                errno.EADDRNOTAVAIL: f"--host {host} is not an address of this machine",
            }
            msg = reasons.get(exc.errno or 0, f"cannot listen on {host}:{port}: {exc.strerror}")
            raise GeoUsmError(msg) from None
        try:
            app = create_app(settings)
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            shown = f"[{shown}]" if ":" in shown else shown
            public = f" (links: {settings.base_url}/)" if settings.base_url else ""
            served = ", ".join(map(str, build_dirs))
            out.print(
                f"geo-usm serving {served} on http://{shown}:{port}/{public}  (Ctrl+C to stop)",
                highlight=False,
            )
            cities = getattr(app.state, "cities", {})
            if len(cities) > 1:
                listed = ", ".join(f"/cities/{city_id}/" for city_id in cities)
                out.print(f"cities: {listed}", highlight=False)
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it handled
                out.print("stopped")
                return
        finally:
            sock.close()
        if not server.started:
            raise RuntimeError("the server did not start; see its log above")

    _run(ctx, body)


@main.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option(
    "--pmtiles",
    "pmtiles_file",
    type=click.Path(path_type=Path),
    required=True,
    help="Write every vector tileset (grids and basemap) into this one PMTiles file.",
)
@click.pass_context
def export(ctx: click.Context, build_dir: Path, pmtiles_file: Path) -> None:
    """Export a build's vector tiles as one PMTiles archive for static hosting."""

    def body() -> None:
        from geo_usm.tiles import export_build

        info = export_build(build_dir, pmtiles_file)
        out.print(
            f"wrote {pmtiles_file}: layers {', '.join(info['layers'])}, zoom "
            f"{info['minzoom']}-{info['maxzoom']}, {info['tiles']} tiles, {info['bytes']:,} bytes",
            highlight=False,
        )

    _run(ctx, body)


@main.command("map")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The HTML file to write.",
)
@click.option(
    "--basemap",
    metavar="URL",
    default=None,
    help="Tile URL template drawn under the layers, e.g. "
    "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none, the file works offline).",
)
@click.option(
    "--basemap-attribution",
    metavar="TEXT",
    default=None,
    help="Attribution of the basemap (shown on the map).",
)
@click.pass_context
def map_(
    ctx: click.Context,
    build_dir: Path,
    out_file: Path,
    basemap: str | None,
    basemap_attribution: str | None,
) -> None:
    """Write a standalone HTML map of BUILD_DIR's risk and resilience indices.

    A build without indices gets its count indicators. The file inlines Leaflet and works
    offline; only --basemap tiles, when given, are fetched.
    """
    from geo_usm.maps import write_map

    def body() -> None:
        layers = write_map(
            build_dir, out_file, basemap=basemap, basemap_attribution=basemap_attribution
        )
        for layer in layers:
            mark = " (SYNTHETIC)" if layer.synthetic else ""
            out.print(f"  {layer.grid}: {layer.column}{mark}", highlight=False, markup=False)
        out.print(f"wrote {out_file} ({len(layers)} layers)", highlight=False)

    _run(ctx, body)


if __name__ == "__main__":  # pragma: no cover
    main()
