"""What-if: the local trade that N units would generate entering at one point of the scheme.

A projection from past flows, never a causal promise. Accounts are grouped into states —
the council, the other anchor institutions (public bodies), businesses, residents and
accounts of unknown type — and the flows of the last complete months give

    P[g, h] = transfers from group g to group h / everything that left group g,

so each row of P is a group's spending pattern, and what P's row leaves to 1 is the share
that left the currency (redemption, fee, reversal). Money still held at the window's end
is assumed to leave later in the same proportions. Entering at group e, round t of local
trade carries ``e P^t`` (first step: e's own spending pattern, then the transitions between
groups), so

    LM_k = Σ_{t<k} 1ᵀ (e P^t)ᵀ = 1 + Σ_{1≤t<k} e P^t 1,   M = e (I − P)⁻¹ 1,

the traced definitions of DESIGN.md §4 for money whose first holder is in group e. The
interval resamples the window's days (bootstrap). The back-test projects every past month
from the months before it and compares with the traced outcome of the money that entered
in that month (``intermediate.issuance_reach``, what ``marts.multiplier_by_entry_point``
sums over the whole history).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from circulate.metrics.circulation import BOOTSTRAP_SEED
from circulate.report.data import query_frame

FloatArray = npt.NDArray[np.float64]

#: States of the chain, in index order; the first four are entry points.
GROUPS = ("council", "anchor", "business", "resident", "other")
ENTRY_POINTS = GROUPS[:4]
#: A public body whose sector is one of these is the council; without one, the public body
#: paying the most in transfers is taken to be it.
COUNCIL_SECTORS = ("council", "local authority", "local_authority")
#: Months whose money has had less time than this to circulate are not back-tested: their
#: traced outcome is still growing.
SETTLE_DAYS = 60
REPLICATES = 200


@dataclass(frozen=True)
class Projection:
    """Multipliers of money entering at one state.

    Attributes
    ----------
    lm
        ``[LM1, LM2, …, LM_k_max]``.
    full
        Full multiplier ``e (I − P)⁻¹ 1`` (``inf`` when money never leaves some loop).
    """

    lm: list[float]
    full: float


def project(transitions: npt.ArrayLike, entry: int, k_max: int = 5) -> Projection:
    """LM_1 … LM_k_max and the full multiplier of money entering at state ``entry``.

    Parameters
    ----------
    transitions
        Square matrix P: ``P[g, h]`` = share of what leaves g that is paid to h; rows sum
        to at most 1 (the rest leaves the currency).
    entry
        Index of the state the money enters at; its row of P is the first step.
    k_max
        Largest k returned.

    Examples
    --------
    Two states; half of what enters at 0 is paid to 1, which pays a quarter back:

    >>> p = project([[0.0, 0.5], [0.25, 0.0]], entry=0, k_max=3)
    >>> p.lm, round(p.full, 6)
    ([1.0, 1.5, 1.625], 1.714286)
    """
    matrix = np.asarray(transitions, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"transitions must be a square matrix, got shape {matrix.shape}")
    if np.any(matrix < 0) or np.any(matrix.sum(axis=1) > 1 + 1e-9):
        raise ValueError("transition shares must be ≥ 0 and each row must sum to at most 1")
    x = np.zeros(matrix.shape[0])
    x[entry] = 1.0
    values, running = [], 0.0
    for _ in range(k_max):
        running += float(x.sum())
        values.append(running)
        x = x @ matrix
    radius = float(np.max(np.abs(np.linalg.eigvals(matrix)))) if matrix.size else 0.0
    if radius >= 1 - 1e-12:
        return Projection(values, float("inf"))
    ones = np.ones(matrix.shape[0])
    full = float(np.linalg.solve(np.eye(matrix.shape[0]) - matrix, ones)[entry])
    return Projection(values, full)


def simulate(
    transitions: npt.ArrayLike, entry: int, walks: int, seed: int = 0, max_steps: int = 1000
) -> FloatArray:
    """Monte Carlo of the chain: the number of transfers each of ``walks`` units makes.

    An independent check of :func:`project`: a unit at state g moves to h with
    probability ``P[g, h]`` and leaves with the rest; the mean of ``1 + transfers`` is the
    full multiplier, the share making at least t transfers sums to LM_k.
    """
    matrix = np.asarray(transitions, dtype=np.float64)
    n = matrix.shape[0]
    # Column n is "left the currency".
    cumulative = np.cumsum(np.hstack([matrix, 1 - matrix.sum(axis=1, keepdims=True)]), axis=1)
    rng = np.random.default_rng(seed)
    state = np.full(walks, entry)
    hops = np.zeros(walks)
    alive = np.ones(walks, dtype=bool)
    for _ in range(max_steps):
        if not alive.any():
            break
        draw = rng.random(alive.sum())
        moved = (draw[:, None] < cumulative[state[alive]]).argmax(axis=1)
        staying = moved < n
        index = np.flatnonzero(alive)
        hops[index[staying]] += 1
        state[index[staying]] = moved[staying]
        alive[index[~staying]] = False
    return hops


@dataclass(frozen=True)
class WindowFlows:
    """Daily group flows of a window: ``transfers[d, g, h]`` and ``outflow[d, g]``."""

    start: dt.date
    end: dt.date
    transfers: FloatArray
    outflow: FloatArray

    def transitions(self, day_weight: FloatArray | None = None) -> FloatArray:
        """P of the window (days weighted by ``day_weight``, default 1 each)."""
        w = np.ones(self.transfers.shape[0]) if day_weight is None else day_weight
        flows = np.tensordot(w, self.transfers, axes=1)
        out = w @ self.outflow
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(out[:, None] > 0, flows / out[:, None], 0.0)
        return np.asarray(p, dtype=np.float64)


_GROUPS_SQL = """
with issuers as (select account_id from intermediate.issuer_accounts),
public_bodies as (
    select account_id, lower(coalesce(sector, '')) as sector
    from staging.accounts where account_type = 'public_body'
),
named_council as (select account_id from public_bodies where sector in $council_sectors),
largest_payer as (
    select t.source_id as account_id
    from staging.transactions as t join public_bodies as p on p.account_id = t.source_id
    where t.kind = 'transfer' and t.local_day <= $end
    group by 1 order by sum(t.amount) desc, 1 limit 1
),
council as (
    select account_id from named_council
    union all
    select account_id from largest_payer where not exists (select 1 from named_council)
),
members as (
    select source_id as account_id from staging.transactions
    union
    select target_id from staging.transactions
)
select m.account_id,
       case when m.account_id in (select account_id from council) then 0
            when a.account_type = 'public_body' then 1
            when a.account_type = 'business' then 2
            when a.account_type = 'individual' then 3
            else 4 end as grp
from members as m
left join staging.accounts as a using (account_id)
where m.account_id not in (select account_id from issuers)
"""


def _groups_cte(con: duckdb.DuckDBPyConnection, end: dt.date) -> None:
    # Bound parameters cannot reach a view: the grouping goes to a temporary table.
    con.execute(
        "create or replace temp table whatif_groups as " + _GROUPS_SQL,
        {"end": end, "council_sectors": list(COUNCIL_SECTORS)},
    )


def window_flows(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> WindowFlows:
    """Daily group flows of ``start`` .. ``end`` (groups from :data:`GROUPS`)."""
    _groups_cte(con, end)
    frame = query_frame(
        con,
        """
        select (t.local_day - $start)::integer as day, t.kind,
               coalesce(s.grp, -1) as source, coalesce(d.grp, -1) as target,
               sum(t.amount)::double as amount
        from staging.transactions as t
        left join whatif_groups as s on s.account_id = t.source_id
        left join whatif_groups as d on d.account_id = t.target_id
        where t.local_day between $start and $end
        group by all
        """,
        {"start": start, "end": end},
    )
    days, n = (end - start).days + 1, len(GROUPS)
    transfers = np.zeros((days, n, n))
    outflow = np.zeros((days, n))
    for day, kind, source, target, amount in frame.iter_rows():
        if source < 0:
            continue
        outflow[day, source] += amount
        if kind == "transfer" and target >= 0:
            transfers[day, source, target] += amount
    return WindowFlows(start, end, transfers, outflow)


@dataclass(frozen=True)
class WhatIf:
    """A projection for one entry point, its interval and its back-test.

    Attributes
    ----------
    entry, amount
        Where the money enters and how much.
    window
        The complete months it learnt from (first and last day).
    projection
        Point multipliers (:class:`Projection`).
    low, high
        95 % bootstrap intervals of LM2, LM3 and the full multiplier, keyed ``lm2``,
        ``lm3``, ``full``.
    backtest
        One row per back-tested month: ``month``, ``projected_lm3``, ``traced_lm3``,
        ``projected_full``, ``traced_full``, ``issued``, ``first_holders``.
    backtest_error
        Mean absolute error of LM3 and of the full multiplier over the back-tested months
        (``None`` without any), keyed ``lm3`` and ``full``.
    """

    entry: str
    amount: float
    window: tuple[dt.date, dt.date]
    projection: Projection
    low: dict[str, float]
    high: dict[str, float]
    backtest: list[dict[str, Any]] = field(default_factory=list)
    backtest_error: dict[str, float | None] = field(default_factory=dict)

    def trade(self, multiplier: float) -> float:
        """Local trade (transfers) that ``amount`` supports at a multiplier: amount × (m − 1)."""
        return self.amount * (multiplier - 1.0)


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def complete_months_window(last_day: dt.date, months: int) -> tuple[dt.date, dt.date]:
    """The ``months`` complete calendar months ending on or before ``last_day``.

    >>> complete_months_window(dt.date(2025, 7, 19), 3)
    (datetime.date(2025, 4, 1), datetime.date(2025, 6, 30))
    >>> complete_months_window(dt.date(2025, 6, 30), 1)
    (datetime.date(2025, 6, 1), datetime.date(2025, 6, 30))
    """
    first_after = _add_months(_month_start(last_day), 1)
    end_month = _month_start(last_day) if first_after - dt.timedelta(days=1) == last_day else None
    last_month = end_month or _add_months(_month_start(last_day), -1)
    end = _add_months(last_month, 1) - dt.timedelta(days=1)
    return _add_months(last_month, -(months - 1)), end


def _interval(
    flows: WindowFlows, entry: int, replicates: int, seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    days = flows.transfers.shape[0]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"lm2": [], "lm3": [], "full": []}
    for _ in range(replicates):
        weight = np.bincount(rng.integers(0, days, days), minlength=days).astype(np.float64)
        p = project(flows.transitions(weight), entry, 3)
        draws["lm2"].append(p.lm[1])
        draws["lm3"].append(p.lm[2])
        draws["full"].append(p.full)
    low = {k: float(np.percentile(v, 2.5)) for k, v in draws.items()}
    high = {k: float(np.percentile(v, 97.5)) for k, v in draws.items()}
    return low, high


def traced_outcomes(con: duckdb.DuckDBPyConnection, end: dt.date) -> dict[tuple[dt.date, int], Any]:
    """Traced multipliers of the money issued each month, by group of its first holder."""
    _groups_cte(con, end)
    frame = query_frame(
        con,
        """
        select date_trunc('month', r.origin_day)::date as month, g.grp,
               sum(r.amount)::double as issued,
               sum(r.reach_1)::double as reach_1, sum(r.reach_2)::double as reach_2,
               sum(r.hop_amount)::double as hops,
               count(distinct t.target_id) as first_holders
        from intermediate.issuance_reach as r
        join staging.transactions as t on t.txn_id = r.txn_id
        join whatif_groups as g on g.account_id = t.target_id
        group by all
        """,
    )
    return {(row["month"], row["grp"]): row for row in frame.iter_rows(named=True)}


def whatif(
    con: duckdb.DuckDBPyConnection,
    entry: str,
    amount: float,
    *,
    months: int = 12,
    last_day: dt.date | None = None,
    k_anonymity: int = 5,
    replicates: int = REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> WhatIf:
    """Project ``amount`` entering at ``entry`` from the last ``months`` complete months.

    Raises
    ------
    ValueError
        For an unknown entry point or a warehouse without a complete month.
    """
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {entry!r}; choose one of {', '.join(ENTRY_POINTS)}")
    index = GROUPS.index(entry)
    first, last = con.execute("select min(day), max(day) from marts.daily_circulation").fetchall()[
        0
    ]
    if last is None:
        raise ValueError("the warehouse is empty: run `circulate run` first")
    last = min(last, last_day) if last_day else last
    start, end = complete_months_window(last, months)
    start = max(start, _month_start(first) if first.day == 1 else _add_months(first, 1))
    start = _month_start(start)
    if start > end:
        raise ValueError(f"the warehouse ({first} .. {last}) holds no complete month to learn from")
    flows = window_flows(con, start, end)
    low, high = _interval(flows, index, replicates, seed)
    projection = project(flows.transitions(), index)
    rows = _backtest(con, index, months, first, last, k_anonymity)
    error: dict[str, float | None] = {"lm3": None, "full": None}
    if rows:
        error = {
            "lm3": float(np.mean([abs(r["projected_lm3"] - r["traced_lm3"]) for r in rows])),
            "full": float(np.mean([abs(r["projected_full"] - r["traced_full"]) for r in rows])),
        }
    return WhatIf(entry, float(amount), (start, end), projection, low, high, rows, error)


def _backtest(
    con: duckdb.DuckDBPyConnection,
    index: int,
    months: int,
    first: dt.date,
    last: dt.date,
    k: int,
) -> list[dict[str, Any]]:
    outcomes = traced_outcomes(con, last)
    first_full = _month_start(first) if first.day == 1 else _add_months(_month_start(first), 1)
    rows = []
    month = _add_months(first_full, 1)
    while _add_months(month, 1) - dt.timedelta(days=1) <= last - dt.timedelta(days=SETTLE_DAYS):
        outcome = outcomes.get((month, index))
        if outcome and outcome["issued"] and outcome["first_holders"] >= k_min(index, k):
            train_start = max(first_full, _add_months(month, -months))
            flows = window_flows(con, train_start, month - dt.timedelta(days=1))
            p = project(flows.transitions(), index)
            issued = outcome["issued"]
            rows.append(
                {
                    "month": month,
                    "projected_lm3": p.lm[2],
                    "traced_lm3": (issued + outcome["reach_1"] + outcome["reach_2"]) / issued,
                    "projected_full": p.full,
                    "traced_full": (issued + outcome["hops"]) / issued,
                    "issued": issued,
                    "first_holders": int(outcome["first_holders"]),
                }
            )
        month = _add_months(month, 1)
    return rows


def k_min(index: int, k: int) -> int:
    """Smallest number of first holders a back-test month needs to be published.

    The council and the anchors are institutions, published as such (like public-body flows
    in the nightly report); residents and businesses need at least k.

    >>> k_min(0, 5), k_min(3, 5)
    (1, 5)
    """
    return 1 if GROUPS[index] in ("council", "anchor") else k
