"""Trade-network metrics: who keeps the money moving, can it cycle, and how fragile is it.

The ledger's ``transfer`` rows between member accounts (issuer accounts left out, see
``intermediate.issuer_accounts``) form a weighted directed graph: one edge per ordered pair
(payer, payee), weight = summed amount. Two scopes are built: ``member`` (every member
account) and ``business`` (the subgraph induced by accounts whose ``account_type`` in
``staging.accounts`` is ``business``). Periods are calendar months of the scheme's local day
and the whole history.

Definitions (DESIGN.md §4 "network"; every function below states its own):

- density = edges / (nodes × (nodes − 1)); self-transfers never reach the ledger.
- reciprocity (binary) = share of edges i→j whose reverse j→i exists;
  weighted reciprocity = Σ min(w_ij, w_ji) / Σ w_ij over all edges.
- PageRank: weighted by amount, damping 0.85, dangling nodes jump uniformly (igraph,
  ARPACK or, on dense graphs, PRPACK; the same convention as networkx).
- giant SCC: the largest strongly connected component (ties: the larger internal volume,
  then the lowest node); its volume share = volume on edges with both ends inside it.
- cycles: simple directed cycles of length 2..5 (a 2-cycle is a reciprocal pair), counted
  once each by enumeration, which stops after ``MAX_CYCLES`` cycles or ``MAX_STEPS`` edge
  visits and then reports ``cycles_capped`` (the counts of length 3..5 are then lower
  bounds; 2-cycles, reciprocated pairs, are always counted exactly).
  Cycle volume share = volume on edges lying on at least one such cycle, computed exactly
  without enumeration (shortest return path ≤ 4, blocked bitsets) while the work stays
  under ``BITSET_MAX_WORK``; beyond that it comes from the enumeration, and is null when
  the enumeration was capped (a lower bound would mislead).
- communities: Leiden maximising modularity on the undirected projection (w_ij + w_ji),
  seed ``LEIDEN_SEED``, ``LEIDEN_ITERATIONS`` passes; ids ranked by community size
  (0 = largest).
- k-core: coreness on the undirected simple projection.
- business receivers: business nodes of the period's graph with in-strength > 0.
  Concentration of business receipts: Gini, HHI (Σ share²) and top-5 share of the
  in-strength of those receivers. A business that only paid is no receiver and is left
  out: HHI and top-5 share do not change with zeros, but a Gini over every business
  would count it as maximally unequal and so mix two questions — how unevenly the
  businesses that sell are paid (the Gini) and how many businesses sell at all
  (``business_receivers`` against the businesses trading).
- fragility: share of the period's volume on edges touching the top hub (top 5 hubs), hubs
  ranked by weighted PageRank — the trade that disappears outright if they leave.
- re-spent share (nodes): member-network out-strength / in-strength, capped at 1; null when
  the account received nothing. Transfers only: redemptions and fees count as not re-spent.

A month's summary depends only on that month's graph. The build stores a fingerprint of
each month's graph (its edges, the accounts' ids and business flags, this module's source
and igraph's version) in ``intermediate.network_graph_fingerprints``; a later build whose
month graph has the same fingerprint takes that month's row from the previous snapshot
instead of analysing the graph again, so a night that adds one day analyses one month.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
import igraph as ig
import numba
import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.warehouse.runner import PythonModel, write_frame

__all__ = [
    "MODELS",
    "Concentration",
    "CycleCount",
    "EdgeList",
    "Projection",
    "bounded_cycles",
    "communities",
    "concentration",
    "coreness",
    "edges_on_short_cycles",
    "fragility",
    "giant_scc",
    "graph_fingerprint",
    "pagerank",
    "previous_month_rows",
    "reciprocity",
    "strengths",
    "strong_components",
    "summarise",
    "to_igraph",
    "write_network_summary",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DAMPING = 0.85
LEIDEN_SEED = 7
# igraph's default; iterating to convergence took 27 s instead of 1 s on a 670 k-edge month
# of a 10 M-transaction scheme for +0.7 % modularity.
LEIDEN_ITERATIONS = 2
MAX_CYCLE_LENGTH = 5
MAX_CYCLES = 5_000_000
MAX_STEPS = 100_000_000
BITSET_MAX_WORK = 3e10  # word operations: about half a minute here
BITSET_BLOCK_BYTES = 64 * 2**20
TOP_HUBS = 5
#: Mean edges per node from which PageRank uses PRPACK rather than ARPACK (see pagerank).
PRPACK_MIN_DEGREE = 32
SCOPES = ("member", "business")
READS = frozenset({"intermediate.member_transfers", "staging.accounts"})
FINGERPRINTS = "intermediate.network_graph_fingerprints"

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    # Typed wrapper: numba has no stubs, and mypy --strict rejects untyped decorators.
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@dataclass(frozen=True)
class EdgeList:
    """A weighted directed simple graph on nodes ``0..n-1``: one row per (source, target).

    Weights are kept in integer cents so sums are exact; ``weight`` gives currency units.

    >>> e = EdgeList.from_arrays(3, [0, 1, 2], [1, 2, 0], [1000, 250, 5])
    >>> e.m, e.weight.tolist(), e.count.tolist()
    (3, [10.0, 2.5, 0.05], [1, 1, 1])
    """

    n: int
    source: IntArray
    target: IntArray
    cents: IntArray
    count: IntArray

    @classmethod
    def from_arrays(
        cls,
        n: int,
        source: npt.ArrayLike,
        target: npt.ArrayLike,
        cents: npt.ArrayLike,
        count: npt.ArrayLike | None = None,
    ) -> EdgeList:
        """Check and wrap edge arrays; raise ``ValueError`` naming what is wrong."""
        src = np.asarray(source, dtype=np.int64)
        tgt = np.asarray(target, dtype=np.int64)
        cts = np.asarray(cents, dtype=np.int64)
        cnt = np.ones(len(src), np.int64) if count is None else np.asarray(count, np.int64)
        if not len(src) == len(tgt) == len(cts) == len(cnt):
            raise ValueError("source, target, cents and count must have the same length")
        if len(src) and (min(src.min(), tgt.min()) < 0 or max(src.max(), tgt.max()) >= n):
            raise ValueError(f"node ids must lie in 0..{n - 1}")
        if np.any(src == tgt):
            raise ValueError("self-loops are not transfers: drop rows with source = target")
        if np.any(cts <= 0):
            raise ValueError("edge weights must be positive cents")
        if len(np.unique(src * max(n, 1) + tgt)) != len(src):
            raise ValueError("duplicate (source, target) pairs: aggregate edges first")
        return cls(n, src, tgt, cts, cnt)

    @property
    def m(self) -> int:
        """Number of edges."""
        return len(self.source)

    @property
    def weight(self) -> FloatArray:
        """Edge weights in currency units (float)."""
        return self.cents.astype(np.float64) / 100.0

    @cached_property
    def reverse_cents(self) -> IntArray:
        """Cents of the reverse edge j→i of every edge i→j (0 where there is none).

        >>> EdgeList.from_arrays(3, [0, 1, 1], [1, 0, 2], [5, 7, 9]).reverse_cents.tolist()
        [7, 5, 0]
        """
        return _reverse_cents(self)

    def subgraph(self, keep: BoolArray) -> tuple[EdgeList, IntArray]:
        """Edges with both ends in ``keep``, renumbered; also the kept nodes' old ids.

        Nodes of ``keep`` without any such edge are dropped (a graph of traders).

        >>> e = EdgeList.from_arrays(4, [0, 1, 2], [1, 2, 3], [1, 2, 3])
        >>> sub, old = e.subgraph(np.array([False, True, True, True]))
        >>> sub.n, sub.source.tolist(), sub.target.tolist(), old.tolist()
        (3, [0, 1], [1, 2], [1, 2, 3])
        """
        mask = keep[self.source] & keep[self.target]
        src, tgt = self.source[mask], self.target[mask]
        # Node ids are below n: marking them is np.unique without its sort (2 x 3.5 s on
        # the 7.6 M edges of a 10 M-transaction history, now a fraction of a second).
        present = np.zeros(self.n, dtype=np.bool_)
        present[src] = True
        present[tgt] = True
        old = np.flatnonzero(present).astype(np.int64)
        new_id = np.cumsum(present, dtype=np.int64) - 1
        sub = EdgeList(len(old), new_id[src], new_id[tgt], self.cents[mask], self.count[mask])
        return sub, old


def strengths(edges: EdgeList) -> tuple[IntArray, IntArray]:
    """In- and out-strength of every node, in cents (exact integer sums).

    >>> e = EdgeList.from_arrays(3, [0, 0, 1], [1, 2, 2], [100, 50, 25])
    >>> [a.tolist() for a in strengths(e)]
    [[0, 100, 75], [150, 25, 0]]
    """
    return _sum_by(edges.target, edges.cents, edges.n), _sum_by(edges.source, edges.cents, edges.n)


def _sum_by(group: IntArray, cents: IntArray, groups: int) -> IntArray:
    # Whole cents summed in float64 stay exact below 2**53 cents (90 trillion in currency
    # units), and bincount is many times faster than np.add.at on integers.
    if cents.size and int(cents.sum()) >= 2**53:
        raise ValueError("amounts too large to sum exactly in float64")
    return np.rint(np.bincount(group, weights=cents, minlength=groups)).astype(np.int64)


def degrees(edges: EdgeList) -> tuple[IntArray, IntArray]:
    """In- and out-degree (distinct counterparties) of every node.

    >>> e = EdgeList.from_arrays(3, [0, 0, 1], [1, 2, 2], [100, 50, 25])
    >>> [a.tolist() for a in degrees(e)]
    [[0, 1, 2], [2, 1, 0]]
    """
    in_d = np.bincount(edges.target, minlength=edges.n).astype(np.int64)
    out_d = np.bincount(edges.source, minlength=edges.n).astype(np.int64)
    return in_d, out_d


def _igraph(n: int, source: IntArray, target: IntArray, *, directed: bool) -> ig.Graph:
    # igraph takes edges from Python as one (u, v) tuple each (about 120 bytes per edge
    # alive at once, 0.9 GB for the 7.6 M edges of a 10 M-transaction history) or from
    # its C reader of edge-list files, which is as fast and holds no Python objects.
    with tempfile.TemporaryDirectory(prefix="circulate-graph-") as folder:
        path = Path(folder) / "edges.txt"
        pl.DataFrame({"source": source, "target": target}).write_csv(
            path, include_header=False, separator=" "
        )
        graph = ig.Graph.Read_Edgelist(str(path), directed=directed)
    if graph.vcount() < n:  # the reader numbers nodes up to the highest id it saw
        graph.add_vertices(n - graph.vcount())
    return graph


def to_igraph(edges: EdgeList) -> ig.Graph:
    """A directed igraph ``Graph`` with edge attribute ``weight`` (currency units).

    >>> g = to_igraph(EdgeList.from_arrays(2, [0], [1], [250]))
    >>> g.is_directed(), g.vcount(), g.es["weight"]
    (True, 2, [2.5])
    """
    graph = _igraph(edges.n, edges.source, edges.target, directed=True)
    graph.es["weight"] = edges.weight.tolist()
    return graph


@dataclass(frozen=True)
class Projection:
    """The undirected simple projection of an edge list: one edge per linked pair.

    ``weight`` is the pair's summed amount both ways (currency units); edges come in
    (lower node, higher node) order.
    """

    graph: ig.Graph
    weight: FloatArray

    @classmethod
    def of(cls, edges: EdgeList) -> Projection:
        """Project ``edges``: i→j and j→i become one edge weighted w_ij + w_ji.

        >>> p = Projection.of(EdgeList.from_arrays(3, [0, 1, 2], [1, 0, 1], [100, 250, 5]))
        >>> p.graph.get_edgelist(), p.weight.tolist()
        ([(0, 1), (1, 2)], [3.5, 0.05])
        """
        n = max(edges.n, 1)
        low = np.minimum(edges.source, edges.target)
        high = np.maximum(edges.source, edges.target)
        pairs, inverse = np.unique(low * n + high, return_inverse=True)
        cents = _sum_by(inverse, edges.cents, len(pairs))
        graph = _igraph(edges.n, pairs // n, pairs % n, directed=False)
        return cls(graph, cents / 100.0)

    @classmethod
    def of_graph(cls, graph: ig.Graph | Projection) -> Projection:
        """The projection of a directed ``graph`` weighted by its ``weight`` attribute."""
        if isinstance(graph, Projection):
            return graph
        collapsed = graph.as_undirected(mode="collapse", combine_edges={"weight": "sum"})
        weight = collapsed.es["weight"] if collapsed.ecount() else []
        return cls(collapsed, np.asarray(weight, dtype=np.float64))


def pagerank(
    graph: ig.Graph, damping: float = DAMPING, *, weights: FloatArray | None = None
) -> FloatArray:
    """Weighted PageRank (sums to 1; dangling nodes jump uniformly).

    Weights are ``weights`` (one per edge) or else the graph's ``weight`` attribute.

    Star: four leaves each pay the centre 1; the centre pays nobody. With d = 0.85 and
    n = 5, a leaf gets only teleport and dangling mass: x_leaf = (1-d)/5 + d·x_c/5 and
    x_c = x_leaf + d·4·x_leaf = 4.4·x_leaf; with 4·x_leaf + x_c = 1, x_leaf = 1/8.4 ≈ 0.1190
    and x_c = 4.4/8.4 ≈ 0.5238.

    >>> g = to_igraph(EdgeList.from_arrays(5, [1, 2, 3, 4], [0, 0, 0, 0], [100] * 4))
    >>> pagerank(g).round(4).tolist()
    [0.5238, 0.119, 0.119, 0.119, 0.119]
    """
    if graph.vcount() == 0:
        return np.zeros(0)
    if graph.ecount() == 0:
        weights = None
    elif weights is None:
        weights = graph.es["weight"]
    else:
        weights = weights.tolist()
    # Both solvers give the same scores, at different speeds: PRPACK took over a second
    # on some sparse monthly graphs of a 1 M-transaction scheme where ARPACK takes
    # milliseconds, while on the dense whole-history graph of a 10 M scheme (85 edges a
    # node) PRPACK takes 1.4 s and ARPACK 5.9 s. ARPACK can also fail on small degenerate
    # graphs (a LAPACK error); PRPACK then. ARPACK starts from a random vector: seeded,
    # reruns give bit-identical scores.
    if graph.ecount() >= PRPACK_MIN_DEGREE * graph.vcount():
        return np.asarray(
            graph.pagerank(
                weights=weights, damping=damping, directed=True, implementation="prpack"
            ),
            dtype=np.float64,
        )
    try:
        with _seeded_igraph(LEIDEN_SEED):
            scores = graph.pagerank(
                weights=weights, damping=damping, directed=True, implementation="arpack"
            )
    except ig.InternalError:
        scores = graph.pagerank(
            weights=weights, damping=damping, directed=True, implementation="prpack"
        )
    return np.asarray(scores, dtype=np.float64)


def reciprocity(edges: EdgeList) -> tuple[float | None, float | None]:
    """Binary and weighted reciprocity; ``None`` for a graph without edges.

    Binary: share of edges whose reverse exists. Weighted: Σ min(w_ij, w_ji) / Σ w_ij.
    A 2-cycle 0⇄1 with weights 10 and 4: binary 1, weighted (4 + 4) / 14 = 4/7.

    >>> reciprocity(EdgeList.from_arrays(2, [0, 1], [1, 0], [1000, 400]))
    (1.0, 0.5714285714285714)
    """
    if edges.m == 0:
        return None, None
    reverse = edges.reverse_cents
    binary = float(np.count_nonzero(reverse) / edges.m)
    weighted = float(np.minimum(edges.cents, reverse).sum() / edges.cents.sum())
    return binary, weighted


def _reverse_cents(edges: EdgeList) -> IntArray:
    # Weight of j→i for every edge i→j (0 when absent), by binary search on sorted pair
    # keys. The queries are searched in sorted order too: on a 7.6 M-edge graph random
    # probes miss the cache on every step and took 6.7 s, sorted ones well under one.
    n = max(edges.n, 1)
    key = edges.source * n + edges.target
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    wanted = edges.target * n + edges.source
    by_wanted = np.argsort(wanted, kind="stable")
    pos = np.empty(edges.m, np.int64)
    pos[by_wanted] = np.searchsorted(sorted_key, wanted[by_wanted])
    pos = np.clip(pos, 0, max(edges.m - 1, 0))
    found = sorted_key[pos] == wanted
    return np.where(found, edges.cents[order][pos], 0).astype(np.int64)


def giant_scc(graph: ig.Graph, edges: EdgeList | None = None) -> BoolArray:
    """Mask of the largest strongly connected component's nodes.

    Ties go to the component with more internal volume, then to the one holding the
    lowest node id. In a 3-cycle 0→1→2→0 plus a tail 2→3, the giant SCC is {0, 1, 2}.
    ``edges``, the list ``graph`` was built from (:func:`to_igraph`), saves reading the
    edges back out of igraph, which takes longer than the components themselves.

    >>> g = to_igraph(EdgeList.from_arrays(4, [0, 1, 2, 2], [1, 2, 0, 3], [1, 1, 1, 1]))
    >>> giant_scc(g).tolist()
    [True, True, True, False]
    """
    n = graph.vcount()
    if n == 0:
        return np.zeros(0, np.bool_)
    membership = strong_components(graph)
    sizes = np.bincount(membership)
    volume = np.zeros(len(sizes))
    if graph.ecount():
        if edges is None:
            ends = np.asarray(graph.get_edgelist(), np.int64)
            heads, tails = ends[:, 0], ends[:, 1]
            weight = np.asarray(graph.es["weight"], np.float64)
        else:
            heads, tails, weight = edges.source, edges.target, edges.weight
        inside = membership[heads] == membership[tails]
        np.add.at(volume, membership[heads[inside]], weight[inside])
    first = np.full(len(sizes), n, np.int64)
    np.minimum.at(first, membership, np.arange(n))
    # lexsort: last key is primary → size desc, volume desc, lowest first node.
    best = np.lexsort((first, -volume, -sizes))[0]
    return cast(BoolArray, membership == best)


def coreness(graph: ig.Graph | Projection) -> IntArray:
    """k-core number of every node on the undirected simple projection.

    A 3-cycle with a pendant node: the triangle is the 2-core, the pendant has coreness 1.

    >>> g = to_igraph(EdgeList.from_arrays(4, [0, 1, 2, 3], [1, 2, 0, 0], [1, 1, 1, 1]))
    >>> coreness(g).tolist()
    [2, 2, 2, 1]
    """
    projection = graph.graph if isinstance(graph, Projection) else graph.as_undirected("collapse")
    return np.asarray(projection.coreness(mode="all"), dtype=np.int64)


@contextmanager
def _seeded_igraph(seed: int) -> Iterator[None]:
    # igraph draws from Python's ``random`` module by default; swap in a seeded generator
    # for reproducible communities and put the default back afterwards.
    ig.set_random_number_generator(random.Random(seed))
    try:
        yield
    finally:
        ig.set_random_number_generator(random)


def communities(
    graph: ig.Graph | Projection, seed: int = LEIDEN_SEED
) -> tuple[IntArray, float | None]:
    """Leiden communities (modularity objective) on the weighted undirected projection.

    ``graph`` is a directed graph from :func:`to_igraph` or its :class:`Projection`.

    Returns the membership (0 = largest community; ties by lowest member) and the
    weighted modularity of that partition (``None`` without edges). Two disconnected
    dyads 0⇄1 and 2⇄3 with equal weights: two communities, modularity
    Q = Σ_c (L_c/L − (d_c/2L)²) = 2 · (1/2 − (1/2)²) = 0.5.

    >>> g = to_igraph(EdgeList.from_arrays(4, [0, 1, 2, 3], [1, 0, 3, 2], [1, 1, 1, 1]))
    >>> membership, q = communities(g)
    >>> membership.tolist(), q
    ([0, 0, 1, 1], 0.5)
    """
    projection = Projection.of_graph(graph)
    undirected, n = projection.graph, projection.graph.vcount()
    if undirected.ecount() == 0:
        return np.arange(n, dtype=np.int64), None
    weights = projection.weight.tolist()
    with _seeded_igraph(seed):
        clustering = undirected.community_leiden(
            objective_function="modularity", weights=weights, n_iterations=LEIDEN_ITERATIONS
        )
    raw = np.asarray(clustering.membership, dtype=np.int64)
    sizes = np.bincount(raw)
    first = np.full(len(sizes), n, np.int64)
    np.minimum.at(first, raw, np.arange(n))
    rank = np.empty(len(sizes), np.int64)
    rank[np.lexsort((first, -sizes))] = np.arange(len(sizes))
    membership = rank[raw]
    modularity = float(undirected.modularity(membership.tolist(), weights=weights))
    return membership, modularity


@dataclass(frozen=True)
class CycleCount:
    """Simple directed cycles by length, the edges lying on any, and whether capped."""

    by_length: dict[int, int]
    on_cycle: BoolArray
    capped: bool

    @property
    def total(self) -> int:
        return sum(self.by_length.values())


def _csr(heads: IntArray, tails: IntArray, n: int) -> tuple[IntArray, IntArray]:
    # Compressed adjacency: the tails of node v's edges are tails[indptr[v]:indptr[v + 1]].
    order = np.argsort(heads, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(heads, minlength=n), out=indptr[1:])
    return indptr, tails[order]


@_jit
def _cycle_kernel(
    indptr: IntArray,
    indices: IntArray,
    rindptr: IntArray,
    rindices: IntArray,
    max_len: int,
    max_cycles: int,
    max_steps: int,
) -> tuple[IntArray, BoolArray, bool]:
    # Each cycle is found once, from its lowest node s, by a depth-first search over nodes
    # above s. A reverse BFS from s first gives each node's distance back to s, so paths
    # that cannot close within max_len are never extended (Johnson-style pruning).
    n = len(indptr) - 1
    counts = np.zeros(max_len + 1, np.int64)
    on_cycle = np.zeros(len(indices), np.bool_)
    far = max_len + 1
    dist = np.full(n, far, np.int64)
    queue = np.empty(n, np.int64)
    on_path = np.zeros(n, np.bool_)
    path_v = np.empty(max_len + 1, np.int64)
    path_e = np.empty(max_len + 1, np.int64)
    ptr = np.empty(max_len + 1, np.int64)
    steps = 0
    total = 0
    capped = False
    for s in range(n):
        dist[s] = 0
        queue[0] = s
        head = 0
        tail = 1
        while head < tail:
            u = queue[head]
            head += 1
            if dist[u] >= max_len - 1:
                continue
            for k in range(rindptr[u], rindptr[u + 1]):
                steps += 1
                w = rindices[k]
                if w > s and dist[w] == far:
                    dist[w] = dist[u] + 1
                    queue[tail] = w
                    tail += 1
        if tail > 1:
            path_v[0] = s
            on_path[s] = True
            ptr[0] = indptr[s]
            d = 0
            while d >= 0:
                u = path_v[d]
                if ptr[d] < indptr[u + 1]:
                    k = ptr[d]
                    ptr[d] += 1
                    steps += 1
                    w = indices[k]
                    if w == s:
                        if d >= 1:
                            counts[d + 1] += 1
                            total += 1
                            on_cycle[k] = True
                            for j in range(1, d + 1):
                                on_cycle[path_e[j]] = True
                    elif w > s and not on_path[w] and d + 1 + dist[w] <= max_len:
                        d += 1
                        path_v[d] = w
                        path_e[d] = k
                        ptr[d] = indptr[w]
                        on_path[w] = True
                else:
                    on_path[u] = False
                    d -= 1
                if total >= max_cycles or steps >= max_steps:
                    capped = True
                    break
        for i in range(tail):
            dist[queue[i]] = far
        if capped:
            break
    return counts, on_cycle, capped


def bounded_cycles(
    edges: EdgeList,
    max_length: int = MAX_CYCLE_LENGTH,
    *,
    max_cycles: int = MAX_CYCLES,
    max_steps: int = MAX_STEPS,
) -> CycleCount:
    """Count simple directed cycles of length 2..``max_length`` and mark edges on them.

    Stops after ``max_cycles`` cycles or ``max_steps`` edge visits (``capped`` is then
    true and the counts are lower bounds), so dense graphs stay bounded in time.

    A 3-cycle 0→1→2→0 plus the reverse edge 1→0: one 3-cycle and one 2-cycle (0⇄1);
    every edge lies on a cycle.

    >>> c = bounded_cycles(EdgeList.from_arrays(3, [0, 1, 2, 1], [1, 2, 0, 0], [1] * 4))
    >>> c.by_length, c.on_cycle.tolist(), c.capped
    ({2: 1, 3: 1, 4: 0, 5: 0}, [True, True, True, True], False)
    """
    if max_length < 2:
        raise ValueError("max_length must be at least 2 (a reciprocal pair)")
    order = np.argsort(edges.source, kind="stable")
    indptr, indices = _csr(edges.source, edges.target, edges.n)
    rindptr, rindices = _csr(edges.target, edges.source, edges.n)
    counts, on_cycle_csr, capped = _cycle_kernel(
        indptr, indices, rindptr, rindices, max_length, max_cycles, max_steps
    )
    on_cycle = np.zeros(edges.m, np.bool_)
    on_cycle[order] = on_cycle_csr
    by_length = {length: int(counts[length]) for length in range(2, max_length + 1)}
    return CycleCount(by_length, on_cycle, bool(capped))


@_jit
def _reach_bits(
    indptr: IntArray, indices: IntArray, radius: int, lo: int, hi: int
) -> npt.NDArray[np.uint64]:
    # Row v = bitset over nodes lo..hi-1 of those within ``radius`` hops of v along the
    # CSR's direction. Growing a ball only ORs neighbours' balls, so a block of columns
    # can be computed on its own: blocks bound the memory, their union is exact.
    n = len(indptr) - 1
    words = (hi - lo + 63) // 64
    ball = np.zeros((n, words), np.uint64)
    for v in range(lo, hi):
        ball[v, (v - lo) >> 6] |= np.uint64(1) << np.uint64((v - lo) & 63)
    if radius == 0:
        return ball
    # The first hop sets one bit per edge instead of OR-ing whole rows: the same balls
    # for a fraction of the word operations.
    for v in range(n):
        for k in range(indptr[v], indptr[v + 1]):
            w = indices[k]
            if lo <= w < hi:
                ball[v, (w - lo) >> 6] |= np.uint64(1) << np.uint64((w - lo) & 63)
    for _ in range(radius - 1):
        grown = ball.copy()
        for v in range(n):
            for k in range(indptr[v], indptr[v + 1]):
                w = indices[k]
                for j in range(words):
                    grown[v, j] |= ball[w, j]
        ball = grown
    return ball


@_jit
def _meets(
    out_ball: npt.NDArray[np.uint64],
    in_ball: npt.NDArray[np.uint64],
    source: IntArray,
    target: IntArray,
    hit: BoolArray,
) -> None:
    # Edge u→v closes a cycle of length ≤ L iff some w has d(v, w) ≤ a and d(w, u) ≤ b.
    words = out_ball.shape[1]
    for e in range(len(source)):
        if hit[e]:
            continue
        u = source[e]
        v = target[e]
        for j in range(words):
            if out_ball[v, j] & in_ball[u, j]:
                hit[e] = True
                break


def edges_on_short_cycles(
    edges: EdgeList,
    max_length: int = MAX_CYCLE_LENGTH,
    *,
    max_work: float = BITSET_MAX_WORK,
    block_nodes: int | None = None,
    components: IntArray | None = None,
) -> BoolArray | None:
    """Exactly which edges lie on a simple directed cycle of length ≤ ``max_length``.

    Edge u→v lies on such a cycle iff the shortest path v ⇝ u has at most
    ``max_length − 1`` edges (a shortest path is simple and closes the cycle). That is
    tested by meeting in the middle: bitsets of the nodes within ⌈(L−1)/2⌉ hops out of
    every node and within ⌊(L−1)/2⌋ hops into every node, then one AND per edge — no
    enumeration, so no cap. The middle nodes are taken in blocks of ``block_nodes``
    (default: what fits ``BITSET_BLOCK_BYTES`` per bitset table). The work grows as
    L·(n + m)·n/64 word operations; above ``max_work`` the answer is ``None``.
    ``components`` (:func:`strong_components` of the same graph) saves computing them.

    A 4-cycle 0→1→2→3→0 with a chord 0→2: every edge lies on a cycle of length ≤ 4, but
    with ``max_length`` 2 none does.

    >>> e = EdgeList.from_arrays(4, [0, 1, 2, 3, 0], [1, 2, 3, 0, 2], [1] * 5)
    >>> edges_on_short_cycles(e).tolist(), edges_on_short_cycles(e, 2).tolist()
    ([True, True, True, True, True], [False, False, False, False, False])
    """
    n = edges.n
    if max_length * (n + edges.m) * (n / 64) > max_work:
        return None
    hit = np.zeros(edges.m, np.bool_)
    if edges.m == 0:
        return hit
    # A cycle never leaves a strongly connected component: only edges inside one can lie
    # on a cycle, and the search needs only those edges and their nodes. On the monthly
    # graphs of a generated scheme that is about half the nodes and edges, and a quarter
    # to a third of the work.
    if components is None:
        components = strong_components(to_igraph(edges))
    inside = np.flatnonzero(components[edges.source] == components[edges.target])
    if inside.size == 0:
        return hit
    nodes, numbered = np.unique(
        np.concatenate([edges.source[inside], edges.target[inside]]), return_inverse=True
    )
    k, source, target = len(nodes), numbered[: inside.size], numbered[inside.size :]
    reach = max_length - 1
    out_ptr, out_idx = _csr(source, target, k)
    in_ptr, in_idx = _csr(target, source, k)
    width = block_nodes or max(64, BITSET_BLOCK_BYTES // k * 8)
    inside_hit = np.zeros(inside.size, np.bool_)
    for lo in range(0, k, width):
        hi = min(k, lo + width)
        out_ball = _reach_bits(out_ptr, out_idx, (reach + 1) // 2, lo, hi)
        in_ball = _reach_bits(in_ptr, in_idx, reach // 2, lo, hi)
        _meets(out_ball, in_ball, source, target, inside_hit)
    hit[inside] = inside_hit
    return hit


def strong_components(graph: ig.Graph) -> IntArray:
    """Strongly connected component id of every node.

    >>> g = to_igraph(EdgeList.from_arrays(3, [0, 1, 1], [1, 0, 2], [1, 1, 1]))
    >>> c = strong_components(g)
    >>> bool(c[0] == c[1]), bool(c[1] == c[2])
    (True, False)
    """
    return np.asarray(graph.connected_components(mode="strong").membership, np.int64)


@dataclass(frozen=True)
class Concentration:
    """Gini, Herfindahl-Hirschman index (Σ share², 0..1) and top-5 share of a total."""

    gini: float
    hhi: float
    top5_share: float


def concentration(values: npt.ArrayLike) -> Concentration | None:
    """Concentration of non-negative values (``None`` when they sum to zero or are empty).

    Gini = Σ_i (2i − n − 1)·x_(i) / (n·Σx) with x sorted ascending, i = 1..n.
    Receipts (0, 0, 0, 10): Gini = (3·10)/(4·10) = 0.75, HHI = 1, top-5 share = 1.

    >>> concentration([0, 0, 0, 10])
    Concentration(gini=0.75, hhi=1.0, top5_share=1.0)
    >>> concentration([5, 5])
    Concentration(gini=0.0, hhi=0.5, top5_share=1.0)
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    total = x.sum()
    if len(x) == 0 or total <= 0:
        return None
    if x[0] < 0:
        raise ValueError("concentration needs non-negative values")
    n = len(x)
    i = np.arange(1, n + 1)
    gini = float(((2 * i - n - 1) * x).sum() / (n * total))
    shares = x / total
    hhi = float((shares**2).sum())
    top5 = float(x[-TOP_HUBS:].sum() / total)
    return Concentration(gini, hhi, top5)


def fragility(edges: EdgeList, removed: npt.ArrayLike) -> float | None:
    """Share of volume on edges touching any ``removed`` node (``None`` without edges).

    That trade has no counterparty left when the node leaves the scheme. Star with
    centre 0 and leaves paying 1, 2, 3, 4: removing the centre loses everything,
    removing leaf 4 loses 4/10.

    >>> star = EdgeList.from_arrays(5, [1, 2, 3, 4], [0, 0, 0, 0], [1, 2, 3, 4])
    >>> fragility(star, [0]), fragility(star, [4])
    (1.0, 0.4)
    """
    if edges.m == 0:
        return None
    gone = np.zeros(edges.n, np.bool_)
    gone[np.asarray(removed, dtype=np.int64)] = True
    touched = gone[edges.source] | gone[edges.target]
    return float(edges.cents[touched].sum() / edges.cents.sum())


@dataclass(frozen=True)
class GraphFigures:
    """The igraph-based figures of one graph, computed once for every table that shows them.

    Building an igraph graph and running Leiden and PageRank on it are the expensive
    steps; the whole-history graph feeds both ``network_nodes`` and ``network_summary``.
    The igraph objects are not kept: on a large history they are the biggest in memory.
    """

    membership: IntArray
    modularity: float | None
    pagerank: FloatArray
    giant: BoolArray
    components: IntArray
    coreness: IntArray

    @classmethod
    def of(cls, edges: EdgeList) -> GraphFigures:
        """Leiden communities, PageRank, k-cores and the giant SCC of ``edges``.

        >>> f = GraphFigures.of(EdgeList.from_arrays(3, [0, 1, 2], [1, 2, 0], [100] * 3))
        >>> f.giant.tolist(), f.pagerank.round(4).tolist(), f.membership.tolist()
        ([True, True, True], [0.3333, 0.3333, 0.3333], [0, 0, 0])
        >>> f.coreness.tolist()
        [2, 2, 2]
        """
        # Weights go to igraph as arguments, not as edge attributes: an attribute keeps a
        # Python float per edge alive for as long as the graph.
        graph = _igraph(edges.n, edges.source, edges.target, directed=True)
        ranks = pagerank(graph, weights=edges.weight)
        giant, components = giant_scc(graph, edges), strong_components(graph)
        # One undirected projection for Leiden and the k-cores, made after the directed
        # graph is freed, so the two large graphs are never held at once.
        del graph
        projection = Projection.of(edges)
        membership, modularity = communities(projection)
        return cls(membership, modularity, ranks, giant, components, coreness(projection))


SUMMARY_SCHEMA: dict[str, Any] = {
    "nodes": pl.Int64,
    "edges": pl.Int64,
    "transfer_count": pl.Int64,
    "volume_cents": pl.Int64,
    "density": pl.Float64,
    "reciprocity": pl.Float64,
    "weighted_reciprocity": pl.Float64,
    "giant_scc_nodes": pl.Int64,
    "giant_scc_volume_share": pl.Float64,
    "cycles_2": pl.Int64,
    "cycles_3": pl.Int64,
    "cycles_4": pl.Int64,
    "cycles_5": pl.Int64,
    "cycle_volume_share": pl.Float64,
    "cycles_capped": pl.Boolean,
    "communities": pl.Int64,
    "modularity": pl.Float64,
    "business_receivers": pl.Int64,
    "receipts_gini": pl.Float64,
    "receipts_hhi": pl.Float64,
    "receipts_top5_share": pl.Float64,
    "top_hub": pl.Int64,
    "top_hub_pagerank": pl.Float64,
    "fragility_top1": pl.Float64,
    "fragility_top5": pl.Float64,
}


def summarise(
    edges: EdgeList,
    is_business: BoolArray,
    *,
    max_cycles: int = MAX_CYCLES,
    max_steps: int = MAX_STEPS,
    max_work: float = BITSET_MAX_WORK,
    figures: GraphFigures | None = None,
) -> dict[str, Any]:
    """Every whole-graph figure of one (scope, period) graph, keyed as ``SUMMARY_SCHEMA``.

    ``is_business`` flags the business nodes; those that received something
    (in-strength > 0) are ``business_receivers`` and the only ones whose receipts enter
    the Gini, HHI and top-5 share (a business that only paid is left out, see the module
    docstring). ``top_hub`` is a node id of ``edges`` (the caller maps it to an account).
    ``figures`` (of the same ``edges``) are used instead of computing them again.

    A 3-cycle of businesses paying 1 each: density 3/6, binary reciprocity 0, one
    3-cycle carrying all volume, fragility of any hub 2/3.

    >>> s = summarise(EdgeList.from_arrays(3, [0, 1, 2], [1, 2, 0], [100] * 3), np.ones(3, bool))
    >>> s["density"], s["reciprocity"], s["cycles_3"], s["cycle_volume_share"]
    (0.5, 0.0, 1, 1.0)
    >>> round(s["fragility_top1"], 4), s["fragility_top5"], s["receipts_gini"]
    (0.6667, 1.0, 0.0)

    A chain of businesses 0 → 1 → 2 paying 10 and 5: node 0 only paid, so two receivers,
    with receipts (10, 5): Gini (−1·5 + 1·10) / (2·15) = 1/6.

    >>> s = summarise(EdgeList.from_arrays(3, [0, 1], [1, 2], [1000, 500]), np.ones(3, bool))
    >>> s["business_receivers"], round(s["receipts_gini"], 4)
    (2, 0.1667)
    """
    n, m = edges.n, edges.m
    figures = figures or GraphFigures.of(edges)
    cycles = bounded_cycles(edges, max_cycles=max_cycles, max_steps=max_steps)
    exact = edges_on_short_cycles(edges, max_work=max_work, components=figures.components)
    total = int(edges.cents.sum())
    binary, weighted = reciprocity(edges)
    giant = figures.giant
    inside = giant[edges.source] & giant[edges.target] if m else np.zeros(0, np.bool_)
    # Without the exact marks, a capped enumeration only gives a lower bound: publish none.
    on_cycle = cycles.on_cycle if exact is None else exact
    share_known = m > 0 and (exact is not None or not cycles.capped)
    membership, modularity = figures.membership, figures.modularity
    in_s, _ = strengths(edges)
    receivers = is_business & (in_s > 0)
    receipts = concentration(in_s[receivers])
    ranks = figures.pagerank
    hubs = np.lexsort((np.arange(n), -ranks))[:TOP_HUBS] if n else np.zeros(0, np.int64)
    return {
        "nodes": n,
        "edges": m,
        "transfer_count": int(edges.count.sum()),
        "volume_cents": total,
        "density": m / (n * (n - 1)) if n > 1 else None,
        "reciprocity": binary,
        "weighted_reciprocity": weighted,
        "giant_scc_nodes": int(giant.sum()),
        "giant_scc_volume_share": float(edges.cents[inside].sum() / total) if m else None,
        **{f"cycles_{length}": count for length, count in cycles.by_length.items()},
        # A 2-cycle is a reciprocated pair: exact even when the enumeration was capped.
        "cycles_2": int(np.count_nonzero(edges.reverse_cents)) // 2,
        "cycle_volume_share": (float(edges.cents[on_cycle].sum() / total) if share_known else None),
        "cycles_capped": cycles.capped,
        "communities": int(membership.max()) + 1 if n else 0,
        "modularity": modularity,
        "business_receivers": int(receivers.sum()),
        "receipts_gini": receipts.gini if receipts else None,
        "receipts_hhi": receipts.hhi if receipts else None,
        "receipts_top5_share": receipts.top5_share if receipts else None,
        "top_hub": int(hubs[0]) if n else None,
        "top_hub_pagerank": float(ranks[hubs[0]]) if n else None,
        "fragility_top1": fragility(edges, hubs[:1]),
        "fragility_top5": fragility(edges, hubs),
    }


# --------------------------------------------------------------------------- warehouse


@dataclass(frozen=True)
class Ledger:
    """Transfer edges per period, ids mapped to ``0..n-1``, and node attributes."""

    edges: pl.DataFrame  # period_start (a month), source, target, cents, transfers
    nodes: pl.DataFrame  # idx, account_id, account_type, sector, area, is_business

    @cached_property
    def _by_period(self) -> dict[date | None, EdgeList]:
        # Every month's graph over all nodes, split from ``edges`` in one pass (a filter
        # per month scanned every edge once per month), and the whole history (key None)
        # summed from the months. Rows keep their order inside a month: adjacency order
        # steers Leiden and a capped cycle search.
        n = self.nodes.height
        edges = self.edges
        if edges["period_start"].null_count():  # no copy of a large ledger without nulls
            edges = edges.filter(pl.col("period_start").is_not_null())
        starts = edges["period_start"]
        code = starts.cast(pl.Int64).to_numpy()  # days since the epoch
        columns = [edges[c].to_numpy() for c in ("source", "target", "cents", "transfers")]
        if code.size and bool(np.any(code[1:] < code[:-1])):
            order = np.argsort(code, kind="stable")
            code = code[order]
            starts = starts.gather(order)
            columns = [column[order] for column in columns]
        cuts = (np.flatnonzero(np.diff(code)) + 1).tolist()
        periods: dict[date | None, EdgeList] = {}
        for a, b in zip([0, *cuts], [*cuts, code.size], strict=True):
            if a < b:
                source, target, cents, count = (np.asarray(c[a:b], np.int64) for c in columns)
                periods[starts[a]] = EdgeList(n, source, target, cents, count)
        if code.size:
            periods[None] = _whole_history(n, *(np.asarray(c, np.int64) for c in columns))
        return periods

    def graph(self, period: date | None, scope: str) -> tuple[EdgeList, IntArray]:
        """The scope's graph for one month (``None`` = whole history) and its node ids."""
        n = self.nodes.height
        full = self._by_period.get(period)
        if full is None:
            empty = np.zeros(0, np.int64)
            full = EdgeList(n, empty, empty, empty, empty)
        keep = np.ones(n, np.bool_) if scope == "member" else self.is_business
        return full.subgraph(keep)

    @property
    def is_business(self) -> BoolArray:
        return cast(BoolArray, self.nodes["is_business"].to_numpy().astype(np.bool_))

    @property
    def months(self) -> list[date]:
        months = self.edges["period_start"].drop_nulls().unique().sort()
        return cast(list[date], months.to_list())


def _whole_history(
    n: int, source: IntArray, target: IntArray, cents: IntArray, count: IntArray
) -> EdgeList:
    # One edge per (source, target) over all months, in (source, target) order: what a
    # group-by of the transfers over the whole history gives, from the far fewer month rows.
    pairs, inverse = np.unique(source * max(n, 1) + target, return_inverse=True)
    return EdgeList(
        n,
        pairs // max(n, 1),
        pairs % max(n, 1),
        _sum_by(inverse, cents, len(pairs)),
        _sum_by(inverse, count, len(pairs)),
    )


# Member accounts numbered 0..n-1 in account id order.
_IDS_SQL = """
select account_id, cast(row_number() over (order by account_id) - 1 as bigint) as idx
from (
    select source_id as account_id from intermediate.member_transfers
    union
    select target_id from intermediate.member_transfers
)
"""

# Numbered before grouping: grouping by two integers is cheaper than by two id strings,
# and the edges come out ready for numpy. The sort fixes the rows' order (DuckDB's group
# by has none): adjacency order steers Leiden and a capped cycle search.
_EDGES_SQL = f"""
with ids as ({_IDS_SQL}),

transfers as (
    select transfers.local_day, payers.idx as source, payees.idx as target, transfers.amount
    from intermediate.member_transfers as transfers
    inner join ids as payers on payers.account_id = transfers.source_id
    inner join ids as payees on payees.account_id = transfers.target_id
)

select
    cast(date_trunc('month', local_day) as date) as period_start,
    source,
    target,
    cast(sum(amount) * 100 as bigint) as cents,
    count(*) as transfers
from transfers
group by all
order by period_start, source, target
"""  # noqa: S608 (a constant of this module)


def load_ledger(con: duckdb.DuckDBPyConnection) -> Ledger:
    """Number the accounts ``0..n-1`` and aggregate transfer edges per month, in DuckDB.

    The whole history's edges are summed from the months' in numpy (:class:`Ledger`).
    """
    ids = con.sql(_IDS_SQL + "order by idx").pl()
    attributes = con.sql("select account_id, account_type, sector, area from staging.accounts").pl()
    nodes = (
        ids.select("idx", "account_id")
        .join(attributes, on="account_id", how="left")
        .with_columns(
            pl.col("account_type").fill_null("unknown"),
            (pl.col("account_type") == "business").fill_null(False).alias("is_business"),
        )
        .sort("idx")
    )
    return Ledger(con.sql(_EDGES_SQL).pl(), nodes)


def _money(column: str) -> str:
    return f"cast({column} / 100 as decimal(18, 2)) as {column.removesuffix('_cents')}"


NODE_SCHEMA: dict[str, Any] = {
    "scope": pl.String,
    "idx": pl.Int64,
    "in_strength_cents": pl.Int64,
    "out_strength_cents": pl.Int64,
    "in_degree": pl.Int64,
    "out_degree": pl.Int64,
    "pagerank": pl.Float64,
    "in_giant_scc": pl.Boolean,
    "community_id": pl.Int64,
    "coreness": pl.Int64,
}
SUMMARY_FRAME_SCHEMA: dict[str, Any] = {
    "scope": pl.String,
    "period_kind": pl.String,
    "period_start": pl.Date,
    **SUMMARY_SCHEMA,
    "top_hub_id": pl.String,
}


def _node_frame(scope: str, edges: EdgeList, old: IntArray, figures: GraphFigures) -> pl.DataFrame:
    """Whole-history node metrics of one scope (``old`` maps node ids to ``idx``)."""
    in_s, out_s = strengths(edges)
    in_d, out_d = degrees(edges)
    frame = {
        "scope": [scope] * edges.n,
        "idx": old,
        "in_strength_cents": in_s,
        "out_strength_cents": out_s,
        "in_degree": in_d,
        "out_degree": out_d,
        "pagerank": figures.pagerank,
        "in_giant_scc": figures.giant,
        "community_id": figures.membership,
        "coreness": figures.coreness,
    }
    return pl.DataFrame(frame, schema=NODE_SCHEMA)


def _write_network_nodes(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, frames: list[pl.DataFrame]
) -> None:
    """Create ``marts.network_nodes`` from the scopes' node frames (:func:`_node_frame`)."""
    member, _ = ledger.graph(None, "member")
    member_in, member_out = strengths(member)
    respent = pl.DataFrame(
        {
            "idx": np.arange(ledger.nodes.height, dtype=np.int64),
            "member_in": member_in,
            "member_out": member_out,
        }
    )
    nodes = (
        pl.concat([pl.DataFrame(schema=NODE_SCHEMA), *frames])
        .join(ledger.nodes, on="idx", how="left")
        .join(respent, on="idx", how="left")
        .with_columns(
            pl.when(pl.col("member_in") > 0)
            .then(pl.min_horizontal(pl.col("member_out") / pl.col("member_in"), pl.lit(1.0)))
            .otherwise(None)
            .alias("respent_share")
        )
        .sort("scope", "account_id")
    )
    write_frame(
        con,
        nodes,
        "marts.network_nodes",
        "scope, account_id, account_type, sector, area, "
        f"{_money('in_strength_cents')}, {_money('out_strength_cents')}, "
        "in_degree, out_degree, pagerank, in_giant_scc, community_id, coreness, respent_share",
    )


def _summary_row(
    ledger: Ledger, edges: EdgeList, old: IntArray, figures: GraphFigures | None = None
) -> dict[str, Any]:
    """:func:`summarise` of one graph of ``ledger``, its top hub named by account id."""
    row = summarise(edges, ledger.is_business[old], figures=figures)
    hub = row["top_hub"]
    row["top_hub_id"] = ledger.nodes["account_id"][int(old[hub])] if hub is not None else None
    return row


@cache
def _figures_version() -> bytes:
    # Any change to this module or to igraph may change a figure: it changes every
    # fingerprint, so no month computed by other code is reused.
    return Path(__file__).read_bytes() + str(ig.__version__).encode()


def graph_fingerprint(ledger: Ledger, edges: EdgeList, old: IntArray) -> str:
    """Digest of everything a month's summary row is computed from.

    ``edges`` is a graph of ``ledger`` (:meth:`Ledger.graph`) and ``old`` its nodes'
    ledger ids. Nodes are numbered in account id order, so a new account elsewhere in the
    history leaves the digest of a month it did not trade in unchanged.
    """
    digest = hashlib.blake2b(_figures_version(), digest_size=16)
    for array in (edges.source, edges.target, edges.cents, edges.count):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(ledger.is_business[old]).tobytes())
    digest.update("\0".join(ledger.nodes["account_id"].gather(old).to_list()).encode())
    return digest.hexdigest()


# The previous snapshot's month rows with the fingerprint of the graph they came from, in
# the columns of ``SUMMARY_FRAME_SCHEMA``. ``network_summary`` and the fingerprints table
# are the build's own constants.
_PREVIOUS_MONTHS_SQL = f"""
select summary.* exclude (volume), cast(summary.volume * 100 as bigint) as volume_cents,
       cast(null as bigint) as top_hub, prints.fingerprint
from marts.network_summary as summary
inner join {FINGERPRINTS} as prints using (scope, period_start)
where summary.period_kind = 'month'
"""  # noqa: S608


def previous_month_rows(
    con: duckdb.DuckDBPyConnection,
) -> dict[tuple[str, date], tuple[str, dict[str, Any]]]:
    """Month rows of the snapshot being rebuilt, by (scope, month): (fingerprint, row).

    Empty on a first build or a backfill (no earlier tables).
    """
    [(present,)] = con.execute(
        "select count(*) from duckdb_tables() where (schema_name, table_name) in "
        "(('marts', 'network_summary'), ('intermediate', 'network_graph_fingerprints'))"
    ).fetchall()
    if present < 2:
        return {}
    frame = con.sql(_PREVIOUS_MONTHS_SQL).pl()
    known: dict[tuple[str, date], tuple[str, dict[str, Any]]] = {}
    for row in frame.iter_rows(named=True):
        fingerprint = row.pop("fingerprint")
        key = (row.pop("scope"), row["period_start"])
        del row["period_kind"], row["period_start"]
        known[key] = (fingerprint, row)
    return known


def write_network_summary(
    con: duckdb.DuckDBPyConnection,
    ledger: Ledger,
    *,
    whole_history: Mapping[str, dict[str, Any]] | None = None,
    previous: Mapping[tuple[str, date], tuple[str, dict[str, Any]]] | None = None,
    months_only: bool = False,
) -> pl.DataFrame:
    """Create ``marts.network_summary``: one row per scope, month and the whole history.

    The months are those of ``ledger``'s edges; the month marts of the lake pass one month.
    ``whole_history`` holds rows already computed (by scope, from :func:`_summary_row`).
    With ``previous`` (:func:`previous_month_rows`), a month whose graph has the
    fingerprint stored with an earlier row takes that row; the month fingerprints are
    returned (scope, period_start, fingerprint), empty without ``previous``.
    ``months_only`` leaves the whole-history rows out.
    """
    months = ledger.months
    rows: list[dict[str, Any]] = []
    prints: list[tuple[str, date, str]] = []
    periods: list[tuple[str, date | None, date]] = [("month", m, m) for m in months]
    if months and not months_only:
        periods.append(("all", None, months[0]))
    for scope in SCOPES:
        for kind, period, start in periods:
            known = whole_history.get(scope) if whole_history and period is None else None
            if known is None:
                edges, old = ledger.graph(period, scope)
                if period is not None and previous is not None:
                    fingerprint = graph_fingerprint(ledger, edges, old)
                    prints.append((scope, start, fingerprint))
                    stored = previous.get((scope, start))
                    if stored is not None and stored[0] == fingerprint:
                        known = stored[1]
                if known is None:
                    known = _summary_row(ledger, edges, old)
            rows.append({"scope": scope, "period_kind": kind, "period_start": start, **known})
    summary = pl.DataFrame(rows, schema=SUMMARY_FRAME_SCHEMA).drop("top_hub")
    columns = ", ".join(
        _money(name) if name == "volume_cents" else name for name in summary.columns
    )
    write_frame(
        con,
        summary.sort("scope", "period_kind", "period_start"),
        "marts.network_summary",
        columns,
    )
    return pl.DataFrame(
        prints,
        schema={"scope": pl.String, "period_start": pl.Date, "fingerprint": pl.String},
        orient="row",
    )


NODES_DESCRIPTION = (
    "Trade-network position of every member account over the whole history, in two scopes: "
    "member (all transfers between member accounts) and business (transfers between "
    "businesses only). Strengths are summed transfer amounts, degrees distinct "
    "counterparties, pagerank is weighted (damping 0.85), community_id comes from Leiden "
    "(modularity, fixed seed) on the undirected projection (0 = largest), coreness is the "
    "k-core number of the undirected projection, respent_share = member-network "
    "out_strength / in_strength capped at 1 (null when nothing was received)."
)
SUMMARY_DESCRIPTION = (
    "Shape of the trade network per scope (member, business) and period (each month and "
    "the whole history): size, density, binary and weighted reciprocity (Σ min(w_ij, w_ji) "
    "/ Σ w_ij), giant strongly connected component and its volume share, directed cycles "
    "of length 2-5 (cycles_capped = enumeration stopped at its bound, the counts of "
    "length 3-5 are lower bounds) and the share of volume on edges lying on at least one "
    "of them (null when the graph is too large for the exact method and the enumeration "
    "was capped), Leiden communities and modularity, business_receivers (businesses that "
    "received a transfer in the period) and the Gini / HHI / top-5 share of their receipts "
    "(businesses that only paid are left out), and fragility = share of volume on edges "
    "touching the top hub (top 5 hubs) by weighted PageRank."
)


def build_network_tables(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Load the transfer graph once; write ``marts.network_nodes`` and ``network_summary``.

    The whole-history graph of each scope is built and analysed once for both tables.
    """
    previous = previous_month_rows(con)
    ledger = load_ledger(con)
    frames: list[pl.DataFrame] = []
    whole_history: dict[str, dict[str, Any]] = {}
    for scope in SCOPES:
        edges, old = ledger.graph(None, scope)
        figures = GraphFigures.of(edges)
        frames.append(_node_frame(scope, edges, old, figures))
        if ledger.months:
            whole_history[scope] = _summary_row(ledger, edges, old, figures)
        # The whole-history graph is the largest object here: free it before the next.
        del figures, edges, old
    _write_network_nodes(con, ledger, frames)
    prints = write_network_summary(con, ledger, whole_history=whole_history, previous=previous)
    write_frame(con, prints.sort("scope", "period_start"), FINGERPRINTS)


MODELS = [
    PythonModel(
        "marts",
        "network_nodes",
        READS,
        build_network_tables,
        NODES_DESCRIPTION,
        also_builds={
            "marts.network_summary": SUMMARY_DESCRIPTION,
            FINGERPRINTS: (
                "Digest of each (scope, month) trade graph summarised in "
                "marts.network_summary; a build takes a month's row from the previous "
                "snapshot when its graph's digest is unchanged."
            ),
        },
    ),
]
