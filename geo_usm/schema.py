"""Canonical schema of every layer kind, loaded from the declarative files in ``layers/``.

Each kind file declares the canonical fields of one layer kind (type, range, whether required,
unique or sensitive). Ingest maps a city's source columns onto these fields; nothing else in the
code base lists them. Every point layer also gets the canonical columns in
:data:`BASE_COLUMNS`, and temporal kinds get ``datetime`` and ``month``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from geo_usm._model import NAME_PATTERN, StrictInput, format_validation_errors
from geo_usm._toml import read_toml
from geo_usm.errors import LayerDefinitionError

FieldType = Literal["string", "integer", "float", "boolean", "sex"]
GeometryType = Literal["point", "line", "polygon", "raster", "table"]

#: Columns that ingest adds to every canonical vector layer (besides ``geometry``).
BASE_COLUMNS = ("source_row",)
#: Columns that temporal kinds get from a ``datetime`` or ``month`` mapping.
TIME_COLUMNS = ("datetime", "month")
#: Column-mapping keys that describe where a record is rather than a canonical field
#: (``unit_code``: the record is located by the code of its admin unit, not by coordinates).
LOCATION_KEYS = ("lon", "lat", "x", "y", "wkt", "unit_code")
#: Column-mapping key of a point layer whose rows are counts (a table of incidents per unit and
#: month): each row stands for that many records.
COUNT_KEY = "count"

SEX_VALUES = ("female", "male", "other", "unknown")


class FieldSpec(StrictInput):
    """One canonical field of a layer kind.

    ``aggregate`` asks the aggregation engine to publish the field's ``sum`` (weights) or
    ``mean`` (scores) per hexagon and admin unit; ``unit`` is its unit of measure. Sensitive
    fields are never aggregated into public outputs.
    """

    type: FieldType
    description: str = ""
    required: bool = False
    unique: bool = False
    sensitive: bool = False
    min: float | None = None
    max: float | None = None
    default: float | str | None = None
    aggregate: Literal["sum", "mean"] | None = None
    unit: str = ""

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.aggregate and self.type not in ("integer", "float"):
            msg = "aggregate is only meaningful for integer and float fields"
            raise ValueError(msg)
        if self.aggregate and self.sensitive:
            msg = "a sensitive field cannot be aggregated into public outputs"
            raise ValueError(msg)
        return self


class LayerKind(StrictInput):
    """A layer kind: its geometry and canonical fields.

    ``count_field`` (points) names the count of the kind's records per hexagon and admin unit,
    summed over the city's layers of the kind (``crime_count``); ``total_field`` does the same
    for the length of a line kind or the footprint area of a polygon kind.
    """

    kind: str = Field(pattern=NAME_PATTERN)
    title: str
    description: str = ""
    geometry: GeometryType
    count_field: str | None = Field(default=None, pattern=NAME_PATTERN)
    total_field: str | None = Field(default=None, pattern=NAME_PATTERN)
    temporal: bool = False
    fields: dict[str, FieldSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> LayerKind:
        reserved = (
            set(BASE_COLUMNS) | set(TIME_COLUMNS) | set(LOCATION_KEYS) | {COUNT_KEY, "geometry"}
        )
        clash = reserved & set(self.fields)
        if clash:
            msg = f"field name(s) {sorted(clash)} are reserved"
            raise ValueError(msg)
        if self.count_field and self.geometry != "point":
            msg = "count_field is only meaningful for point layers (use total_field)"
            raise ValueError(msg)
        if self.total_field and self.geometry not in ("line", "polygon"):
            msg = "total_field is only meaningful for line and polygon layers"
            raise ValueError(msg)
        return self

    @property
    def total(self) -> str | None:
        """Name of the kind's total per grid feature (count, length or area), if any."""
        return self.count_field or self.total_field

    @property
    def columns(self) -> list[str]:
        """Canonical attribute columns of this kind, in output order."""
        cols = list(BASE_COLUMNS)
        if self.temporal:
            cols += list(TIME_COLUMNS)
        if self.count_field:
            cols.append(COUNT_KEY)
        return cols + list(self.fields)


def builtin_layers_dir() -> Path:
    """Return the directory holding the built-in layer kinds.

    In a source checkout this is the repository's ``layers/``; in an installed wheel it is the
    copy packaged as ``geo_usm/_layers``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "layers", here / "_layers"):
        if candidate.is_dir():
            return candidate
    msg = "the built-in layer definitions (layers/) are missing from this installation"
    raise LayerDefinitionError(msg, hint="reinstall geo-usm")


def _load_kind_file(path: Path) -> LayerKind:
    data, _ = read_toml(path, LayerDefinitionError, "layer kind file")
    try:
        kind = LayerKind.model_validate(data)
    except ValidationError as exc:
        raise LayerDefinitionError("; ".join(format_validation_errors(exc)), path=path) from None
    if kind.kind != path.stem:
        msg = f"kind '{kind.kind}' must match the file name '{path.stem}.toml'"
        raise LayerDefinitionError(msg, path=path)
    return kind


def _load_dir(directory: Path) -> dict[str, LayerKind]:
    return {p.stem: _load_kind_file(p) for p in sorted(directory.glob("*.toml"))}


@cache
def _builtin_kinds() -> dict[str, LayerKind]:
    return _load_dir(builtin_layers_dir())


def load_kinds(extra_dirs: tuple[Path, ...] = ()) -> dict[str, LayerKind]:
    """Load the built-in layer kinds plus any custom kinds.

    Parameters
    ----------
    extra_dirs
        Directories of custom kind files (``<kind>.toml``), for example a city's own
        ``layers/`` folder. A custom kind may not redefine a built-in one.

    Returns
    -------
    dict
        Kind name to :class:`LayerKind`.

    """
    kinds = dict(_builtin_kinds())
    for directory in extra_dirs:
        if not directory.is_dir():
            raise LayerDefinitionError("layer-kind directory not found", path=directory)
        for name, kind in _load_dir(directory.resolve()).items():
            if name in kinds:
                msg = f"custom kind '{name}' redefines a built-in kind"
                raise LayerDefinitionError(msg, path=directory / f"{name}.toml")
            kinds[name] = kind
    return kinds
