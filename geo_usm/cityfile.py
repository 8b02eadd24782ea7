"""The city file: one hand-written TOML file that describes a city's inputs.

See the README ("Describe your own city") for an annotated example. Paths inside the file are
relative to the file itself. Unknown keys are errors naming the key and the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_usm._model import NAME_RE, Strict, format_validation_errors
from geo_usm.catalog import GRID_COLUMN_NAMES, layer_variable_names
from geo_usm.errors import CityFileError
from geo_usm.schema import LOCATION_KEYS, LayerKind, load_kinds

#: Output layer names a city's layers may not take.
RESERVED_NAMES = frozenset({"hex", "units", "crosswalk", "rejects", "study_area", "aggregates"})


def _check_crs(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        CRS.from_user_input(value)
    except CRSError:
        msg = f"unknown CRS '{value}' (use an EPSG code such as 'EPSG:27700')"
        raise ValueError(msg) from None
    return value


class FormatOptions(Strict):
    """How to parse a tabular source (CSV/TSV/Excel) and its values."""

    delimiter: str | None = Field(default=None, description="field separator; sniffed if absent")
    decimal: str = Field(default=".", description="decimal separator of numbers, '.' or ','")
    encoding: str = Field(default="utf-8", description="text encoding; a BOM is always accepted")
    sheet: str | int | None = Field(default=None, description="Excel sheet name or 0-based index")
    na_values: list[str] = Field(default_factory=list, description="extra strings meaning missing")
    datetime_format: str | None = Field(default=None, description="strftime format of datetime")
    month_format: str = Field(default="%Y-%m", description="strftime format of the month column")
    dayfirst: bool = Field(default=False, description="read 01/02/2020 as 1 February")
    where: str | None = Field(default=None, description="OGR SQL filter for vector sources")

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, v: str) -> str:
        if v not in (".", ","):
            msg = "decimal must be '.' or ','"
            raise ValueError(msg)
        return v


class SourceRef(Strict):
    """A vector file (and layer) with its own geometry."""

    path: Path
    layer: str | None = None
    attribution: str = ""


class UnitsConfig(SourceRef):
    """The lowest administrative units."""

    id: str
    name: str | None = None
    population: str | None = None


class LayerConfig(Strict):
    """One input layer of the city."""

    kind: str
    path: Path
    layer: str | None = None
    crs: str | None = Field(default=None, description="CRS of x/y or WKT columns (or of the file)")
    attribution: str = ""
    synthetic: bool = Field(default=False, description="true for generated demonstration data")
    categories: list[str] | None = None
    format: FormatOptions = Field(default_factory=FormatOptions)
    columns: dict[str, str] = Field(default_factory=dict)
    in_totals: bool = Field(
        default=True,
        description="add this layer to its kind's total (crime_count...); false for a layer "
        "that overlaps another of the same kind",
    )
    band: int = Field(default=1, ge=1, description="raster band")
    statistic: Literal["sum", "mean"] = Field(default="sum", description="raster aggregation")
    unit: str = Field(default="", description="unit of a raster's values, e.g. 'persons'")
    may_be_empty: bool = Field(
        default=False, description="accept a layer with no record, or no accepted record"
    )
    max_reject_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="largest share of rows one parsing reason may reject before the layer is "
        "refused (a wrong date format, a wrong column); spatial reasons and the categories "
        "filter do not count",
    )

    _crs = field_validator("crs")(classmethod(lambda cls, v: _check_crs(v)))

    @model_validator(mode="after")
    def _location_keys(self) -> LayerConfig:
        cols = self.columns
        has_lonlat = "lon" in cols or "lat" in cols
        has_xy = "x" in cols or "y" in cols
        if has_lonlat and not ("lon" in cols and "lat" in cols):
            raise ValueError("columns: map both 'lon' and 'lat'")
        if has_xy and not ("x" in cols and "y" in cols):
            raise ValueError("columns: map both 'x' and 'y'")
        if sum([has_lonlat, has_xy, "wkt" in cols]) > 1:
            raise ValueError("columns: map only one of lon/lat, x/y or wkt")
        if has_xy and self.crs is None:
            raise ValueError("x/y columns need 'crs' (the CRS of the coordinates, e.g. EPSG:27700)")
        if "datetime" in cols and "month" in cols:
            raise ValueError("columns: map either 'datetime' or 'month', not both")
        return self


class CityConfig(Strict):
    """A whole city file."""

    name: str
    crs: str | None = None
    h3_resolutions: list[int] = Field(default_factory=lambda: [9], min_length=1)
    attribution: str = ""
    kinds_dir: Path | None = Field(default=None, description="directory of custom layer kinds")
    study_area: SourceRef | None = None
    units: UnitsConfig
    layers: dict[str, LayerConfig] = Field(default_factory=dict)

    _crs = field_validator("crs")(classmethod(lambda cls, v: _check_crs(v)))

    @field_validator("h3_resolutions")
    @classmethod
    def _res(cls, v: list[int]) -> list[int]:
        if any(not 0 <= r <= 15 for r in v):
            raise ValueError("H3 resolutions must be between 0 and 15")
        if len(set(v)) != len(v):
            raise ValueError("H3 resolutions must not repeat")
        return v

    @field_validator("layers")
    @classmethod
    def _names(cls, v: dict[str, LayerConfig]) -> dict[str, LayerConfig]:
        bad = [
            name
            for name in v
            if not NAME_RE.match(name) or name in RESERVED_NAMES or name.startswith("hex_r")
        ]
        if bad:
            msg = "; ".join(
                f"layer name '{b}' must be lower_snake_case and not one of "
                f"{sorted(RESERVED_NAMES)} or hex_r<N>"
                for b in bad
            )
            raise ValueError(msg)
        return v


class City:
    """A loaded, checked city file with paths resolved.

    Attributes
    ----------
    path : Path
        The city file.
    config : CityConfig
        The parsed contents.
    kinds : dict
        Layer kinds available to this city (built-in plus custom).
    sha256 : str
        Hash of the city file's bytes.

    """

    def __init__(self, path: Path, config: CityConfig, kinds: dict[str, LayerKind], sha256: str):
        self.path = path
        self.config = config
        self.kinds = kinds
        self.sha256 = sha256

    @property
    def base(self) -> Path:
        """Directory the relative paths are resolved against."""
        return self.path.parent

    def resolve(self, p: Path) -> Path:
        """Resolve a path from the city file."""
        return p if p.is_absolute() else (self.base / p)


def load_city(path: str | Path) -> City:
    """Read and check a city file.

    Parameters
    ----------
    path
        Path to ``city.toml``.

    Returns
    -------
    City

    Raises
    ------
    CityFileError
        If the file is missing, is not TOML, has unknown or missing keys, names an unknown layer
        kind, or maps a column that the kind does not define.

    """
    path = Path(path)
    if not path.is_file():
        raise CityFileError("city file not found", path=path, hint="check the path")
    raw = path.read_bytes()
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CityFileError(f"not valid TOML: {exc}", path=path) from None
    try:
        config = CityConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_errors(exc)
        raise CityFileError(
            "; ".join(problems), path=path, hint="see 'Describe your own city' in the README"
        ) from None
    extra = (path.parent / config.kinds_dir,) if config.kinds_dir else ()
    kinds = load_kinds(tuple(p.resolve() for p in extra))
    problems = []
    for name, layer in config.layers.items():
        if layer.kind not in kinds:
            problems.append(
                f"layers.{name}.kind: unknown kind '{layer.kind}' "
                f"(known: {', '.join(sorted(kinds))}; declare custom kinds in a kinds_dir)"
            )
            continue
        kind = kinds[layer.kind]
        allowed = set(kind.fields) | set(LOCATION_KEYS)
        if kind.temporal:
            allowed |= {"datetime", "month"}
        for key in layer.columns:
            if key not in allowed:
                problems.append(
                    f"layers.{name}.columns: unknown key '{key}' for kind '{layer.kind}' "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        if layer.categories is not None and "category" not in kind.fields:
            problems.append(f"layers.{name}.categories: kind '{layer.kind}' has no category field")
    if not problems:
        problems += _name_clashes(config, kinds)
    if problems:
        raise CityFileError("; ".join(problems), path=path)
    return City(path.resolve(), config, kinds, hashlib.sha256(raw).hexdigest())


def _name_clashes(config: CityConfig, kinds: dict[str, LayerKind]) -> list[str]:
    """Return every output column two sources would both write (one must be renamed)."""
    owners: dict[str, list[str]] = {name: ["the grids"] for name in GRID_COLUMN_NAMES}
    for kname, kind in kinds.items():
        if kind.total:
            owners.setdefault(kind.total, []).append(f"the total of kind '{kname}'")
    for name, layer in config.layers.items():
        for column in layer_variable_names(name, kinds[layer.kind], set(layer.columns)):
            owners.setdefault(column, []).append(f"layer '{name}'")
    return [
        f"output column '{column}' would be written by {' and by '.join(who)}: rename the "
        "layer (or the custom kind's count_field/total_field)"
        for column, who in owners.items()
        if len(who) > 1
    ]
