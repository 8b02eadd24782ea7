"""Walking distances along a city's own street network.

Indicators such as ``transit_distance`` (walk from residents to the nearest transit stop) and
``public_space_access`` (share of residents within a 400 m walk of a public space) need distances
along the streets, not straight-line ones. :class:`StreetNetwork` turns the city's ``streets``
layer (shapely lines in the metric working CRS) into an undirected weighted graph and answers
the three questions those indicators ask: which node is nearest to a point (:meth:`snap`), which
nodes are at a park (:meth:`nodes_near`), and how far every node is from the nearest of many
destinations (:meth:`distance_to`). Nothing here reads files or touches the network: the graph
comes only from the lines it is given.

The graph
---------
- **Nodes are line vertices keyed by their exact coordinates.** Lines derived from OpenStreetMap
  share exact vertices where ways join (OSM nodes), so joins become graph nodes without any
  tolerance. Two lines that cross without a shared vertex are **not** connected: this is how OSM
  models bridges, tunnels and flyovers, and snapping crossings together would let pedestrians
  jump off bridges. The flip side is that street data digitised without shared vertices at
  junctions comes out fragmented; :attr:`StreetNetwork.component` and
  :attr:`StreetNetwork.largest_component_share` show it (an OSM-derived network has almost all of
  its nodes in one component). Vertices that coincide exactly are one node even if the source
  says otherwise (two OSM nodes mapped at the same place, a known OSM data error, are joined).
- **Segments are densified**: a segment longer than ``max_edge_m`` is split into equal edges
  (as :func:`shapely.segmentize` does) through new nodes that lie on it, so distances between
  vertices do not change. The new nodes belong to their segment only and are never merged with
  another line's vertex, so densification cannot join a bridge to the street below. Nodes then
  sample every street at least every ``max_edge_m`` metres and can stand for the residents along
  it; because curvy streets keep their short original segments, nodes are not evenly spaced, so
  weight them by :attr:`StreetNetwork.node_length` (half the length of the incident edges: the
  street length a node stands for).
- **Edges are undirected**, weighted by planar length in the working CRS (pedestrians ignore
  one-way restrictions). A segment repeated between the same two vertices (duplicated geometry,
  or both directions of a two-way street) is kept once, so it does not count twice in lengths.
  Z coordinates are ignored.

Why scipy.sparse.csgraph
------------------------
The graph is a symmetric ``scipy.sparse.csr_array`` built in a few vectorised NumPy steps from
the coordinate arrays of all lines at once (sort the vertices, mark runs of equal coordinates,
pair consecutive vertices), and shortest paths run in :func:`scipy.sparse.csgraph.dijkstra`,
compiled code working on those arrays. networkx (what osmnx uses) keeps every node and edge in
Python dicts: on a synthetic 250,000-segment city (630,000 nodes after densification) merely
loading the finished edge list into a networkx graph takes about 4 s and 400 MB, and one
multi-source Dijkstra about 20 s, against 0.8 s in csgraph (the whole build here takes about
2 s). igraph, networkit or pandana would be as fast but add compiled dependencies for what
csgraph already does; scipy is the ubiquitous one (osmnx itself uses it to find nearest nodes).
Several destinations, each with its own access distance (a stop 30 m from its nearest node),
become one Dijkstra run from a virtual super-source joined to every destination node by an edge
as long as that access distance; ``limit`` stops the search early for access indicators.
csgraph keeps explicitly stored zeros as zero-length edges, so a destination at offset 0 is
exact.

Relation to osmnx's conventions
-------------------------------
osmnx models a street network as a networkx ``MultiDiGraph`` whose nodes are OSM nodes (after
simplification only junctions and dead ends) and whose edges carry ``length`` and ``geometry``;
its ``walk`` network type is fully bidirectional, as this graph is. The segments osmnx exports
(one line per edge, from ``u`` to ``v``) are exactly what :meth:`StreetNetwork.from_lines` reads:
their end vertices are the coordinates of ``u`` and ``v``, so the topology from shared vertices
equals osmnx's ``u``/``v`` topology (the tests check this on Camden and list the two exceptions
found there, both data artefacts). The differences are deliberate: nodes are added along edges
instead of removed (they serve as origins), lengths are planar in the working CRS rather than
osmnx's great-circle ``length`` (in a national grid or UTM zone they differ by the projection's
scale factor, at most about 0.1 %), and the nearest node is found with a shapely ``STRtree``
(osmnx uses scipy's ``cKDTree`` for projected graphs; the result is the same nearest node).
Which streets pedestrians may use (no motorways, no private ways) is decided by the caller's
layer filters before the lines reach this module, as osmnx's ``network_type`` filters do.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import shapely
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, dijkstra

from geo_usm.errors import InputError

#: Default longest edge after densification, metres.
DEFAULT_MAX_EDGE_M = 50.0

# shapely type ids accepted as streets: missing (-1), LineString, LinearRing, MultiLineString.
_LINE_TYPE_IDS = np.array([-1, 1, 2, 5])
_TYPE_NAMES = {
    0: "Point",
    3: "Polygon",
    4: "MultiPoint",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


class StreetNetwork:
    """An undirected street graph whose nodes are (densified) line vertices.

    Build it with :meth:`from_lines`; the constructor takes the finished graph arrays (useful
    for tests and for graphs that come from elsewhere).

    Parameters
    ----------
    xy
        Node coordinates, shape ``(n, 2)``, in a metric CRS.
    edges
        Node index pairs, shape ``(m, 2)``, each undirected edge once.
    edge_length
        Edge lengths in metres, shape ``(m,)``, non-negative.

    Attributes
    ----------
    xy : numpy.ndarray
        Node coordinates, float64, shape ``(n, 2)``.
    edges : numpy.ndarray
        Undirected edges as node index pairs, int64, shape ``(m, 2)``.
    edge_length : numpy.ndarray
        Edge lengths in metres, float64, shape ``(m,)``.
    component : numpy.ndarray
        Connected component of each node, int64, shape ``(n,)``; components are numbered by
        decreasing number of nodes, so ``component == 0`` is the largest one.

    """

    def __init__(self, xy: np.ndarray, edges: np.ndarray, edge_length: np.ndarray):
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        edge_length = np.asarray(edge_length, dtype=np.float64).ravel()
        n = len(xy)
        if len(edge_length) != len(edges):
            msg = f"{len(edges)} edges but {len(edge_length)} edge lengths"
            raise ValueError(msg)
        if len(edges) and (edges.min() < 0 or edges.max() >= n):
            msg = f"edge node indices must lie in [0, {n})"
            raise ValueError(msg)
        if not np.all(edge_length >= 0):  # also refuses NaN
            msg = "edge lengths must be non-negative numbers"
            raise ValueError(msg)
        self.xy = xy
        self.edges = edges
        self.edge_length = edge_length
        self._graph = _symmetric_csr(n, edges, edge_length)
        self.component = _ranked_components(self._graph)

    @classmethod
    def from_lines(
        cls, lines: np.ndarray | Any, *, max_edge_m: float = DEFAULT_MAX_EDGE_M
    ) -> StreetNetwork:
        """Build the street graph from line geometries.

        Parameters
        ----------
        lines
            Street geometries (array-like of shapely geometries, e.g. a GeoSeries) in a metric
            working CRS: LineString, LinearRing or MultiLineString; ``None`` and empty
            geometries are skipped.
        max_edge_m
            Longest edge after densification, metres; ``numpy.inf`` keeps only the original
            vertices.

        Returns
        -------
        StreetNetwork
            The graph. Its first nodes are the distinct line vertices in increasing (x, y)
            order (vertices at exactly equal coordinates are one node), followed by the nodes
            added by densification, segment by segment.

        Raises
        ------
        InputError
            If a geometry is not a line, a coordinate is not finite, or there is no line at all.

        """
        if not max_edge_m > 0:
            msg = f"max_edge_m must be positive, got {max_edge_m}"
            raise ValueError(msg)
        geoms = np.asarray(lines, dtype=object).ravel()
        type_id = shapely.get_type_id(geoms)
        bad = ~np.isin(type_id, _LINE_TYPE_IDS)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            kind = _TYPE_NAMES.get(int(type_id[row]), "unknown")
            msg = f"{int(bad.sum())} street geometries are not lines (first: {kind} at row {row})"
            raise InputError(msg, hint="streets must be LineStrings or MultiLineStrings")
        # get_parts copies every geometry: only multi-part ones need it.
        multi = type_id == 5
        parts = np.concatenate([geoms[(type_id >= 0) & ~multi], shapely.get_parts(geoms[multi])])
        parts = parts[~shapely.is_empty(parts)]
        if not len(parts):
            msg = "no street lines to build a network from (all geometries are missing or empty)"
            raise InputError(msg)
        coords, part = shapely.get_coordinates(parts, return_index=True)
        if not np.isfinite(coords).all():
            msg = "street coordinates contain NaN or infinite values"
            raise InputError(msg, hint="repair or drop the faulty street geometries")

        # Vertices: one node per distinct coordinate pair (sort, mark where a new pair starts).
        # Complex numbers sort by real then imaginary part: an (x, y) sort, twice as fast as
        # np.lexsort. Adding 0.0 turns -0.0 into 0.0.
        key = np.empty(len(coords), dtype=np.complex128)
        key.real, key.imag = coords[:, 0] + 0.0, coords[:, 1] + 0.0
        order = np.argsort(key)
        ordered = coords[order]
        starts = np.ones(len(coords), dtype=bool)
        starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
        node = np.empty(len(coords), dtype=np.int64)
        node[order] = np.cumsum(starts) - 1
        xy = ordered[starts]

        # Segments: consecutive vertices of the same part, each node pair once.
        same = part[1:] == part[:-1]
        a, b = node[:-1][same], node[1:][same]
        keep = a != b
        lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        pair = np.sort(lo * len(xy) + hi)  # sort + mask: np.unique is far slower here
        pair = pair[np.r_[True, pair[1:] != pair[:-1]]]
        lo, hi = pair // len(xy), pair % len(xy)
        length = np.hypot(*(xy[hi] - xy[lo]).T)
        return cls(*_densify(xy, lo, hi, length, max_edge_m))

    def __repr__(self) -> str:
        return (
            f"StreetNetwork(n_nodes={self.n_nodes}, n_edges={self.n_edges}, "
            f"total_length={self.total_length:.0f} m, n_components={self.n_components}, "
            f"largest_component_share={self.largest_component_share:.4f})"
        )

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.xy)

    @property
    def n_edges(self) -> int:
        """Number of undirected edges."""
        return len(self.edges)

    @property
    def total_length(self) -> float:
        """Total street length in metres (repeated segments counted once)."""
        return float(self.edge_length.sum())

    @property
    def n_components(self) -> int:
        """Number of connected components (an isolated node is a component)."""
        return int(self.component.max()) + 1 if self.n_nodes else 0

    @property
    def largest_component_share(self) -> float:
        """Share of nodes in the largest connected component (NaN for an empty network)."""
        if not self.n_nodes:
            return float("nan")
        return float(np.count_nonzero(self.component == 0) / self.n_nodes)

    @cached_property
    def node_length(self) -> np.ndarray:
        """Street length each node stands for: half the length of its incident edges, metres.

        The values sum to :attr:`total_length`; use them to weight nodes as origins.
        """
        half = self.edge_length / 2
        n = self.n_nodes
        return np.bincount(self.edges[:, 0], half, minlength=n) + np.bincount(
            self.edges[:, 1], half, minlength=n
        )

    @cached_property
    def _tree(self) -> shapely.STRtree:
        return shapely.STRtree(shapely.points(self.xy))

    def snap(self, points: np.ndarray | Any, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
        """Find the nearest node of each point.

        Parameters
        ----------
        points
            Shapely geometries (other geometries than points use their nearest part) or an
            ``(k, 2)`` array of coordinates, in the network's CRS.
        max_distance
            Farthest straight-line distance to a node, metres; points farther away (and missing
            or empty geometries) are not snapped.

        Returns
        -------
        node : numpy.ndarray
            Nearest node index per point, int64, ``-1`` where not snapped. Ties go to the node
            that comes first in the spatial index.
        offset : numpy.ndarray
            Straight-line distance to that node in metres, float64, NaN where not snapped.

        Notes
        -----
        The offset is the access distance from the point to the network: pass both arrays to
        :meth:`distance_to` as sources (entries ``-1`` are ignored there). With nodes at most
        ``max_edge_m`` apart, the nearest node is within ``max_edge_m / 2`` along the street of
        the point's projection on it.

        """
        if not max_distance > 0:
            msg = f"max_distance must be positive, got {max_distance}"
            raise ValueError(msg)
        geoms = _as_geometries(points)
        node = np.full(len(geoms), -1, dtype=np.int64)
        offset = np.full(len(geoms), np.nan)
        present = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
        if not len(present) or not self.n_nodes:
            return node, offset
        (where, found), dist = self._tree.query_nearest(
            geoms[present],
            max_distance=max_distance if np.isfinite(max_distance) else None,
            return_distance=True,
            all_matches=False,
        )
        node[present[where]] = found
        offset[present[where]] = dist
        return node, offset

    def nodes_near(self, polygons: np.ndarray | Any, distance_m: float = 0.0) -> np.ndarray:
        """Return the nodes inside or within ``distance_m`` of any of the polygons.

        For public-space access these nodes are the park's "entrances": paths inside a park and
        streets along its edge. Any geometry type works (points for mapped gates).

        Parameters
        ----------
        polygons
            Shapely geometries in the network's CRS; missing and empty ones are ignored.
        distance_m
            Distance from a polygon within which a node counts, metres (0: inside or on the
            boundary).

        Returns
        -------
        numpy.ndarray
            Sorted distinct node indices, int64.

        """
        if not distance_m >= 0:
            msg = f"distance_m must be non-negative, got {distance_m}"
            raise ValueError(msg)
        geoms = _as_geometries(polygons)
        geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if not len(geoms) or not self.n_nodes:
            return np.empty(0, dtype=np.int64)
        if distance_m > 0:
            pairs = self._tree.query(geoms, predicate="dwithin", distance=distance_m)
        else:
            pairs = self._tree.query(geoms, predicate="intersects")
        return np.unique(pairs[1]).astype(np.int64)

    def distance_to(
        self,
        sources: np.ndarray | Any,
        offsets: np.ndarray | Any | None = None,
        *,
        limit: float | None = None,
    ) -> np.ndarray:
        """Shortest network distance from every node to the nearest source.

        Parameters
        ----------
        sources
            Source node indices (e.g. snapped transit stops or :meth:`nodes_near` of parks);
            ``-1`` entries (points :meth:`snap` could not place) are ignored, repeated nodes
            keep their smallest offset.
        offsets
            Distance from each source to its node in metres (the ``offset`` from
            :meth:`snap`), added to every path through that source; default 0.
        limit
            Stop the search at this distance, metres: nodes farther than ``limit`` from every
            source get ``inf``; nodes at exactly ``limit`` keep their distance. Much faster for
            access indicators (e.g. 400 m).

        Returns
        -------
        numpy.ndarray
            Distance per node in metres, float64, shape ``(n_nodes,)``; ``inf`` where no source
            is reachable (other component, or beyond ``limit``), all ``inf`` if there is no
            source.

        Notes
        -----
        One Dijkstra run (:func:`scipy.sparse.csgraph.dijkstra`) from a virtual super-source
        joined to each source node by an edge as long as its offset, so each source starts with
        its own head start or handicap.

        """
        n = self.n_nodes
        src = np.asarray(sources).ravel()
        if src.size and not np.issubdtype(src.dtype, np.integer):
            msg = f"sources must be integer node indices, got {src.dtype}"
            raise TypeError(msg)
        src = src.astype(np.int64)
        if offsets is None:
            off = np.zeros(len(src))
        else:
            off = np.asarray(offsets, dtype=np.float64).ravel()
            if off.shape != src.shape:
                msg = f"{len(src)} sources but {len(off)} offsets"
                raise ValueError(msg)
        if limit is not None and not limit >= 0:
            msg = f"limit must be non-negative, got {limit}"
            raise ValueError(msg)
        if np.any((src < -1) | (src >= n)):
            msg = f"source node indices must lie in [0, {n}) or be -1"
            raise ValueError(msg)
        used = src >= 0
        src, off = src[used], off[used]
        if not np.all(off >= 0):  # also refuses NaN
            msg = "offsets of sources must be non-negative numbers"
            raise ValueError(msg)
        if not len(src):
            return np.full(n, np.inf)
        order = np.lexsort((off, src))
        src, off = src[order], off[order]
        first = np.ones(len(src), dtype=bool)
        first[1:] = src[1:] != src[:-1]
        src, off = src[first], off[first]

        g = self._graph
        itype = g.indices.dtype
        augmented = csr_array(
            (
                np.concatenate([g.data, off]),
                np.concatenate([g.indices, src.astype(itype)]),
                np.concatenate([g.indptr, np.array([g.indptr[-1] + len(src)], dtype=itype)]),
            ),
            shape=(n + 1, n + 1),
        )
        dist = dijkstra(
            augmented,
            directed=True,
            indices=n,
            limit=np.inf if limit is None else float(limit),
        )
        return np.asarray(dist[:n], dtype=np.float64)


def _densify(
    xy: np.ndarray, lo: np.ndarray, hi: np.ndarray, length: np.ndarray, max_edge_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every segment longer than ``max_edge_m`` into equal edges through new nodes.

    The new nodes belong to their segment only (they are never merged with another line's
    vertex, so densification cannot connect a bridge to the street below), and are numbered
    after the vertices, segment by segment.
    """
    pieces = np.ones(len(length), dtype=np.int64)
    if np.isfinite(max_edge_m):
        pieces = np.maximum(np.ceil(length / max_edge_m).astype(np.int64), 1)
    n_new = pieces - 1
    total = int(n_new.sum())
    seg = np.repeat(np.arange(len(length)), n_new)
    step = np.arange(total) - np.repeat(np.cumsum(n_new) - n_new, n_new) + 1
    t = (step / pieces[seg])[:, None]
    new_xy = xy[lo[seg]] + t * (xy[hi[seg]] - xy[lo[seg]])
    new_id = len(xy) + np.arange(total)
    # Each segment becomes the chain lo, new..., hi: its edges start at lo then at each new node
    # and end at each new node then at hi.
    first = np.cumsum(pieces) - pieces
    last = first + pieces - 1
    start = np.empty(int(pieces.sum()), dtype=np.int64)
    end = np.empty_like(start)
    inner_start = np.ones(len(start), dtype=bool)
    inner_start[first] = False
    inner_end = np.ones(len(start), dtype=bool)
    inner_end[last] = False
    start[first], start[inner_start] = lo, new_id
    end[last], end[inner_end] = hi, new_id
    edge_length = np.repeat(length / pieces, pieces)
    return np.concatenate([xy, new_xy]), np.column_stack([start, end]), edge_length


def _symmetric_csr(n: int, edges: np.ndarray, length: np.ndarray) -> csr_array:
    """Return the CSR adjacency holding both directions of every edge.

    Built directly from sorted arrays rather than through COO so that repeated entries are not
    summed (csgraph takes the minimum of repeated entries) and zero lengths stay edges.
    """
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    data = np.concatenate([length, length])
    order = np.argsort(rows)  # CSR needs rows grouped; order within a row does not matter
    itype = np.int32 if 2 * len(edges) + n + 1 < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return csr_array((data[order], cols[order].astype(itype), indptr), shape=(n, n))


def _ranked_components(graph: csr_array) -> np.ndarray:
    """Label connected components, numbered by decreasing size (0 is the largest)."""
    n = graph.shape[0]
    if not n:
        return np.empty(0, dtype=np.int64)
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    return rank[labels]


def _as_geometries(values: np.ndarray | Any) -> np.ndarray:
    """Return a flat object array of geometries; an ``(k, 2)`` number array becomes points."""
    arr = np.asarray(values)
    if arr.dtype != object and arr.ndim == 2 and arr.shape[1] == 2:
        return np.asarray(shapely.points(arr.astype(np.float64)), dtype=object)
    return np.asarray(values, dtype=object).ravel()
