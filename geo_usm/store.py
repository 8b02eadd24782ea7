"""The build directory: a public part and a private part, published atomically.

A build directory holds::

    public/manifest.json      what was built from what: counts, reasons, the output catalogue,
                              every artefact with its SHA-256
    public/diagnosis.gpkg     the aggregate grids (hex, hex_r<N>, units), study_area, crosswalk
    public/aggregates.parquet every extensive variable per grid, feature and period (long table)
    private/records.gpkg      accepted records of every input layer and the rejects with their
                              original values: record-level data, never published

``public/`` can be copied to a web server on its own; ``usm serve`` reads only it. Every layer
is written through :func:`write_layer`, which refuses a frame whose columns differ from the
output catalogue.

A build is written into a staging directory beside the output and published by atomically
replacing a symbolic link: ``OUT`` points to ``.OUT.builds/<build_id>``. Readers that opened the
previous build keep it (the previous build is kept until the next publish), and a failed or
interrupted build never touches ``OUT``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from geo_usm.catalog import Catalog, OutputLayer
from geo_usm.errors import BuildError, NotFoundError
from geo_usm.io import file_sha256

PUBLIC = "public"
PRIVATE = "private"
MANIFEST = "manifest.json"
_KEEP = 2  # published builds kept: the current one and the previous one


def builds_root(out: Path) -> Path:
    """Return the hidden directory holding the builds published at ``out``."""
    return out.parent / f".{out.name}.builds"


def check_output(out: Path) -> None:
    """Refuse an output path that cannot hold a geo-usm build, before any work is done.

    Raises
    ------
    BuildError
        If ``out`` is a non-empty ordinary directory or a file, or its parent is not a
        directory that can be created and written to.

    """
    parent = out.parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise BuildError(
                    f"cannot create the build here: {ancestor} is a file, not a directory",
                    path=out,
                    hint="choose an --out inside a directory",
                )
            if not os.access(ancestor, os.W_OK | os.X_OK):
                raise BuildError(
                    f"cannot write in {ancestor} (permission denied)",
                    path=out,
                    hint="choose an --out in a directory you can write to",
                )
            break
    if out.is_symlink():
        target = out.resolve()
        if target.parent == builds_root(out).resolve() or not target.exists():
            return  # a published build (or a dangling link): replaced atomically
        raise BuildError(
            f"is a link to {target}, which is not a geo-usm build (builds are published as a "
            "link to .<name>.builds/<id>)",
            path=out,
            hint="choose another --out or remove the link",
        )
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    msg = "exists and is not a geo-usm build (builds are published as a link)"
    raise BuildError(msg, path=out, hint="choose another --out or remove it")


#: Open, locked lock files of the builds this process is writing (staging dir -> descriptor).
_LOCKS: dict[Path, int] = {}


def stage_path(out: Path, build_id: str) -> Path:
    """Return where the staging directory of a build goes (see :func:`staging_dir`)."""
    return builds_root(out) / f"{build_id}.partial"


def _lock_of(stage: Path) -> Path:
    """Return the lock file guarding a staging directory (``<build_id>.lock`` beside it)."""
    return stage.with_suffix(".lock")


def staging_dir(out: Path, build_id: str) -> Path:
    """Create and return the staging directory of a new build.

    The build holds an exclusive lock (``<build_id>.lock``, taken before the directory
    exists) until it is published or discarded. Staging directories whose lock nobody holds,
    left behind by builds that were killed, are removed first; the published build is never
    touched.
    """
    root = builds_root(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create {root}: {exc.strerror}", path=out) from None
    remove_debris(out)
    stage = stage_path(out, build_id)
    fd = os.open(_lock_of(stage), os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, str(os.getpid()).encode("ascii"))
    _LOCKS[stage] = fd
    stage.mkdir()
    (stage / PUBLIC).mkdir()
    (stage / PRIVATE).mkdir()
    return stage


def remove_debris(out: Path) -> list[Path]:
    """Remove what killed builds left at ``out``: staging directories, half-swapped links.

    Only what belongs to a build whose lock nobody holds is removed (a build running in
    another process keeps its own); returns what was removed.
    """
    root = builds_root(out)
    removed = []
    for stage in root.glob("*.partial"):
        lock = _lock_of(stage)
        if stage.is_dir() and not _held(lock):
            shutil.rmtree(stage, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(stage)
    for link in out.parent.glob(f".{out.name}.link-*"):
        build_id = link.name.split(".link-", 1)[1]
        if link.is_symlink() and not _held(_lock_of(stage_path(out, build_id))):
            link.unlink(missing_ok=True)  # a link swap interrupted between its two steps
            removed.append(link)
    for lock in root.glob("*.lock"):
        if not lock.with_suffix(".partial").exists() and not _held(lock):
            lock.unlink(missing_ok=True)
    return removed


def _held(lock: Path) -> bool:
    """Return whether a running build holds this lock file."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _release(stage: Path) -> None:
    fd = _LOCKS.pop(stage, None)
    if fd is not None:
        _lock_of(stage).unlink(missing_ok=True)
        os.close(fd)


def write_layer(stage: Path, layer: OutputLayer, frame: pd.DataFrame) -> None:
    """Write one catalogued layer into its file of the staging directory.

    Raises
    ------
    RuntimeError
        If the frame's columns are not exactly the catalogue's (a bug: the catalogue is the
        contract).

    """
    geometry = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    columns = [str(c) for c in frame.columns if c != geometry]
    if columns != layer.column_names or (geometry is None) != (layer.geometry is None):
        msg = (
            f"layer '{layer.name}' does not match the output catalogue: "
            f"columns {columns}, declared {layer.column_names}"
        )
        raise RuntimeError(msg)
    path = stage / layer.file
    if path.suffix == ".parquet":
        pd.DataFrame(frame).to_parquet(path, index=False)
    elif geometry is not None:
        pyogrio.write_dataframe(
            frame,
            path,
            layer=layer.name,
            driver="GPKG",
            geometry_type=layer.geometry,
            promote_to_multi=layer.geometry is not None and layer.geometry.startswith("Multi"),
            use_arrow=True,
            # the public grids are queried by extent (API, GIS); the private records are read
            # whole, and skipping their R-tree saves a quarter of the writing time
            layer_options={"SPATIAL_INDEX": "YES" if layer.store == PUBLIC else "NO"},
        )
    else:
        pyogrio.write_dataframe(
            pd.DataFrame(frame), path, layer=layer.name, driver="GPKG", use_arrow=True
        )


def artefacts(stage: Path, catalog: Catalog) -> list[dict[str, Any]]:
    """List every file of a staged build with its store, size and SHA-256.

    The catalogue's files, then the vector tilesets (``public/tiles/*.pmtiles``, each listed
    with its tileset name; their layers are in the manifest's ``tiles`` section).
    """
    files = {
        rel: [layer.name for layer in catalog.layers if layer.file == rel]
        for rel in dict.fromkeys(layer.file for layer in catalog.layers)
    }
    for tileset in sorted((stage / PUBLIC / "tiles").glob("*.pmtiles")):
        files[tileset.relative_to(stage).as_posix()] = [tileset.stem]
    out = []
    for rel, layers in files.items():
        path = stage / rel
        if path.is_file():
            out.append(
                {
                    "path": rel,
                    "store": rel.split("/", 1)[0],
                    "bytes": path.stat().st_size,
                    "sha256": file_sha256(path),
                    "layers": layers,
                }
            )
    return out


def write_manifest(stage: Path, manifest: dict[str, Any]) -> None:
    """Write ``public/manifest.json`` into the staging directory."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str)
    (stage / PUBLIC / MANIFEST).write_text(text + "\n", encoding="utf-8")


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
    _release(stage)  # published: the lock guarded the staging directory and the link swap
    _prune(root, keep=final)
    return final


def discard(stage: Path) -> None:
    """Remove a staging directory after a failed build, and release its lock."""
    shutil.rmtree(stage, ignore_errors=True)
    _release(stage)


def _prune(root: Path, keep: Path) -> None:
    builds = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial")),
        key=lambda p: p.stat().st_mtime,
    )
    for old in builds[:-_KEEP]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def public_dir(build: str | Path) -> Path:
    """Return the public part of a build: ``BUILD/public``, or ``BUILD`` if it is a copy of it.

    Raises
    ------
    NotFoundError
        If ``build`` is neither a geo-usm build nor the public part of one.

    """
    build = Path(build)
    for candidate in (build / PUBLIC, build):
        if (candidate / MANIFEST).is_file():
            return candidate.resolve()
    if (build / "diagnosis.gpkg").is_file():
        msg = "a build made by an older geo-usm (no public/ and private/ parts)"
        raise NotFoundError(msg, path=build, hint="rebuild it with 'usm build'")
    msg = "not a geo-usm build (no public/manifest.json)"
    raise NotFoundError(msg, path=build, hint="run 'usm build CITY_FILE --out DIR' first")


def load_manifest(public: Path) -> dict[str, Any]:
    """Read the manifest of a build's public part (see :func:`public_dir`)."""
    result: dict[str, Any] = json.loads((public / MANIFEST).read_text(encoding="utf-8"))
    return result


def load_catalog(manifest: dict[str, Any]) -> Catalog:
    """Return the output catalogue recorded in a manifest."""
    return Catalog.model_validate(manifest["catalog"])


def read_layer(public: Path, layer: OutputLayer) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read one public layer of a build, by its catalogue entry."""
    if layer.store != PUBLIC:
        msg = f"layer '{layer.name}' is not public"
        raise NotFoundError(msg)
    path = public / Path(layer.file).name
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pyogrio.read_dataframe(path, layer=layer.name)
