"""Canonical schema of every layer kind, loaded from the declarative files in ``layers/``.

Each kind file declares the canonical fields of one layer kind (type, range, whether required,
unique or sensitive). Ingest maps a city's source columns onto these fields; nothing else in the
code base lists them. Every point layer also gets the canonical columns in
:data:`BASE_COLUMNS`, and temporal kinds get ``datetime`` and ``month``.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo_usm.errors import LayerDefinitionError

FieldType = Literal["string", "integer", "float", "boolean", "sex"]
GeometryType = Literal["point", "line", "polygon", "raster"]

#: Columns that ingest adds to every canonical vector layer (besides ``geometry``).
BASE_COLUMNS = ("source_row",)
#: Columns that temporal kinds get from a ``datetime`` or ``month`` mapping.
TIME_COLUMNS = ("datetime", "month")
#: Column-mapping keys that describe where a record is rather than a canonical field.
LOCATION_KEYS = ("lon", "lat", "x", "y", "wkt")

SEX_VALUES = ("female", "male", "other", "unknown")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One canonical field of a layer kind."""

    type: FieldType
    description: str = ""
    required: bool = False
    unique: bool = False
    sensitive: bool = False
    min: float | None = None
    max: float | None = None
    default: float | str | None = None


class LayerKind(_Strict):
    """A layer kind: its geometry and canonical fields."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str = ""
    geometry: GeometryType
    count_field: str | None = None
    temporal: bool = False
    fields: dict[str, FieldSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> LayerKind:
        reserved = set(BASE_COLUMNS) | set(TIME_COLUMNS) | set(LOCATION_KEYS) | {"geometry"}
        clash = reserved & set(self.fields)
        if clash:
            msg = f"field name(s) {sorted(clash)} are reserved"
            raise ValueError(msg)
        if self.count_field and self.geometry != "point":
            msg = "count_field is only meaningful for point layers"
            raise ValueError(msg)
        return self

    @property
    def columns(self) -> list[str]:
        """Canonical attribute columns of this kind, in output order."""
        cols = list(BASE_COLUMNS)
        if self.temporal:
            cols += list(TIME_COLUMNS)
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
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LayerDefinitionError(f"not valid TOML: {exc}", path=path) from None
    try:
        kind = LayerKind.model_validate(data)
    except ValidationError as exc:
        raise LayerDefinitionError(_format_validation(exc), path=path) from None
    if kind.kind != path.stem:
        msg = f"kind '{kind.kind}' must match the file name '{path.stem}.toml'"
        raise LayerDefinitionError(msg, path=path)
    return kind


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


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
