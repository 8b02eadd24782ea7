"""The output catalogue: every layer and column a build writes, declared once.

The pipeline builds the catalogue of a city (:func:`build_catalog`) before it writes anything;
the store refuses a frame whose columns differ from its declaration, the manifest carries the
catalogue, and the API serves exactly the layers it marks public, with the columns, units and
descriptions it declares. Nothing downstream guesses from names.

Access roles are ordered: ``public`` (aggregates anyone may read) < ``analyst`` (record-level
data without victim attributes) < ``custodian`` (victim attributes, rejects with their original
values). A layer in the public store may hold only ``public`` columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field, model_validator

from geo_usm._model import Strict
from geo_usm.schema import COUNT_KEY, LayerKind

Access = Literal["public", "analyst", "custodian"]
#: Roles in increasing order of what they may read.
ROLES: tuple[Access, ...] = ("public", "analyst", "custodian")
ColumnType = Literal["string", "integer", "float", "boolean", "datetime"]
Store = Literal["public", "private"]

#: The file of each store, relative to the build directory.
PUBLIC_GPKG = "public/diagnosis.gpkg"
PUBLIC_AGGREGATES = "public/aggregates.parquet"
PRIVATE_GPKG = "private/records.gpkg"
PUBLIC_SURFACE = "public/risk_surface.tif"


def may_read(role: Access, access: Access) -> bool:
    """Return whether ``role`` may read something whose minimum role is ``access``."""
    return ROLES.index(role) >= ROLES.index(access)


class Column(Strict):
    """One column of an output layer.

    Attributes
    ----------
    name
        Column name, fixed: other tools rely on it.
    type
        Value type.
    unit
        Unit of measure (``count``, ``m``, ``m2``, ``1`` for a share...), empty for labels.
    description
        What the value means, for people.
    extensive
        ``True`` for quantities that add up over space (counts, lengths, areas, sums),
        ``False`` for intensive ones (means, shares), ``None`` for identifiers and labels.
    access
        Minimum role that may read the column.
    sources
        Input layers the value is computed from.
    null_reason
        When set, the column exists but every value is NULL for this reason (for example the
        city has no layer of the kind it counts): "no data", never a false zero.

    """

    name: str
    type: ColumnType
    unit: str = ""
    description: str
    extensive: bool | None = None
    access: Access = "public"
    sources: tuple[str, ...] = ()
    null_reason: str | None = None


class OutputLayer(Strict):
    """One layer (or table) of a build.

    Attributes
    ----------
    name
        Layer name inside its file.
    title, description
        For people (collection metadata in the API).
    store
        ``public`` (may be published) or ``private`` (record-level, needs a role).
    file
        Path of the file holding it, relative to the build directory.
    geometry
        Geometry type (``Polygon``, ``MultiPolygon``, ``Point``...) or ``None`` for a table.
    id_column
        Column identifying each feature, if any.
    access
        Minimum role that may read the layer.
    resolution
        H3 resolution of a hexagon grid.
    grid
        True for the layers records are aggregated onto (hexagons, admin units).
    columns
        Columns in stored order (geometry not included).

    """

    name: str
    title: str
    description: str
    store: Store
    file: str
    geometry: str | None = None
    id_column: str | None = None
    access: Access = "public"
    resolution: int | None = None
    grid: bool = False
    columns: tuple[Column, ...] = Field(default_factory=tuple)

    @model_validator(mode="after")
    def _check(self) -> OutputLayer:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            msg = f"layer '{self.name}' declares column(s) {dup} twice"
            raise ValueError(msg)
        if self.id_column is not None and self.id_column not in names:
            msg = f"layer '{self.name}': id column '{self.id_column}' is not declared"
            raise ValueError(msg)
        if self.store == "public":
            private = [c.name for c in self.columns if c.access != "public"]
            if self.access != "public" or private:
                msg = f"public layer '{self.name}' holds non-public data: {private or 'layer'}"
                raise ValueError(msg)
            if self.geometry and self.id_column is None:
                msg = f"public layer '{self.name}' has geometry but no id column"
                raise ValueError(msg)
        return self

    @property
    def column_names(self) -> list[str]:
        """Column names in stored order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """Return one column's declaration."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


class Catalog(Strict):
    """Every output layer of a build, in a stable order."""

    layers: tuple[OutputLayer, ...]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        names = [(layer.file, layer.name) for layer in self.layers]
        if len(set(names)) != len(names):
            msg = "the catalogue declares a layer twice"
            raise ValueError(msg)
        return self

    def layer(self, name: str, *, store: Store | None = None) -> OutputLayer:
        """Return a layer by name (and store, when names repeat across stores)."""
        for layer in self.layers:
            if layer.name == name and (store is None or layer.store == store):
                return layer
        raise KeyError(name)

    def readable(self, role: Access = "public") -> list[OutputLayer]:
        """Return the layers ``role`` may read."""
        return [layer for layer in self.layers if may_read(role, layer.access)]

    def rasters(self) -> list[OutputLayer]:
        """Return the public rasters (GeoTIFF files; their columns are the bands)."""
        return [
            layer
            for layer in self.layers
            if layer.store == "public" and layer.file.endswith((".tif", ".tiff"))
        ]

    def collections(self) -> list[OutputLayer]:
        """Return the public layers with geometry: what the Features API serves."""
        return [
            layer
            for layer in self.layers
            if layer.store == "public" and layer.access == "public" and layer.geometry
        ]


# --- the declarations -------------------------------------------------------------------------

HEX_COLUMNS = (
    Column(name="h3", type="string", description="H3 cell index (hexadecimal)."),
    Column(name="resolution", type="integer", description="H3 resolution of the cell."),
    Column(
        name="area_m2",
        type="float",
        unit="m2",
        description="Planar area of the cell in the working CRS.",
        extensive=True,
    ),
    Column(
        name="area_share",
        type="float",
        unit="1",
        description="Share of the cell's area inside the study area (1 inside, less on the edge).",
        extensive=False,
    ),
)
UNIT_COLUMNS = (
    Column(name="unit_id", type="string", description="Id of the admin unit (from the city)."),
    Column(name="unit_name", type="string", description="Name of the admin unit."),
    Column(
        name="area_m2",
        type="float",
        unit="m2",
        description="Planar area of the unit in the working CRS.",
        extensive=True,
    ),
)
POPULATION = Column(
    name="population",
    type="float",
    unit="persons",
    description="Resident population of the unit, as given in the units layer.",
    extensive=True,
)
#: Names the grids' own columns take; no kind total or layer variable may take them.
GRID_COLUMN_NAMES = frozenset(c.name for c in (*HEX_COLUMNS, *UNIT_COLUMNS, POPULATION))

CROSSWALK_COLUMNS = (
    Column(name="h3", type="string", description="H3 cell index."),
    Column(name="resolution", type="integer", description="H3 resolution of the cell."),
    Column(name="unit_id", type="string", description="Id of the admin unit."),
    Column(
        name="area_m2",
        type="float",
        unit="m2",
        description="Area of the intersection of the cell and the unit.",
        extensive=True,
    ),
    Column(
        name="hex_share",
        type="float",
        unit="1",
        description="Share of the cell's area inside the unit.",
        extensive=False,
    ),
    Column(
        name="unit_share",
        type="float",
        unit="1",
        description="Share of the unit's area inside the cell.",
        extensive=False,
    ),
)
AGGREGATES_COLUMNS = (
    Column(name="grid", type="string", description="Grid layer: units, hex or hex_r<N>."),
    Column(name="feature", type="string", description="unit_id or h3 of the feature."),
    Column(name="period", type="string", description="'all' (whole span) or a month, YYYY-MM."),
    Column(name="variable", type="string", description="An extensive variable of the grids."),
    Column(
        name="value",
        type="float",
        description="Its value. A missing row is 0 where the variable exists, except for a "
        "raster: a feature with no '<layer>_pixels' row has no data there.",
        extensive=True,
    ),
)
INDICATORS_COLUMNS = (
    Column(name="id", type="string", description="Indicator id: the column name on the grids."),
    Column(name="title", type="string", description="What it measures, for people."),
    Column(name="unit", type="string", description="Unit of measure."),
    Column(name="method", type="string", description="Computation method (README, Indicators)."),
    Column(name="parameters", type="string", description="The method's parameters, as JSON."),
    Column(
        name="direction",
        type="string",
        description="risk (more is worse), resilience (more is better) or context.",
    ),
    Column(name="dimension", type="string", description="Dimension of the diagnosis."),
    Column(name="tier", type="string", description="core (same in every city) or local."),
    Column(name="extensive", type="boolean", description="True when values add up over space."),
    Column(name="weight", type="float", description="Default weight in the indices."),
    Column(
        name="min_input",
        type="float",
        description="Least input behind a value (records, residents, metres of street...).",
    ),
    Column(name="sources", type="string", description="Input layers it reads (comma-separated)."),
    Column(name="description", type="string", description="Definition and caveats."),
    Column(
        name="coverage",
        type="string",
        description="Per grid, how many features have a value, as JSON {grid: count}.",
    ),
    Column(
        name="null_reason",
        type="string",
        description="Why no feature has a value (empty when some do).",
    ),
)
INDICATOR_GAPS_COLUMNS = (
    Column(name="grid", type="string", description="Grid layer: units, hex or hex_r<N>."),
    Column(
        name="feature",
        type="string",
        description="unit_id or h3 of the feature; '*' for every feature of the grid.",
    ),
    Column(name="indicator", type="string", description="Indicator id."),
    Column(name="null_reason", type="string", description="Why the value is NULL."),
)
STUDY_AREA_COLUMNS = (
    Column(name="name", type="string", description="City name."),
    Column(
        name="area_m2",
        type="float",
        unit="m2",
        description="Planar area of the study area in the working CRS.",
        extensive=True,
    ),
)
REJECTS_COLUMNS = (
    Column(name="layer", type="string", description="Input layer.", access="custodian"),
    Column(name="source_file", type="string", description="File name.", access="custodian"),
    Column(
        name="source_row",
        type="integer",
        description="1-based record number in the file.",
        access="custodian",
    ),
    Column(name="reason", type="string", description="Why it was rejected.", access="custodian"),
    Column(
        name="original",
        type="string",
        description="The record's source values as JSON (may include victim attributes).",
        access="custodian",
    ),
)
_FIELD_TYPES: dict[str, ColumnType] = {
    "string": "string",
    "integer": "integer",
    "float": "float",
    "boolean": "boolean",
    "sex": "string",
}


def layer_variable_names(
    name: str, kind: LayerKind, mapped: set[str] | frozenset[str]
) -> list[str]:
    """Return the names of every variable a layer adds to the grids (stored and derived).

    ``mapped`` is the set of canonical fields the layer maps; only those are aggregated.
    """
    if kind.geometry == "point":
        out = [f"count_{name}"]
        for fname, spec in kind.fields.items():
            if spec.aggregate and fname in mapped and not spec.sensitive:
                out += [f"{name}_{fname}_sum", f"{name}_{fname}_n", f"{name}_{fname}_mean"]
        return out
    if kind.geometry == "table":
        fields = table_fields(kind, mapped)
        return [f"{name}_rows"] + [f"{name}_{f}{s}" for f in fields for s in ("_sum", "_n", "")]
    if kind.geometry == "line":
        return [f"{name}_length_m"]
    if kind.geometry == "polygon":
        return [f"{name}_area_m2"]
    return [f"{name}_pixels", f"{name}_sum", f"{name}_mean"]


def table_fields(kind: LayerKind, mapped: set[str] | frozenset[str]) -> list[str]:
    """Return the numeric fields a table of values per unit publishes on the units.

    ``population`` is not among them: it is the population of the grids (the ``population``
    indicator).
    """
    return [
        f
        for f, spec in kind.fields.items()
        if f in mapped and spec.type in ("integer", "float") and f != "population"
    ]


def grid_name(resolution: int, primary: int) -> str:
    """Return the output layer name of the hexagon grid at ``resolution``."""
    return "hex" if resolution == primary else f"hex_r{resolution}"


def record_columns(kind: LayerKind) -> tuple[Column, ...]:
    """Return the columns of a private record layer of ``kind``."""
    cols = [Column(name="source_row", type="integer", description="1-based record number.")]
    if kind.temporal:
        cols.append(Column(name="datetime", type="datetime", description="Date and time."))
        cols.append(Column(name="month", type="string", description="Month, YYYY-MM."))
    if kind.count_field:
        cols.append(
            Column(
                name=COUNT_KEY,
                type="integer",
                unit="count",
                description="Number of records the row stands for: 1, or the layer's count "
                "column (a table of counts per unit).",
            )
        )
    for fname, spec in kind.fields.items():
        cols.append(
            Column(
                name=fname,
                type=_FIELD_TYPES[spec.type],
                unit=spec.unit,
                description=spec.description or fname,
                access="custodian" if spec.sensitive else "analyst",
            )
        )
    if kind.geometry == "point":
        cols.append(Column(name="unit_id", type="string", description="Admin unit."))
        cols.append(Column(name="h3", type="string", description="H3 cell (primary)."))
    return tuple(
        c if c.access != "public" else c.model_copy(update={"access": "analyst"}) for c in cols
    )


def build_catalog(
    *,
    city: str,
    resolutions: list[int],
    variables: list[Column],
    has_population: bool,
    layers: dict[str, LayerKind],
    indicators: tuple[Column, ...] = (),
    analysis: Mapping[str, tuple[Column, ...]] | None = None,
    tables: Sequence[OutputLayer] = (),
) -> Catalog:
    """Declare every output layer and column of a city's build.

    Parameters
    ----------
    city
        City name, for descriptions.
    resolutions
        H3 resolutions, the primary first.
    variables
        The aggregated columns of every grid, in output order.
    has_population
        Whether the units carry a population.
    layers
        Input layer name to kind: vector layers get a private record layer.
    indicators
        The indicator columns of every grid that are not already among ``variables`` (or the
        grid's own columns), in output order.
    analysis
        Columns the analyses (hotspots, indices) add after the indicators, per grid name.
    tables
        The analyses' own layers (long tables, the density surface), after the indicator
        tables.

    """
    analysis = analysis or {}
    clash = sorted(GRID_COLUMN_NAMES & {v.name for v in variables})
    if clash:
        msg = f"aggregated column(s) {clash} would overwrite a grid's own column"
        raise ValueError(msg)
    measures = ", ".join(v.name for v in variables) or "none"
    out = []
    for res in resolutions:
        name = grid_name(res, resolutions[0])
        out.append(
            OutputLayer(
                name=name,
                title=f"H3 hexagons, resolution {res}",
                description=f"Aggregates per H3 cell at resolution {res} covering the study "
                f"area of {city}, boundary cells included (area_share is the share of the "
                f"cell inside). Measures: {measures}.",
                store="public",
                file=PUBLIC_GPKG,
                geometry="Polygon",
                id_column="h3",
                resolution=res,
                grid=True,
                columns=(*HEX_COLUMNS, *variables, *indicators, *analysis.get(name, ())),
            )
        )
    unit_cols = (*UNIT_COLUMNS, POPULATION) if has_population else UNIT_COLUMNS
    out.append(
        OutputLayer(
            name="units",
            title="Administrative units",
            description=f"Aggregates per lowest administrative unit of {city}. "
            f"Measures: {measures}.",
            store="public",
            file=PUBLIC_GPKG,
            geometry="MultiPolygon",
            id_column="unit_id",
            grid=True,
            columns=(
                *unit_cols,
                *variables,
                *(c for c in indicators if not (has_population and c.name == "population")),
                *analysis.get("units", ()),
            ),
        )
    )
    out.append(
        OutputLayer(
            name="study_area",
            title="Study area",
            description=f"The study area of {city}.",
            store="public",
            file=PUBLIC_GPKG,
            geometry="MultiPolygon",
            id_column="name",
            columns=STUDY_AREA_COLUMNS,
        )
    )
    out.append(
        OutputLayer(
            name="crosswalk",
            title="Hexagon to admin unit crosswalk",
            description="Every (H3 cell, admin unit) pair that overlaps, with area shares.",
            store="public",
            file=PUBLIC_GPKG,
            columns=CROSSWALK_COLUMNS,
        )
    )
    out.append(
        OutputLayer(
            name="aggregates",
            title="Aggregates by period (long table)",
            description="Every extensive variable of every grid, per period (whole span and "
            "months of temporal layers). The grids' wide columns are views of it.",
            store="public",
            file=PUBLIC_AGGREGATES,
            columns=AGGREGATES_COLUMNS,
        )
    )
    out.append(
        OutputLayer(
            name="indicators",
            title="Indicators",
            description="One row per indicator column of the grids: definition, parameters, "
            "direction, dimension, tier, weight, and how many features have a value.",
            store="public",
            file=PUBLIC_GPKG,
            id_column="id",
            columns=INDICATORS_COLUMNS,
        )
    )
    out.append(
        OutputLayer(
            name="indicator_gaps",
            title="Indicator values that are NULL, with the reason",
            description="One row per (grid, feature, indicator) without a value: too few "
            "records, no population, no street network... Never read a NULL as zero.",
            store="public",
            file=PUBLIC_GPKG,
            columns=INDICATOR_GAPS_COLUMNS,
        )
    )
    out.extend(tables)
    for name, kind in layers.items():
        if kind.geometry in ("raster", "table"):
            continue
        out.append(
            OutputLayer(
                name=name,
                title=f"Accepted records of layer '{name}' ({kind.title})",
                description="Record-level data: never published.",
                store="private",
                file=PRIVATE_GPKG,
                geometry={"point": "Point", "line": "LineString", "polygon": "MultiPolygon"}[
                    kind.geometry
                ],
                access="analyst",
                columns=record_columns(kind),
            )
        )
    out.append(
        OutputLayer(
            name="rejects",
            title="Rejected records",
            description="Every rejected record with its reason and original values.",
            store="private",
            file=PRIVATE_GPKG,
            access="custodian",
            columns=REJECTS_COLUMNS,
        )
    )
    return Catalog(layers=tuple(out))
