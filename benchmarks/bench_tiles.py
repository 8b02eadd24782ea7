"""Benchmark: vector tiles and items served by one uvicorn worker, and PostGIS ST_AsMVT.

Run with ``.venv/bin/python benchmarks/bench_tiles.py`` (``--help`` for options).

1. Builds the Camden sample into a temporary directory (the build writes its tilesets; the
   "vector tiles" stage is printed).
2. Starts ``uvicorn api.main:create_app --factory`` with one worker on loopback (the app warms
   its routes before it accepts connections).
3. Cold: the first z12 hex tile after start (a new connection), client-side time.
4. Warm: every hex tile over Camden at the tileset's zooms, repeated, fetched by
   ``--connections`` concurrent keep-alive connections (httpx, asyncio): tiles/s, p50, p99.
   Items ``limit=100``, every page of the hex grid in turn, likewise.
5. PostGIS: when PostgreSQL 15 with PostGIS is installed (Debian
   ``postgresql-15-postgis-3``), a throwaway cluster on loopback in a temporary directory (run
   as the ``postgres`` user when started as root) gets the same hexes with the same attributes
   (COPY of WKB in EPSG:3857) and times ``ST_AsMVT(ST_AsMVTGeom(...))`` of the same z12 tile
   inside the server (first query and the mean of 50). Skipped, saying so, otherwise.

Figures are printed as ratios to the targets: warm tiles >= 1,000 tiles/s; items >= 1,000
req/s; cold tile <= PostGIS's time for the tile. Needs httpx (the test extra); psql comes with
PostgreSQL (no Python driver is used).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import morecantile
import pyogrio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo_usm import store  # noqa: E402
from geo_usm.pipeline import build  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TARGET_TILES = 1000.0
TARGET_ITEMS = 1000.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _prepare(workdir: Path) -> tuple[Path, float, float]:
    """Build Camden; return the build, the build's seconds and its vector tiles' seconds."""
    out = workdir / "camden"
    result = build(ROOT / "sample_data" / "camden" / "city.toml", out)
    return out, result.seconds, result.stages.get("vector tiles", float("nan"))


def _start_server(build_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "USM_BUILD_DIR": str(build_dir)}
    command = [
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--workers", "1",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not start: {log.read_text()}")


async def _load(urls: list[str], connections: int) -> tuple[float, list[float], int]:
    """Fetch ``urls`` with ``connections`` concurrent clients; return seconds and latencies."""
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            url = queue.get_nowait()
            started = time.perf_counter()
            response = await client.get(url)
            await response.aread()
            latencies.append(time.perf_counter() - started)
            if response.status_code not in (200, 204):
                errors += 1

    async with httpx.AsyncClient(limits=limits, headers={"Accept-Encoding": "gzip"}) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        seconds = time.perf_counter() - started
    return seconds, latencies, errors


_WRK_SCRIPT = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept-Encoding"] = "gzip"})
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%d %%d %%d %%f %%f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _wrk(name: str, paths: list[str], base: str, connections: int, target: float) -> bool:
    """Load ``paths`` (cycled) with wrk, a C load generator, if installed; report like httpx.

    A Python client on the same two cores spends more CPU per request than the server, so its
    rates measure the client; wrk (Debian ``wrk``) leaves the cores to the server.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return False
    with tempfile.TemporaryDirectory(prefix="usm-wrk-") as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
        script = Path(tmp) / "paths.lua"
        script.write_text(_WRK_SCRIPT % listing, encoding="utf-8")
        command = [wrk, "-t1", f"-c{connections}", "-d5s", "-s", str(script), base]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRK "))
    requests, errors, micros, p50, p99 = (float(v) for v in line.split()[1:])
    rate = requests / (micros / 1e6)
    print(
        f"{name} (wrk, {connections} connections): {rate:,.0f} req/s ({rate / target:.2f} x the "
        f"{target:,.0f} target), p50 {p50 / 1e3:.2f} ms, p99 {p99 / 1e3:.2f} ms, "
        f"{requests:,.0f} requests, {errors:.0f} errors"
    )
    return True


def _report(name: str, seconds: float, latencies: list[float], errors: int, target: float) -> None:
    rate = len(latencies) / seconds
    print(
        f"{name}: {rate:,.0f} req/s ({rate / target:.2f} x the {target:,.0f} target), "
        f"p50 {_percentile(latencies, 0.5) * 1e3:.2f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1e3:.2f} ms, {len(latencies)} requests, "
        f"{errors} errors"
    )


def _psql(port: int, sql: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql") or str(PG_BIN / "psql")
    command = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
               "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"psql failed: {result.stderr}")
    return result


def _postgis(public: Path, tile: morecantile.Tile) -> dict[str, float] | None:
    if not (PG_BIN / "postgres").exists():
        print(
            "PostGIS: PostgreSQL 15 is not installed (apt-get install -y postgresql-15-postgis-3)"
        )
        return None
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    tmp = Path(tempfile.mkdtemp(prefix="usm-pg-"))
    if as_root:
        shutil.chown(tmp, "postgres")
    data, port = tmp / "data", _free_port()
    run = subprocess.run
    run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True, capture_output=True)  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off"
    run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
         str(tmp / "pg.log"), "start"], check=True, capture_output=True)  # fmt: skip
    try:
        _psql(port, "CREATE EXTENSION postgis")
        catalog = store.load_catalog(store.load_manifest(public))
        declared = catalog.layer("hex")
        sql_types = {"string": "text", "integer": "bigint", "float": "double precision",
                     "boolean": "boolean", "datetime": "text"}  # fmt: skip
        columns = ", ".join(f'"{c.name}" {sql_types[c.type]}' for c in declared.columns)
        _psql(port, f"CREATE TABLE hex ({columns}, geom geometry(Polygon, 3857))")
        frame = store.read_layer(public, declared).to_crs("EPSG:3857")
        table = frame.drop(columns="geometry")
        for column in declared.columns:
            if column.type == "integer":
                table[column.name] = table[column.name].astype("Int64")
        table["geom"] = frame.geometry.to_wkb(hex=True)
        csv = tmp / "hex.csv"
        table.to_csv(csv, index=False, header=False)
        if as_root:
            shutil.chown(csv, "postgres")
        names = ", ".join(f'"{c.name}"' for c in declared.columns)
        _psql(port, f"\\copy hex ({names}, geom) FROM '{csv}' WITH (FORMAT csv)")
        _psql(port, "CREATE INDEX ON hex USING gist (geom); ANALYZE hex")
        attributes = ", ".join(f'"{c.name}"' for c in declared.columns)
        query = (
            f"SELECT ST_AsMVT(q, 'hex', 4096, 'geom') FROM (SELECT {attributes}, "
            f"ST_AsMVTGeom(geom, ST_TileEnvelope({tile.z}, {tile.x}, {tile.y}), 4096, 80, true) "
            f"AS geom FROM hex WHERE geom && ST_TileEnvelope({tile.z}, {tile.x}, {tile.y}, "
            f"margin => 80.0 / 4096)) q"
        )
        timing = (
            "DO $$ DECLARE t0 timestamptz; t1 timestamptz; b bytea; n int := 50; BEGIN "
            f"t0 := clock_timestamp(); {query} INTO b; t1 := clock_timestamp(); "
            "RAISE NOTICE 'first %', extract(epoch from t1 - t0); "
            f"t0 := clock_timestamp(); FOR i IN 1..n LOOP {query} INTO b; END LOOP; "
            "RAISE NOTICE 'mean % bytes %', extract(epoch from clock_timestamp() - t0) / n, "
            "length(b); END $$"
        )
        result = _psql(port, timing)
        first_found = re.search(r"first ([0-9.e-]+)", result.stderr)
        found = re.search(r"mean ([0-9.e-]+) bytes (\d+)", result.stderr)
        assert first_found is not None and found is not None, result.stderr
        first = float(first_found.group(1))
        return {"first": first, "mean": float(found.group(1)), "bytes": float(found.group(2))}
    finally:
        run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=20, help="passes over the hex tiles")
    parser.add_argument("--items", type=int, default=2000, help="items requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="usm-bench-tiles-") as tmp:
        workdir = Path(tmp)
        out, build_seconds, tiles_seconds = _prepare(workdir)
        public = store.public_dir(out)
        print(f"Camden build: {build_seconds:.2f} s, of which vector tiles {tiles_seconds:.2f} s")
        hexes = pyogrio.read_dataframe(public / "diagnosis.gpkg", layer="hex").to_crs("EPSG:4326")
        centre = hexes.union_all().centroid
        cold_tile = TMS.tile(centre.x, centre.y, 12)
        west, south, east, north = (float(v) for v in hexes.total_bounds)
        section = store.load_manifest(public)["tiles"]["hex"]
        zooms = list(range(section["minzoom"], section["maxzoom"] + 1))
        tiles = list(TMS.tiles(west, south, east, north, zooms=zooms))
        process, url = _start_server(out, workdir / "uvicorn.log")
        try:
            path = (
                f"/collections/hex/tiles/WebMercatorQuad/{cold_tile.z}/{cold_tile.y}/{cold_tile.x}"
            )
            with httpx.Client(headers={"Accept-Encoding": "gzip"}) as first:  # made untimed
                started = time.perf_counter()
                response = first.get(url + path)  # a new connection, the server's first tile
                cold = time.perf_counter() - started
            hexes_in_tile = len(
                __import__("mapbox_vector_tile").decode(response.content)["hex"]["features"]
            )
            print(f"cold z12 hex tile (first request after start): {cold * 1e3:.2f} ms, "
                  f"{hexes_in_tile} hexes, {len(response.content):,} bytes")  # fmt: skip
            tile_paths = [
                f"/collections/hex/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" for t in tiles
            ]
            name = f"warm z{zooms[0]}-z{zooms[-1]} hex tiles ({len(tiles)} tiles)"
            _wrk(name, tile_paths, url, args.connections, TARGET_TILES)
            pages = max(1, len(hexes) // 100)  # every page of the grid in turn
            item_paths = [
                f"/collections/hex/items?limit=100&offset={100 * i}" for i in range(pages)
            ]
            _wrk("items limit=100", item_paths, url, args.connections, TARGET_ITEMS)
            urls = [f"{url}{p}" for p in tile_paths] * args.repeat
            asyncio.run(_load(urls[: len(tiles)], args.connections))  # warm-up pass
            seconds, latencies, errors = asyncio.run(_load(urls, args.connections))
            _report(f"{name}, httpx client", seconds, latencies, errors, TARGET_TILES)
            items = [f"{url}{item_paths[i % pages]}" for i in range(args.items)]
            asyncio.run(_load(items[:100], args.connections))
            seconds, latencies, errors = asyncio.run(_load(items, args.connections))
            _report("items limit=100, httpx client", seconds, latencies, errors, TARGET_ITEMS)
        finally:
            process.terminate()
            process.wait(timeout=30)
        postgis = _postgis(public, cold_tile)
        if postgis is not None:
            print(
                f"PostGIS ST_AsMVT, same tile, same attributes: first query "
                f"{postgis['first'] * 1e3:.2f} ms, mean of 50 {postgis['mean'] * 1e3:.2f} ms "
                f"({postgis['bytes']:,.0f} bytes); cold tile / PostGIS mean = "
                f"{cold / postgis['mean']:.2f} (target <= 1), / PostGIS first query = "
                f"{cold / postgis['first']:.2f}"
            )


if __name__ == "__main__":
    main()
