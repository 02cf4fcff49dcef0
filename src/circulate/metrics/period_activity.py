"""Participation and dormancy per period, for ``marts.circulation_metrics``; a closed
period's row is computed once.

The per-period counts of accounts (active, frequent, new, churned) and the dormant share
of supply at each period's end need every account's balance, last payment and first
trade: over the whole ledger, the dearest part of the circulation mart, and for a closed
period the same every night. So this model writes them in full when a month closes,
together with each account's state at the end of that month (the cut): balance, last
outgoing transfer, first movement and first trade. On the nights until the next close it
keeps the rows of every period that ends on or before the cut and computes the others (the
open month, its days and weeks, the whole history) from the stored state plus the
movements after the cut and the transfers of the few weeks the open periods and their
predecessors span. Both ways run the same query (:data:`_ACTIVITY_SQL`): the full one with
no state and the cut at the beginning of time.

The stored rows and state are reused only while their cut still describes a prefix of
today's ``staging.transactions`` and ``intermediate.account_movements``
(:mod:`circulate.metrics.month_close`: the same cut, first day and code, the covered load
batches unchanged as appended, so neither table rebuilt as the movements are after a
change of issuer accounts, and no entry of a later batch on or before the cut).
Otherwise, and on ``circulate run --full``, everything is computed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import duckdb

from circulate.metrics.month_close import current_cut, cut_description, version_of
from circulate.metrics.participation import FREQUENT_TRANSFERS
from circulate.warehouse.connection import table_exists
from circulate.warehouse.runner import PythonModel

__all__ = ["ACCOUNTS", "ACTIVITY", "CUT", "DORMANT_AFTER_DAYS", "MODELS"]

ACTIVITY = "intermediate.period_activity"
ACCOUNTS = "intermediate.period_activity_accounts"
CUT = "intermediate.period_activity_cut"
#: The ledger tables the stored state covers: the transfers (trades) and the movements
#: (balances), which a change of issuer accounts rebuilds without touching the first.
LEDGERS = ("staging.transactions", "intermediate.account_movements")
#: An account holding money is dormant this many days after its last outgoing transfer
#: (or its first movement, if it never paid).
DORMANT_AFTER_DAYS = 90
#: The beginning of time: as the cut, every movement and transfer is after it.
_NO_CUT = date(1, 1, 1)

# Rows for every period of the day spine (the days of marts.daily_circulation) that ends
# after $cut, and the whole history. Accounts' state at $cut comes from
# intermediate.period_activity_accounts (empty when $cut is _NO_CUT); movements after $cut
# and transfers from $trades_from on (early enough for the open periods and their
# predecessors) come from the ledger.
_ACTIVITY_SQL = """
with daily as (
    select day from intermediate.day_spine
),

bounds as (
    select min(day) as first_day, max(day) as last_day from daily
),

state as (
    select * from intermediate.period_activity_accounts
),

account_days as (
    select
        account_id,
        local_day as day,
        sum(delta) as delta,
        max(local_day) filter (where kind = 'transfer' and delta < 0) as paid_day
    from intermediate.account_movements
    where local_day > $cut
    group by all
    union all
    -- Each account's history up to the cut, as one day.
    select account_id, $cut, balance, last_paid_day from state
),

account_running as (
    -- One window for all three (the running minimum of the day is the first day).
    select
        account_days.account_id,
        account_days.day,
        sum(account_days.delta) over history as balance,
        max(account_days.paid_day) over history as last_paid_day,
        coalesce(state.first_day, min(account_days.day) over history) as first_day,
        lead(account_days.day) over history as next_day
    from account_days
    left join state on state.account_id = account_days.account_id
    window history as (
        partition by account_days.account_id order by account_days.day
        rows unbounded preceding
    )
),

-- An account's balance holds from one of its days to its next (or past the last day);
-- inside that span it is dormant from $dormant_after days after its last payment (or
-- its first day). Supply and dormant supply per day are running sums of the spans'
-- steps, which equals summing every account's balance on every day without that grid.
account_spans as (
    select
        day as span_start,
        coalesce(next_day, (select last_day from bounds) + 1) as span_end,
        greatest(day, coalesce(last_paid_day, first_day) + $dormant_after) as dormant_start,
        balance
    from account_running
),

dormancy_steps as (
    select span_start as day, balance as supply, null as dormant from account_spans
    union all
    select span_end, -balance, null from account_spans
    union all
    select dormant_start, null, balance from account_spans where dormant_start < span_end
    union all
    select span_end, null, -balance from account_spans where dormant_start < span_end
),

dormancy_changes as (
    select day, sum(supply) as supply, sum(dormant) as dormant
    from dormancy_steps
    group by all
),

-- Exact from the cut on (every step of a later day is in the sums).
dormancy as (
    select
        daily.day,
        sum(dormancy_changes.dormant) over running as dormant_supply,
        sum(dormancy_changes.supply) over running as supply
    from daily
    left join dormancy_changes on dormancy_changes.day = daily.day
    where daily.day >= $cut
    window running as (order by daily.day rows unbounded preceding)
),

trades as (
    select local_day as day, source_id as account_id
    from staging.transactions
    where kind = 'transfer' and local_day >= $trades_from
    union all
    select local_day as day, target_id as account_id
    from staging.transactions
    where kind = 'transfer' and local_day >= $trades_from
),

-- Counted per day first: the periods then group account-days, not transfers.
daily_trades as (
    select day, account_id, count(*) as trades from trades group by all
),

first_trades as (
    select account_id, min(first_day) as first_day
    from (
        select account_id, first_trade_day as first_day
        from state
        where first_trade_day is not null
        union all
        select account_id, min(day) from daily_trades group by all
    )
    group by all
),

period_days as (
    select day, 'day' as period_kind, day as period_start from daily
    where day >= $trades_from
    union all
    select day, 'week', cast(date_trunc('week', day) as date) from daily
    where day >= $trades_from
    union all
    select day, 'month', cast(date_trunc('month', day) as date) from daily
    where day >= $trades_from
),

period_ends as (
    select period_kind, period_start, max(day) as period_end from period_days group by all
),

periods as (
    select
        *,
        lag(period_start) over (partition by period_kind order by period_start)
            as previous_start
    from period_ends
    union all
    select 'all', first_day, last_day, null from bounds where first_day is not null
),

period_trades as (
    select period_days.period_kind, period_days.period_start, account_id, sum(trades) as trades
    from period_days
    inner join daily_trades on daily_trades.day = period_days.day
    group by all
),

activity as (
    select
        period_kind,
        period_start,
        count(*) as active_accounts,
        count(*) filter (where trades >= $frequent) as frequent_traders
    from period_trades
    group by all
    union all
    -- Every account that ever traded is active over the whole history, and new in it.
    select 'all', (select first_day from bounds), count(*), null from first_trades
),

newcomers as (
    select period_days.period_kind, period_days.period_start, count(*) as new_accounts
    from period_days
    inner join first_trades on first_trades.first_day = period_days.day
    group by all
    union all
    select 'all', (select first_day from bounds), count(*) from first_trades
),

churn as (
    select periods.period_kind, periods.period_start, count(*) as churned_accounts
    from periods
    inner join period_trades as before
        on before.period_kind = periods.period_kind
        and before.period_start = periods.previous_start
    left join period_trades as now
        on now.period_kind = periods.period_kind
        and now.period_start = periods.period_start
        and now.account_id = before.account_id
    where now.account_id is null
    group by all
)

select
    periods.period_kind,
    periods.period_start,
    periods.period_end,
    cast(coalesce(activity.active_accounts, 0) as bigint) as active_accounts,
    cast(activity.frequent_traders as bigint) as frequent_traders,
    cast(coalesce(newcomers.new_accounts, 0) as bigint) as new_accounts,
    case
        when periods.period_kind <> 'all'
            then cast(coalesce(churn.churned_accounts, 0) as bigint)
    end as churned_accounts,
    cast(coalesce(dormancy.dormant_supply, 0) as decimal(18, 2)) as dormant_supply,
    cast(coalesce(dormancy.supply, 0) as decimal(18, 2)) as supply
from periods
left join activity using (period_kind, period_start)
left join newcomers using (period_kind, period_start)
left join churn using (period_kind, period_start)
left join dormancy on dormancy.day = periods.period_end
where periods.period_kind = 'all' or periods.period_end > $cut
"""

# Each member account's state at the end of $cut; its first trade from the transfers.
_ACCOUNTS_SQL = """
create or replace table intermediate.period_activity_accounts as
with movements as (
    select
        account_id,
        cast(sum(delta) as decimal(18, 2)) as balance,
        max(local_day) filter (where kind = 'transfer' and delta < 0) as last_paid_day,
        min(local_day) as first_day
    from intermediate.account_movements
    where local_day <= $cut
    group by all
),

first_trades as (
    select account_id, min(day) as first_trade_day
    from (
        select local_day as day, source_id as account_id from staging.transactions
        where kind = 'transfer' and local_day <= $cut
        union all
        select local_day as day, target_id as account_id from staging.transactions
        where kind = 'transfer' and local_day <= $cut
    )
    group by all
)

select
    account_id,
    coalesce(movements.balance, 0) as balance,
    movements.last_paid_day,
    movements.first_day,
    first_trades.first_trade_day
from movements
full join first_trades using (account_id)
order by account_id
"""
_EMPTY_ACCOUNTS_SQL = """
create or replace table intermediate.period_activity_accounts (
    account_id varchar,
    balance decimal(18, 2),
    last_paid_day date,
    first_day date,
    first_trade_day date
)
"""

DESCRIPTIONS = {
    ACTIVITY: (
        "Participation and dormancy per period of marts.circulation_metrics (day, week, "
        "month, all): active, frequent, new and churned accounts, and the money supply and "
        "its dormant part at the period's end. A period that ends on or before the end of "
        "the latest complete month is computed when that month closes and kept until "
        "then; the others every night."
    ),
    ACCOUNTS: (
        "Each account's state at the end of the latest complete month (the cut, in "
        "intermediate.period_activity_cut): balance, last outgoing transfer, first "
        "movement and first transfer. A night computes the open periods of "
        "intermediate.period_activity from it and the entries after the cut."
    ),
    CUT: cut_description(ACTIVITY, LEDGERS),
}


def _parameters(cut: date, trades_from: date) -> dict[str, Any]:
    return {
        "cut": cut,
        "trades_from": trades_from,
        "dormant_after": DORMANT_AFTER_DAYS,
        "frequent": FREQUENT_TRANSFERS,
    }


def trades_from(cut_day: date) -> date:
    """First day of transfers the open periods after ``cut_day`` and their predecessors
    need: the Monday of the week before the one holding the day after the cut, or the
    first day of the cut's month, whichever is earlier.

    >>> trades_from(date(2025, 1, 31))  # the day after is Saturday 1 February
    datetime.date(2025, 1, 1)
    >>> trades_from(date(2025, 2, 28))  # Saturday 1 March: its week began 24 February
    datetime.date(2025, 2, 1)
    >>> trades_from(date(2025, 6, 30))  # Tuesday 1 July: its week began 30 June
    datetime.date(2025, 6, 1)
    """
    after = cut_day + timedelta(days=1)
    week_before = after - timedelta(days=after.weekday() + 7)
    return min(week_before, cut_day.replace(day=1))


def compute_everything(con: duckdb.DuckDBPyConnection, cut_day: date | None) -> None:
    """Every period's row from the whole ledger, and the accounts' state at ``cut_day``."""
    con.execute(_EMPTY_ACCOUNTS_SQL)
    con.execute(
        f"create or replace table {ACTIVITY} as {_ACTIVITY_SQL} order by all",
        _parameters(_NO_CUT, _NO_CUT),
    )
    if cut_day is not None:
        con.execute(_ACCOUNTS_SQL, {"cut": cut_day})


def compute_open_periods(con: duckdb.DuckDBPyConnection, cut_day: date) -> None:
    """Keep the rows of periods ending on or before ``cut_day``; compute the others from
    the stored state and the entries after it."""
    params = _parameters(cut_day, trades_from(cut_day))
    # A period's end is its last day on file: the week holding the cut ends after it as
    # soon as a later day is loaded, so which rows are kept follows today's days.
    con.execute(f"create or replace temporary table _open_periods as {_ACTIVITY_SQL}", params)
    con.execute(
        f"""
        create or replace table {ACTIVITY} as
        select * from _open_periods
        union all
        select kept.* from {ACTIVITY} as kept
        where kept.period_kind <> 'all' and kept.period_end <= $cut
          and not exists (
              select 1 from _open_periods as open
              where open.period_kind = kept.period_kind
                and open.period_start = kept.period_start
          )
        order by all
        """,  # noqa: S608 (the module's own constants)
        {"cut": cut_day},
    )
    con.execute("drop table _open_periods")


def build_period_activity(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Compute the open periods when the stored cut still holds, or everything."""
    cut = current_cut(con, LEDGERS, version_of(__file__))
    stored = all(table_exists(con, table) for table in (ACTIVITY, ACCOUNTS))
    if cut.day is not None and stored and cut.holds_for(con, CUT):
        compute_open_periods(con, cut.day)
        return
    compute_everything(con, cut.day)
    cut.store(con, CUT)


MODELS = [
    PythonModel(
        "intermediate",
        "period_activity",
        frozenset(
            {
                "intermediate.day_spine",
                "intermediate.account_movements",
                "staging.transactions",
                "audit.appended_batches",
            }
        ),
        build_period_activity,
        DESCRIPTIONS[ACTIVITY],
        refresh="rows of periods ending on or before the end of the latest complete month: "
        "computed when that month closes, when an entry lands on or before its end and on "
        "`circulate run --full`, kept on other nights; the open periods and the whole "
        "history every night",
        also_builds={ACCOUNTS: DESCRIPTIONS[ACCOUNTS], CUT: DESCRIPTIONS[CUT]},
        refresh_by_table={
            ACCOUNTS: "made when a month closes, when an entry lands on or before its end "
            "and on `circulate run --full`; kept on other nights",
            CUT: "made with intermediate.period_activity_accounts",
        },
    )
]
