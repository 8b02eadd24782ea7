"""The build directory: ``diagnosis.gpkg`` plus ``manifest.json``, published atomically.

A build is written into a staging directory beside the output and published by atomically
replacing a symbolic link: ``OUT`` points to ``.OUT.builds/<build_id>``. Readers that opened the
previous build keep it (the previous build is kept until the next publish), and a failed or
interrupted build never touches ``OUT``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from geo_usm.errors import BuildError, NotFoundError

GPKG = "diagnosis.gpkg"
MANIFEST = "manifest.json"
_KEEP = 2  # published builds kept: the current one and the previous one


def builds_root(out: Path) -> Path:
    """Return the hidden directory holding the builds published at ``out``."""
    return out.parent / f".{out.name}.builds"


def check_output(out: Path) -> None:
    """Refuse an output path that exists but is not a geo-usm build link.

    Raises
    ------
    BuildError
        If ``out`` is a non-empty ordinary directory or a file.

    """
    if out.is_symlink() or not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    msg = "exists and is not a geo-usm build (builds are published as a link)"
    raise BuildError(msg, path=out, hint="choose another --out or remove it")


def staging_dir(out: Path, build_id: str) -> Path:
    """Create and return the staging directory of a new build."""
    root = builds_root(out)
    root.mkdir(parents=True, exist_ok=True)
    stage = root / f"{build_id}.partial"
    stage.mkdir()
    return stage


def write_layer(
    stage: Path, name: str, frame: pd.DataFrame, *, geometry_type: str | None = None
) -> None:
    """Write one layer (spatial or attribute-only) into the staging GeoPackage."""
    path = stage / GPKG
    if isinstance(frame, gpd.GeoDataFrame):
        pyogrio.write_dataframe(
            frame,
            path,
            layer=name,
            driver="GPKG",
            geometry_type=geometry_type,
            promote_to_multi=False,
        )
    else:
        pyogrio.write_dataframe(pd.DataFrame(frame), path, layer=name, driver="GPKG")


def write_manifest(stage: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` into the staging directory."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str)
    (stage / MANIFEST).write_text(text + "\n", encoding="utf-8")


def publish(stage: Path, out: Path, build_id: str) -> Path:
    """Publish a staged build at ``out`` by an atomic link swap.

    Returns
    -------
    Path
        The directory of the published build.

    """
    check_output(out)
    root = builds_root(out)
    final = root / build_id
    stage.rename(final)
    if out.is_dir() and not out.is_symlink():
        out.rmdir()  # an empty directory the user created: nothing to lose
    link = out.parent / f".{out.name}.link-{build_id}"
    link.symlink_to(os.path.relpath(final, out.parent))
    os.replace(link, out)
    _prune(root, keep=final)
    return final


def discard(stage: Path) -> None:
    """Remove a staging directory after a failed build."""
    shutil.rmtree(stage, ignore_errors=True)


def _prune(root: Path, keep: Path) -> None:
    builds = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial")),
        key=lambda p: p.stat().st_mtime,
    )
    for old in builds[:-_KEEP]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def load_manifest(build: Path) -> dict[str, Any]:
    """Read a build's manifest.

    Raises
    ------
    NotFoundError
        If ``build`` is not a geo-usm build directory.

    """
    path = Path(build) / MANIFEST
    if not path.is_file() or not (Path(build) / GPKG).is_file():
        msg = "not a geo-usm build (no manifest.json and diagnosis.gpkg)"
        raise NotFoundError(msg, path=build, hint="run 'usm build CITY_FILE --out DIR' first")
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def read_layer(build: Path, name: str) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read one layer of a build's GeoPackage."""
    return pyogrio.read_dataframe(Path(build) / GPKG, layer=name)
