"""Benchmark: hot spot statistics on H3 grids, geo-usm's stats.spatial side by side with esda.

Run with ``make bench`` or ``.venv/bin/python benchmarks/bench_hotspots.py --help``.

Data (synthetic, seeded, labelled so in the output): contiguous H3 resolution-9 disks around a
central London cell of about 10,000 and 100,000 cells, with a Poisson count whose mean has
spatial structure (two smooth hot areas and a cold one on a background of 2).

Timed, median of ``--repeat`` runs in this process (warm):

- geo-usm: ``hex_weights``; analytic ``gi_star`` including the weights (target under 0.5 s at
  100k cells); ``local_moran`` with 999 permutations; ``global_moran`` with 999 permutations;
- esda, same run, given a ``libpysal`` W of the same matrix (its construction not timed):
  ``G_Local(transform="B", star=True, permutations=0)``, ``Moran_Local(permutations=999)``
  and ``Moran(permutations=999)``, each called once first (numba compiles on the first call).

Cold starts, each in a fresh interpreter: import plus the first Gi* and local Moran calls (for
geo-usm with the weights, for esda without building its W). The penalty is the cold time minus
the warm time of the same work (target under 2 s). Equality is checked on every run: the largest
differences of the z-scores and of the local I from esda's are printed.

Targets: geo-usm at least 2x faster than warm esda; Gi* with weights under 0.5 s at 100k cells;
cold-start penalty under 2 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h3
import numpy as np
from h3ronpy.vector import cells_to_coordinates
from scipy import sparse

import geo_usm
from geo_usm.stats import spatial

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "hotspots.json"
#: Centre of the synthetic disks (Oxford Circus, London).
CENTRE = (51.5155, -0.1415)
RESOLUTION = 9
PERMUTATIONS = 999
TARGET_GI_100K = 0.5
TARGET_SPEEDUP = 2.0
TARGET_COLD_PENALTY = 2.0

OURS_COLD = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from geo_usm.stats import spatial
t1 = time.perf_counter()
data = np.load(sys.argv[1])
cells, y = data["cells"], data["y"]
t2 = time.perf_counter()
w = spatial.hex_weights(cells)
spatial.gi_star(y, w)
spatial.local_moran(y, w, permutations=%(perms)d, seed=0)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "calls": t3 - t2}))
"""

ESDA_COLD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from scipy import sparse
data = np.load(sys.argv[1])
y = data["y"]
w = sparse.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=data["shape"])
t0 = time.perf_counter()
import esda, libpysal
t1 = time.perf_counter()
lw = libpysal.weights.WSP(w).to_W(silence_warnings=True)
t2 = time.perf_counter()
esda.G_Local(y, lw, transform="B", star=True, permutations=0)
esda.Moran_Local(y, lw, permutations=%(perms)d, keep_simulations=False, seed=0)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "calls": t3 - t2}))
"""


def synthetic_grid(target: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic data: an H3 res-9 disk of about ``target`` cells and a seeded Poisson count."""
    radius = max(1, round((-3 + np.sqrt(9 - 12 * (1 - target))) / 6))
    centre = h3.latlng_to_cell(*CENTRE, RESOLUTION)
    cells = np.sort(np.array([h3.str_to_int(c) for c in h3.grid_disk(centre, radius)], np.uint64))
    coords = cells_to_coordinates(cells)
    lat = np.asarray(coords["lat"], dtype=np.float64)
    lng = np.asarray(coords["lng"], dtype=np.float64)
    # kilometres from the centre, then smooth bumps scaled to the disk's radius (174 m edges)
    x = (lng - CENTRE[1]) * 111.32 * np.cos(np.radians(CENTRE[0]))
    yk = (lat - CENTRE[0]) * 110.57
    scale = radius * 0.3
    mean = (
        2.0
        + 6.0 * np.exp(-((x - 0.3 * scale) ** 2 + yk**2) / (2 * (0.25 * scale) ** 2))
        + 4.0 * np.exp(-(x**2 + (yk + 0.4 * scale) ** 2) / (2 * (0.15 * scale) ** 2))
        - 1.5
        * np.exp(-((x + 0.4 * scale) ** 2 + (yk - 0.3 * scale) ** 2) / (2 * (0.3 * scale) ** 2))
    )
    y = np.random.default_rng(seed).poisson(mean).astype(np.float64)
    return cells, y


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def cold(code: str, data: Path) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter and return its timings."""
    run = subprocess.run(
        [sys.executable, "-c", code % {"perms": PERMUTATIONS}, str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def bench_size(target: int, repeat: int, peer: bool, workdir: Path) -> dict[str, Any]:
    """Time one grid size; print its table; return its numbers."""
    cells, y = synthetic_grid(target)
    n = len(cells)
    t_w, w = timed(lambda: spatial.hex_weights(cells), repeat)
    t_gi, gi = timed(lambda: spatial.gi_star(y, spatial.hex_weights(cells)), repeat)
    t_lisa, lisa = timed(lambda: spatial.local_moran(y, w, seed=1), repeat)
    t_moran, ours_global = timed(lambda: spatial.global_moran(y, w, seed=1), repeat)
    entry: dict[str, Any] = {
        "cells": n,
        "pairs": int(w.nnz),
        "geo_usm": {
            "hex_weights_s": t_w,
            "gi_star_with_weights_s": t_gi,
            "local_moran_999_s": t_lisa,
            "global_moran_999_s": t_moran,
        },
    }
    data = workdir / f"grid_{n}.npz"
    np.savez(data, cells=cells, y=y, data=w.data, indices=w.indices, indptr=w.indptr, shape=w.shape)
    ours_cold = cold(OURS_COLD, data)
    ours_cold_s = ours_cold["import"] + ours_cold["calls"]
    ours_penalty = ours_cold_s - (t_gi + t_lisa)
    entry["geo_usm"] |= {"cold_s": ours_cold_s, "cold_penalty_s": ours_penalty}

    print(f"\n{n:,} cells (synthetic, H3 res {RESOLUTION}), {w.nnz:,} neighbour pairs")
    print(f"  {'':<38} {'geo-usm':>9} {'esda':>9} {'esda/ours':>10}")
    rows: list[tuple[str, float, float | None]] = [("hex_weights", t_w, None)]
    if peer:
        import esda
        import libpysal

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lw = libpysal.weights.WSP(w).to_W(silence_warnings=True)

            def g_local() -> Any:
                return esda.G_Local(y, lw, transform="B", star=True, permutations=0)

            def moran_local() -> Any:
                return esda.Moran_Local(
                    y, lw, permutations=PERMUTATIONS, keep_simulations=False, seed=2
                )

            def moran() -> Any:
                return esda.Moran(y, lw, transformation="r", permutations=PERMUTATIONS)

            g_local(), moran_local(), moran()  # warm: numba compiles on the first call
            t_eg, eg = timed(g_local, repeat)
            t_el, el = timed(moran_local, repeat)
            t_em, em = timed(moran, repeat)
        esda_cold = cold(ESDA_COLD, data)
        esda_cold_s = esda_cold["import"] + esda_cold["calls"]
        esda_penalty = esda_cold_s - (t_eg + t_el)
        rows += [
            ("Gi* analytic (geo-usm with weights)", t_gi, t_eg),
            (f"local Moran, {PERMUTATIONS} permutations", t_lisa, t_el),
            (f"global Moran, {PERMUTATIONS} permutations", t_moran, t_em),
            ("cold: import + first Gi* and LISA", ours_cold_s, esda_cold_s),
            ("cold-start penalty (cold - warm)", ours_penalty, esda_penalty),
        ]
        ok = ~np.isnan(lisa.p_sim) & ~np.isnan(el.p_sim)
        equality = {
            "max_abs_diff_gi_z": float(np.nanmax(np.abs(gi.z - eg.Zs))),
            "max_abs_diff_local_I": float(np.max(np.abs(lisa.i - el.Is))),
            "abs_diff_global_I": abs(ours_global["I"] - em.I),
            "mean_abs_diff_lisa_p_sim": float(np.mean(np.abs(lisa.p_sim[ok] - el.p_sim[ok]))),
        }
        entry["esda"] = {
            "numba": importlib.util.find_spec("numba") is not None,
            "g_local_s": t_eg,
            "moran_local_999_s": t_el,
            "moran_999_s": t_em,
            "cold_s": esda_cold_s,
            "cold_penalty_s": esda_penalty,
        }
        entry["equality"] = equality
    else:
        rows += [
            ("Gi* analytic (with weights)", t_gi, None),
            (f"local Moran, {PERMUTATIONS} permutations", t_lisa, None),
            (f"global Moran, {PERMUTATIONS} permutations", t_moran, None),
            ("cold: import + first Gi* and LISA", ours_cold_s, None),
            ("cold-start penalty (cold - warm)", ours_penalty, None),
        ]
    for label, ours, theirs in rows:
        ratio = f"{theirs / ours:9.1f}x" if theirs is not None and ours > 0 else f"{'':>10}"
        esda_s = f"{theirs:7.3f} s" if theirs is not None else f"{'-':>9}"
        print(f"  {label:<38} {ours:7.3f} s {esda_s} {ratio}")
    if peer:
        eq = entry["equality"]
        print(
            f"  equality with esda: max |z - Zs| {eq['max_abs_diff_gi_z']:.1e}, "
            f"max |I - Is| {eq['max_abs_diff_local_I']:.1e}, "
            f"|I - Moran.I| {eq['abs_diff_global_I']:.1e}; "
            f"mean |p_sim - esda p_sim| {eq['mean_abs_diff_lisa_p_sim']:.4f} "
            "(independent draws; esda's rounding breaks ties of integer counts)"
        )
    entry["targets"] = verdicts(entry)
    for name, passed in entry["targets"].items():
        print(f"  target {name}: {'PASS' if passed else 'MISS'}")
    return entry


def verdicts(entry: dict[str, Any]) -> dict[str, bool]:
    """The targets that apply to one size."""
    ours = entry["geo_usm"]
    out = {f"cold-start penalty < {TARGET_COLD_PENALTY:g} s": ours["cold_penalty_s"] < 2.0}
    if entry["cells"] >= 50_000:
        out[f"Gi* with weights < {TARGET_GI_100K:g} s"] = (
            ours["gi_star_with_weights_s"] < TARGET_GI_100K
        )
    if "esda" in entry:
        theirs = entry["esda"]
        speedups = [
            theirs["g_local_s"] / ours["gi_star_with_weights_s"],
            theirs["moran_local_999_s"] / ours["local_moran_999_s"],
        ]
        out[f"at least {TARGET_SPEEDUP:g}x faster than warm esda (Gi*, LISA)"] = (
            min(speedups) >= TARGET_SPEEDUP
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated approximate numbers of cells"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median kept)")
    parser.add_argument("--no-peer", action="store_true", help="skip the esda comparison")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file")
    args = parser.parse_args(argv)

    numba = importlib.util.find_spec("numba") is not None
    print(
        f"geo-usm {geo_usm.__version__}: hot spot statistics on synthetic H3 grids, "
        f"median of {args.repeat}"
    )
    if not args.no_peer and not numba:
        print("  note: numba is not installed, esda runs its pure-Python fallback (no JIT)")
    results: dict[str, Any] = {"numba": numba, "repeat": args.repeat, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            entry = bench_size(int(size), args.repeat, not args.no_peer, Path(tmp))
            results["sizes"][str(entry["cells"])] = entry
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    print(f"\nresults written to {args.json}")
    return 0


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, sparse.spmatrix):
        return str(value.shape)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
