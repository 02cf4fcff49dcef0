"""Trade-network graph kernels: the figures of one weighted directed transfer graph.

Pure computation on :class:`EdgeList`: nodes ``0..n-1``, one edge per ordered pair, its
weight the summed amount in cents. :mod:`circulate.metrics.network` builds the graphs from
the warehouse, per scope and period, and writes the tables.

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
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, cast

import igraph as ig
import numba
import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "SUMMARY_SCHEMA",
    "Concentration",
    "CycleCount",
    "EdgeList",
    "GraphFigures",
    "Projection",
    "aggregate_edges",
    "bounded_cycles",
    "communities",
    "concentration",
    "coreness",
    "degrees",
    "edges_on_short_cycles",
    "fragility",
    "giant_scc",
    "pagerank",
    "reciprocity",
    "strengths",
    "strong_components",
    "summarise",
    "to_igraph",
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


def aggregate_edges(
    n: int, source: IntArray, target: IntArray, cents: IntArray, count: IntArray
) -> EdgeList:
    """One edge per (source, target), in (source, target) order, amounts and counts summed.

    What a group-by of the transfers over the whole history gives, from the far fewer
    month rows.

    >>> columns = ([0, 1, 0], [1, 2, 1], [5, 7, 6], [1, 1, 2])
    >>> e = aggregate_edges(3, *(np.array(c, dtype=np.int64) for c in columns))
    >>> e.source.tolist(), e.target.tolist(), e.cents.tolist(), e.count.tolist()
    ([0, 1], [1, 2], [11, 7], [3, 1])
    """
    pairs, inverse = np.unique(source * max(n, 1) + target, return_inverse=True)
    return EdgeList(
        n,
        pairs // max(n, 1),
        pairs % max(n, 1),
        _sum_by(inverse, cents, len(pairs)),
        _sum_by(inverse, count, len(pairs)),
    )
