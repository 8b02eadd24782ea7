"""Benchmark (synthetic): the vectorised MVT encoder against GDAL's MVT writer, same data.

Run with ``.venv/bin/python benchmarks/bench_tiles_encode.py`` (``--help`` for options).

A seeded synthetic hexagon grid, H3 resolution 10 around Manchester (a disk of ``--hexes``
cells, default 85,177: Greater Manchester's size), with 54 columns like a build's grids (the
``h3`` id, 35 floats and 12 integers with about 10 % NULLs, 4 categorical strings, 2 booleans),
is tiled at its 6 zoom levels (:func:`geo_usm.tiles.hex_zoom_range`, 12 to 17) twice:

- ``geo_usm``: :func:`geo_usm.tiles.write_archive` (the vectorised encoder of
  :mod:`geo_usm.mvt`, gzip, the PMTiles file);
- ``gdal``: pyogrio ``write_dataframe`` with driver ``PMTiles`` and the options the build used
  before (extent 4096, buffer 80, no simplification, no size or feature limit), which also
  writes a gzip PMTiles file.

Printed per size: seconds of each, the ratio, tiles and bytes of each archive, the encoder's
microseconds per hex and zoom, and its phases timed apart in one thread (projection and
attributes, encoding, gzip of the raw tiles). Target: the full size under 10 s. GDAL takes
minutes at the full size (``--no-gdal-above N`` skips it above N hexes).
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyogrio
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo_usm import geo, mvt  # noqa: E402
from geo_usm.tiles import (  # noqa: E402
    BUFFER,
    EXTENT,
    GZIP_LEVEL,
    Archive,
    TileLayer,
    hex_zoom_range,
    write_archive,
)

RESOLUTION = 10
CENTRE = (53.4808, -2.2426)  # Manchester (lat, lon)
TARGET_SECONDS = 10.0
SEED = 20261124


def synthetic_hexes(n: int, seed: int = SEED) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """Return about ``n`` H3 hexagons (a disk) with 54 seeded columns, and their types."""
    k = max(1, round((-3 + np.sqrt(9 + 12 * (n - 1))) / 6))
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(*CENTRE, RESOLUTION), k))
    polygons = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    rng = np.random.default_rng(seed)
    size = len(cells)
    data: dict[str, object] = {"h3": cells}
    fields = {"h3": "string"}
    for i in range(35):
        values = rng.gamma(2.0, 10.0, size)
        values[rng.random(size) < 0.1] = np.nan
        data[f"float_{i:02d}"] = values
        fields[f"float_{i:02d}"] = "float"
    for i in range(12):
        counts = rng.poisson(5.0, size).astype(float)
        counts[rng.random(size) < 0.1] = np.nan
        data[f"int_{i:02d}"] = counts
        fields[f"int_{i:02d}"] = "integer"
    for i in range(4):
        labels = np.array(["low", "medium", "high", "very high"], dtype=object)[
            rng.integers(0, 4, size)
        ]
        labels[rng.random(size) < 0.1] = None
        data[f"class_{i}"] = labels
        fields[f"class_{i}"] = "string"
    for i in range(2):
        data[f"flag_{i}"] = pd.array(rng.random(size) < 0.3, dtype="boolean")
        fields[f"flag_{i}"] = "boolean"
    frame = gpd.GeoDataFrame(data, geometry=polygons, crs="EPSG:4326").to_crs("EPSG:27700")
    return frame, fields


def run_geo_usm(frame: gpd.GeoDataFrame, fields: dict[str, str], out: Path) -> float:
    """Write the archive with the vectorised encoder; return seconds."""
    minzoom, maxzoom = hex_zoom_range(RESOLUTION)
    layer = TileLayer("hex", frame, fields, minzoom, maxzoom)  # type: ignore[arg-type]
    started = time.perf_counter()
    write_archive(out, [layer], name="hex", description="synthetic", attribution="synthetic")
    return time.perf_counter() - started


def phases(frame: gpd.GeoDataFrame, fields: dict[str, str]) -> dict[str, float]:
    """Time the encoder's phases apart (one thread): projection and attributes, encode, gzip."""
    minzoom, maxzoom = hex_zoom_range(RESOLUTION)
    started = time.perf_counter()
    lonlat = geo.to_crs(np.asarray(frame.geometry.values), frame.crs, geo.WGS84)
    geoms = mvt.wgs84_to_mercator(lonlat)
    attributes = mvt.prepare_attributes(pd.DataFrame(frame[list(fields)]), fields)
    prepared = time.perf_counter()
    tiles = mvt.encode_layer("hex", geoms, attributes, minzoom, maxzoom)
    encoded = time.perf_counter()
    raw = sum(len(t) for t in tiles.values())
    for data in tiles.values():
        gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    done = time.perf_counter()
    return {
        "prepare": prepared - started,
        "encode": encoded - prepared,
        "gzip": done - encoded,
        "raw_mb": raw / 1e6,
    }


def run_gdal(frame: gpd.GeoDataFrame, out: Path) -> float:
    """Write the archive with GDAL's MVT writer (the build's former options); return seconds."""
    minzoom, maxzoom = hex_zoom_range(RESOLUTION)
    options = {
        "MINZOOM": minzoom,
        "MAXZOOM": maxzoom,
        "EXTENT": EXTENT,
        "BUFFER": BUFFER,
        "SIMPLIFICATION": 0.0,
        "NAME": "hex",
        "MAX_SIZE": 2_000_000_000,
        "MAX_FEATURES": 2_000_000_000,
    }
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(frame, out, layer="hex", driver="PMTiles", dataset_options=options)
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hexes", default="5000,85177", help="comma-separated grid sizes (default 5000,85177)"
    )
    parser.add_argument(
        "--no-gdal-above", type=int, default=10**9, help="skip GDAL for grids above this size"
    )
    args = parser.parse_args()
    print(f"synthetic benchmark: H3 resolution {RESOLUTION} hexagons, 54 columns, seed {SEED}")
    print(f"load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    minzoom, maxzoom = hex_zoom_range(RESOLUTION)
    for n in (int(v) for v in args.hexes.split(",")):
        frame, fields = synthetic_hexes(n)
        with tempfile.TemporaryDirectory(prefix="bench-mvt-") as tmp:
            ours_path, gdal_path = Path(tmp) / "ours.pmtiles", Path(tmp) / "gdal.pmtiles"
            ours = run_geo_usm(frame, fields, ours_path)
            with Archive(ours_path) as archive:
                ours_tiles = len(archive)
            line = (
                f"{len(frame):>7,} hexes x {len(fields)} columns, zooms {minzoom}-{maxzoom}: "
                f"geo_usm {ours:7.2f} s ({ours_tiles:,} tiles, "
                f"{ours_path.stat().st_size / 1e6:.1f} MB, "
                f"{ours / (len(frame) * (maxzoom - minzoom + 1)) * 1e6:.1f} us per hex and zoom)"
            )
            parts = phases(frame, fields)
            line += (
                f" [apart, one thread: projection and attributes {parts['prepare']:.2f} s, "
                f"encode {parts['encode']:.2f} s, gzip level {GZIP_LEVEL} of "
                f"{parts['raw_mb']:.0f} MB {parts['gzip']:.2f} s]"
            )
            if len(frame) <= args.no_gdal_above:
                gdal = run_gdal(frame, gdal_path)
                with Archive(gdal_path) as archive:
                    gdal_tiles = len(archive)
                line += (
                    f"; gdal {gdal:7.2f} s ({gdal_tiles:,} tiles, "
                    f"{gdal_path.stat().st_size / 1e6:.1f} MB); gdal / geo_usm = {gdal / ours:.1f}x"
                )
            else:
                line += "; gdal skipped (--no-gdal-above)"
            if n > 50_000:
                verdict = "meets" if ours < TARGET_SECONDS else "misses"
                line += f"; target {TARGET_SECONDS:.0f} s: {verdict}"
            print(line, flush=True)
    print(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
