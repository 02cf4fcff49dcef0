"""Warehouse tables built from the money tracer, the Markov estimate and the bootstrap.

The tracer (:mod:`circulate.metrics.tracing`) follows every unit of money through the
whole history (FIFO), resuming from the state the previous build stored when the night
only added entries (:mod:`circulate.metrics.trace_checkpoint`); its result feeds the
intermediate tables below, and the SQL mart ``marts.circulation_metrics`` turns them into
per-period metrics:

- ``intermediate.issuance_reach`` — one row per issuance: where its money went
  (amount that made ≥ t transfers, Σ amount × hops, redeemed / fees / still held);
- ``intermediate.money_trajectories`` — amount by (origin day, end state, hops);
- ``intermediate.holding_spells`` — holding-spell histogram by exit day and log bin;
- ``intermediate.markov_multipliers`` — Markov LM_2 … LM_5 per period;
- ``intermediate.circulation_intervals`` — bootstrap 95 % intervals of LM3 (resampling
  issuances) and velocity (resampling days) for the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import duckdb
import numba
import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.errors import InputError
from circulate.metrics.markov import MAX_K, markov_lm_by_period
from circulate.metrics.trace_checkpoint import DESCRIPTIONS, read_checkpoint, write_checkpoint
from circulate.metrics.tracing import (
    END_STATES,
    SPELL_BINS,
    Ledger,
    Order,
    TraceResult,
    load_ledger,
    replay,
    spell_bin_edges,
    trace,
    weighted_median_from_bins,
)
from circulate.warehouse.runner import REBUILT_NIGHTLY, PythonModel, write_frame

__all__ = [
    "BOOTSTRAP_REPLICATES",
    "BOOTSTRAP_SEED",
    "MODELS",
    "POLICIES",
    "TRACED_COLUMNS",
    "bootstrap_ratio_interval",
    "period_of_day",
    "read_metrics",
    "traced_figures",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BOOTSTRAP_REPLICATES = 400
BOOTSTRAP_SEED = 2012
PERIOD_KINDS = ("day", "week", "month", "all")
#: Orders the tracer can follow money in; the nightly build publishes FIFO.
POLICIES: tuple[Order, ...] = ("fifo", "lifo")
TRACE_READS = frozenset({"staging.transactions", "intermediate.issuer_accounts"})


def _money_cast(column: str) -> str:
    return f"cast(cast({column} as decimal(18, 0)) / 100 as decimal(18, 2)) as " + (
        column.removesuffix("_pence")
    )


def period_of_day(first_day: date, days: int, kind: str) -> IntArray:
    """Period id of each day index ``0 … days − 1`` (ISO weeks start on Monday).

    >>> period_of_day(date(2025, 1, 30), 5, "month").tolist()
    [0, 0, 1, 1, 1]
    >>> period_of_day(date(2025, 1, 4), 4, "week").tolist()  # Sat, Sun, Mon, Tue
    [0, 0, 1, 1]
    """
    index = np.arange(days, dtype=np.int64)
    if kind == "day":
        return index
    if kind == "week":
        return (index + first_day.weekday()) // 7
    if kind == "month":
        months = [
            (d.year - first_day.year) * 12 + d.month - first_day.month
            for d in (first_day + timedelta(days=int(i)) for i in index)
        ]
        return np.array(months, dtype=np.int64)
    if kind == "all":
        return np.zeros(days, dtype=np.int64)
    raise ValueError(f"unknown period kind {kind!r}; use one of {PERIOD_KINDS}")


def _period_start(day: date, kind: str) -> date:
    if kind == "week":
        return day - timedelta(days=day.weekday())
    if kind == "month":
        return day.replace(day=1)
    return day  # a day, or the first day of the history for "all"


def bootstrap_ratio_interval(
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
    scale: float = 1.0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``scale × Σ numerator / Σ denominator``.

    Units (rows of both arrays) are resampled with replacement, ``replicates`` times with a
    fixed ``seed``. ``None`` when there are no units or the denominator sums to zero.

    >>> bootstrap_ratio_interval([2, 2, 2], [1, 1, 1])
    (2.0, 2.0)
    >>> low, high = bootstrap_ratio_interval([1, 3, 2, 4], [1, 1, 1, 1])
    >>> 1.0 <= low < 2.5 < high <= 4.0
    True
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    n = num.size
    if n == 0 or den.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    stats = np.empty(replicates, dtype=np.float64)
    whole = _whole_pairs(num, den)
    for r in range(replicates):
        draw = rng.integers(0, n, n)
        if whole is not None:
            # Whole numbers summing below 2**53: every float sum below is exact, so adding
            # the drawn values as integers gives the weighted sums bit for bit, faster.
            num_total, den_total = _drawn_sums(draw, whole)
            num_sum, d = float(num_total), float(den_total)
        else:
            weights = np.bincount(draw, minlength=n).astype(np.float64)
            num_sum, d = float(weights @ num), float(weights @ den)
        stats[r] = scale * num_sum / d if d > 0 else np.nan
    stats = stats[~np.isnan(stats)]
    if stats.size == 0:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def _whole_pairs(num: FloatArray, den: FloatArray) -> npt.NDArray[np.signedinteger[Any]] | None:
    """``num`` and ``den`` as integer columns ``[unit, (num, den)]`` when every resampled
    sum of them is exact.

    A resample's sum is at most ``n × max |value|``; below 2**53 float addition of whole
    numbers is exact in any order. ``None`` otherwise (or for fractions). The two values
    of a unit sit side by side, in 32 bits when they fit: the bootstrap reads them at
    random places, and one cache line instead of two per draw halves its time.

    >>> _whole_pairs(np.array([3.0, 1.0]), np.array([1.0, 1.0])).tolist()
    [[3, 1], [1, 1]]
    >>> _whole_pairs(np.array([0.5]), np.array([1.0])) is None
    True
    >>> _whole_pairs(np.array([2.0**40]), np.array([1.0])).dtype
    dtype('int64')
    """
    both = np.concatenate([num, den])
    if not np.all(np.isfinite(both)) or np.any(both != np.round(both)):
        return None
    largest = float(np.abs(both).max()) if both.size else 0.0
    if num.size * largest >= 2.0**53:
        return None
    dtype = np.int32 if largest < 2.0**31 else np.int64
    return np.column_stack([num, den]).astype(dtype)


@numba.njit(cache=True, nogil=True)
def _drawn_sums(draw: IntArray, pairs: npt.NDArray[np.signedinteger[Any]]) -> tuple[int, int]:
    """Σ of each column of ``pairs`` over the drawn rows (64-bit sums: exact here)."""
    num = 0
    den = 0
    for unit in draw:
        num += int(pairs[unit, 0])
        den += int(pairs[unit, 1])
    return num, den


# --- table builders ------------------------------------------------------------------


def _write_issuance_reach(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, result: TraceResult
) -> None:
    """Create ``intermediate.issuance_reach``: one row per issuance, traced FIFO."""
    ids = con.execute(
        "select txn_id from staging.transactions "
        "where source_id in (select account_id from intermediate.issuer_accounts) "
        "and target_id not in (select account_id from intermediate.issuer_accounts) "
        "order by occurred_at, txn_id"
    ).fetchall()
    reach = result.origin_reach
    frame = pl.DataFrame(
        {
            "txn_id": [row[0] for row in ids],
            "origin_day": np.datetime64(ledger.first_day, "D")
            + result.origin_day.astype("timedelta64[D]"),
            "amount_pence": reach[:, 0],
            **{f"reach_{t}_pence": reach[:, t] for t in range(1, MAX_K)},
            "hop_amount_pence": result.origin_hop_pence,
            "redeemed_pence": result.origin_end[:, 0],
            "fees_pence": result.origin_end[:, 1],
            "still_held_pence": result.origin_end[:, 2],
        },
        schema_overrides={"origin_day": pl.Date},
    )
    money = [c for c in frame.columns if c.endswith("_pence")]
    write_frame(
        con,
        frame,
        "intermediate.issuance_reach",
        "txn_id, origin_day, " + ", ".join(_money_cast(c) for c in money),
    )


def _write_money_trajectories(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, result: TraceResult
) -> None:
    """Create ``intermediate.money_trajectories``: amount by origin day, end state, hops."""
    days, states, hops = np.nonzero(result.trajectories)
    frame = pl.DataFrame(
        {
            "origin_day": [ledger.first_day + timedelta(days=int(d)) for d in days],
            "end_state": [END_STATES[int(s)] for s in states],
            "hops": hops.astype(np.int64),
            "amount_pence": result.trajectories[days, states, hops],
        },
        schema_overrides={"origin_day": pl.Date, "end_state": pl.String},
    )
    write_frame(
        con,
        frame,
        "intermediate.money_trajectories",
        "origin_day, end_state, hops, " + _money_cast("amount_pence"),
    )


def _write_holding_spells(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, result: TraceResult
) -> None:
    """Create ``intermediate.holding_spells``: spell histogram by exit day and bin."""
    days, bins = np.nonzero(result.spell_pence)
    edges = [spell_bin_edges(b) for b in range(SPELL_BINS)]
    frame = pl.DataFrame(
        {
            "exit_day": [ledger.first_day + timedelta(days=int(d)) for d in days],
            "bin": bins.astype(np.int64),
            "seconds_low": [edges[b][0] for b in bins],
            "seconds_high": [edges[b][1] for b in bins],
            "amount_pence": result.spell_pence[days, bins],
            "amount_seconds": result.spell_pence_seconds[days, bins] / 100.0,
        },
        schema_overrides={"exit_day": pl.Date},
    )
    write_frame(
        con,
        frame,
        "intermediate.holding_spells",
        "exit_day, bin, seconds_low, seconds_high, "
        + _money_cast("amount_pence")
        + ", amount_seconds",
    )


def _write_markov_multipliers(con: duckdb.DuckDBPyConnection, ledger: Ledger) -> None:
    """Create ``intermediate.markov_multipliers``: Markov LM_2 … LM_5 per period."""
    rows: list[dict[str, Any]] = []
    for kind in PERIOD_KINDS:
        for first, values in markov_lm_by_period(
            ledger, period_of_day(ledger.first_day, ledger.days, kind)
        ):
            row: dict[str, Any] = {
                "period_kind": kind,
                "period_start": _period_start(ledger.first_day + timedelta(days=first), kind),
            }
            for k in range(2, MAX_K + 1):
                row[f"markov_lm{k}"] = values[k - 1] if values else None
            rows.append(row)
    schema: dict[str, Any] = {"period_kind": pl.String, "period_start": pl.Date}
    schema.update({f"markov_lm{k}": pl.Float64 for k in range(2, MAX_K + 1)})
    write_frame(con, pl.DataFrame(rows, schema=schema), "intermediate.markov_multipliers", "*")


def _write_circulation_intervals(con: duckdb.DuckDBPyConnection, result: TraceResult) -> None:
    """Create ``intermediate.circulation_intervals``: bootstrap intervals, whole history."""
    reach = result.origin_reach.astype(np.float64)
    lm3 = bootstrap_ratio_interval(reach[:, :3].sum(axis=1), reach[:, 0])
    daily = con.execute(
        """
        with totals as (
            select
                local_day as day,
                sum(amount) filter (where kind = 'transfer') as transfer_volume,
                sum(amount) filter (where kind = 'issuance')
                - coalesce(sum(amount) filter (where kind in ('redemption', 'fee')), 0) as net
            from staging.transactions
            group by local_day
        )
        select
            cast(coalesce(totals.transfer_volume, 0) as double) as transfer_volume,
            cast(sum(coalesce(totals.net, 0)) over (order by spine.day) as double) as supply
        from intermediate.day_spine as spine
        left join totals on totals.day = spine.day
        order by spine.day
        """
    ).fetchnumpy()
    volume = np.asarray(daily["transfer_volume"], dtype=np.float64)
    supply = np.asarray(daily["supply"], dtype=np.float64)
    # velocity = Σ volume / mean supply = n · Σ volume / Σ supply over resampled days.
    velocity = bootstrap_ratio_interval(volume, supply, scale=float(volume.size))
    frame = pl.DataFrame(
        [
            {
                "period_kind": "all",
                "lm3_low": lm3[0] if lm3 else None,
                "lm3_high": lm3[1] if lm3 else None,
                "velocity_low": velocity[0] if velocity else None,
                "velocity_high": velocity[1] if velocity else None,
                "replicates": BOOTSTRAP_REPLICATES,
                "seed": BOOTSTRAP_SEED,
            }
        ],
        schema={
            "period_kind": pl.String,
            "lm3_low": pl.Float64,
            "lm3_high": pl.Float64,
            "velocity_low": pl.Float64,
            "velocity_high": pl.Float64,
            "replicates": pl.Int64,
            "seed": pl.Int64,
        },
    )
    write_frame(con, frame, "intermediate.circulation_intervals", "*")


def build_traced_tables(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Trace the whole ledger (FIFO) and write every table that derives from it.

    The replay resumes from the state the previous build stored when that state is a
    state of today's ledger (:mod:`circulate.metrics.trace_checkpoint`), and stores its own.
    """
    ledger = load_ledger(con)
    # Resume from the previous build's state when it is a state of this ledger: only the
    # entries added since are replayed (a night's batch instead of the whole history).
    start = read_checkpoint(con, ledger, "fifo")
    # Lenient: an overdrawn account must fail the build's assertions
    # (account_balances_never_negative, circulation_metrics_conservation), which name
    # every offending row, rather than stop the build at the first one.
    state = replay(ledger, "fifo", start=start)
    write_checkpoint(con, state, ledger.account_ids, start.rows if start else 0)
    result = state.result()
    _write_issuance_reach(con, ledger, result)
    _write_money_trajectories(con, ledger, result)
    _write_holding_spells(con, ledger, result)
    _write_markov_multipliers(con, ledger)
    _write_circulation_intervals(con, result)


# When build_traced_tables resumes the stored trace and when it replays from the start
# (trace_checkpoint.read_checkpoint); a resumed replay equals a replay from the start.
_TRACED_REFRESH = (
    "rewritten every night from the money trace, which resumes from the state the previous "
    "night stored (intermediate.trace_checkpoint) with the night's new entries, and replays "
    "from the first entry when the night is no continuation (an entry sorting before the "
    "last one traced, a changed or rebuilt load batch of staging.transactions, changed "
    "issuer accounts, a new tracer version) and on `circulate run --full`; the figures are "
    "the same either way"
)
_CHECKPOINT_REFRESH = (
    "replaced every night by the state the night's money trace stopped in, for the next "
    "night to resume from (when a night replays from the first entry instead: see "
    "intermediate.issuance_reach)"
)

MODELS = [
    PythonModel(
        "intermediate",
        "issuance_reach",
        TRACE_READS | {"intermediate.day_spine"},
        build_traced_tables,
        "One row per issuance, its money traced FIFO through the whole history: amount, "
        "reach_t = amount that made at least t transfers (t = 1..4), hop_amount = sum of "
        "amount x hops, and how much ended redeemed, as fees or is still held.",
        _TRACED_REFRESH,
        also_builds={
            "intermediate.money_trajectories": (
                "Traced (FIFO) money by local day of its issuance, end state (redeemed, fee, "
                "held) and hops (transfers made); amount in currency units."
            ),
            "intermediate.holding_spells": (
                "Holding spells (time a unit sat in one member account before any outflow), "
                "traced FIFO, by local exit day and logarithmic duration bin (2 % wide above "
                "one minute): amount and amount x seconds (exact, for the mean)."
            ),
            "intermediate.markov_multipliers": (
                "Markov estimate of LM_2..LM_5 per period (day, week, month, all): P = each "
                "account's transfer shares of its money in the period, pi0 = where issuance "
                "lands."
            ),
            "intermediate.circulation_intervals": (
                f"Bootstrap 95 % percentile intervals ({BOOTSTRAP_REPLICATES} replicates, seed "
                f"{BOOTSTRAP_SEED}) for the whole history: LM3 resampling issuances, velocity "
                "resampling days."
            ),
            **DESCRIPTIONS,
        },
        refresh_by_table={
            # Markov chains are estimated from the whole ledger, not from the trace.
            "intermediate.markov_multipliers": REBUILT_NIGHTLY,
            **dict.fromkeys(DESCRIPTIONS, _CHECKPOINT_REFRESH),
        },
        written_by=dict.fromkeys(DESCRIPTIONS, write_checkpoint),
    ),
]


# --- reading the published marts -----------------------------------------------------

SUMMARY_COLUMNS = (
    "period_kind",
    "period_start",
    "period_end",
    "issued",
    "redeemed",
    "fees",
    "transfer_volume",
    "transfer_count",
    "mean_money_supply",
    "velocity",
    "velocity_low",
    "velocity_high",
    "full_multiplier",
    "lm2",
    "lm3",
    "lm3_low",
    "lm3_high",
    "lm4",
    "lm5",
    "markov_lm2",
    "markov_lm3",
    "markov_lm4",
    "markov_lm5",
    "mean_trajectory_length",
    "mean_holding_days",
    "median_holding_days",
    "still_held",
    "leakage",
    "dormancy",
    "active_accounts",
    "frequent_traders",
    "new_accounts",
    "churned_accounts",
)


#: Columns of ``marts.circulation_metrics`` that depend on the order money is traced in.
TRACED_COLUMNS = (
    "lm2",
    "lm3",
    "lm3_low",
    "lm3_high",
    "lm4",
    "lm5",
    "mean_trajectory_length",
    "mean_holding_days",
    "median_holding_days",
    "still_held",
)


def _sum_by(groups: IntArray, values: IntArray, count: int) -> IntArray:
    """Exact integer sums of the rows of ``values`` by group (``groups`` in 0..count-1)."""
    out = np.zeros((count, *values.shape[1:]), dtype=np.int64)
    np.add.at(out, groups, values)
    return out


def traced_figures(
    ledger: Ledger, result: TraceResult, period_kind: str
) -> dict[date, dict[str, Any]]:
    """The traced columns of ``marts.circulation_metrics`` from a trace, by period start.

    The same definitions as the mart: lm_k and mean_trajectory_length over the money
    issued in the period (followed to the end of the ledger), still_held of it, holding
    over the spells ended in the period, and the bootstrap interval of LM3 for the whole
    history only. Keys are the periods' first days (the whole history: ``first_day``).

    Two issuances on day 0, still held: 10.00 that made 2 transfers and 30.00 that made
    none; one spell of 5.00 held for a day. LM2 = (40 + 10) / 40, LM3 = (40 + 10 + 10) / 40,
    mean trajectory = 10 · 2 / 40:

    >>> reach = np.array([[1000, 1000, 1000, 0, 0, 0], [3000, 0, 0, 0, 0, 0]])
    >>> spells = np.zeros((1, SPELL_BINS), np.int64)
    >>> spells[0, 368] = 500  # the bin of one day
    >>> r = TraceResult("lifo", np.zeros((1, 3, 3), np.int64), reach, np.array([0, 0]),
    ...     np.array([[0, 0, 1000], [0, 0, 3000]]), np.array([2000, 0]), spells, spells * 86400.0)
    >>> l = Ledger(*(np.zeros(1, np.int64),) * 6, first_day=date(2025, 1, 6))
    >>> f = traced_figures(l, r, "day")[date(2025, 1, 6)]
    >>> f["lm2"], f["lm3"], f["mean_trajectory_length"], f["still_held"]
    (1.25, 1.5, 0.5, Decimal('40.00'))
    >>> f["mean_holding_days"], f["median_holding_days"]
    (1.0, 1.0)
    """
    days = max(ledger.days, result.spell_pence.shape[0], 1)
    period = period_of_day(ledger.first_day, days, period_kind)
    periods = int(period.max()) + 1
    starts = np.zeros(periods, dtype=np.int64)
    starts[period[::-1]] = np.arange(days, dtype=np.int64)[::-1]  # first day of each period
    of_issuance = period[result.origin_day]
    reach = _sum_by(of_issuance, result.origin_reach, periods)
    hop_pence = _sum_by(of_issuance, result.origin_hop_pence, periods)
    held = _sum_by(of_issuance, result.origin_end[:, END_STATES.index("held")], periods)
    spell_pence = _sum_by(period[: result.spell_pence.shape[0]], result.spell_pence, periods)
    spell_seconds = np.zeros((periods, SPELL_BINS), dtype=np.float64)
    np.add.at(spell_seconds, period[: result.spell_pence.shape[0]], result.spell_pence_seconds)
    lm3 = (
        bootstrap_ratio_interval(result.origin_reach[:, :3].sum(axis=1), result.origin_reach[:, 0])
        if period_kind == "all"
        else None
    )
    figures: dict[date, dict[str, Any]] = {}
    for p in range(periods):
        issued = int(reach[p, 0])
        spelled = int(spell_pence[p].sum())
        median = weighted_median_from_bins(spell_pence[p], spell_seconds[p])
        start = ledger.first_day + timedelta(days=int(starts[p]))
        figures[_period_start(start, period_kind)] = {
            **{
                f"lm{k}": float(reach[p, :k].sum() / issued) if issued else None
                for k in range(2, MAX_K + 1)
            },
            "lm3_low": lm3[0] if lm3 else None,
            "lm3_high": lm3[1] if lm3 else None,
            "mean_trajectory_length": float(hop_pence[p] / issued) if issued else None,
            "mean_holding_days": (
                float(spell_seconds[p].sum() / spelled / 86400) if spelled else None
            ),
            "median_holding_days": median / 86400 if median is not None else None,
            "still_held": Decimal(int(held[p])).scaleb(-2),
        }
    return figures


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def read_metrics(
    con: duckdb.DuckDBPyConnection, period_kind: str = "all", policy: str = "fifo"
) -> list[dict[str, Any]]:
    """Rows of ``marts.circulation_metrics`` for one period kind, oldest first, JSON-ready.

    Money comes back as two-decimal strings, days as ISO dates, ratios as floats; every
    row says which ``policy`` its traced figures follow. With ``"fifo"`` nothing is
    recomputed: this is the published mart as the nightly build wrote it. With
    ``"lifo"`` the published ledger (``staging.transactions``) is replayed LIFO, read
    only, and the columns of :data:`TRACED_COLUMNS` are replaced by that trace's
    (:func:`traced_figures`); the others do not depend on the order and stay as published.
    A large ledger takes a while: about as long as the nightly build's full replay.
    """
    if period_kind not in PERIOD_KINDS:
        raise InputError(f"Unknown period {period_kind!r}: use one of {', '.join(PERIOD_KINDS)}.")
    if policy not in POLICIES:
        raise InputError(f"Unknown policy {policy!r}: use one of {', '.join(POLICIES)}.")
    try:
        relation = con.execute(
            f"select {', '.join(SUMMARY_COLUMNS)} from marts.circulation_metrics "  # noqa: S608
            "where period_kind = $kind order by period_start",
            {"kind": period_kind},
        )
    except duckdb.CatalogException as error:
        raise InputError(
            "The warehouse has no marts.circulation_metrics: it was built before the "
            "circulation metrics existed; run `circulate run` to rebuild it."
        ) from error
    rows = [dict(zip(SUMMARY_COLUMNS, row, strict=True)) for row in relation.fetchall()]
    if policy != "fifo" and rows:
        ledger = load_ledger(con)
        figures = traced_figures(ledger, trace(ledger, cast(Order, policy), con), period_kind)
        for row in rows:
            # The whole history's row starts on the first day of the day spine.
            start = ledger.first_day if period_kind == "all" else row["period_start"]
            nothing_traced = {**dict.fromkeys(TRACED_COLUMNS), "still_held": Decimal("0.00")}
            row.update(figures.get(start, nothing_traced))
    return [
        {"policy": policy, **{name: _jsonable(value) for name, value in row.items()}}
        for row in rows
    ]
