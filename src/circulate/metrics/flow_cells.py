"""The cells of the flow matrices, and what a month close keeps of them.

``marts.sector_flows`` and ``marts.area_flows`` publish, per month and over the whole
history, the transfers between member accounts by payer group × payee group (sector — the
account type when there is none — or area): volume, transfer count and distinct payers and
payees, k-anonymised by :func:`circulate.metrics.network_flows.suppress_cells`. A closed
month's cells and the distinct payers and payees of each pair over the closed months do
not change after the month closes, so they are kept in the intermediate layer, unsuppressed:

- ``intermediate.flow_cells`` — the closed months' cells of both groupings;
- ``intermediate.flow_pair_accounts`` — each pair's distinct payers and payees up to the
  cut (their group is the one the account had then);
- ``intermediate.flow_cells_cut`` — the cut they describe (:mod:`circulate.metrics.month_close`).

A night whose cut still holds, and none of whose closed-history accounts moved to another
group, counts only the transfers after the cut: the open months' cells, and the whole
history's as the closed months' sums plus the open months', its distinct accounts as the
kept sets joined with the open months'. Otherwise the kept cells are made again from the
closed months first. Suppression always runs on every cell, as the whole history and the
months are one table for it: only the counting is kept. The kept tables hold account
pseudonyms like intermediate.member_transfers: they are not exported and in no report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import duckdb
import polars as pl

from circulate.metrics.month_close import current_cut, cut_description, version_of
from circulate.metrics.network_flows import k_anonymity, suppress_cells
from circulate.warehouse.connection import table_exists
from circulate.warehouse.runner import PythonModel

__all__ = ["GROUPINGS", "MODELS", "count_cells"]

GROUPINGS = ("sector", "area")
CELLS = "intermediate.flow_cells"
PAIR_ACCOUNTS = "intermediate.flow_pair_accounts"
CUT = "intermediate.flow_cells_cut"
LEDGERS = ("intermediate.member_transfers",)
READS = frozenset(
    {
        "intermediate.member_transfers",
        "staging.accounts",
        "intermediate.day_spine",
        "audit.appended_batches",
    }
)
#: ``$cut`` with nothing kept: every transfer is after it.
_NO_CUT = date(1, 1, 1)

# Group of an account (a staging.accounts row): its sector (businesses), else its account
# type, so individuals and public bodies show up as their own rows; its area. Constants,
# never data.
_GROUPS = {
    "sector": "coalesce(nullif(sector, ''), account_type)",
    "area": "nullif(area, '')",
}

# Transfers dated in ($after, $until] with their month and the groups of both sides.
_TYPED_SQL = """
select
    cast(date_trunc('month', transfers.local_day) as date) as period_start,
    coalesce(payers.grp, 'unknown') as source_group,
    coalesce(payees.grp, 'unknown') as target_group,
    transfers.source_id,
    transfers.target_id,
    transfers.amount
from intermediate.member_transfers as transfers
left join (select account_id, {group} as grp from staging.accounts) as payers
    on payers.account_id = transfers.source_id
left join (select account_id, {group} as grp from staging.accounts) as payees
    on payees.account_id = transfers.target_id
where transfers.local_day > $after and transfers.local_day <= $until
"""

_CELL_FIGURES = """
    cast(sum(amount) * 100 as bigint) as cents,
    count(*) as transfer_count,
    count(distinct source_id) as source_accounts,
    count(distinct target_id) as target_accounts
"""

_EMPTY_STATE_SQL = f"""
create or replace table {CELLS} (
    grouping varchar, period_start date, source_group varchar, target_group varchar,
    cents bigint, transfer_count bigint, source_accounts bigint, target_accounts bigint
);
create or replace table {PAIR_ACCOUNTS} (
    grouping varchar, side varchar, source_group varchar, target_group varchar,
    account_id varchar
);
"""

# The closed months' cells and each pair's distinct payers and payees, up to $until.
_KEEP_CELLS_SQL = f"""
insert into {CELLS}
select $grouping, period_start, source_group, target_group, {_CELL_FIGURES}
from ({_TYPED_SQL})
group by all
"""  # noqa: S608 (the module's own constants)
_KEEP_ACCOUNTS_SQL = f"""
insert into {PAIR_ACCOUNTS}
with closed as ({_TYPED_SQL})
select distinct $grouping, 'payer', source_group, target_group, source_id from closed
union all
select distinct $grouping, 'payee', source_group, target_group, target_id from closed
"""  # noqa: S608 (the module's own constants)

# Every cell of a grouping (a null period_start is the whole history): the kept ones of
# the closed months (when $kept) and those counted from the transfers after $after.
_CELLS_SQL = f"""
with open as ({_TYPED_SQL}),

open_cells as (
    select period_start, source_group, target_group, {_CELL_FIGURES}
    from open
    group by all
),

month_cells as (
    select period_start, source_group, target_group, cents, transfer_count,
           source_accounts, target_accounts
    from {CELLS}
    where grouping = $grouping and $kept
    union all
    select * from open_cells
),

-- Each pair's distinct payers and payees: the kept ones and the open months'.
pair_accounts as (
    select side, source_group, target_group, account_id
    from {PAIR_ACCOUNTS}
    where grouping = $grouping and $kept
    union
    select 'payer', source_group, target_group, source_id from open
    union
    select 'payee', source_group, target_group, target_id from open
),

history as (
    select
        source_group,
        target_group,
        cast(sum(cents) as bigint) as cents,
        cast(sum(transfer_count) as bigint) as transfer_count
    from month_cells
    group by all
),

pair_counts as (
    select
        source_group,
        target_group,
        count(*) filter (where side = 'payer') as source_accounts,
        count(*) filter (where side = 'payee') as target_accounts
    from pair_accounts
    group by all
)

select * from month_cells
union all
select
    cast(null as date) as period_start,
    history.source_group,
    history.target_group,
    history.cents,
    history.transfer_count,
    pair_counts.source_accounts,
    pair_counts.target_accounts
from history
inner join pair_counts using (source_group, target_group)
"""  # noqa: S608 (the module's own constants)

# Kept accounts whose group today is not the one their kept pairs were counted under.
_MOVED_SQL = f"""
select count(*)
from {PAIR_ACCOUNTS} as kept
left join staging.accounts as accounts on accounts.account_id = kept.account_id
where kept.grouping = $grouping
  and if(kept.side = 'payer', kept.source_group, kept.target_group)
      <> coalesce({{group}}, 'unknown')
"""  # noqa: S608 (the module's own constants)


def _sql(template: str, grouping: str) -> str:
    return template.replace("{group}", _GROUPS[grouping])


def count_cells(
    con: duckdb.DuckDBPyConnection, grouping: str, cut_day: date | None
) -> pl.DataFrame:
    """Every cell of ``grouping`` (unsuppressed, as a Polars frame): the kept cells of the
    months up to ``cut_day`` and those counted from the transfers after it."""
    cells: pl.DataFrame = con.sql(
        _sql(_CELLS_SQL, grouping),
        params={
            "grouping": grouping,
            "kept": cut_day is not None,
            "after": cut_day or _NO_CUT,
            "until": date.max,
        },
    ).pl()
    return cells


def keep_closed_months(con: duckdb.DuckDBPyConnection, cut_day: date | None) -> None:
    """Make the kept cells and pair accounts of the months up to ``cut_day`` (none when it
    is ``None``)."""
    con.execute(_EMPTY_STATE_SQL)
    if cut_day is None:
        return
    for grouping in GROUPINGS:
        for statement in (_KEEP_CELLS_SQL, _KEEP_ACCOUNTS_SQL):
            con.execute(
                _sql(statement, grouping),
                {"grouping": grouping, "after": _NO_CUT, "until": cut_day},
            )


def _groups_unchanged(con: duckdb.DuckDBPyConnection) -> bool:
    for grouping in GROUPINGS:
        [(moved,)] = con.execute(_sql(_MOVED_SQL, grouping), {"grouping": grouping}).fetchall()
        if moved:
            return False
    return True


def _write_flows(
    con: duckdb.DuckDBPyConnection, grouping: str, cells: pl.DataFrame, k: int
) -> None:
    """Create ``marts.<grouping>_flows`` from every cell of the grouping, suppressed."""
    view = "_flow_cells_frame"
    con.register(view, suppress_cells(cells, k))
    hide = "case when suppressed then null else {} end"
    try:
        # Table and column names are this module's constants, never data.
        con.execute(
            f"""
            create or replace table marts.{grouping}_flows as
            select
                period_kind,
                period_start,
                source_group as source_{grouping},
                target_group as target_{grouping},
                {hide.format("cast(cents / 100 as decimal(18, 2))")} as volume,
                {hide.format("transfer_count")} as transfer_count,
                {hide.format("source_accounts")} as source_accounts,
                {hide.format("target_accounts")} as target_accounts,
                suppressed,
                k_anonymity
            from {view}
            order by period_kind, period_start, source_group, target_group
            """  # noqa: S608
        )
    finally:
        con.unregister(view)


def build_flows(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Create ``marts.sector_flows`` and ``marts.area_flows``, counting only the open
    months while the kept cells hold, and keeping the closed months' cells otherwise."""
    k = k_anonymity(parameters)
    cut = current_cut(con, LEDGERS, version_of(__file__))
    kept = all(table_exists(con, table) for table in (CELLS, PAIR_ACCOUNTS))
    if not (cut.day is not None and kept and cut.holds_for(con, CUT) and _groups_unchanged(con)):
        keep_closed_months(con, cut.day)
        cut.store(con, CUT)
    for grouping in GROUPINGS:
        _write_flows(con, grouping, count_cells(con, grouping, cut.day), k)


_DESCRIPTION = (
    "Transfers between member accounts by payer {what} × payee {what}, per month and over "
    "the whole history (period_kind all, period_start = first month): volume, "
    "transfer_count and distinct payers / payees. Cells with fewer than k_anonymity "
    "distinct payers or payees are suppressed (figures null, suppressed true), plus "
    "complementary cells so row, column, period and month-to-history totals cannot "
    "reveal a hidden cell."
)
_REFRESH = (
    "rebuilt every night: suppression is decided anew on every cell, the closed months' "
    "cells and distinct accounts taken from intermediate.flow_cells and "
    "intermediate.flow_pair_accounts, the open months' counted from their transfers"
)
_KEPT_REFRESH = (
    "made when a month closes, when an entry lands on or before its end, when an account "
    "of the closed months changes sector or area and on `circulate run --full`; kept on "
    "other nights"
)

MODELS = [
    PythonModel(
        "marts",
        "sector_flows",
        READS,
        build_flows,
        _DESCRIPTION.format(what="sector (account type when no sector)"),
        _REFRESH,
        also_builds={
            "marts.area_flows": _DESCRIPTION.format(what="area"),
            CELLS: (
                "Cells of the flow matrices (grouping sector or area) of every month up to the "
                "end of the latest complete month, unsuppressed: the closed months' part of "
                "marts.sector_flows and marts.area_flows. Not exported and in no report."
            ),
            PAIR_ACCOUNTS: (
                "Distinct payers (side payer) and payees (side payee) of each group pair "
                "(grouping sector or area) over the months up to the end of the latest "
                "complete month, each under the group the account had then: the closed "
                "months' part of the whole-history counts. Not exported and in no report."
            ),
            CUT: cut_description("the kept flow cells", LEDGERS),
        },
        refresh_by_table={
            "marts.area_flows": _REFRESH,
            CELLS: _KEPT_REFRESH,
            PAIR_ACCOUNTS: _KEPT_REFRESH,
            CUT: "made with intermediate.flow_cells",
        },
    ),
]
