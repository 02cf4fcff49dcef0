"""Trade-network metrics: who keeps the money moving, can it cycle, and how fragile is it.

The ledger's ``transfer`` rows between member accounts (issuer accounts left out, see
``intermediate.issuer_accounts``) form a weighted directed graph: one edge per ordered pair
(payer, payee), weight = summed amount. Two scopes are built: ``member`` (every member
account) and ``business`` (the subgraph induced by accounts whose ``account_type`` in
``staging.accounts`` is ``business``). Periods are calendar months of the scheme's local day
and the whole history.

The figures of one graph are computed in :mod:`circulate.metrics.network_graph`, whose
docstring defines them (DESIGN.md §4 "network"); this module builds the graphs from the
warehouse and writes ``marts.network_nodes`` and ``marts.network_summary``, adding:

- re-spent share (nodes): member-network out-strength / in-strength, capped at 1; null when
  the account received nothing. Transfers only: redemptions and fees count as not re-spent.

A month's summary depends only on that month's graph. The build stores a fingerprint of
each month's graph (its edges, the accounts' ids and business flags, the source of this
module and of network_graph, and igraph's version) in
``intermediate.network_graph_fingerprints``; a later build whose month graph has the same
fingerprint takes that month's row from the previous snapshot instead of analysing the
graph again, so a night that adds one day analyses one month.

The whole history is final at a month's close: its graph holds every transfer up to the
last day of the latest complete month (a month the ledger covers every day of, as
``period_complete`` of the impact indicators; the scheme's timezone), and both tables give
that day as ``as_of_day``. Until a month is complete the whole history is the data so far,
recomputed every night. The whole-history rows depend only on the closed months' graphs:
the build stores a digest of their fingerprints (period_kind ``all`` in the fingerprints
table) and takes both tables' whole-history rows from the previous snapshot while it is
unchanged, so they are recomputed when a month closes or a late or corrected entry lands
in a closed month, not on the nights in between. ``circulate run --full`` drops the
snapshot, so everything is recomputed.

Between two closes a night does not even read the closed months: the build that reads
every month stores the cut it covered (``intermediate.network_cut``,
:mod:`circulate.metrics.month_close`), and while that cut holds — the same closed months,
no later entry dated in them, the same code — and no account of the whole history turned
business or stopped being one, the closed months' rows, the whole-history rows and the
node figures are kept and only the open months' transfers are read and fingerprinted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Any, cast

import duckdb
import igraph as ig
import numpy as np
import polars as pl

from circulate.metrics import network_graph
from circulate.metrics.month_close import (
    Cut,
    closed_history_end,
    current_cut,
    cut_description,
    version_of,
)
from circulate.metrics.network_graph import (
    SUMMARY_SCHEMA,
    BoolArray,
    EdgeList,
    GraphFigures,
    IntArray,
    aggregate_edges,
    degrees,
    strengths,
    summarise,
)
from circulate.warehouse.runner import REBUILT_NIGHTLY, PythonModel, write_frame

__all__ = [
    "MODELS",
    "Ledger",
    "closed_history_end",
    "graph_fingerprint",
    "load_ledger",
    "previous_rows",
    "write_network_summary",
]

SCOPES = ("member", "business")
#: What :func:`load_ledger` and :func:`history_as_of` read: the month graphs' inputs.
LEDGER_READS = frozenset(
    {"intermediate.member_transfers", "staging.accounts", "intermediate.day_spine"}
)
#: The model's: the ledger, and the load batches the stored cut is checked against.
READS = LEDGER_READS | {"audit.appended_batches"}
FINGERPRINTS = "intermediate.network_graph_fingerprints"
CUT = "intermediate.network_cut"
LEDGERS = ("intermediate.member_transfers",)


@dataclass(frozen=True)
class Ledger:
    """Transfer edges per period, ids mapped to ``0..n-1``, and node attributes.

    The whole history (period ``None``) is the months up to ``history_end`` (a day), or
    every month when it is ``None``.
    """

    edges: pl.DataFrame  # period_start (a month), source, target, cents, transfers
    nodes: pl.DataFrame  # idx, account_id, account_type, sector, area, is_business
    history_end: date | None = None

    @cached_property
    def _by_period(self) -> dict[date, EdgeList]:
        # Every month's graph over all nodes, split from ``edges`` in one pass (a filter
        # per month scanned every edge once per month). Rows keep their order inside a
        # month: adjacency order steers Leiden and a capped cycle search.
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
        periods: dict[date, EdgeList] = {}
        for a, b in zip([0, *cuts], [*cuts, code.size], strict=True):
            if a < b:
                source, target, cents, count = (np.asarray(c[a:b], np.int64) for c in columns)
                periods[starts[a]] = EdgeList(n, source, target, cents, count)
        return periods

    @cached_property
    def _whole_history(self) -> EdgeList:
        # Summed from the months it holds, only when asked for: a night that reuses the
        # whole-history rows never builds it.
        n = self.nodes.height
        months = [self._by_period[m] for m in self.history_months]
        columns = (
            np.concatenate([np.zeros(0, np.int64), *(getattr(m, name) for m in months)])
            for name in ("source", "target", "cents", "count")
        )
        return aggregate_edges(n, *columns)

    def graph(self, period: date | None, scope: str) -> tuple[EdgeList, IntArray]:
        """The scope's graph for one month (``None`` = whole history) and its node ids."""
        n = self.nodes.height
        full = self._whole_history if period is None else self._by_period.get(period)
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

    @property
    def history_months(self) -> list[date]:
        """The months the whole history holds."""
        end = self.history_end
        return [m for m in self.months if end is None or m <= end]


# The transfers dated after $after: every one, or those of the months open at a cut.
_TRANSFERS_SQL = """
select local_day, source_id, target_id, amount
from intermediate.member_transfers
where local_day > $after
"""
#: ``after`` for every transfer.
EVERY_DAY = date(1, 1, 1)

# Member accounts numbered 0..n-1 in account id order.
_IDS_SQL = f"""
select account_id, cast(row_number() over (order by account_id) - 1 as bigint) as idx
from (
    select source_id as account_id from ({_TRANSFERS_SQL})
    union
    select target_id from ({_TRANSFERS_SQL})
)
"""  # noqa: S608 (a constant of this module)

# Numbered before grouping: grouping by two integers is cheaper than by two id strings,
# and the edges come out ready for numpy. The sort fixes the rows' order (DuckDB's group
# by has none): adjacency order steers Leiden and a capped cycle search.
_EDGES_SQL = f"""
with ids as ({_IDS_SQL}),

transfers as (
    select transfers.local_day, payers.idx as source, payees.idx as target, transfers.amount
    from ({_TRANSFERS_SQL}) as transfers
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


def load_ledger(
    con: duckdb.DuckDBPyConnection, history_end: date | None = None, after: date = EVERY_DAY
) -> Ledger:
    """Number the accounts ``0..n-1`` and aggregate transfer edges per month, in DuckDB.

    The whole history's edges, up to ``history_end`` (every month when ``None``), are
    summed from the months' in numpy (:class:`Ledger`). Only the transfers dated after
    ``after`` are read: with a month's last day, the ledger holds the months after it, its
    accounts those trading in them (numbered in the same order as in the whole ledger, so
    their graphs and fingerprints are the same).
    """
    ids = con.sql(_IDS_SQL + "order by idx", params={"after": after}).pl()
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
    return Ledger(con.sql(_EDGES_SQL, params={"after": after}).pl(), nodes, history_end)


def history_as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    """The last day of the whole history: that of the latest complete month.

    The ledger's days are those of ``intermediate.day_spine``. Before any month is
    complete the whole history is the data so far, up to the last covered day (so it
    changes every night until the first close). ``None`` for an empty ledger.
    """
    [(first_day, last_day)] = con.execute(
        "select min(day), max(day) from intermediate.day_spine"
    ).fetchall()
    return closed_history_end(first_day, last_day) or last_day


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
    "as_of_day": pl.Date,
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


def _computed_nodes(ledger: Ledger, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The scopes' node frames (:func:`_node_frame`) with the re-spent share."""
    member, old = ledger.graph(None, "member")
    member_in, member_out = strengths(member)
    respent = pl.DataFrame(
        {
            "idx": old,
            "member_in": member_in,
            "member_out": member_out,
        }
    )
    return (
        pl.concat([pl.DataFrame(schema=NODE_SCHEMA), *frames])
        .join(respent, on="idx", how="left")
        .select(
            *NODE_SCHEMA,
            pl.when(pl.col("member_in") > 0)
            .then(pl.min_horizontal(pl.col("member_out") / pl.col("member_in"), pl.lit(1.0)))
            .otherwise(None)
            .alias("respent_share"),
        )
    )


# The previous snapshot's node figures in the columns of ``_computed_nodes`` but keyed by
# account id: the accounts' attributes are joined anew.
_PREVIOUS_NODES_SQL = """
select scope, account_id,
       cast(in_strength * 100 as bigint) as in_strength_cents,
       cast(out_strength * 100 as bigint) as out_strength_cents,
       in_degree, out_degree, pagerank, in_giant_scc, community_id, coreness, respent_share
from marts.network_nodes
"""


def _previous_nodes(con: duckdb.DuckDBPyConnection, ledger: Ledger) -> pl.DataFrame:
    """The node rows of the snapshot being rebuilt, numbered as in ``ledger``."""
    previous: pl.DataFrame = con.sql(_PREVIOUS_NODES_SQL).pl()
    ids = ledger.nodes.select("idx", "account_id")
    return previous.join(ids, on="account_id", how="inner").select(*NODE_SCHEMA, "respent_share")


def _write_network_nodes(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, nodes: pl.DataFrame, as_of_day: date | None
) -> None:
    """Create ``marts.network_nodes`` from node figures (:func:`_computed_nodes`)."""
    nodes = (
        nodes.join(ledger.nodes, on="idx", how="left")
        .with_columns(pl.lit(as_of_day, pl.Date).alias("as_of_day"))
        .sort("scope", "account_id")
    )
    write_frame(
        con,
        nodes,
        "marts.network_nodes",
        "scope, account_id, account_type, sector, area, as_of_day, "
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
    # Any change to this module, to the graph kernels or to igraph may change a figure: it
    # changes every fingerprint, so no month computed by other code is reused.
    sources = (Path(__file__), Path(network_graph.__file__))
    return b"".join(path.read_bytes() for path in sources) + str(ig.__version__).encode()


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


def month_fingerprints(ledger: Ledger) -> dict[tuple[str, date], str]:
    """:func:`graph_fingerprint` of every month graph of ``ledger``, by (scope, month)."""
    return {
        (scope, month): graph_fingerprint(ledger, *ledger.graph(month, scope))
        for scope in SCOPES
        for month in ledger.months
    }


def history_fingerprint(
    ledger: Ledger, as_of_day: date | None, fingerprints: Mapping[tuple[str, date], str]
) -> str:
    """Digest of everything the whole-history rows of both tables are computed from.

    The whole-history graph of a scope is the sum of its month graphs up to ``as_of_day``,
    each named by account ids in its fingerprint; the re-spent share of business nodes is
    a member-network figure, so one digest covers both scopes.
    """
    digest = hashlib.blake2b(_figures_version(), digest_size=16)
    digest.update(str(as_of_day).encode())
    for scope in SCOPES:
        for month in ledger.history_months:
            digest.update(f"\0{scope}\0{month}\0{fingerprints[scope, month]}".encode())
    return digest.hexdigest()


# The previous snapshot's rows with the fingerprint of the graph they came from, in the
# columns of ``SUMMARY_FRAME_SCHEMA``: months by their graph's, the whole history by
# :func:`history_fingerprint`. ``network_summary`` and the fingerprints table are the
# build's own constants.
_PREVIOUS_ROWS_SQL = f"""
select summary.* exclude (volume), cast(summary.volume * 100 as bigint) as volume_cents,
       cast(null as bigint) as top_hub, prints.fingerprint
from marts.network_summary as summary
inner join {FINGERPRINTS} as prints using (scope, period_kind, period_start)
"""  # noqa: S608


def previous_rows(
    con: duckdb.DuckDBPyConnection,
) -> dict[tuple[str, date | None], tuple[str, dict[str, Any]]]:
    """Summary rows of the snapshot being rebuilt: (fingerprint, row) by (scope, period).

    The period is a month, or ``None`` for the whole history. Empty on a first build or a
    backfill (no earlier tables), and for a snapshot of an earlier layout.
    """
    [(present,)] = con.execute(
        "select count(*) from duckdb_columns() where (schema_name, table_name, column_name) in "
        "(('marts', 'network_summary', 'as_of_day'), ('marts', 'network_nodes', 'as_of_day'), "
        "('intermediate', 'network_graph_fingerprints', 'period_kind'))"
    ).fetchall()
    if present < 3:
        return {}
    frame = con.sql(_PREVIOUS_ROWS_SQL).pl()
    known: dict[tuple[str, date | None], tuple[str, dict[str, Any]]] = {}
    for row in frame.iter_rows(named=True):
        fingerprint = row.pop("fingerprint")
        period = row["period_start"] if row["period_kind"] == "month" else None
        key = (row.pop("scope"), period)
        del row["period_kind"], row["period_start"]
        known[key] = (fingerprint, row)
    return known


def write_network_summary(
    con: duckdb.DuckDBPyConnection,
    ledger: Ledger,
    *,
    whole_history: Mapping[str, dict[str, Any]] | None = None,
    previous: Mapping[tuple[str, date | None], tuple[str, dict[str, Any]]] | None = None,
    fingerprints: Mapping[tuple[str, date], str] | None = None,
    months_only: bool = False,
    closed_months: Mapping[tuple[str, date], dict[str, Any]] | None = None,
) -> None:
    """Create ``marts.network_summary``: one row per scope, month and the whole history.

    The months are those of ``ledger``'s edges and of ``closed_months``, rows kept as they
    are (by scope and month, both scopes of each month); the month marts of the lake pass
    one month. ``whole_history`` holds rows already computed (by scope, from
    :func:`_summary_row`, ``as_of_day`` included). A month whose ``fingerprints`` entry
    equals the one stored with its row in ``previous`` (:func:`previous_rows`) takes that
    row. ``months_only`` leaves the whole-history rows out.
    """
    kept = closed_months or {}
    months = sorted({*ledger.months, *(month for _, month in kept)})
    rows: list[dict[str, Any]] = []
    periods: list[tuple[str, date | None, date]] = [("month", m, m) for m in months]
    if months and not months_only:
        periods.append(("all", None, months[0]))
    for scope in SCOPES:
        for kind, period, start in periods:
            known = whole_history.get(scope) if whole_history and period is None else None
            if period is not None:
                known = kept.get((scope, period))
            if known is None and period is not None and previous and fingerprints:
                stored = previous.get((scope, period))
                if stored is not None and stored[0] == fingerprints[scope, period]:
                    known = stored[1]
            if known is None:
                known = {**_summary_row(ledger, *ledger.graph(period, scope)), "as_of_day": None}
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


NODES_DESCRIPTION = (
    "Trade-network position of every member account over the whole history up to as_of_day "
    "(the end of the latest complete month; refreshed when a month closes or an entry lands "
    "in a closed month, not nightly), in two scopes: "
    "member (all transfers between member accounts) and business (transfers between "
    "businesses only). Strengths are summed transfer amounts, degrees distinct "
    "counterparties, pagerank is weighted (damping 0.85), community_id comes from Leiden "
    "(modularity, fixed seed) on the undirected projection (0 = largest), coreness is the "
    "k-core number of the undirected projection, respent_share = member-network "
    "out_strength / in_strength capped at 1 (null when nothing was received)."
)
SUMMARY_DESCRIPTION = (
    "Shape of the trade network per scope (member, business) and period (each month, "
    "recomputed nightly while it changes, and the whole history up to as_of_day, the end "
    "of the latest complete month, refreshed when a month closes or an entry lands in a "
    "closed month): size, density, binary and weighted reciprocity (Σ min(w_ij, w_ji) "
    "/ Σ w_ij), giant strongly connected component and its volume share, directed cycles "
    "of length 2-5 (cycles_capped = enumeration stopped at its bound, the counts of "
    "length 3-5 are lower bounds) and the share of volume on edges lying on at least one "
    "of them (null when the graph is too large for the exact method and the enumeration "
    "was capped), Leiden communities and modularity, business_receivers (businesses that "
    "received a transfer in the period) and the Gini / HHI / top-5 share of their receipts "
    "(businesses that only paid are left out), and fragility = share of volume on edges "
    "touching the top hub (top 5 hubs) by weighted PageRank."
)

# How build_network_tables reuses the previous snapshot (see the module docstring).
NODES_REFRESH = (
    "whole history as of as_of_day (the end of the latest complete month), recomputed when "
    "a month closes or the graph of a closed month changes (a late or corrected entry, an "
    "account turning business or not, new network code or igraph) and otherwise taken from "
    "the previous snapshot, the accounts' attributes joined anew (between two closes "
    "without reading the closed months' transfers); recomputed every night until the first "
    "month closes, and on `circulate run --full`"
)
SUMMARY_REFRESH = (
    "a month's rows recomputed when that month's trade graph changed (the open month's, "
    "on a night that adds transfers to it) and otherwise taken from the previous snapshot; "
    "the whole-history rows as of as_of_day, refreshed as marts.network_nodes (recomputed "
    "when a month closes or the graph of a closed month changes); everything recomputed "
    "on `circulate run --full`"
)


# Accounts of the whole history whose business flag differs from the one its graphs were
# analysed with: the snapshot's node rows carry each account's type as last written, and
# every night either compares them (below) or rewrites everything.
_FLAGS_CHANGED_SQL = """
select count(*)
from marts.network_nodes as nodes
left join staging.accounts as accounts using (account_id)
where nodes.scope = 'member'
  and (nodes.account_type = 'business')
      <> coalesce(accounts.account_type = 'business', false)
"""

# The whole-history node rows of the snapshot, the accounts' attributes joined anew.
_NODES_ANEW_SQL = """
create or replace table marts.network_nodes as
select
    nodes.scope,
    nodes.account_id,
    coalesce(accounts.account_type, 'unknown') as account_type,
    accounts.sector,
    accounts.area,
    nodes.* exclude (scope, account_id, account_type, sector, area)
from marts.network_nodes as nodes
left join staging.accounts as accounts using (account_id)
order by nodes.scope, nodes.account_id
"""

# The stored fingerprints of the closed months and of the whole history.
_CLOSED_PRINTS_SQL = f"""
select period_kind, scope, period_start, fingerprint
from {FINGERPRINTS}
where period_kind = 'all' or period_start <= $cut
"""  # noqa: S608 (a constant of this module)


def _cut_version() -> str:
    # The code the cut's stored rows came from: that of every fingerprint and of the cut.
    digest = hashlib.blake2b(_figures_version(), digest_size=16)
    digest.update(version_of(__file__).encode())
    return digest.hexdigest()


def _closed_history_holds(
    con: duckdb.DuckDBPyConnection,
    cut: Cut,
    previous: Mapping[tuple[str, date | None], tuple[str, dict[str, Any]]],
) -> bool:
    """Whether the snapshot's closed months and whole history are today's (the stored cut
    holds, and no account of the whole history changed its business flag)."""
    if any((scope, None) not in previous for scope in SCOPES) or not cut.holds_for(con, CUT):
        return False
    [(changed,)] = con.execute(_FLAGS_CHANGED_SQL).fetchall()
    return int(changed) == 0


def _write_fingerprints(
    con: duckdb.DuckDBPyConnection, prints: list[tuple[str, str, date, str]]
) -> None:
    frame = pl.DataFrame(
        prints,
        schema={
            "period_kind": pl.String,
            "scope": pl.String,
            "period_start": pl.Date,
            "fingerprint": pl.String,
        },
        orient="row",
    )
    write_frame(
        con,
        frame.sort("scope", "period_kind", "period_start"),
        FINGERPRINTS,
        "scope, period_kind, period_start, fingerprint",
    )


def build_open_months(
    con: duckdb.DuckDBPyConnection,
    cut_day: date,
    previous: Mapping[tuple[str, date | None], tuple[str, dict[str, Any]]],
) -> None:
    """Keep the rows of the closed months and of the whole history; read and analyse only
    the transfers after ``cut_day`` (the open months, each reused while its graph's
    fingerprint is unchanged)."""
    ledger = load_ledger(con, cut_day, after=cut_day)
    fingerprints = month_fingerprints(ledger)
    closed_months = {
        (scope, period): row
        for (scope, period), (_, row) in previous.items()
        if period is not None and period <= cut_day
    }
    whole_history = {scope: previous[scope, None][1] for scope in SCOPES}
    con.execute(_NODES_ANEW_SQL)
    write_network_summary(
        con,
        ledger,
        whole_history=whole_history,
        previous=previous,
        fingerprints=fingerprints,
        closed_months=closed_months,
    )
    stored = con.execute(_CLOSED_PRINTS_SQL, {"cut": cut_day}).fetchall()
    _write_fingerprints(
        con,
        stored
        + [("month", scope, month, print_) for (scope, month), print_ in fingerprints.items()],
    )


def build_every_month(
    con: duckdb.DuckDBPyConnection,
    previous: Mapping[tuple[str, date | None], tuple[str, dict[str, Any]]],
) -> None:
    """Read every transfer; analyse each month whose graph's fingerprint changed, and the
    whole history unless the digest of its months (:func:`history_fingerprint`) equals the
    one stored with the snapshot's whole-history rows."""
    as_of_day = history_as_of(con)
    ledger = load_ledger(con, as_of_day)
    fingerprints = month_fingerprints(ledger)
    history = history_fingerprint(ledger, as_of_day, fingerprints)
    stored = {scope: previous.get((scope, None)) for scope in SCOPES}
    whole_history: dict[str, dict[str, Any]] = {}
    if ledger.months and all(row is not None and row[0] == history for row in stored.values()):
        nodes = _previous_nodes(con, ledger)
        whole_history = {scope: row[1] for scope, row in stored.items() if row is not None}
    else:
        frames: list[pl.DataFrame] = []
        for scope in SCOPES:
            edges, old = ledger.graph(None, scope)
            figures = GraphFigures.of(edges)
            frames.append(_node_frame(scope, edges, old, figures))
            if ledger.months:
                row = _summary_row(ledger, edges, old, figures)
                whole_history[scope] = {**row, "as_of_day": as_of_day}
            # The whole-history graph is the largest object here: free it before the next.
            del figures, edges, old
        nodes = _computed_nodes(ledger, frames)
    _write_network_nodes(con, ledger, nodes, as_of_day)
    write_network_summary(
        con, ledger, whole_history=whole_history, previous=previous, fingerprints=fingerprints
    )
    months = ledger.months
    prints = [
        ("month", scope, month, fingerprint) for (scope, month), fingerprint in fingerprints.items()
    ]
    if months:
        prints += [("all", scope, months[0], history) for scope in SCOPES]
    _write_fingerprints(con, prints)


def build_network_tables(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Write ``marts.network_nodes``, ``network_summary`` and their fingerprints.

    On a night inside a month (the stored cut holds: :func:`_closed_history_holds`) only
    the open months are read (:func:`build_open_months`); otherwise every month is
    (:func:`build_every_month`), and the cut is stored.
    """
    previous = previous_rows(con)
    cut = current_cut(con, LEDGERS, _cut_version())
    if cut.day is not None and _closed_history_holds(con, cut, previous):
        build_open_months(con, cut.day, previous)
        return
    build_every_month(con, previous)
    cut.store(con, CUT)


MODELS = [
    PythonModel(
        "marts",
        "network_nodes",
        READS,
        build_network_tables,
        NODES_DESCRIPTION,
        NODES_REFRESH,
        also_builds={
            "marts.network_summary": SUMMARY_DESCRIPTION,
            FINGERPRINTS: (
                "Digest of each (scope, month) trade graph summarised in "
                "marts.network_summary, and (period_kind all) of the months the "
                "whole-history rows of network_summary and network_nodes come from; a build "
                "takes rows from the previous snapshot while their digest is unchanged."
            ),
            CUT: cut_description("marts.network_summary's closed months", LEDGERS),
        },
        refresh_by_table={
            "marts.network_summary": SUMMARY_REFRESH,
            FINGERPRINTS: REBUILT_NIGHTLY,
            CUT: "made when every month's transfers are read (see marts.network_nodes)",
        },
    ),
]
