"""The public-value scorecard and risk flags as warehouse tables.

Reads each month's indicator values and the run state from the warehouse
(:func:`monthly_values`) and writes ``marts.impact_scorecard``, ``marts.risk_flags`` and
``marts.impact_thresholds``; what the indicators, thresholds and flags mean and how they
are judged is computed in :mod:`circulate.metrics.impact`, which reads no warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import duckdb
import polars as pl

from circulate.metrics.impact import (
    evaluate_flags,
    flags_frame,
    load_thresholds,
    scorecard_rows,
    thresholds_frame,
)
from circulate.metrics.network_flows import k_anonymity
from circulate.warehouse.runner import REBUILT_NIGHTLY, PythonModel, write_frame

__all__ = ["MODELS", "build_impact", "monthly_values"]

_MONTHLY_SQL = """
with span as (
    select min(day) as first_day, max(day) as last_day from marts.daily_circulation
),
circulation as (
    select
        period_start as month,
        period_end,
        issued,
        redeemed,
        markov_lm3 as lm3,
        full_multiplier,
        velocity,
        leakage,
        dormancy,
        active_accounts,
        new_accounts,
        churned_accounts,
        frequent_traders,
        transfer_count,
        transfer_volume
    from marts.circulation_metrics
    where period_kind = 'month'
),
spend as (
    select
        period_start as month,
        local_business_share,
        paid_to_public_bodies + paid_by_public_bodies as public_flows
    from marts.spend_breakdown
    where period_kind = 'month'
),
concentration as (
    select period_start as month, receipts_top5_share, receipts_gini, fragility_top1
    from marts.network_summary
    where period_kind = 'month' and scope = 'member'
),
accounts as (
    select account_id, account_type, sector, area from staging.accounts
),
legs as (
    select date_trunc('month', local_day)::date as month, source_id as account_id
    from intermediate.member_transfers
    union all
    select date_trunc('month', local_day)::date, target_id from intermediate.member_transfers
),
-- Each account once per month it traded in: the distinct counts below come from these
-- rows instead of every transfer leg.
month_accounts as (
    select distinct month, account_id from legs
),
areas_active as (
    select month_accounts.month, accounts.area, count(*) as active
    from month_accounts join accounts using (account_id)
    where accounts.area is not null
    group by all
),
area_reach as (
    select
        month,
        count(*) filter (where active >= $k_anonymity)::double
            / nullif((select count(distinct area) from accounts where area is not null), 0)
            as area_reach
    from areas_active
    group by month
),
sector_receipts as (
    select
        date_trunc('month', transfers.local_day)::date as month,
        accounts.sector,
        sum(transfers.amount)::double as receipts
    from intermediate.member_transfers as transfers
    join accounts on accounts.account_id = transfers.target_id
    where accounts.account_type = 'business'
    group by all
),
sector_mix as (
    select month, 1 / sum(pow(receipts / total, 2)) as sector_mix
    from (
        select *, sum(receipts) over (partition by month) as total from sector_receipts
    )
    where total > 0
    group by month
),
anchors as (
    select month_accounts.month, count(*) as anchor_institutions
    from month_accounts join accounts using (account_id)
    where accounts.account_type = 'public_body'
    group by month_accounts.month
),
reversals as (
    select date_trunc('month', local_day)::date as month, count(*) as reversals
    from (
        select (occurred_at at time zone $timezone)::date as local_day
        from staging.transactions
        where kind = 'reversal'
    )
    group by month
),
quiet_days as (
    select date_trunc('month', day)::date as month,
        count(*) filter (
            where issued = 0 and redeemed = 0 and fees = 0 and transfer_count = 0
        ) as gap_days
    from marts.daily_circulation
    group by month
)
select
    circulation.*,
    circulation.month >= span.first_day
        and (circulation.month + interval 1 month - interval 1 day)::date <= span.last_day
        as period_complete,
    spend.local_business_share,
    spend.public_flows::double as public_flows,
    spend.public_flows::double / nullif(circulation.transfer_volume::double, 0)
        as public_body_flows,
    concentration.receipts_top5_share,
    concentration.receipts_gini,
    concentration.fragility_top1,
    area_reach.area_reach,
    sector_mix.sector_mix,
    coalesce(anchors.anchor_institutions, 0) as anchor_institutions,
    coalesce(reversals.reversals, 0) as reversals,
    coalesce(reversals.reversals, 0)::double / nullif(circulation.transfer_count, 0)
        as reversal_rate,
    coalesce(quiet_days.gap_days, 0) as gap_days,
    span.last_day
from circulation
cross join span
left join spend using (month)
left join concentration using (month)
left join area_reach using (month)
left join sector_mix using (month)
left join anchors using (month)
left join reversals using (month)
left join quiet_days using (month)
order by month
"""


def monthly_values(
    con: duckdb.DuckDBPyConnection, k: int, timezone: str, run_day: dt.date | None
) -> pl.DataFrame:
    """One row per month: every indicator's value plus the inputs of the risk flags."""
    frame: pl.DataFrame = con.sql(
        _MONTHLY_SQL, params={"k_anonymity": k, "timezone": timezone}
    ).pl()
    previous_active = frame["active_accounts"].shift(1)
    frame = frame.with_columns(
        (pl.col("new_accounts") / pl.col("active_accounts")).alias("new_members"),
        (pl.col("churned_accounts") / previous_active).alias("churn_rate"),
        (pl.col("frequent_traders") / pl.col("active_accounts")).alias("frequent_traders_share"),
        pl.col("active_accounts").cast(pl.Float64).alias("active_members"),
        pl.col("anchor_institutions").cast(pl.Float64),
        # Redemptions are lumpy (a business cashes out a quarter's takings at once): the
        # leakage trend is judged on trailing three-month sums.
        (
            pl.col("redeemed").cast(pl.Float64).rolling_sum(3, min_samples=1)
            / pl.col("issued").cast(pl.Float64).rolling_sum(3, min_samples=1)
        ).alias("leakage_3m"),
    )
    current = _current_state(con, frame, run_day)
    latest = _report_month(frame)
    return frame.with_columns(
        *(
            # No month at all (no transaction yet): every row, if any, gets null.
            pl.when(pl.col("month").eq(latest) if latest is not None else pl.lit(False))
            .then(pl.lit(value))
            .otherwise(None)
            .alias(name)
            for name, value in current.items()
        )
    )


def _report_month(frame: pl.DataFrame) -> dt.date | None:
    """The latest complete month, or the latest month when none is complete yet."""
    complete = frame.filter(pl.col("period_complete"))
    chosen = complete if len(complete) else frame
    return None if chosen.is_empty() else chosen["month"].max()  # type: ignore[return-value]


def _current_state(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, run_day: dt.date | None
) -> dict[str, float | None]:
    checks = con.execute(
        """
        select count(*) filter (where success), count(*)
        from audit.validation_results
        where suite <> 'warehouse' and run_id = (
            select run_id from audit.validation_results
            where suite <> 'warehouse'
            order by validated_at desc limit 1
        )
        """
    ).fetchall()[0]
    runs = con.execute(
        """
        select count(*) filter (where status = 'success'), count(*)
        from (select status from audit.runs order by started_at desc limit 30)
        """
    ).fetchall()[0]
    last_day = frame["last_day"].max() if len(frame) else None
    freshness = (
        float((run_day - last_day).days)
        if run_day is not None and isinstance(last_day, dt.date)
        else None
    )
    return {
        "validation_pass_rate": checks[0] / checks[1] if checks and checks[1] else None,
        "data_freshness": freshness,
        "run_success": runs[0] / runs[1] if runs and runs[1] else None,
    }


def _run_day(parameters: Mapping[str, Any]) -> dt.date | None:
    started = parameters.get("run_started_at")
    if not isinstance(started, dt.datetime):
        return None
    try:
        from zoneinfo import ZoneInfo

        return started.astimezone(ZoneInfo(str(parameters.get("timezone", "UTC")))).date()
    except (KeyError, ValueError):
        return started.date()


def build_impact(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Create ``marts.impact_thresholds``, ``marts.impact_scorecard`` and ``marts.risk_flags``."""
    thresholds = load_thresholds(parameters.get("impact_thresholds"))
    values = monthly_values(
        con,
        k_anonymity(parameters),
        str(parameters.get("timezone", "UTC")),
        _run_day(parameters),
    )
    write_frame(con, thresholds_frame(thresholds), "marts.impact_thresholds")
    write_frame(con, scorecard_rows(values, thresholds), "marts.impact_scorecard")
    write_frame(con, flags_frame(evaluate_flags(values, thresholds.flags)), "marts.risk_flags")


READS: Final = frozenset(
    {
        "marts.daily_circulation",
        "marts.circulation_metrics",
        "marts.spend_breakdown",
        "marts.network_summary",
        "staging.accounts",
        "staging.transactions",
        "intermediate.member_transfers",
    }
)

MODELS: Final[list[PythonModel]] = [
    PythonModel(
        "marts",
        "impact_scorecard",
        READS,
        build_impact,
        "Public-value scorecard (Moore's strategic triangle) per calendar month: each "
        "indicator's definition, value, change on the previous month, thresholds, status "
        "(creating value, watch, destroying value, no data) and one plain sentence. Run-state "
        "indicators (data checks, freshness, run success) sit on the latest complete month.",
        REBUILT_NIGHTLY,
        also_builds={
            "marts.risk_flags": (
                "Value-destruction risk checks per complete month: whether each flag is "
                "raised, the evidence in numbers and the report chart that shows it."
            ),
            "marts.impact_thresholds": (
                "The partnership's thresholds table in force for this build (indicator "
                "status levels and risk-flag settings) and the file it came from."
            ),
        },
    )
]
