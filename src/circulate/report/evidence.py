"""Read the public-value evidence for the funder report: scorecard, flags, trends, network.

Everything is aggregated in DuckDB and bounded by the report date, and every figure that
describes accounts is checked against k here, before any chart, table or CSV sees it:
counts between 1 and k − 1 become null, and so do the shares that would reveal them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import polars as pl

from circulate.metrics.network_flows import complementary_suppression
from circulate.report.data import query_frame
from circulate.warehouse.connection import table_exists


@dataclass(frozen=True)
class Evidence:
    """What the impact sections read.

    Attributes
    ----------
    report_month
        The month the scorecard and flags describe: the latest complete month up to the
        report date, else the latest month (``None`` when the warehouse has no scorecard).
    report_month_complete
        Whether that month is complete.
    scorecard
        ``marts.impact_scorecard`` rows of ``report_month`` (values hidden where they would
        reveal fewer than k accounts: ``hidden`` is true).
    flags
        ``marts.risk_flags`` rows of ``report_month``.
    thresholds
        ``marts.impact_thresholds``.
    trends
        One row per month up to the report date: velocity, leakage, dormancy, traced and
        Markov LM3, full multiplier, active / new / churned members (small counts null),
        top-5 receipt share, fragility, public-body flows.
    multiplier
        Whole-history multipliers: traced LM2..LM5 with the LM3 interval, Markov LM2..LM5.
    network
        ``marts.network_summary`` whole-history rows (``scope`` member and business).
    sector_flows
        Whole-history payer sector × payee sector cells (suppressed cells have null volume).
    deciles
        Residents' spend and business receipts by deprivation decile of the area, with
        suppression.
    coverage
        Data-coverage figures: days, files, rows, duplicates, quarantined, paper issuance.
    """

    report_month: dt.date | None
    report_month_complete: bool
    scorecard: pl.DataFrame
    flags: pl.DataFrame
    thresholds: pl.DataFrame
    trends: pl.DataFrame
    multiplier: dict[str, Any]
    network: pl.DataFrame
    sector_flows: pl.DataFrame
    deciles: pl.DataFrame
    coverage: dict[str, Any]


#: Tables the impact sections read beyond the scorecard marts.
IMPACT_SOURCES = (
    "marts.circulation_metrics",
    "marts.network_summary",
    "marts.spend_breakdown",
    "marts.sector_flows",
    "staging.accounts",
    "staging.transactions",
    "intermediate.member_transfers",
    "audit.files",
)


def hide_small(values: pl.Expr, k: int) -> pl.Expr:
    """Null a count between 1 and ``k`` − 1 (zero reveals no one and stays).

    >>> frame = pl.DataFrame({"n": [0, 2, 5]})
    >>> frame.select(hide_small(pl.col("n"), 5).alias("n"))["n"].to_list()
    [0, None, 5]
    """
    return pl.when((values > 0) & (values < k)).then(None).otherwise(values)


def load_evidence(con: duckdb.DuckDBPyConnection, as_of: dt.date, k: int) -> Evidence:
    """Query the published warehouse for the impact sections of the report."""
    scorecard_all = (
        query_frame(
            con,
            "select * from marts.impact_scorecard where period_start <= $as_of "
            "order by period_start",
            {"as_of": as_of},
        )
        if table_exists(con, "marts.impact_scorecard")
        else pl.DataFrame()
    )
    report_month, complete = _pick_month(scorecard_all, as_of)
    if not all(table_exists(con, t) for t in IMPACT_SOURCES):
        # A warehouse from before the impact marts (or a partial one): basic report only.
        empty = pl.DataFrame()
        return Evidence(
            report_month=report_month,
            report_month_complete=complete,
            scorecard=empty,
            flags=empty,
            thresholds=empty,
            trends=empty,
            multiplier={},
            network=empty,
            sector_flows=empty,
            deciles=empty,
            coverage={},
        )
    trends = _trends(con, as_of, k)
    scorecard = (
        _hide_revealing(scorecard_all.filter(pl.col("period_start") == report_month), trends, k)
        if report_month
        else pl.DataFrame()
    )
    flags = (
        query_frame(
            con,
            "select * from marts.risk_flags where period_start = $month order by flag",
            {"month": report_month},
        )
        if report_month and table_exists(con, "marts.risk_flags")
        else pl.DataFrame()
    )
    thresholds = impact_thresholds(con)
    return Evidence(
        report_month=report_month,
        report_month_complete=complete,
        scorecard=scorecard,
        flags=flags,
        thresholds=thresholds,
        trends=trends,
        multiplier=_multiplier(con),
        network=query_frame(
            con, "select * from marts.network_summary where period_kind = 'all' order by scope"
        ),
        sector_flows=query_frame(
            con,
            """
            select source_sector, target_sector, volume::double as volume,
                   transfer_count, source_accounts, target_accounts, suppressed
            from marts.sector_flows where period_kind = 'all'
            order by source_sector, target_sector
            """,
        ),
        deciles=_deciles(con, k),
        coverage=_coverage(con, as_of),
    )


def _pick_month(scorecard: pl.DataFrame, as_of: dt.date) -> tuple[dt.date | None, bool]:
    if scorecard.is_empty():
        return None, False
    months = scorecard.select("period_start", "period_end", "period_complete").unique()
    done = months.filter(
        pl.col("period_complete")
        & (pl.col("period_start").dt.month_end() <= pl.lit(as_of, dtype=pl.Date))
    )
    if len(done):
        return done["period_start"].max(), True  # type: ignore[return-value]
    started = months.filter(pl.col("period_start") <= pl.lit(as_of, dtype=pl.Date))
    if started.is_empty():
        return None, False
    return started["period_start"].max(), False  # type: ignore[return-value]


#: Scorecard indicators computed from a count of accounts, and the count's trends column.
_COUNT_BEHIND = {"new_members": "new_accounts", "churn_rate": "churned_accounts"}


def _hide_revealing(scorecard: pl.DataFrame, trends: pl.DataFrame, k: int) -> pl.DataFrame:
    """Hide a share whose count is below k (the page shows active members beside it)."""
    month = scorecard["period_start"][0]
    row = trends.filter(pl.col("month") == month)
    hidden: dict[str, bool] = {}
    for indicator, column in _COUNT_BEHIND.items():
        hidden[indicator] = bool(len(row)) and row[column][0] is None
    if len(row) and row["active_accounts"][0] is None:
        hidden |= {"active_members": True, "frequent_traders": True}
    flags = scorecard["indicator"].replace_strict(hidden, default=False, return_dtype=pl.Boolean)
    return scorecard.with_columns(
        pl.Series("hidden", flags),
    ).with_columns(
        *(
            pl.when(pl.col("hidden")).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("value", "previous_value", "change")
        ),
        pl.when(pl.col("hidden"))
        .then(pl.lit(f"Hidden: it would describe fewer than {k} accounts."))
        .otherwise(pl.col("explanation"))
        .alias("explanation"),
        pl.when(pl.col("hidden"))
        .then(pl.lit("no data"))
        .otherwise(pl.col("status"))
        .alias("status"),
    )


def impact_thresholds(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The public-value thresholds in force (``marts.impact_thresholds``; empty without)."""
    if not table_exists(con, "marts.impact_thresholds"):
        return pl.DataFrame()
    return query_frame(con, "select * from marts.impact_thresholds")


def _trends(con: duckdb.DuckDBPyConnection, as_of: dt.date, k: int) -> pl.DataFrame:
    frame = query_frame(
        con,
        """
        select
            c.period_start as month,
            c.velocity, c.leakage, c.dormancy,
            c.lm3, c.markov_lm3, c.full_multiplier,
            c.active_accounts, c.new_accounts, c.churned_accounts, c.frequent_traders,
            n.receipts_top5_share, n.fragility_top5,
            s.paid_to_public_bodies::double as paid_to_public_bodies,
            s.paid_by_public_bodies::double as paid_by_public_bodies,
            s.payers_to_public_bodies, s.payees_of_public_bodies
        from marts.circulation_metrics as c
        left join marts.network_summary as n
            on n.period_kind = 'month' and n.scope = 'member' and n.period_start = c.period_start
        left join marts.spend_breakdown as s
            on s.period_kind = 'month' and s.period_start = c.period_start
        where c.period_kind = 'month' and c.period_start <= $as_of
        order by month
        """,
        {"as_of": as_of},
    )
    counts = ("active_accounts", "new_accounts", "churned_accounts", "frequent_traders")
    return frame.with_columns(
        *(hide_small(pl.col(c), k).alias(c) for c in counts),
        # Public bodies are institutions; the members paying or paid by them are protected.
        pl.when(pl.col("payers_to_public_bodies") < k)
        .then(None)
        .otherwise(pl.col("paid_to_public_bodies"))
        .alias("paid_to_public_bodies"),
        pl.when(pl.col("payees_of_public_bodies") < k)
        .then(None)
        .otherwise(pl.col("paid_by_public_bodies"))
        .alias("paid_by_public_bodies"),
        # With fewer than k active members the whole month is one small group.
        *(
            pl.when(pl.col("active_accounts").is_between(1, k - 1))
            .then(None)
            .otherwise(pl.col(c))
            .alias(c)
            for c in ("receipts_top5_share", "fragility_top5")
        ),
    ).drop("payers_to_public_bodies", "payees_of_public_bodies")


def _multiplier(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    rows = query_frame(
        con,
        """
        select lm2, lm3, lm4, lm5, lm3_low, lm3_high, markov_lm2, markov_lm3, markov_lm4,
               markov_lm5, full_multiplier, mean_trajectory_length, velocity, velocity_low,
               velocity_high, period_start, period_end, active_accounts
        from marts.circulation_metrics where period_kind = 'all'
        """,
    )
    return rows.row(0, named=True) if len(rows) else {}


_DECILES_SQL = """
with accounts as (
    select account_id, account_type, deprivation_decile as decile
    from staging.accounts
    where deprivation_decile is not null
),
spend as (
    select a.decile, sum(t.amount)::double as residents_spend,
           count(distinct t.source_id) as residents
    from intermediate.member_transfers as t
    join accounts as a on a.account_id = t.source_id
    where a.account_type = 'individual' and t.local_day between $first_day and $last_day
    group by a.decile
),
receipts as (
    select a.decile, sum(t.amount)::double as business_receipts,
           count(distinct t.target_id) as businesses
    from intermediate.member_transfers as t
    join accounts as a on a.account_id = t.target_id
    where a.account_type = 'business' and t.local_day between $first_day and $last_day
    group by a.decile
),
deciles as (select distinct decile from accounts)
select d.decile,
       coalesce(spend.residents, 0) as residents,
       coalesce(spend.residents_spend, 0) as residents_spend,
       coalesce(receipts.businesses, 0) as businesses,
       coalesce(receipts.business_receipts, 0) as business_receipts
from deciles as d
left join spend using (decile)
left join receipts using (decile)
order by d.decile
"""


def _deciles(
    con: duckdb.DuckDBPyConnection,
    k: int,
    first_day: dt.date = dt.date.min,
    last_day: dt.date = dt.date.max,
) -> pl.DataFrame:
    """Spend by residents and receipts of businesses, by deprivation decile of their area,
    over the transfers of ``first_day`` .. ``last_day`` (default: the whole history).

    A decile's spend is hidden when fewer than k residents paid, its receipts when fewer
    than k businesses were paid; then the smallest other cell of the column is hidden too,
    so the total (100 %) cannot reveal it.
    """
    frame = query_frame(con, _DECILES_SQL, {"first_day": first_day, "last_day": last_day})
    if frame.is_empty():
        return frame
    line = np.zeros(len(frame), dtype=np.int64)
    out = frame
    for value, people in (("residents_spend", "residents"), ("business_receipts", "businesses")):
        primary = frame[people].to_numpy() < k
        hidden = complementary_suppression([line], frame[value].to_numpy(), primary)
        total = float(frame[value].sum())
        share = frame[value] / total if total else frame[value] * 0.0
        out = out.with_columns(
            pl.Series(f"{value}_hidden", hidden),
            pl.when(pl.Series(hidden)).then(None).otherwise(frame[value]).alias(value),
            pl.when(pl.Series(hidden)).then(None).otherwise(share).alias(f"{value}_share"),
            pl.when(pl.Series(hidden)).then(None).otherwise(frame[people]).alias(people),
        )
    return out


def _coverage(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, Any]:
    days = con.execute(
        """
        select min(day), max(day), count(*),
               count(*) filter (where issued = 0 and redeemed = 0 and fees = 0
                                and transfer_count = 0)
        from marts.daily_circulation where day <= ?
        """,
        [as_of],
    ).fetchall()[0]
    files = con.execute(
        """
        select count(*), coalesce(sum(rows_in), 0), coalesce(sum(rows_loaded), 0),
               coalesce(sum(rows_duplicate), 0), coalesce(sum(rows_quarantined), 0),
               coalesce(sum(redactions), 0)
        from audit.files
        """
    ).fetchall()[0]
    issuance = con.execute(
        """
        select coalesce(sum(amount) filter (where lower(channel) = 'paper'), 0)::double,
               coalesce(sum(amount), 0)::double
        from staging.transactions where kind = 'issuance'
        """
    ).fetchall()[0]
    return {
        "first_day": days[0],
        "last_day": days[1],
        "days": days[2],
        "quiet_days": days[3],
        "files": files[0],
        "rows_in": files[1],
        "rows_loaded": files[2],
        "rows_duplicate": files[3],
        "rows_quarantined": files[4],
        "redactions": files[5],
        "paper_issued": issuance[0],
        "issued": issuance[1],
        "paper_share": issuance[0] / issuance[1] if issuance[1] else None,
    }
