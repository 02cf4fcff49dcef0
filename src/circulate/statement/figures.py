"""The figures of a period statement, read from the published warehouse.

Every figure uses only the ledger up to the period's last day, so a statement stays the
same while later nights add later days (DESIGN.md §4 definitions; §5 suppression):

- totals are sums of ``marts.daily_circulation`` over the period's days, money in
  circulation its end-of-day balance before and at the end of the period;
- velocity = transfer volume / mean daily money in circulation over the period (not
  annualised); full multiplier = (issued + transfer volume) / issued; leakage = redeemed
  / issued;
- the Markov LM2 … LM5 of the period's own flows (:func:`circulate.metrics.markov.markov_lm`),
  with a 95 % interval from resampling the period's days. The traced LM of money issued
  in the period is left to the nightly report: it keeps growing as that money is spent
  after the period ends;
- the scorecard, month rows, network and deprivation figures are the nightly report's own
  (``circulate.report.evidence``), restricted to the complete months or days of the period,
  with the same suppression.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import polars as pl

from circulate.metrics.circulation import BOOTSTRAP_REPLICATES, BOOTSTRAP_SEED
from circulate.metrics.markov import markov_lm
from circulate.report import evidence
from circulate.report.data import query_frame
from circulate.statement.period import Period
from circulate.warehouse.connection import table_exists

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class PeriodTotals:
    """Circulation totals of one period.

    Attributes
    ----------
    period
        The days covered.
    days_with_data
        Days of the period inside the warehouse's span (``marts.daily_circulation``).
    quiet_days
        Of those, days with no transaction at all.
    issued, redeemed, fees, transfer_volume, transfer_count
        Sums over the period's days.
    supply_start, supply_end
        Money in circulation at the end of the day before the period (0 before the first
        day) and at the end of its last day with data (``None`` without any).
    mean_supply
        Mean end-of-day money in circulation over the days with data.
    active_accounts
        Distinct accounts paying or paid by a transfer in the period; ``None`` when fewer
        than k (hidden) or without data.
    paper_issued
        Money issued as paper notes (channel ``paper``) in the period.
    """

    period: Period
    days_with_data: int
    quiet_days: int
    issued: Decimal
    redeemed: Decimal
    fees: Decimal
    transfer_volume: Decimal
    transfer_count: int
    supply_start: Decimal
    supply_end: Decimal | None
    mean_supply: float | None
    active_accounts: int | None
    paper_issued: Decimal

    @property
    def velocity(self) -> float | None:
        """Transfer volume / mean daily money in circulation (not annualised)."""
        if not self.mean_supply:
            return None
        return float(self.transfer_volume) / self.mean_supply

    @property
    def full_multiplier(self) -> float | None:
        """(issued + transfer volume) / issued."""
        return float((self.issued + self.transfer_volume) / self.issued) if self.issued else None

    @property
    def leakage(self) -> float | None:
        """Redeemed / issued."""
        return float(self.redeemed / self.issued) if self.issued else None

    @property
    def paper_share(self) -> float | None:
        """Share of the period's issuance that went out as paper notes."""
        return float(self.paper_issued / self.issued) if self.issued else None


@dataclass(frozen=True)
class PeriodMultiplier:
    """Markov LM_k of the period's flows with a day-resampling interval for LM3.

    Attributes
    ----------
    lm
        ``{2: LM2, …, 5: LM5}``; empty when nothing was issued in the period.
    lm3_low, lm3_high
        95 % percentile interval of LM3 over resampled days (``None`` without data).
    """

    lm: dict[int, float]
    lm3_low: float | None
    lm3_high: float | None


@dataclass(frozen=True)
class StatementFigures:
    """Everything a statement publishes, already suppressed.

    Attributes
    ----------
    period, previous
        The statement's period and the one of equal length before it.
    warehouse_first_day, warehouse_last_day
        The span of ``marts.daily_circulation``.
    totals, previous_totals
        :class:`PeriodTotals` of both periods.
    multiplier, previous_multiplier
        :class:`PeriodMultiplier` of both periods.
    scorecard
        ``marts.impact_scorecard`` rows of the period's complete months (small groups
        hidden as in the nightly report).
    months
        The nightly report's month rows (velocity, leakage, members, network
        concentration, public-body flows) for the period's complete months.
    network
        ``marts.network_summary`` member-network rows of those months (a month with fewer
        than k active members shows no figure).
    deciles
        Residents' spend and business receipts by deprivation decile over the period.
    thresholds
        ``marts.impact_thresholds``: the thresholds in force.
    k_anonymity
        Smallest group published.
    """

    period: Period
    previous: Period
    warehouse_first_day: dt.date
    warehouse_last_day: dt.date
    totals: PeriodTotals
    previous_totals: PeriodTotals
    multiplier: PeriodMultiplier
    previous_multiplier: PeriodMultiplier
    scorecard: pl.DataFrame
    months: pl.DataFrame
    network: pl.DataFrame
    deciles: pl.DataFrame
    thresholds: pl.DataFrame
    k_anonymity: int

    @property
    def complete(self) -> bool:
        """Whether the warehouse holds every day of the period."""
        return self.totals.days_with_data == self.period.days


def warehouse_span(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date]:
    """First and last day of ``marts.daily_circulation``; ``ValueError`` when empty."""
    first, last = con.execute("select min(day), max(day) from marts.daily_circulation").fetchall()[
        0
    ]
    if first is None:
        raise ValueError(
            "marts.daily_circulation is empty: run `circulate run` to publish data before "
            "making a statement"
        )
    return first, last


def period_totals(con: duckdb.DuckDBPyConnection, period: Period, k: int) -> PeriodTotals:
    """Sum ``marts.daily_circulation`` over ``period`` (see :class:`PeriodTotals`)."""
    params = {"start": period.start, "end": period.end}
    row = con.execute(
        """
        select count(*),
               count(*) filter (where issued = 0 and redeemed = 0 and fees = 0
                                and transfer_count = 0),
               coalesce(sum(issued), 0), coalesce(sum(redeemed), 0), coalesce(sum(fees), 0),
               coalesce(sum(transfer_volume), 0), coalesce(sum(transfer_count), 0),
               arg_max(money_supply, day), avg(money_supply::double)
        from marts.daily_circulation
        where day between $start and $end
        """,
        params,
    ).fetchall()[0]
    before = con.execute(
        "select arg_max(money_supply, day) from marts.daily_circulation where day < $start",
        {"start": period.start},
    ).fetchall()[0][0]
    extra = con.execute(
        """
        select
            (select count(distinct account_id) from (
                select source_id as account_id from intermediate.member_transfers
                where local_day between $start and $end
                union all
                select target_id from intermediate.member_transfers
                where local_day between $start and $end)),
            (select coalesce(sum(amount), 0) from staging.transactions
             where kind = 'issuance' and lower(channel) = 'paper'
               and local_day between $start and $end)
        """,
        params,
    ).fetchall()[0]
    active = int(extra[0])
    return PeriodTotals(
        period=period,
        days_with_data=int(row[0]),
        quiet_days=int(row[1]),
        issued=row[2],
        redeemed=row[3],
        fees=row[4],
        transfer_volume=row[5],
        transfer_count=int(row[6]),
        supply_start=ZERO if before is None else before,
        supply_end=row[7],
        mean_supply=None if row[8] is None else float(row[8]),
        active_accounts=None if 0 < active < k or not row[0] else active,
        paper_issued=extra[1],
    )


_FLOWS_SQL = """
with issuers as (select account_id from intermediate.issuer_accounts),
members as (
    select account_id, row_number() over (order by account_id) - 1 as idx
    from (
        select source_id as account_id from staging.transactions where local_day <= $end
        union
        select target_id from staging.transactions where local_day <= $end
    )
    where account_id not in (select account_id from issuers)
),
rows as (
    select t.local_day, t.kind, t.amount::double as amount, s.idx as source, d.idx as target
    from staging.transactions as t
    left join members as s on s.account_id = t.source_id
    left join members as d on d.account_id = t.target_id
    where t.local_day <= $end
)
select (local_day - $start)::integer as day, kind, coalesce(source, -1) as source,
       coalesce(target, -1) as target, sum(amount) as amount
from rows
group by all
order by all
"""


def period_multiplier(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> PeriodMultiplier:
    """Markov LM2 … LM5 of the period's flows, LM3 with a day-resampling interval.

    P is built as in :mod:`circulate.metrics.markov`: account i's money in the period is
    what left it (any kind) plus its balance at the period's end; transfers are the
    transitions; π0 is where the period's issuance landed. The interval resamples the
    period's days with replacement (balances at the end stay as they were).
    """
    frame = query_frame(con, _FLOWS_SQL, {"start": period.start, "end": period.end})
    if frame.is_empty():
        return PeriodMultiplier({}, None, None)
    day = frame["day"].to_numpy()
    source = frame["source"].to_numpy().astype(np.int64)
    target = frame["target"].to_numpy().astype(np.int64)
    amount = frame["amount"].to_numpy()
    accounts = int(max(source.max(initial=-1), target.max(initial=-1))) + 1
    balance = np.bincount(target[target >= 0], amount[target >= 0], accounts) - np.bincount(
        source[source >= 0], amount[source >= 0], accounts
    )
    inside = day >= 0
    day, source, target, amount = day[inside], source[inside], target[inside], amount[inside]
    transfer = (frame["kind"].to_numpy()[inside] == "transfer") & (source >= 0) & (target >= 0)
    landing = (source < 0) & (target >= 0)
    paying = source >= 0

    def estimate(weight: np.ndarray) -> list[float] | None:
        moved = amount * weight[day]
        outflow = np.bincount(source[paying], moved[paying], accounts)
        edges = transfer & (moved > 0)
        return markov_lm(
            np.bincount(target[landing], moved[landing], accounts),
            source[edges],
            target[edges],
            moved[edges],
            outflow + np.maximum(balance, 0.0),
        )

    point = estimate(np.ones(period.days))
    if point is None:
        return PeriodMultiplier({}, None, None)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(replicates):
        weight = np.bincount(rng.integers(0, period.days, period.days), minlength=period.days)
        values = estimate(weight.astype(np.float64))
        if values is not None:
            draws.append(values[2])
    low, high = (None, None) if not draws else np.percentile(draws, [2.5, 97.5])
    return PeriodMultiplier(
        {k: point[k - 1] for k in (2, 3, 4, 5)},
        None if low is None else float(low),
        None if high is None else float(high),
    )


def period_scorecard(
    con: duckdb.DuckDBPyConnection, period: Period, months: pl.DataFrame, k: int
) -> pl.DataFrame:
    """The scorecard rows of the period's complete months, hidden as the nightly hides them."""
    if not table_exists(con, "marts.impact_scorecard") or not period.months():
        return pl.DataFrame()
    frame = query_frame(
        con,
        "select * from marts.impact_scorecard where period_complete "
        "and period_start between $start and $end order by period_start",
        {"start": period.months()[0], "end": period.months()[-1]},
    )
    if frame.is_empty():
        return frame
    parts = [
        evidence._hide_revealing(part, months, k)
        for part in frame.partition_by("period_start", maintain_order=True)
    ]
    return pl.concat(parts)


def period_network(
    con: duckdb.DuckDBPyConnection, period: Period, months: pl.DataFrame
) -> pl.DataFrame:
    """Member-network month rows of the period; a month hidden for k shows no figure."""
    if not period.months():
        return pl.DataFrame()
    frame = query_frame(
        con,
        """
        select period_start as month, nodes, edges, reciprocity, giant_scc_volume_share,
               cycle_volume_share, receipts_top5_share, fragility_top5
        from marts.network_summary
        where scope = 'member' and period_kind = 'month'
          and period_start between $start and $end
        order by month
        """,
        {"start": period.months()[0], "end": period.months()[-1]},
    )
    if frame.is_empty() or months.is_empty():
        return frame
    hidden = months.filter(pl.col("active_accounts").is_null())["month"].to_list()
    measures = [c for c in frame.columns if c != "month"]
    return frame.with_columns(
        pl.when(pl.col("month").is_in(hidden)).then(None).otherwise(pl.col(c)).alias(c)
        for c in measures
    )


def load_statement_figures(
    con: duckdb.DuckDBPyConnection, period: Period, k: int, *, replicates: int = 400
) -> StatementFigures:
    """Every figure of the statement for ``period`` (see the module docstring).

    Raises
    ------
    ValueError
        When the warehouse is empty or holds no day of the period.
    """
    first, last = warehouse_span(con)
    if period.end < first or period.start > last:
        raise ValueError(
            f"the warehouse holds {first} .. {last}, no day of {period.start} .. "
            f"{period.end}: choose --from/--to inside that span"
        )
    previous = period.previous()
    trends = evidence._trends(con, period.end, k)
    months = trends.filter(pl.col("month").is_in(period.months()))
    thresholds = evidence.impact_thresholds(con)
    return StatementFigures(
        period=period,
        previous=previous,
        warehouse_first_day=first,
        warehouse_last_day=last,
        totals=period_totals(con, period, k),
        previous_totals=period_totals(con, previous, k),
        multiplier=period_multiplier(con, period, replicates=replicates),
        previous_multiplier=period_multiplier(con, previous, replicates=replicates),
        scorecard=period_scorecard(con, period, trends, k),
        months=months,
        network=period_network(con, period, months),
        deciles=evidence._deciles(con, k, period.start, period.end),
        thresholds=thresholds,
        k_anonymity=k,
    )


def _plain(value: Any) -> Any:
    """A JSON-friendly, stable form of one figure (floats to 10 significant digits)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.10g}")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _totals_dict(t: PeriodTotals) -> dict[str, Any]:
    return {
        "days_with_data": t.days_with_data,
        "quiet_days": t.quiet_days,
        "issued": t.issued,
        "redeemed": t.redeemed,
        "fees": t.fees,
        "transfer_volume": t.transfer_volume,
        "transfer_count": t.transfer_count,
        "money_in_circulation_start": t.supply_start,
        "money_in_circulation_end": t.supply_end,
        "mean_money_in_circulation": t.mean_supply,
        "velocity": t.velocity,
        "full_multiplier": t.full_multiplier,
        "leakage": t.leakage,
        "active_accounts": t.active_accounts,
        "paper_share": t.paper_share,
    }


def _multiplier_dict(m: PeriodMultiplier) -> dict[str, Any]:
    out: dict[str, Any] = {f"markov_lm{k}": v for k, v in m.lm.items()}
    return out | {"markov_lm3_low": m.lm3_low, "markov_lm3_high": m.lm3_high}


def flat_figures(f: StatementFigures) -> dict[str, Any]:
    """Every published figure under a stable dotted key, for comparing two renders.

    Keys look like ``period.issued``, ``previous.velocity``,
    ``scorecard.2025-05.lm3``, ``months.2025-05.active_accounts``, ``deciles.3.residents``.
    """
    out: dict[str, Any] = {}
    for prefix, totals, multiplier in (
        ("period", f.totals, f.multiplier),
        ("previous", f.previous_totals, f.previous_multiplier),
    ):
        for key, value in (_totals_dict(totals) | _multiplier_dict(multiplier)).items():
            out[f"{prefix}.{key}"] = _plain(value)
    for row in f.scorecard.iter_rows(named=True):
        out[f"scorecard.{row['period_start']:%Y-%m}.{row['indicator']}"] = _plain(row["value"])
        out[f"scorecard.{row['period_start']:%Y-%m}.{row['indicator']}.status"] = row["status"]
    for name, frame, key in (("months", f.months, "month"), ("network", f.network, "month")):
        for row in frame.iter_rows(named=True):
            for column, value in row.items():
                if column != key:
                    out[f"{name}.{row[key]:%Y-%m}.{column}"] = _plain(value)
    for row in f.deciles.iter_rows(named=True):
        for column, value in row.items():
            if column != "decile":
                out[f"deciles.{row['decile']}.{column}"] = _plain(value)
    return out


def figures_that_moved(
    old: dict[str, Any], new: dict[str, Any]
) -> list[tuple[str, Any, Any, float | None]]:
    """Keys whose value differs: ``(key, old, new, new − old when both are numbers)``.

    >>> figures_that_moved({"a": "10.00", "b": 1, "c": "x"}, {"a": "12.50", "b": 1, "d": 2})
    [('a', '10.00', '12.50', 2.5), ('c', 'x', None, None), ('d', None, 2, None)]
    """
    moved = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        change = None
        try:
            if before is not None and after is not None:
                change = float(f"{float(after) - float(before):.10g}")
        except (TypeError, ValueError):
            change = None
        moved.append((key, before, after, change))
    return moved
