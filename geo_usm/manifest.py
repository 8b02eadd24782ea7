"""The build manifest: what was built, from what, by which software, with what outcome."""

from __future__ import annotations

import datetime as dt
import json
import platform
from typing import Any

from geo_usm import __version__
from geo_usm.catalog import Catalog
from geo_usm.cityfile import City
from geo_usm.ingest import LayerReport
from geo_usm.io import file_sha256
from geo_usm.units import SpatialFrame

#: How points are placed on the grids, written into every manifest.
POINT_ASSIGNMENT = (
    "H3 cell of the WGS84 location; admin unit containing the point, ties on shared edges to "
    "the lowest unit_id"
)


def build_manifest(
    *,
    city: City,
    frame: SpatialFrame,
    crs_note: str,
    build_id: str,
    started: dt.datetime,
    seconds: float,
    stages: dict[str, float],
    reports: list[LayerReport],
    unit_notes: list[str],
    n_hex: dict[int, int],
    n_rejects: int,
    periods: dict[str, list[str]],
    aggregation_notes: dict[str, list[str]],
    catalog: Catalog,
    indicators: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the manifest of a build (without its ``artefacts``, added by the store)."""
    cfg = city.config
    inputs = [
        {
            "role": "units",
            "path": str(cfg.units.path),
            "sha256": file_sha256(city.resolve(cfg.units.path)),
        }
    ]
    if cfg.study_area:
        inputs.append(
            {
                "role": "study_area",
                "path": str(cfg.study_area.path),
                "sha256": file_sha256(city.resolve(cfg.study_area.path)),
            }
        )
    inputs += [{"role": f"layer:{r.name}", "path": r.path, "sha256": r.sha256} for r in reports]
    attributions = [cfg.attribution, cfg.units.attribution]
    attributions += [cfg.study_area.attribution] if cfg.study_area else []
    attributions += [r.attribution for r in reports]
    layers = {}
    for r in reports:
        entry = r.as_dict()
        entry["periods"] = periods.get(r.name, [])
        entry["notes"] = [*r.notes, *aggregation_notes.get(r.name, [])]
        layers[r.name] = entry
    return {
        "software": {
            "name": "geo-usm",
            "version": __version__,
            "python": platform.python_version(),
        },
        "build_id": build_id,
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(seconds, 3),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "city": {"name": cfg.name, "file": city.path.name, "sha256": city.sha256},
        "crs": {"working": frame.crs.to_string(), "note": crs_note},
        "parameters": {
            "h3_resolutions": cfg.h3_resolutions,
            "primary_resolution": cfg.h3_resolutions[0],
            "study_area": "units union" if cfg.study_area is None else str(cfg.study_area.path),
            "study_area_m2": float(frame.study_area.area),
            "point_assignment": POINT_ASSIGNMENT,
        },
        "inputs": inputs,
        "layers": layers,
        "units": {"count": len(frame.units), "id_field": cfg.units.id, "notes": unit_notes},
        "hex": {str(r): n for r, n in n_hex.items()},
        "rejects": n_rejects,
        "synthetic_layers": [r.name for r in reports if r.synthetic],
        "attribution": [a for a in dict.fromkeys(attributions) if a],
        "indicators": {
            row["id"]: {
                "method": row["method"],
                "parameters": json.loads(row["parameters"]),
                "weight": row["weight"],
                "min_input": row["min_input"],
                "tier": row["tier"],
                "coverage": json.loads(row["coverage"]),
                "null_reason": row["null_reason"] or None,
            }
            for row in indicators or []
        },
        "catalog": catalog.model_dump(mode="json"),
    }
