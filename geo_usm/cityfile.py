"""The city file: one hand-written TOML file that describes a city's inputs.

See the README ("Describe your own city") for an annotated example. Paths inside the file are
relative to the file itself. Unknown keys are errors naming the key and the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_usm._model import NAME_RE, StrictInput, format_validation_errors
from geo_usm._toml import read_toml
from geo_usm.catalog import GRID_COLUMN_NAMES, layer_variable_names
from geo_usm.errors import CityFileError, GeoUsmError
from geo_usm.filters import parse_filter
from geo_usm.hotspots import (
    GRID_HOTSPOT_COLUMNS,
    DensityConfig,
    HotspotsConfig,
    ProgressConfig,
    TrendsConfig,
    eb_columns,
    smoothed_rates,
)
from geo_usm.indicators import CityIndicators, Indicators, resolve
from geo_usm.indices import IndicesConfig, PriorityRules, check_config, index_columns, load_rules
from geo_usm.schema import COUNT_KEY, LOCATION_KEYS, LayerKind, load_kinds

#: Output layer names a city's layers may not take.
RESERVED_NAMES = frozenset(
    {
        "hex",
        "units",
        "crosswalk",
        "rejects",
        "study_area",
        "aggregates",
        "indicators",
        "indicator_gaps",
        "hotspots",
        "time_series",
        "emerging_hotspots",
        "progress",
        "hotspot_evaluation",
        "risk_surface",
        "explanations",
        "peer_groups",
        "priority_areas",
        "city",
    }
)


def _check_crs(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        CRS.from_user_input(value)
    except CRSError:
        msg = f"unknown CRS '{value}' (use an EPSG code such as 'EPSG:27700')"
        raise ValueError(msg) from None
    return value


#: A path written in the city file (relative to the file).
FilePath = Annotated[Path, Field(strict=False)]
_YEAR = ("%Y", "%y", "%G")
_MONTH = ("%m", "%b", "%B", "%j", "%U", "%W", "%V")
_DAY = ("%d", "%j", "%a", "%A", "%u", "%w")


class FormatOptions(StrictInput):
    """How to parse a source and its values."""

    delimiter: str | None = Field(default=None, description="field separator; sniffed if absent")
    decimal: str = Field(default=".", description="decimal separator of numbers, '.' or ','")
    encoding: str = Field(default="utf-8", description="text encoding; a BOM is always accepted")
    sheet: str | int | None = Field(default=None, description="Excel sheet name or 0-based index")
    na_values: list[str] = Field(default_factory=list, description="extra strings meaning missing")
    datetime_format: str | None = Field(default=None, description="strftime format of datetime")
    month_format: str = Field(default="%Y-%m", description="strftime format of the month column")
    dayfirst: bool = Field(default=False, description="read 01/02/2020 as 1 February")
    date_range: list[Annotated[dt.date, Field(strict=False)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="earliest and latest plausible date; default 1900-01-01 to one year after "
        "the build",
    )
    where: str | None = Field(
        default=None, description="row filter (an SQL WHERE subset) for every format"
    )

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, v: str) -> str:
        if v not in (".", ","):
            msg = "decimal must be '.' or ','"
            raise ValueError(msg)
        return v

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is not None and v.lower() != "tab" and (len(v) != 1 or v in '"\r\n'):
            msg = "delimiter must be one character (not a quote or newline), e.g. ';' or '\\t'"
            raise ValueError(msg)
        return v

    @field_validator("month_format")
    @classmethod
    def _month_format(cls, v: str) -> str:
        if not any(d in v for d in _YEAR) or not any(d in v for d in _MONTH):
            msg = (
                f"month_format '{v}' must contain a year (%Y or %y) and a month (%m, %b or %B); "
                "without a year every record would fall in 1900 (split dates: map "
                "columns.month = { year = ..., month = ... })"
            )
            raise ValueError(msg)
        return v

    @field_validator("datetime_format")
    @classmethod
    def _datetime_format(cls, v: str | None) -> str | None:
        if v is not None and not (
            any(d in v for d in _YEAR) and any(d in v for d in _MONTH) and any(d in v for d in _DAY)
        ):
            msg = (
                f"datetime_format '{v}' must contain a year, a month and a day (e.g. "
                "'%d/%m/%Y %H:%M'); for dates split over columns map columns.datetime = "
                "{ year = ..., month = ..., day = ... }"
            )
            raise ValueError(msg)
        return v

    @field_validator("date_range")
    @classmethod
    def _range(cls, v: list[dt.date] | None) -> list[dt.date] | None:
        if v is not None and not (dt.date(1678, 1, 1) < v[0] < v[1] < dt.date(2262, 1, 1)):
            msg = "date_range must be [earliest, latest] with 1678 < earliest < latest < 2262"
            raise ValueError(msg)
        return v


class ColumnValue(StrictInput):
    """A value the file does not carry: the same for every record (``{ value = ... }``)."""

    value: str | int | float | bool


class DateParts(StrictInput):
    """A date built from several columns.

    Either year, month, day, hour, minute, second (from the year down), or a date column plus
    a time column.
    """

    date: str | None = None
    time: str | None = None
    year: str | None = None
    month: str | None = None
    day: str | None = None
    hour: str | None = None
    minute: str | None = None
    second: str | None = None

    @model_validator(mode="after")
    def _check(self) -> DateParts:
        parts = [self.year, self.month, self.day, self.hour, self.minute, self.second]
        if self.date is not None:
            if any(p is not None for p in parts):
                msg = "map either date (and time) or year/month/day/hour/minute/second"
                raise ValueError(msg)
            return self
        if self.time is not None:
            raise ValueError("time needs a date column ('date')")
        if self.year is None or self.month is None:
            raise ValueError("a date from parts needs at least 'year' and 'month'")
        given = [p is not None for p in parts]
        if given != sorted(given, reverse=True):
            msg = "date parts must be given from the year down without gaps (year, month, day...)"
            raise ValueError(msg)
        return self

    @property
    def columns(self) -> list[str]:
        """The source columns read."""
        return [c for c in self.model_dump().values() if c is not None]


def _mapping_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "#value" if "value" in value else "#parts"
    if isinstance(value, ColumnValue):
        return "#value"
    return "#parts" if isinstance(value, DateParts) else "#column"


#: One entry of a layer's column mapping: a source column name, a constant, or date parts.
ColumnMapping = Annotated[
    Annotated[str, Tag("#column")]
    | Annotated[ColumnValue, Tag("#value")]
    | Annotated[DateParts, Tag("#parts")],
    Discriminator(_mapping_tag),
]


class Placeholders(StrictInput):
    """Locations a source uses for "location not known": their records are rejected."""

    points: list[list[float]] = Field(
        default_factory=list,
        description="[x, y] (or [lon, lat]) in the layer's coordinates, e.g. [[-0.1, 51.5]]",
    )
    tolerance_m: float = Field(default=1.0, ge=0, le=1000, description="match distance (m)")
    column: str | None = Field(default=None, description="a column whose values mark them")
    values: list[str] = Field(default_factory=list, description="values of that column")

    @model_validator(mode="after")
    def _check(self) -> Placeholders:
        if any(len(p) != 2 for p in self.points):
            raise ValueError("placeholders.points must be [x, y] pairs")
        if (self.column is None) != (not self.values):
            raise ValueError("placeholders: give both 'column' and 'values', or neither")
        return self


class SourceRef(StrictInput):
    """A boundary file (and layer); a table with a WKT column names it and its CRS."""

    path: FilePath
    layer: str | None = None
    member: str | None = Field(default=None, description="file inside a .zip archive")
    wkt: str | None = Field(default=None, description="column holding WKT geometry")
    crs: str | None = Field(default=None, description="CRS of the WKT column")
    attribution: str = ""

    _crs = field_validator("crs")(classmethod(lambda cls, v: _check_crs(v)))

    @model_validator(mode="after")
    def _wkt(self) -> SourceRef:
        if self.wkt is not None and self.crs is None:
            raise ValueError("a WKT geometry column needs 'crs' (e.g. 'EPSG:27700')")
        return self


class UnitsConfig(SourceRef):
    """The lowest administrative units."""

    id: str
    name: str | None = None
    population: str | None = None


class LayerConfig(StrictInput):
    """One input layer of the city."""

    kind: str
    path: FilePath
    layer: str | None = None
    member: str | None = Field(default=None, description="file inside a .zip archive")
    crs: str | None = Field(default=None, description="CRS of x/y or WKT columns (or of the file)")
    attribution: str = ""
    synthetic: bool = Field(default=False, description="true for generated demonstration data")
    categories: list[str] | None = None
    format: FormatOptions = Field(default_factory=FormatOptions)
    columns: dict[str, ColumnMapping] = Field(default_factory=dict)
    in_totals: bool = Field(
        default=True,
        description="add this layer to its kind's total (crime_count...); false for a layer "
        "that overlaps another of the same kind",
    )
    band: int = Field(default=1, ge=1, description="raster band")
    statistic: Literal["sum", "mean"] = Field(default="sum", description="raster aggregation")
    unit: str = Field(default="", description="unit of a raster's values, e.g. 'persons'")
    population: bool = Field(
        default=False, description="this raster counts residents: the grids' population"
    )
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
    placeholders: Placeholders | None = None
    snap_m: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="points outside the units by at most this many metres are assigned to the "
        "nearest unit (0: off)",
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
        if sum([has_lonlat, has_xy, "wkt" in cols, "unit_code" in cols]) > 1:
            raise ValueError("columns: map only one of lon/lat, x/y, wkt or unit_code")
        if has_xy and self.crs is None:
            raise ValueError("x/y columns need 'crs' (the CRS of the coordinates, e.g. EPSG:27700)")
        if "datetime" in cols and "month" in cols:
            raise ValueError("columns: map either 'datetime' or 'month', not both")
        for key, value in cols.items():
            if isinstance(value, DateParts) and key not in ("datetime", "month"):
                raise ValueError(f"columns.{key}: date parts are only for 'datetime' or 'month'")
            if isinstance(value, ColumnValue) and key in (*LOCATION_KEYS, COUNT_KEY):
                raise ValueError(f"columns.{key}: a location or count cannot be a constant")
        month = cols.get("month")
        if isinstance(month, DateParts) and (month.day or month.date):
            raise ValueError("columns.month: map only year and month (a day makes a datetime)")
        if self.placeholders is not None and "unit_code" in cols and self.placeholders.points:
            raise ValueError("placeholders.points need coordinates; this layer has unit codes")
        return self

    def source_column(self, key: str) -> str | None:
        """Return the source column mapped to ``key`` (``None`` for constants and parts)."""
        value = self.columns.get(key)
        return value if isinstance(value, str) else None


class CityConfig(StrictInput):
    """A whole city file."""

    name: str
    crs: str | None = None
    h3_resolutions: list[int] = Field(default_factory=lambda: [9], min_length=1)
    max_cells: int = Field(
        default=2_000_000,
        ge=1,
        description="largest number of H3 cells a build may cover (all resolutions together)",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone (e.g. 'Europe/London'): datetimes with a UTC offset are "
        "read as local time there; without it the wall-clock time written is kept",
    )
    attribution: str = ""
    kinds_dir: FilePath | None = Field(default=None, description="directory of custom layer kinds")
    study_area: SourceRef | None = None
    units: UnitsConfig
    layers: dict[str, LayerConfig] = Field(default_factory=dict)
    indicators: CityIndicators | None = Field(
        default=None, description="indicators off, changed or added (README, Indicators)"
    )
    hotspots: HotspotsConfig = Field(
        default_factory=HotspotsConfig, description="Gi*, Local Moran's I (README, Hotspots)"
    )
    density: DensityConfig = Field(
        default_factory=DensityConfig, description="the crime density surface"
    )
    trends: TrendsConfig = Field(
        default_factory=TrendsConfig, description="time series, emerging hotspots, evaluation"
    )
    progress: ProgressConfig | None = Field(
        default=None, description="a baseline, a current period and targets"
    )
    indices: IndicesConfig = Field(
        default_factory=IndicesConfig,
        description="risk and resilience indices, peer groups, priority areas (README, Indices)",
    )

    _crs = field_validator("crs")(classmethod(lambda cls, v: _check_crs(v)))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zoneinfo.ZoneInfo(v)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                msg = f"unknown time zone '{v}' (use an IANA name such as 'Europe/London')"
                raise ValueError(msg) from None
        return v

    @field_validator("h3_resolutions")
    @classmethod
    def _res(cls, v: list[int]) -> list[int]:
        if any(not 0 <= r <= 15 for r in v):
            raise ValueError("H3 resolutions must be between 0 and 15")
        if len(set(v)) != len(v):
            raise ValueError("H3 resolutions must not repeat")
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

    def __init__(
        self,
        path: Path,
        config: CityConfig,
        kinds: dict[str, LayerKind],
        sha256: str,
        indicators: Indicators,
        rules: PriorityRules,
    ):
        self.path = path
        self.config = config
        self.kinds = kinds
        self.sha256 = sha256
        self.indicators = indicators
        self.rules = rules

    @property
    def base(self) -> Path:
        """Directory the relative paths are resolved against."""
        return self.path.parent

    def resolve(self, p: Path) -> Path:
        """Resolve a path from the city file."""
        return p if p.is_absolute() else (self.base / p)


def load_city(path: str | Path) -> City:
    """Read and check a city file, reporting every problem it has at once.

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
        If the file is missing, is not TOML, has unknown, missing or mistyped keys, names an
        unknown layer kind, maps a column that the kind does not define, or two sources would
        write the same output column. Every problem found is listed.

    """
    path = Path(path)
    data, raw = read_toml(path, CityFileError, "city file")
    problems: list[str] = []
    config: CityConfig | None = None
    try:
        config = CityConfig.model_validate(data)
    except ValidationError as exc:
        problems += format_validation_errors(exc)
    kinds_dir = data.get("kinds_dir")
    kinds: dict[str, LayerKind] = {}
    try:
        extra = (path.parent / kinds_dir,) if isinstance(kinds_dir, str) else ()
        kinds = load_kinds(tuple(p.resolve() for p in extra))
    except GeoUsmError as exc:
        problems.append(str(exc))
    layers = data.get("layers")
    if isinstance(layers, dict) and kinds:
        for name, layer in layers.items():
            problems += _layer_problems(str(name), layer, kinds)
    indicators = None
    if config is not None and not problems:
        try:
            indicators = resolve(config.indicators, kinds)
        except CityFileError as exc:
            problems += exc.message.split("; ")
        problems += _name_clashes(config, kinds, indicators)
        if indicators is not None:
            problems += [f"indices: {p}" for p in check_config(config.indices, indicators.specs)]
    rules = None
    if config is not None:
        rules_path = config.indices.priorities
        try:
            rules = load_rules(None if rules_path is None else path.parent / rules_path)
        except GeoUsmError as exc:
            problems.append(f"indices.priorities: {exc}")
    if problems:
        problems = list(dict.fromkeys(problems))
        raise CityFileError(
            "; ".join(problems) if len(problems) == 1 else _listing(problems),
            path=path,
            hint="see 'Describe your own city' in the README",
        )
    assert config is not None and indicators is not None and rules is not None
    digest = hashlib.sha256(raw).hexdigest()
    return City(path.resolve(), config, kinds, digest, indicators, rules)


def _listing(problems: list[str]) -> str:
    return f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _layer_problems(name: str, layer: Any, kinds: dict[str, LayerKind]) -> list[str]:
    """Check one raw layer entry against the kinds (works when the rest of the file is bad)."""
    problems = []
    if not NAME_RE.match(name) or name in RESERVED_NAMES or name.startswith("hex_r"):
        problems.append(
            f"layers.{name}: layer name '{name}' must be lower_snake_case and not one of "
            f"{sorted(RESERVED_NAMES)} or hex_r<N>"
        )
    if not isinstance(layer, dict):
        return problems
    kind_name = layer.get("kind")
    if not isinstance(kind_name, str):
        return problems
    if kind_name not in kinds:
        problems.append(
            f"layers.{name}.kind: unknown kind '{kind_name}' "
            f"(known: {', '.join(sorted(kinds))}; declare custom kinds in a kinds_dir)"
        )
        anywhere = {"datetime", "month", COUNT_KEY, *LOCATION_KEYS}
        anywhere |= {f for k in kinds.values() for f in k.fields}
        columns = layer.get("columns")
        for key in columns if isinstance(columns, dict) else ():
            if key not in anywhere:
                problems.append(f"layers.{name}.columns: unknown key '{key}' for any kind")
        return problems
    kind = kinds[kind_name]
    allowed = set(kind.fields) | set(LOCATION_KEYS)
    if kind.temporal:
        allowed |= {"datetime", "month"}
    if kind.count_field:
        allowed.add(COUNT_KEY)
    columns = layer.get("columns")
    for key in columns if isinstance(columns, dict) else ():
        if key not in allowed:
            problems.append(
                f"layers.{name}.columns: unknown key '{key}' for kind '{kind_name}' "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    by_code = isinstance(columns, dict) and "unit_code" in columns
    if by_code and kind.geometry not in ("point", "table"):
        problems.append(
            f"layers.{name}.columns.unit_code: only point kinds can be located by unit code"
        )
    if kind.geometry == "table" and not by_code:
        problems.append(
            f"layers.{name}.columns.unit_code: a table of values per unit needs the column of "
            "unit codes"
        )
    if layer.get("categories") is not None and "category" not in kind.fields:
        problems.append(f"layers.{name}.categories: kind '{kind_name}' has no category field")
    where = layer.get("format", {}).get("where") if isinstance(layer.get("format"), dict) else None
    if isinstance(where, str):
        try:
            parse_filter(where)
        except GeoUsmError as exc:
            problems.append(f"layers.{name}.format.where: {exc.message}")
    return problems


def _name_clashes(
    config: CityConfig, kinds: dict[str, LayerKind], indicators: Indicators | None
) -> list[str]:
    """Return every output column two sources would both write (one must be renamed)."""
    owners: dict[str, list[str]] = {name: ["the grids"] for name in GRID_COLUMN_NAMES}
    for kname, kind in kinds.items():
        if kind.total:
            owners.setdefault(kind.total, []).append(f"the total of kind '{kname}'")
    for name, spec in indicators.specs.items() if indicators else ():
        # the grids' population and a kind's total (crime_count) are their own indicators
        same_total = (
            spec.method == "count"
            and "where" not in spec.params
            and spec.kind in kinds
            and kinds[spec.kind].total == name
        )
        if name != "population" and not same_total:
            owners.setdefault(name, []).append(f"indicator '{name}'")
    for name, layer in config.layers.items():
        for column in layer_variable_names(name, kinds[layer.kind], set(layer.columns)):
            owners.setdefault(column, []).append(f"layer '{name}'")
    known = set(owners) | {"population"}
    specs = indicators.specs if indicators else {}
    rates = smoothed_rates(config.hotspots, specs)
    for analysed in (*GRID_HOTSPOT_COLUMNS, *eb_columns(rates)):
        owners.setdefault(analysed.name, []).append("the hotspot analysis")
    if indicators is not None:
        for analysed in index_columns(config.indices, indicators.specs):
            owners.setdefault(analysed.name, []).append("the indices")
    problems = [
        f"output column '{column}' would be written by {' and by '.join(who)}: rename the "
        "layer (or the custom kind's count_field/total_field)"
        for column, who in owners.items()
        if len(who) > 1
    ]
    population = ["units.population"] if config.units.population else []
    population += [
        f"layers.{name}.columns.population"
        for name, layer in config.layers.items()
        if kinds[layer.kind].geometry == "table" and "population" in layer.columns
    ]
    for name, layer in config.layers.items():
        if layer.population:
            population.append(f"layers.{name}.population")
            if kinds[layer.kind].geometry != "raster" or layer.statistic != "sum":
                problems.append(
                    f'layers.{name}.population: only a raster with statistic = "sum" can be '
                    "the population (a table of values per unit maps a population column)"
                )
    if len(population) > 1:
        problems.append(
            f"the population is given {len(population)} times ({', '.join(population)}): keep one"
        )
    return problems + _analysis_problems(config, known, indicators)


def _analysis_problems(
    config: CityConfig, known: set[str], indicators: Indicators | None
) -> list[str]:
    """Names in [hotspots] that no source writes."""
    problems = []
    for var in config.hotspots.variables:
        if var not in known:
            problems.append(
                f"hotspots.variables: '{var}' is not a column of the grids (a count such as "
                "crime_count or count_<layer>, or an indicator id)"
            )
    specs = indicators.specs if indicators else {}
    named = "eb_rates" in config.hotspots.model_fields_set  # the default skips quietly
    for rate in config.hotspots.eb_rates if named else ():
        spec = specs.get(rate)
        if spec is None or spec.method != "rate":
            problems.append(
                f"hotspots.eb_rates: '{rate}' is not a rate indicator of this city "
                "(Empirical Bayes smooths counts per resident)"
            )
    return problems
