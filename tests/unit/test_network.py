"""Network metrics on textbook graphs worked out by hand, against networkx, and end to end.

Hand graphs (weights in currency units; ids are node numbers):

3-cycle    0→1→2→0, weight 1 each. n = 3, m = 3, density 3/6 = 0.5, no reciprocal edge
           (binary and weighted reciprocity 0), one SCC {0,1,2} holding all volume, one
           3-cycle, every edge on it, PageRank 1/3 each, coreness 2 each, removing any
           node loses its two edges: fragility 2/3.
star       leaves 1, 2, 3, 4 pay centre 0 amounts 1, 2, 3, 4. Every SCC is one node, so
           the giant SCC is node 0 (lowest id on a tie) with no internal volume (share 0);
           no cycle; coreness 1 everywhere; the centre is the only business receiver
           (the leaves only pay): receipts (10): Gini 0, HHI 1, top-5 share 1; the
           centre carries all volume: fragility 1.
two dyads  0⇄1 with 0→1 = 3, 1→0 = 1 and 2⇄3 with 2 each way. Binary reciprocity 1;
           weighted Σ min / Σ w = (1 + 1 + 2 + 2) / 8 = 0.75. Two SCCs of size 2 and
           volume 4 each: the tie goes to {0, 1}, share 4/8 = 0.5. Two 2-cycles. Undirected
           projection: two edges of weight 4, L = 8, Q = 2·(4/8 − (8/16)²) = 0.5, two
           communities.
2-cycle    0→1 = 10, 1→0 = 4: weighted reciprocity (4 + 4)/14 = 4/7.
chain      0→1 = 10, 1→2 = 5, all businesses: 0 only pays, so 2 business receivers with
           receipts (5, 10): Gini Σ(2i−n−1)x/(nΣx) = (−5 + 10)/(2·15) = 1/6, HHI
           (1/3)² + (2/3)² = 5/9, top-5 share 1.
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import igraph as ig
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circulate.generate import generate_scheme
from circulate.ingest.pseudonym import pseudonymise
from circulate.metrics import flow_cells, network_flows
from circulate.metrics.network_flows import complementary_suppression, primary_suppression
from circulate.metrics.network_graph import (
    EdgeList,
    bounded_cycles,
    communities,
    concentration,
    coreness,
    edges_on_short_cycles,
    fragility,
    giant_scc,
    pagerank,
    reciprocity,
    strengths,
    summarise,
    to_igraph,
)
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import TEST_KEY, run_stages, write_csv, write_export

CYCLE3 = EdgeList.from_arrays(3, [0, 1, 2], [1, 2, 0], [100, 100, 100])
STAR = EdgeList.from_arrays(5, [1, 2, 3, 4], [0, 0, 0, 0], [100, 200, 300, 400])
DYADS = EdgeList.from_arrays(4, [0, 1, 2, 3], [1, 0, 3, 2], [300, 100, 200, 200])


# ----------------------------------------------------------------- textbook graphs


def test_three_cycle_by_hand() -> None:
    s = summarise(CYCLE3, np.ones(3, bool))
    assert (s["nodes"], s["edges"], s["density"]) == (3, 3, 0.5)
    assert (s["reciprocity"], s["weighted_reciprocity"]) == (0.0, 0.0)
    assert (s["giant_scc_nodes"], s["giant_scc_volume_share"]) == (3, 1.0)
    assert [s[f"cycles_{k}"] for k in range(2, 6)] == [0, 1, 0, 0]
    assert s["cycle_volume_share"] == 1.0 and s["cycles_capped"] is False
    assert s["fragility_top1"] == pytest.approx(2 / 3) and s["fragility_top5"] == 1.0
    assert pagerank(to_igraph(CYCLE3)) == pytest.approx([1 / 3] * 3)
    assert coreness(to_igraph(CYCLE3)).tolist() == [2, 2, 2]


def test_star_by_hand() -> None:
    graph = to_igraph(STAR)
    s = summarise(STAR, np.ones(5, bool))
    assert giant_scc(graph).tolist() == [True, False, False, False, False]
    assert s["giant_scc_volume_share"] == 0.0 and s["cycle_volume_share"] == 0.0
    assert [s[f"cycles_{k}"] for k in range(2, 6)] == [0, 0, 0, 0]
    assert coreness(graph).tolist() == [1] * 5
    assert s["business_receivers"] == 1
    assert (s["receipts_gini"], s["receipts_hhi"], s["receipts_top5_share"]) == (0.0, 1.0, 1.0)
    assert s["top_hub"] == 0 and s["fragility_top1"] == 1.0
    in_s, out_s = strengths(STAR)
    assert in_s.tolist() == [1000, 0, 0, 0, 0] and out_s.tolist() == [0, 100, 200, 300, 400]
    # Leaf 4 pays most, so it alone takes 4/10 of the volume with it.
    assert fragility(STAR, [4]) == 0.4


def test_two_dyads_by_hand() -> None:
    graph = to_igraph(DYADS)
    assert reciprocity(DYADS) == (1.0, 0.75)
    assert giant_scc(graph).tolist() == [True, True, False, False]
    membership, modularity = communities(graph)
    assert membership.tolist() == [0, 0, 1, 1] and modularity == 0.5
    s = summarise(DYADS, np.ones(4, bool))
    assert s["giant_scc_volume_share"] == 0.5 and s["cycles_2"] == 2 and s["communities"] == 2


def test_business_receivers_leave_out_businesses_that_only_paid() -> None:
    chain = EdgeList.from_arrays(3, [0, 1], [1, 2], [1000, 500])
    s = summarise(chain, np.array([True] * 3))
    assert s["business_receivers"] == 2
    assert s["receipts_gini"] == pytest.approx(1 / 6)
    assert (s["receipts_hhi"], s["receipts_top5_share"]) == (pytest.approx(5 / 9), 1.0)
    # Only node 2 is a business: it receives 5, so one receiver holding everything.
    s = summarise(chain, np.array([False, False, True]))
    assert (s["business_receivers"], s["receipts_gini"], s["receipts_hhi"]) == (1, 0.0, 1.0)
    # Only node 0 is a business and it only pays: no receiver, no concentration.
    s = summarise(chain, np.array([True, False, False]))
    assert s["business_receivers"] == 0 and s["receipts_gini"] is None


def test_weighted_reciprocity_of_an_unequal_two_cycle() -> None:
    assert reciprocity(EdgeList.from_arrays(2, [0, 1], [1, 0], [1000, 400])) == (1.0, 4 / 7)


def test_pagerank_falls_back_to_prpack_when_arpack_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ARPACK can raise a LAPACK error on small degenerate graphs; the scores still come."""
    original = ig.Graph.pagerank

    def arpack_fails(graph: ig.Graph, *args: Any, **kwargs: Any) -> list[float]:
        if kwargs.get("implementation") == "arpack":
            raise ig.InternalError("LAPACK error in tridiagonal eigenvalue calculation")
        return cast(list[float], original(graph, *args, **kwargs))

    monkeypatch.setattr(ig.Graph, "pagerank", arpack_fails)
    assert pagerank(to_igraph(CYCLE3)) == pytest.approx([1 / 3] * 3)


def test_concentration_of_receipts_1_2_3_4() -> None:
    """Gini ((−3)·1 + (−1)·2 + 1·3 + 3·4) / (4·10) = 0.25; HHI (1+4+9+16)/100 = 0.3."""
    result = concentration([4, 1, 3, 2])
    assert result is not None
    assert (result.gini, result.hhi, result.top5_share) == (0.25, pytest.approx(0.3), 1.0)
    assert concentration([0, 0]) is None and concentration([]) is None


def test_edge_lists_reject_what_is_not_an_aggregated_transfer_graph() -> None:
    with pytest.raises(ValueError, match="self-loops"):
        EdgeList.from_arrays(2, [0], [0], [1])
    with pytest.raises(ValueError, match="aggregate edges first"):
        EdgeList.from_arrays(2, [0, 0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        EdgeList.from_arrays(2, [0], [2], [1])
    with pytest.raises(ValueError, match="positive"):
        EdgeList.from_arrays(2, [0], [1], [0])


def test_empty_graph_has_no_figures() -> None:
    s = summarise(EdgeList.from_arrays(0, [], [], []), np.zeros(0, bool))
    assert s["nodes"] == 0 and s["edges"] == 0 and s["communities"] == 0
    assert s["density"] is None and s["reciprocity"] is None and s["fragility_top1"] is None
    assert s["top_hub"] is None and s["receipts_gini"] is None


def test_cycle_enumeration_stops_at_its_caps() -> None:
    """The complete digraph on 7 nodes has C(7,2) = 21 two-cycles and many more longer ones."""
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    k7 = EdgeList.from_arrays(7, *zip(*pairs, strict=True), [1] * len(pairs))
    full = bounded_cycles(k7)
    # Simple cycles of length k in K_n: C(n, k)·(k−1)!.
    assert full.by_length == {2: 21, 3: 70, 4: 210, 5: 504} and not full.capped
    by_count = bounded_cycles(k7, max_cycles=10)
    assert by_count.capped and by_count.total == 10
    by_steps = bounded_cycles(k7, max_steps=50)
    assert by_steps.capped and by_steps.total < full.total
    # The exact edge marks need no cap; above max_nodes they are not attempted.
    assert edges_on_short_cycles(k7) is not None and edges_on_short_cycles(k7, max_work=1) is None


def test_a_capped_summary_keeps_its_exact_figures() -> None:
    """K7 again, enumeration stopped after 10 cycles: the 21 reciprocated pairs and the
    edge marks (every edge of K7 is on a 2-cycle) do not depend on the enumeration."""
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    k7 = EdgeList.from_arrays(7, *zip(*pairs, strict=True), [1] * len(pairs))
    s = summarise(k7, np.ones(7, bool), max_cycles=10)
    assert s["cycles_capped"] is True and s["cycles_3"] + s["cycles_4"] + s["cycles_5"] <= 10
    assert s["cycles_2"] == 21 and s["cycle_volume_share"] == 1.0


def test_no_cycle_share_without_an_exact_method() -> None:
    """When the bitset method is out of budget, a capped enumeration publishes no share."""
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    k7 = EdgeList.from_arrays(7, *zip(*pairs, strict=True), [1] * len(pairs))
    capped = summarise(k7, np.ones(7, bool), max_cycles=10, max_work=0)
    assert capped["cycles_capped"] is True and capped["cycle_volume_share"] is None
    # Uncapped enumeration is exact on its own.
    assert summarise(CYCLE3, np.ones(3, bool), max_work=0)["cycle_volume_share"] == 1.0


# ------------------------------------------------------------ against networkx


def _random_edges(seed: int, n: int, p: float) -> EdgeList:
    rng = np.random.default_rng(seed)
    mask = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
    source, target = np.nonzero(mask)
    cents = rng.integers(1, 50_000, len(source))
    return EdgeList.from_arrays(n, source, target, cents)


def _nx(edges: EdgeList) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(edges.n))
    for u, v, w in zip(edges.source, edges.target, edges.weight, strict=True):
        graph.add_edge(int(u), int(v), weight=float(w))
    return graph


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_agree_with_networkx(seed: int) -> None:
    edges = _random_edges(seed, n=25 + seed, p=0.06 + 0.02 * seed)
    oracle = _nx(edges)
    graph = to_igraph(edges)

    expected_pr = nx.pagerank(oracle, alpha=0.85, weight="weight", tol=1e-13, max_iter=10_000)
    assert pagerank(graph) == pytest.approx([expected_pr[v] for v in range(edges.n)], abs=1e-9)

    binary, weighted = reciprocity(edges)
    assert binary == pytest.approx(nx.overall_reciprocity(oracle))
    w = {(u, v): d["weight"] for u, v, d in oracle.edges(data=True)}
    hand = sum(min(x, w.get((v, u), 0.0)) for (u, v), x in w.items()) / sum(w.values())
    assert weighted == pytest.approx(hand)

    components = sorted(nx.strongly_connected_components(oracle), key=len, reverse=True)
    if len(components) == 1 or len(components[0]) > len(components[1]):
        assert set(np.flatnonzero(giant_scc(graph)).tolist()) == components[0]

    undirected = oracle.to_undirected()
    core = nx.core_number(undirected)
    assert coreness(graph).tolist() == [core[v] for v in range(edges.n)]

    in_s, out_s = strengths(edges)
    assert in_s.tolist() == [round(oracle.in_degree(v, weight="weight") * 100) for v in oracle]
    assert out_s.tolist() == [round(oracle.out_degree(v, weight="weight") * 100) for v in oracle]

    membership, modularity = communities(graph)
    projected = nx.Graph()
    projected.add_nodes_from(range(edges.n))
    for (u, v), x in w.items():
        previous = projected.get_edge_data(u, v, {"weight": 0.0})["weight"]
        projected.add_edge(u, v, weight=previous + x)
    groups = [set(np.flatnonzero(membership == c).tolist()) for c in range(membership.max() + 1)]
    assert modularity == pytest.approx(nx.community.modularity(projected, groups, weight="weight"))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.dictionaries(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(
                    lambda e: e[0] != e[1]
                ),
                st.integers(1, 10_000),
                max_size=3 * n,
            ),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
)
def test_business_receipts_agree_with_networkx(
    drawn: tuple[dict[tuple[int, int], int], list[bool]],
) -> None:
    """Second method: networkx in-degrees by weight, Gini by mean absolute difference."""
    weights, business = drawn
    ordered = sorted(weights)
    edges = EdgeList.from_arrays(
        len(business),
        [u for u, _ in ordered],
        [v for _, v in ordered],
        [weights[e] for e in ordered],
    )
    oracle = nx.DiGraph()
    oracle.add_nodes_from(range(len(business)))
    oracle.add_weighted_edges_from((u, v, c) for (u, v), c in weights.items())
    received = [
        float(oracle.in_degree(v, weight="weight"))
        for v in oracle
        if business[v] and oracle.in_degree(v) > 0
    ]
    s = summarise(edges, np.array(business))
    assert s["business_receivers"] == len(received)
    if not received:
        assert s["receipts_gini"] is s["receipts_hhi"] is s["receipts_top5_share"] is None
        return
    x = np.array(received)
    gini = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert s["receipts_gini"] == pytest.approx(gini, abs=1e-12)
    assert s["receipts_hhi"] == pytest.approx(((x / x.sum()) ** 2).sum())
    assert s["receipts_top5_share"] == pytest.approx(np.sort(x)[-5:].sum() / x.sum())


def _assert_cycles_match_networkx(edges: EdgeList) -> None:
    cycles = bounded_cycles(edges)
    found = list(nx.simple_cycles(_nx(edges), length_bound=5))
    assert cycles.by_length == {k: sum(len(c) == k for c in found) for k in range(2, 6)}
    on = set()
    for cycle in found:
        on |= set(itertools.pairwise([*cycle, cycle[0]]))
    expected = [(int(u), int(v)) in on for u, v in zip(edges.source, edges.target, strict=True)]
    assert cycles.on_cycle.tolist() == expected
    # Second, independent method: shortest return paths by bitsets, no enumeration.
    exact = edges_on_short_cycles(edges)
    assert exact is not None and exact.tolist() == expected


def test_blocked_bitsets_agree_with_one_block() -> None:
    """300 nodes in blocks of 64 middle nodes (5 blocks) give the same marks as one block."""
    edges = _random_edges(7, n=300, p=0.006)
    blocked = edges_on_short_cycles(edges, block_nodes=64)
    whole = edges_on_short_cycles(edges, block_nodes=300)
    assert blocked is not None and whole is not None
    assert blocked.tolist() == whole.tolist() and 0 < blocked.sum() < edges.m
    assert blocked.tolist() == bounded_cycles(edges).on_cycle.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_cycles_agree_with_networkx_on_random_graphs(seed: int) -> None:
    _assert_cycles_match_networkx(_random_edges(100 + seed, n=18, p=0.12))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 9).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(
                    lambda e: e[0] != e[1]
                ),
                max_size=n * (n - 1),
            ),
        )
    )
)
def test_cycles_and_invariants_hold_on_any_small_graph(
    graph: tuple[int, set[tuple[int, int]]],
) -> None:
    n, pairs = graph
    ordered = sorted(pairs)
    source = [u for u, _ in ordered]
    target = [v for _, v in ordered]
    edges = EdgeList.from_arrays(n, source, target, [(u + 1) * (v + 3) for u, v in ordered])
    _assert_cycles_match_networkx(edges)
    in_s, out_s = strengths(edges)
    assert in_s.sum() == out_s.sum() == edges.cents.sum()
    binary, weighted = reciprocity(edges)
    if edges.m:
        assert binary is not None and weighted is not None
        assert 0 <= weighted <= 1 and (binary == 0) == (weighted == 0)
        # Every 2-cycle is two reciprocated edges.
        assert bounded_cycles(edges).by_length[2] * 2 == round(binary * edges.m)
        hubs = np.argsort(-pagerank(to_igraph(edges)), kind="stable")
        f1, f5 = fragility(edges, hubs[:1]), fragility(edges, hubs[:5])
        assert f1 is not None and f5 is not None and 0 < f1 <= f5 <= 1


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.sets(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(
                    lambda e: e[0] != e[1]
                ),
                max_size=3 * n,
            ),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
)
def test_subgraph_is_networkx_induced_subgraph_of_traders(
    drawn: tuple[set[tuple[int, int]], list[bool]],
) -> None:
    """Second method: networkx's induced subgraph, without the nodes left with no edge."""
    pairs, keep = drawn
    ordered = sorted(pairs)
    cents = [(u + 1) * 100 + v for u, v in ordered]
    edges = EdgeList.from_arrays(len(keep), [u for u, _ in ordered], [v for _, v in ordered], cents)
    sub, old = edges.subgraph(np.array(keep))
    whole = nx.DiGraph()
    whole.add_weighted_edges_from((u, v, c) for (u, v), c in zip(ordered, cents, strict=True))
    induced = whole.subgraph([i for i, k in enumerate(keep) if k and i in whole])
    traders = sorted(node for node in induced if induced.degree(node) > 0)
    assert old.tolist() == traders and sub.n == len(traders)
    got = {
        (int(old[u]), int(old[v]), int(c))
        for u, v, c in zip(sub.source, sub.target, sub.cents, strict=True)
    }
    assert got == {(u, v, c) for u, v, c in induced.edges(data="weight")}
    # Renumbered edges keep their order.
    assert [(int(old[u]), int(old[v])) for u, v in zip(sub.source, sub.target, strict=True)] == [
        (u, v) for u, v in ordered if keep[u] and keep[v]
    ]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1_000), min_size=1, max_size=30))
def test_gini_equals_the_mean_absolute_difference_form(values: list[int]) -> None:
    """Second definition: G = Σ_i Σ_j |x_i − x_j| / (2 n² mean)."""
    result = concentration(values)
    x = np.asarray(values, dtype=float)
    if x.sum() == 0:
        assert result is None
        return
    assert result is not None
    expected = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert result.gini == pytest.approx(expected, abs=1e-12)
    assert result.hhi == pytest.approx(((x / x.sum()) ** 2).sum())
    assert 1 / len(x) - 1e-12 <= result.hhi <= 1 and 0 <= result.gini < 1


# ------------------------------------------------------------ suppression


def test_complementary_suppression_on_a_3_by_3_table() -> None:
    """Cells row-major, volumes 1..9; (0,0) = 1 hidden by the k rule.

    Row 0 hides its smallest open cell (0,1) = 2; column 0 hides (1,0) = 4. Column 1 now
    hides (0,1) alone beside (1,1) = 5 and (2,1) = 8, so (1,1) goes; row 1 then holds
    (1,0) and (1,1): two, fine. Every row and column has 0 or 2 hidden cells.
    """
    rows = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    cols = [0, 1, 2, 0, 1, 2, 0, 1, 2]
    primary = [True] + [False] * 8
    hidden = complementary_suppression([rows, cols], list(range(1, 10)), primary)
    assert np.flatnonzero(hidden).tolist() == [0, 1, 3, 4]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 100), st.booleans()),
        min_size=1,
        max_size=16,
        unique_by=lambda c: (c[0], c[1]),
    )
)
def test_no_line_is_left_with_one_hidden_cell(cells: list[tuple[int, int, int, bool]]) -> None:
    rows = [c[0] for c in cells]
    cols = [c[1] for c in cells]
    primary = np.array([c[3] for c in cells])
    hidden = complementary_suppression([rows, cols], [c[2] for c in cells], primary)
    assert np.all(hidden[primary])
    for line in (np.array(rows), np.array(cols)):
        for value in set(line.tolist()):
            members = line == value
            assert hidden[members].sum() != 1 or hidden[members].all()


def test_primary_suppression_counts_both_sides() -> None:
    assert primary_suppression([5, 5, 4], [5, 4, 5], 5).tolist() == [False, True, True]


def test_hand_ledger_network(published: Settings) -> None:
    """The six-row ledger of test_marts.py: ANN→CAFE 30 and BEN→CAFE 20 are its transfers.

    Member scope: 3 nodes, 2 edges, volume 50, density 2/6; CAFE, the only business,
    receives everything (Gini 0, HHI 1), tops PageRank and takes all volume with it
    (fragility 1). Business scope: no business pays a business, so a row of zeros and no
    node rows. Sector flows: individual → food & drink has 2 payers < k = 5: suppressed.
    """
    con = connect(published.warehouse, read_only=True)
    rows = con.execute(
        "select scope, nodes, edges, volume, density, business_receivers, receipts_gini, "
        "receipts_hhi, top_hub_id, fragility_top1 from marts.network_summary "
        "where period_kind = 'all' order by scope"
    ).fetchall()
    cafe = pseudonymise("CAFE", TEST_KEY.encode())
    assert rows == [
        ("business", 0, 0, Decimal("0.00"), None, 0, None, None, None, None),
        ("member", 3, 2, Decimal("50.00"), 2 / 6, 1, 0.0, 1.0, cafe, 1.0),
    ]
    nodes = con.execute(
        "select scope, count(*), sum(in_strength) from marts.network_nodes group by scope"
    ).fetchall()
    assert nodes == [("member", 3, Decimal("50.00"))]
    flows = con.execute(
        "select period_kind, source_sector, target_sector, volume, suppressed "
        "from marts.sector_flows order by all"
    ).fetchall()
    assert flows == [
        ("all", "individual", "food & drink", None, True),
        ("month", "individual", "food & drink", None, True),
    ]


# ------------------------------------------------------------ planted structure

FOOD = [f"F{i}" for i in range(1, 5)]
RETAIL = [f"R{i}" for i in range(1, 7)]
PEOPLE = [f"P{i}" for i in range(1, 11)]


def _planted_scheme(settings: Settings) -> None:
    """March 2025: a supply-chain ring among four food businesses and one wholesaler.

    F1→F2→F3→F4→F1 pay 50 each (ring volume 200); F1..F4 and R1..R6 each pay the
    wholesaler W 200 (2,000); individual P_i pays retailer R_((i−1) mod 6 + 1) 20 (200).
    W pays nobody and individuals receive no transfer, so the ring is the only cycle.

    Business scope: nodes F1-4, R1-6, W = 11; edges 4 + 10 = 14; volume 2,200; density
    14/110; cycles_4 = 1, all other lengths 0; cycle share = giant SCC share (the ring) =
    200/2,200 = 1/11; top PageRank W (every F sends 4/5 of its outflow there, every R all
    of it); fragility_top1 = 2,000/2,200 = 10/11. Receipts: the R's only pay, so the
    business receivers are F1..F4 (50 each) and W (2,000): HHI = (4·50² + 2000²)/2200² =
    4,010,000/4,840,000; Gini = (50·(−4−2+0+2) + 2000·4)/(5·2,200) = 7,800/11,000;
    top-5 share (W + 4 F's) = 1.
    Member scope adds P1..P10 and their 10 payments (21 nodes, 24 edges, volume 2,400):
    cycle share 200/2,400, fragility_top1 = 2,000/2,400.
    """
    accounts = [("I", "issuer", "", "", "2025-01-01")]
    accounts += [(f, "business", "food & drink", "Easton", "2025-01-01") for f in FOOD]
    accounts += [(r, "business", "retail", "Bedminster", "2025-01-01") for r in RETAIL]
    accounts += [("W", "business", "wholesale", "Avonmouth", "2025-01-01")]
    accounts += [(p, "individual", "", "Easton", "2025-01-01") for p in PEOPLE]
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        accounts,
    )
    rows = [
        (f"I{i}", "2025-03-01T09:00:00Z", "I", who, "1000.00", "issuance", "app")
        for i, who in enumerate(FOOD + RETAIL + PEOPLE)
    ]
    ring = zip(FOOD, FOOD[1:] + FOOD[:1], strict=True)
    rows += [
        (f"C{i}", "2025-03-03T10:00:00Z", a, b, "50.00", "transfer", "app")
        for i, (a, b) in enumerate(ring)
    ]
    rows += [
        (f"W{i}", "2025-03-04T10:00:00Z", who, "W", "200.00", "transfer", "app")
        for i, who in enumerate(FOOD + RETAIL)
    ]
    rows += [
        (f"S{i}", "2025-03-05T10:00:00Z", p, RETAIL[i % 6], "20.00", "transfer", "card")
        for i, p in enumerate(PEOPLE)
    ]
    write_export(settings, "2025-03.csv", rows)
    run_stages(settings)


def test_planted_ring_and_wholesaler_are_found(settings: Settings) -> None:
    _planted_scheme(settings)
    con = connect(settings.warehouse, read_only=True)
    columns = (
        "nodes, edges, volume, density, cycles_2, cycles_3, cycles_4, cycles_5, "
        "cycle_volume_share, giant_scc_nodes, giant_scc_volume_share, reciprocity, "
        "top_hub_id, fragility_top1, receipts_hhi, receipts_gini, receipts_top5_share"
    )
    rows = con.execute(
        f"select period_kind, scope, {columns} from marts.network_summary order by all"
    ).fetchall()
    wholesaler = pseudonymise("W", TEST_KEY.encode())
    business = (
        11, 14, Decimal("2200.00"), pytest.approx(14 / 110), 0, 0, 1, 0,
        pytest.approx(1 / 11), 4, pytest.approx(1 / 11), 0.0, wholesaler,
        pytest.approx(10 / 11), pytest.approx(4_010_000 / 4_840_000),
        pytest.approx(7_800 / 11_000), 1.0,
    )  # fmt: skip
    member_head = (21, 24, Decimal("2400.00"), pytest.approx(24 / 420), 0, 0, 1, 0)
    member_tail = (pytest.approx(200 / 2400), 4, pytest.approx(200 / 2400), 0.0, wholesaler)
    assert [r[:2] for r in rows] == [
        ("all", "business"), ("all", "member"), ("month", "business"), ("month", "member"),
    ]  # fmt: skip
    for row in rows:
        figures = row[2:]
        if row[1] == "business":
            assert figures == business
        else:
            assert figures[:8] == member_head and figures[8:13] == member_tail
            assert figures[13] == pytest.approx(2000 / 2400)

    top = con.execute(
        "select account_id, account_type, sector, in_strength, out_strength, respent_share "
        "from marts.network_nodes where scope = 'business' order by pagerank desc limit 1"
    ).fetchone()
    assert top == (wholesaler, "business", "wholesale", Decimal("2000.00"), Decimal("0.00"), 0.0)
    ring_ids = [pseudonymise(f, TEST_KEY.encode()) for f in FOOD]
    ring = con.execute(
        "select count(*), bool_and(in_giant_scc), min(coreness), max(coreness) "
        "from marts.network_nodes where scope = 'business' and account_id in (select unnest(?))",
        [ring_ids],
    ).fetchone()
    # Undirected: each F has its two ring neighbours and W, W has the four F's (R's hang
    # off W with degree 1), so {F1..F4, W} is the 3-core.
    assert ring == (4, True, 3, 3)


def test_planted_flows_are_k_anonymised(settings: Settings) -> None:
    """Sector cells (payers, payees): food→food (4, 4), food→wholesale (4, 1),
    retail→wholesale (6, 1), individual→retail (10, 6), in March and over all history.

    k = 5 (the run's default): only individual→retail is published (volume 200, 10
    transfers). k = 3: food→food passes the k rule but is the lone open cell beside the
    hidden food→wholesale in row "food & drink", so it is hidden as a complement.
    """
    _planted_scheme(settings)
    con = connect(settings.warehouse, read_only=True)
    published = con.execute(
        "select period_kind, source_sector, target_sector, volume, transfer_count, "
        "source_accounts, target_accounts from marts.sector_flows where not suppressed "
        "order by all"
    ).fetchall()
    cell = ("individual", "retail", Decimal("200.00"), 10, 10, 6)
    assert published == [("all", *cell), ("month", *cell)]
    assert con.execute("select count(*) from marts.sector_flows").fetchall() == [(8,)]
    frame = network_flows.suppress_cells(flow_cells.count_cells(con, "sector", None), 3)
    open_cells = frame.filter(~frame["suppressed"]).select("source_group", "target_group")
    assert set(open_cells.iter_rows()) == {("individual", "retail")}
    areas = con.execute(
        "select source_area, target_area, suppressed from marts.area_flows "
        "where period_kind = 'all' order by all"
    ).fetchall()
    # Easton→Easton (4 food payers) and both flows into Avonmouth (1 payee) are hidden by
    # the k rule; row Easton then already holds two hidden cells, so Easton→Bedminster
    # (10 people → 6 retailers) stays open.
    assert areas == [
        ("Bedminster", "Avonmouth", True),
        ("Easton", "Avonmouth", True),
        ("Easton", "Bedminster", False),
        ("Easton", "Easton", True),
    ]


def test_k_below_the_minimum_is_refused() -> None:
    with pytest.raises(Exception, match="CIRCULATE_K_ANONYMITY"):
        network_flows.k_anonymity({"k_anonymity": 2})


# ------------------------------------------------------------ generated scheme


@pytest.mark.slow
def test_generated_scheme_volumes_match_ground_truth(settings: Settings, tmp_path: Path) -> None:
    """Member-scope volumes equal the generator's transfer totals, month by month, and
    the warehouse assertions on every network mart pass (run_stages runs them)."""
    truth = generate_scheme(tmp_path / "scheme", seed=11, transactions=4_000, days=90)
    inbox = tmp_path / "scheme"
    run_stages(dataclasses.replace(settings, inbox=inbox))
    con = connect(settings.warehouse, read_only=True)
    monthly = dict(
        con.execute(
            "select strftime(period_start, '%Y-%m'), volume from marts.network_summary "
            "where scope = 'member' and period_kind = 'month'"
        ).fetchall()
    )
    assert monthly == {m: t.transfer_volume for m, t in truth.monthly.items()}
    whole = con.execute(
        "select volume, transfer_count from marts.network_summary "
        "where scope = 'member' and period_kind = 'all'"
    ).fetchone()
    assert whole == (truth.totals.transfer_volume, truth.totals.transfer_count)
