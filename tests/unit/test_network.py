"""geo_usm.network: a hand-computed toy city, networkx on random geometries, Camden's OSM topology.

No network access: every graph comes from lines written here or from the committed Camden
streets layer.
"""

import itertools
import math
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pyogrio
import pytest
import shapely
from shapely import LineString, MultiLineString, Point

from geo_usm.errors import InputError
from geo_usm.network import StreetNetwork

ROOT = Path(__file__).resolve().parents[2]
CAMDEN_STREETS = ROOT / "sample_data" / "camden" / "data" / "camden_streets.gpkg"
ATOL = 1e-6  # metres
ORIGIN = np.array([530_000.0, 180_000.0])  # random streets in British National Grid metres
D = 200 * math.sqrt(2)  # the footbridge, corner to corner


# --------------------------------------------------------------------------------------------
# the toy city
#
#   (0,200) ---- (100,200) ---- (200,200)        3x3 lattice of 100 m blocks, one line per row
#      |  \          |              |            and per column, sharing vertices at junctions.
#      |    \        |              |            Footbridge: a straight line from the NW corner
#   (0,100) -- (100,100) ------ (200,100) -- (280,100)   to the SE corner; it passes over the
#      |          |    \            |         dead end   centre junction without a vertex there.
#      |          |      \          |                    A lone street far away.
#   (0,0) ------ (100,0) ------- (200,0)


def lattice():
    rows = [LineString([(0, y), (100, y), (200, y)]) for y in (0, 100, 200)]
    cols = [LineString([(x, 0), (x, 100), (x, 200)]) for x in (0, 100, 200)]
    return rows + cols


DEAD_END = LineString([(200, 100), (280, 100)])
BRIDGE = LineString([(0, 200), (200, 0)])
LONE = LineString([(1000, 1000), (1100, 1000)])
LINE = LineString([(0, 0), (1, 0)])
TOY = np.array([*lattice(), DEAD_END, BRIDGE, LONE], dtype=object)
N_VERTICES = 9 + 1 + 2  # junctions, end of the dead end, ends of the lone street


def node_at(net, x, y, *, exclude=()):
    """Index of the node at exactly (x, y) (one of them if several, minus ``exclude``)."""
    hits = [
        i for i in np.flatnonzero((net.xy[:, 0] == x) & (net.xy[:, 1] == y)) if i not in exclude
    ]
    assert hits, (x, y)
    return int(hits[0])


@pytest.fixture(scope="module")
def toy():
    return StreetNetwork.from_lines(TOY, max_edge_m=50.0)


def test_toy_nodes_edges_components(toy):
    # lattice: 9 junctions + 12 blocks split in two; dead end: end + 1; bridge: 5 added
    # (282.8 m / 50 -> 6 edges); lone street: 2 ends + 1.
    assert toy.n_nodes == 9 + 12 + 2 + 5 + 3
    assert toy.n_edges == 24 + 2 + 6 + 2
    assert toy.total_length == pytest.approx(1200 + 80 + D + 100, abs=ATOL)
    assert toy.n_components == 2
    assert toy.largest_component_share == pytest.approx(28 / 31)
    assert np.count_nonzero(toy.component == 1) == 3
    assert toy.component[node_at(toy, 1000, 1000)] == 1
    assert toy.edge_length.max() <= 50.0 + 1e-9
    # the first nodes are the vertices, in (x, y) order, then the added ones
    vertices = toy.xy[:N_VERTICES]
    assert np.array_equal(vertices, np.unique(vertices, axis=0))
    lattice_xy = {(x, y) for x in (0, 100, 200) for y in (0, 100, 200)}
    assert {tuple(p) for p in vertices} == lattice_xy | {(280, 100), (1000, 1000), (1100, 1000)}


def test_toy_densified_bridge_node_is_not_the_junction_below(toy):
    # The bridge's middle added node falls exactly on the centre junction: two nodes, unjoined.
    centre = np.flatnonzero((toy.xy[:, 0] == 100) & (toy.xy[:, 1] == 100))
    assert len(centre) == 2
    assert toy.component[centre[0]] == toy.component[centre[1]] == 0


def test_toy_distances_from_one_corner(toy):
    nw = node_at(toy, 0, 200)
    dist = toy.distance_to([nw])
    junction = node_at(toy, 100, 100, exclude=range(N_VERTICES, toy.n_nodes))
    bridge_mid = node_at(toy, 100, 100, exclude=[junction])
    expected = {
        (0, 200): 0.0,
        (100, 200): 100.0,
        (200, 200): 200.0,
        (0, 0): 200.0,
        (200, 0): D,  # over the bridge, not 400 along the streets
        (200, 100): 300.0,  # along the streets; the bridge way is D + 100 = 382.8
        (100, 0): 300.0,
        (280, 100): 380.0,  # end of the dead end
        (240, 100): 340.0,  # its added node
        (200, 50): D + 50,
        (150, 0): D + 50,
        (0, 150): 50.0,
    }
    for (x, y), want in expected.items():
        assert dist[node_at(toy, x, y)] == pytest.approx(want, abs=ATOL), (x, y)
    assert dist[junction] == pytest.approx(200.0, abs=ATOL)  # 141.4 if the bridge were joined
    assert dist[bridge_mid] == pytest.approx(D / 2, abs=ATOL)
    assert np.all(np.isinf(dist[toy.component == 1]))
    assert np.all(np.isfinite(dist[toy.component == 0]))


def test_toy_distances_with_offsets_and_limit(toy):
    nw, se = node_at(toy, 0, 200), node_at(toy, 200, 0)
    dist = toy.distance_to([nw, se, -1], [30.0, 0.0, np.nan])  # -1: not snapped, ignored
    expected = {
        (0, 200): 30.0,  # its own offset (282.8 from the other source)
        (200, 0): 0.0,
        (100, 200): 130.0,
        (0, 100): 130.0,
        (200, 200): 200.0,
        (0, 0): 200.0,
        (280, 100): 180.0,
        (200, 150): 150.0,
    }
    for (x, y), want in expected.items():
        assert dist[node_at(toy, x, y)] == pytest.approx(want, abs=ATOL), (x, y)

    limited = toy.distance_to([nw, se], [30.0, 0.0], limit=150.0)
    within = dist <= 150.0
    assert np.array_equal(limited[within], dist[within])
    assert np.all(np.isinf(limited[~within]))
    assert limited[node_at(toy, 200, 150)] == pytest.approx(150.0)  # the limit is inclusive


def test_distance_to_repeated_sources_keep_smallest_offset(toy):
    nw = node_at(toy, 0, 200)
    once = toy.distance_to([nw], [5.0])
    assert np.array_equal(toy.distance_to([nw, nw, nw], [20.0, 5.0, 9.0]), once)
    assert np.array_equal(toy.distance_to(np.array([nw]), None), once - 5.0)


def test_distance_to_without_sources(toy):
    assert np.all(np.isinf(toy.distance_to([])))
    assert np.all(np.isinf(toy.distance_to([-1, -1], [np.nan, np.nan])))


@pytest.mark.parametrize(
    ("sources", "offsets", "error"),
    [
        ([0], [-1.0], ValueError),
        ([0], [np.nan], ValueError),
        ([0, 1], [1.0], ValueError),
        ([10_000], None, ValueError),
        ([-2], None, ValueError),
        ([0.5], None, TypeError),
    ],
)
def test_distance_to_refuses_bad_sources(toy, sources, offsets, error):
    with pytest.raises(error):
        toy.distance_to(sources, offsets)


def test_distance_to_refuses_negative_limit(toy):
    with pytest.raises(ValueError, match="limit"):
        toy.distance_to([0], limit=-1.0)


def test_node_length(toy):
    assert toy.node_length.sum() == pytest.approx(toy.total_length)
    # NW corner: two 50 m lattice edges and the bridge's first 282.8/6 m edge, halved
    assert toy.node_length[node_at(toy, 0, 200)] == pytest.approx((100 + D / 6) / 2)
    assert toy.node_length[node_at(toy, 280, 100)] == pytest.approx(20.0)  # dead end: 40/2
    assert toy.node_length[node_at(toy, 1050, 1000)] == pytest.approx(50.0)


def test_no_densification():
    net = StreetNetwork.from_lines(TOY, max_edge_m=np.inf)
    assert net.n_nodes == 9 + 1 + 2
    assert net.n_edges == 12 + 1 + 1 + 1
    dist = net.distance_to([node_at(net, 0, 200)])
    assert dist[node_at(net, 200, 0)] == pytest.approx(D)
    assert dist[node_at(net, 100, 100)] == pytest.approx(200.0)


def test_multilines_missing_empty_and_repeated_segments():
    plain = StreetNetwork.from_lines(TOY[:6])
    rows, cols = TOY[:3], TOY[3:6]
    messy = np.array(
        [
            MultiLineString(list(rows)),
            None,
            LineString(),
            MultiLineString(),
            *cols,
            cols[0].reverse(),  # both directions of a two-way street
            LineString([(0, 0), (100, 0)]),  # a repeated piece of a row
            LineString([(5, 5), (5, 5)]),  # zero length: a node, no edge
        ],
        dtype=object,
    )
    net = StreetNetwork.from_lines(messy)
    assert net.n_edges == plain.n_edges
    assert net.total_length == pytest.approx(plain.total_length)
    assert net.n_nodes == plain.n_nodes + 1
    assert net.n_components == 2
    assert net.node_length.sum() == pytest.approx(1200.0)


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([LINE, Point(0, 0)], "not lines.*Point at row 1"),
        ([LINE, shapely.box(0, 0, 1, 1)], "Polygon"),
        ([None, LineString()], "no street lines"),
        ([], "no street lines"),
        ([LINE, "nan line"], "NaN"),
    ],
)
def test_from_lines_refuses(lines, match):
    if "nan line" in lines:
        with warnings.catch_warnings():  # shapely warns when it makes a NaN coordinate
            warnings.simplefilter("ignore", RuntimeWarning)
            lines[lines.index("nan line")] = LineString([(0, 0), (np.nan, 1)])
    with pytest.raises(InputError, match=match):
        StreetNetwork.from_lines(np.array(lines, dtype=object))


def test_from_lines_refuses_bad_max_edge():
    with pytest.raises(ValueError, match="max_edge_m"):
        StreetNetwork.from_lines(TOY, max_edge_m=0)


def test_repr(toy):
    assert repr(toy).startswith("StreetNetwork(n_nodes=31, n_edges=34, total_length=1663 m")


# --------------------------------------------------------------------------------------------
# snap and nodes_near


def test_snap(toy):
    points = np.array([Point(10, 203), Point(500, 500), None, Point(), Point(147, 1)], dtype=object)
    node, offset = toy.snap(points, 20.0)
    assert node.dtype == np.int64
    assert node[0] == node_at(toy, 0, 200)
    assert offset[0] == pytest.approx(math.hypot(10, 3))
    assert node[4] == node_at(toy, 150, 0)
    assert offset[4] == pytest.approx(math.hypot(3, 1))
    assert list(node[1:4]) == [-1, -1, -1]
    assert np.all(np.isnan(offset[1:4]))
    # a coordinate array works too, and the result feeds distance_to directly
    node2, offset2 = toy.snap(np.array([[10.0, 203.0], [500.0, 500.0]]), 20.0)
    assert list(node2) == [node[0], -1]
    dist = toy.distance_to(node2, offset2)
    assert dist[node_at(toy, 100, 200)] == pytest.approx(100 + math.hypot(10, 3))


def test_snap_max_distance(toy):
    node, offset = toy.snap(np.array([[0.0, 230.0]]), 30.0)  # nearest node exactly 30 m away
    assert node[0] == node_at(toy, 0, 200)
    assert offset[0] == 30.0
    node, _ = toy.snap(np.array([[0.0, 230.0]]), 29.9)
    assert node[0] == -1
    with pytest.raises(ValueError, match="max_distance"):
        toy.snap(np.array([[0.0, 0.0]]), 0.0)


def test_nodes_near(toy):
    block = shapely.box(110, 110, 190, 190)  # a park filling most of the NE block
    assert len(toy.nodes_near([block])) == 0
    near = toy.nodes_near([block, None, shapely.Polygon()], 12.0)
    assert near.dtype == np.int64
    assert {tuple(p) for p in toy.xy[near]} == {(150, 100), (150, 200), (100, 150), (200, 150)}
    strip = shapely.box(40, -10, 160, 10)  # a park across the south street
    inside = toy.nodes_near(np.array([strip]))
    assert {tuple(p) for p in toy.xy[inside]} == {(50, 0), (100, 0), (150, 0)}
    assert np.array_equal(inside, np.sort(inside))
    assert len(toy.nodes_near([])) == 0
    with pytest.raises(ValueError, match="distance_m"):
        toy.nodes_near([strip], -1.0)


def test_public_space_access_workflow(toy):
    park = toy.nodes_near([shapely.box(110, 110, 190, 190)], 12.0)
    dist = toy.distance_to(park, limit=100.0)
    assert dist[node_at(toy, 200, 200)] == pytest.approx(50.0)
    assert dist[node_at(toy, 100, 100, exclude=range(N_VERTICES, toy.n_nodes))] == pytest.approx(
        50.0
    )
    assert np.isinf(dist[node_at(toy, 0, 0)])
    covered = toy.node_length[dist <= 100.0].sum() / toy.node_length.sum()
    assert 0 < covered < 1


# --------------------------------------------------------------------------------------------
# networkx on random geometries


def random_lines(seed):
    """Random streets: paths through a shared pool of points (so they join at exact vertices,
    and cross elsewhere without joining), some repeated or reversed, some grouped into
    MultiLineStrings, some missing."""
    rng = np.random.default_rng(seed)
    pool = rng.uniform(0, 2000, (300, 2)) + ORIGIN
    lines = []
    for _ in range(250):
        k = rng.integers(2, 6)
        pts = pool[rng.choice(len(pool), k, replace=False)]
        if rng.random() < 0.3:  # a vertex of its own, shared with nothing
            pts = np.vstack([pts, pts[-1] + rng.normal(0, 30, 2)])
        lines.append(LineString(pts))
    lines += [lines[i].reverse() for i in rng.choice(len(lines), 10, replace=False)]
    out = []
    i = 0
    while i < len(lines):
        if rng.random() < 0.1:
            out.append(MultiLineString(lines[i : i + 3]))
            i += 3
        else:
            out.append(lines[i])
            i += 1
        if rng.random() < 0.05:
            out.append(None)
    return np.array(out, dtype=object)


def reference_graph(lines):
    """networkx graph, one node per vertex coordinate, built line by line in Python."""
    g = nx.Graph()
    for geom in lines:
        if geom is None:
            continue
        for part in getattr(geom, "geoms", [geom]):
            coords = [tuple(map(float, c)) for c in part.coords]
            g.add_nodes_from(coords)
            for a, b in itertools.pairwise(coords):
                if a == b:
                    continue
                w = math.dist(a, b)
                if not g.has_edge(a, b) or g[a][b]["weight"] > w:
                    g.add_edge(a, b, weight=w)
    return g


def index_of(net):
    """Node index by coordinates; where an added node shares a vertex's place, the vertex."""
    return {(float(x), float(y)): i for i, (x, y) in reversed(list(enumerate(net.xy)))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_networkx(seed):
    lines = random_lines(seed)
    g = reference_graph(lines)
    coarse = StreetNetwork.from_lines(lines, max_edge_m=np.inf)
    assert coarse.n_nodes == g.number_of_nodes()
    assert coarse.n_edges == g.number_of_edges()
    assert coarse.n_components == nx.number_connected_components(g)
    assert coarse.largest_component_share == pytest.approx(
        max(len(c) for c in nx.connected_components(g)) / g.number_of_nodes()
    )
    idx = index_of(coarse)
    assert set(idx) == set(g.nodes)

    rng = np.random.default_rng(seed + 100)
    nodes = list(g.nodes)
    sources = [nodes[i] for i in rng.choice(len(nodes), 5, replace=False)]
    want = nx.multi_source_dijkstra_path_length(g, sources, weight="weight")
    got = coarse.distance_to([idx[s] for s in sources])
    for p, i in idx.items():
        assert got[i] == pytest.approx(want.get(p, np.inf), abs=ATOL)

    # offsets: a super-source joined to each source by an edge as long as its offset
    offsets = rng.uniform(0, 300, len(sources))
    h = g.copy()
    h.add_weighted_edges_from([("S", s, o) for s, o in zip(sources, offsets, strict=True)])
    want = nx.single_source_dijkstra_path_length(h, "S", weight="weight")
    got = coarse.distance_to([idx[s] for s in sources], offsets)
    for p, i in idx.items():
        assert got[i] == pytest.approx(want.get(p, np.inf), abs=ATOL)
    limited = coarse.distance_to([idx[s] for s in sources], offsets, limit=400.0)
    want_limited = nx.single_source_dijkstra_path_length(h, "S", cutoff=400.0, weight="weight")
    for p, i in idx.items():
        assert limited[i] == pytest.approx(want_limited.get(p, np.inf), abs=ATOL)

    # densified: the same distances at the vertices; added nodes lie on their segment
    fine = StreetNetwork.from_lines(lines, max_edge_m=50.0)
    n_vertices = coarse.n_nodes
    assert np.array_equal(fine.xy[:n_vertices], coarse.xy)
    assert fine.edge_length.max() <= 50.0 + 1e-9
    assert fine.total_length == pytest.approx(coarse.total_length, rel=1e-12)
    assert fine.n_components == coarse.n_components
    dist_fine = fine.distance_to([idx[s] for s in sources], offsets)
    np.testing.assert_allclose(dist_fine[:n_vertices], got, atol=ATOL, rtol=0)
    long = [(a, b) for a, b in g.edges if math.dist(a, b) > 120.0][:20]
    assert long
    for a, b in long:
        # the added nodes of this segment: on its line, strictly between its ends
        seg = np.asarray([a, b])
        length = math.dist(a, b)
        rel = fine.xy[n_vertices:] - seg[0]
        t = rel @ (seg[1] - seg[0]) / length**2
        dx, dy = seg[1] - seg[0]
        off_line = np.abs(rel[:, 0] * dy - rel[:, 1] * dx) / length
        on = np.flatnonzero((off_line < 1e-6) & (t > 0) & (t < 1))
        assert len(on) == math.ceil(length / 50.0) - 1
        expect = np.minimum(got[idx[a]] + t[on] * length, got[idx[b]] + (1 - t[on]) * length)
        np.testing.assert_allclose(dist_fine[n_vertices + on], expect, atol=ATOL, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_snap_and_nodes_near_brute_force(seed):
    net = StreetNetwork.from_lines(random_lines(seed), max_edge_m=50.0)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-100, 2100, (400, 2)) + ORIGIN
    node, offset = net.snap(xy, 40.0)
    d = np.hypot(*(xy[:, None, :] - net.xy[None, :, :]).transpose(2, 0, 1))
    nearest = d.min(axis=1)
    far = nearest > 40.0
    assert np.array_equal(node == -1, far)
    np.testing.assert_allclose(offset[~far], nearest[~far], atol=1e-9)
    np.testing.assert_allclose(d[~far][np.arange((~far).sum()), node[~far]], nearest[~far])

    parks = shapely.buffer(shapely.points(xy[:20]), rng.uniform(10, 80, 20))
    got = net.nodes_near(parks, 25.0)
    want = np.flatnonzero(
        shapely.dwithin(parks[:, None], shapely.points(net.xy)[None, :], 25.0).any(axis=0)
    )
    assert np.array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Camden: the topology from shared vertices against osmnx's u/v node ids


@pytest.fixture(scope="module")
def camden():
    df = pyogrio.read_dataframe(CAMDEN_STREETS, layer="streets")
    assert len(df) == 17_903
    return df


def end_coordinates(geoms):
    start = shapely.get_coordinates(shapely.get_point(geoms, 0))
    end = shapely.get_coordinates(shapely.get_point(geoms, -1))
    return start, end


def test_camden_vertices_and_osm_nodes(camden):
    """Exactly two places where shared vertices and u/v ids disagree, both data artefacts."""
    geoms = camden.geometry.values
    start, end = end_coordinates(geoms)
    ids = np.concatenate([camden.u_node.to_numpy(), camden.v_node.to_numpy()])
    xy = np.concatenate([start, end])
    coords_of = {}
    ids_at = {}
    for i, p in zip(ids, map(tuple, xy), strict=True):
        coords_of.setdefault(int(i), set()).add(p)
        ids_at.setdefault(p, set()).add(int(i))
    # 1. One OSM node id at two places: segments 30683746_1 and 128853972_1 were clipped to the
    #    study area at their u end, but kept the id of the u node that was cut away.
    split = {i: c for i, c in coords_of.items() if len(c) > 1}
    assert list(split) == [1422799652]
    clipped = camden[camden.u_node == 1422799652]
    assert set(clipped.segment_id) == {"30683746_1", "128853972_1"}
    assert clipped.clipped.all()
    # 2. Two OSM nodes at the same place: footway 804350957 ends on 7523542915, a duplicate of
    #    node 7523542916 of way 23231484 (an unjoined duplicate node, a common OSM error). By
    #    exact coordinates they are one node, which is what a pedestrian finds on the ground.
    merged = [ids for ids in ids_at.values() if len(ids) > 1]
    assert merged == [{7523542915, 7523542916}]
    # No way passes through another's vertex without a split there (osmnx splits ways at
    # every shared node), so intermediate vertices never join lines.
    coords, which = shapely.get_coordinates(geoms, return_index=True)
    inner = np.ones(len(coords), dtype=bool)
    inner[np.r_[0, np.flatnonzero(np.diff(which)) + 1]] = False
    inner[np.r_[np.flatnonzero(np.diff(which)), len(which) - 1]] = False
    ends = set(map(tuple, xy))
    assert not any(tuple(p) in ends for p in coords[inner])
    _, counts = np.unique(coords[inner], axis=0, return_counts=True)
    assert counts.max() == 1


def uv_graph(df, *, corrected):
    """networkx graph on OSM node ids, weight = segment length (shortest of parallel ones)."""
    u = df.u_node.to_numpy().copy()
    v = df.v_node.to_numpy().copy()
    if corrected:
        # undo the two artefacts found above so that the graphs must agree exactly
        u[(df.segment_id == "128853972_1").to_numpy()] = -1  # its clipped start: a new node
        u[u == 7523542915] = 7523542916
        v[v == 7523542915] = 7523542916
    g = nx.Graph()
    for a, b, w in zip(u.tolist(), v.tolist(), shapely.length(df.geometry.values), strict=True):
        if a != b and (not g.has_edge(a, b) or g[a][b]["weight"] > w):
            g.add_edge(a, b, weight=w)
        g.add_node(a)
    return g


def test_camden_distances_agree_with_osm_topology(camden):
    net = StreetNetwork.from_lines(camden.geometry.values, max_edge_m=50.0)
    assert net.largest_component_share > 0.9
    assert net.edge_length.max() <= 50.0 + 1e-9
    assert net.total_length == pytest.approx(shapely.length(camden.geometry.values).sum())

    idx = index_of(net)
    start, end = end_coordinates(camden.geometry.values)
    node_of = {}
    for ids, pts in ((camden.u_node, start), (camden.v_node, end)):
        for i, p in zip(ids.tolist(), map(tuple, pts), strict=True):
            node_of[i] = idx[p]
    clipped_start = idx[tuple(start[(camden.segment_id == "128853972_1").to_numpy()][0])]
    node_of[-1] = clipped_start
    node_of[1422799652] = idx[tuple(start[(camden.segment_id == "30683746_1").to_numpy()][0])]

    g = uv_graph(camden, corrected=True)
    # the same topology: each u/v component is exactly one component of the network
    labels = [{int(net.component[node_of[i]]) for i in c} for c in nx.connected_components(g)]
    assert all(len(lab) == 1 for lab in labels)
    assert len(set.union(*labels)) == len(labels) == net.n_components
    sources = [int(camden.u_node.iloc[k]) for k in (0, 4_000, 9_000, 13_000, 17_000)]
    want = nx.multi_source_dijkstra_path_length(g, sources, weight="weight")
    got = net.distance_to([node_of[s] for s in sources])
    ids = np.array(list(g.nodes))
    mine = got[[node_of[i] for i in ids]]
    ref = np.array([want.get(i, np.inf) for i in ids])
    assert np.array_equal(np.isinf(mine), np.isinf(ref))
    np.testing.assert_allclose(mine[np.isfinite(ref)], ref[np.isfinite(ref)], atol=ATOL, rtol=0)

    # from one source, single-source reference too (another networkx code path)
    one = nx.single_source_dijkstra_path_length(g, sources[2], weight="weight")
    got_one = net.distance_to([node_of[sources[2]]])
    for i, d in one.items():
        assert got_one[node_of[i]] == pytest.approx(d, abs=ATOL)
