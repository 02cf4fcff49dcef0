"""Who takes part, month by month, by account type, sector and area (``marts.participation``).

Per calendar month (scheme timezone) and member account, count its transfers (paid or
received; DESIGN.md §4 "participation"):

- active: at least one transfer in the month;
- frequent trader: at least ``FREQUENT_TRANSFERS`` (4) transfers in the month;
- new: its first transfer ever falls in the month;
- churned: active in the previous calendar month, not in this one.

Rows: ``dimension`` ∈ {all, account_type, sector, area} × its groups (accounts without the
attribute are grouped as ``unknown``). Privacy (DESIGN.md §5): a group with fewer than k
distinct accounts that ever traded shows no figures; any count between 1 and k − 1 is
hidden; and when exactly one count of a measure is hidden among a month's groups of a
dimension, the smallest other count (non-zero if any) is hidden too, so the published ``all`` total
cannot reveal it by subtraction. Hidden figures are null and ``suppressed`` is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import polars as pl

from circulate.metrics.network_flows import k_anonymity
from circulate.warehouse.runner import REBUILT_NIGHTLY, PythonModel, write_frame

__all__ = ["FREQUENT_TRANSFERS", "MEASURES", "MODELS", "suppress"]

FREQUENT_TRANSFERS = 4
MEASURES = ("active_accounts", "frequent_traders", "new_accounts", "churned_accounts")
DIMENSIONS = ("account_type", "sector", "area")

_COUNTS_SQL = """
with issuers as (
    select account_id from intermediate.issuer_accounts
),

trades as (
    select local_day, source_id as account_id from staging.transactions
    where kind = 'transfer' and source_id not in (select account_id from issuers)
    union all
    select local_day, target_id from staging.transactions
    where kind = 'transfer' and target_id not in (select account_id from issuers)
),

monthly as (
    select cast(date_trunc('month', local_day) as date) as month, account_id, count(*) as n
    from trades
    group by all
),

firsts as (
    select account_id, min(month) as first_month from monthly group by all
),

months as (
    select distinct month from monthly
),

flags as (
    select
        months.month,
        firsts.account_id,
        coalesce(now.n, 0) >= 1 as active,
        coalesce(now.n, 0) >= $frequent as frequent,
        firsts.first_month = months.month as new,
        before.n is not null and now.n is null as churned
    from months
    inner join firsts on firsts.first_month <= months.month
    left join monthly as now
        on now.account_id = firsts.account_id and now.month = months.month
    left join monthly as before
        on before.account_id = firsts.account_id
        and before.month = cast(months.month - interval 1 month as date)
),

attributed as (
    select
        flags.*,
        coalesce(accounts.account_type, 'unknown') as account_type,
        coalesce(nullif(accounts.sector, ''), 'unknown') as sector,
        coalesce(nullif(accounts.area, ''), 'unknown') as area
    from flags
    left join staging.accounts as accounts on accounts.account_id = flags.account_id
)

select
    month,
    dimension,
    group_value,
    count(*) as group_accounts,
    count(*) filter (where active) as active_accounts,
    count(*) filter (where frequent) as frequent_traders,
    count(*) filter (where new) as new_accounts,
    count(*) filter (where churned) as churned_accounts
from (
    select *, 'all' as dimension, 'all' as group_value from attributed
    union all
    select *, 'account_type', account_type from attributed
    union all
    select *, 'sector', sector from attributed
    union all
    select *, 'area', area from attributed
)
group by all
order by month, dimension, group_value
"""


def suppress(counts: list[int], group_sizes: list[int], k: int) -> list[int | None]:
    """Hide the counts of one measure across one dimension's groups (see module docstring).

    >>> suppress([10, 2, 7], [20, 9, 12], 5)  # 2 < k, then the smallest other goes too
    [10, None, None]
    >>> suppress([10, 0, 7], [20, 9, 3], 5)  # group of 3 < k accounts: hidden, and 10 > 0
    [None, 0, None]
    >>> suppress([0, 3, 0], [20, 9, 6], 5)  # only zeros left: one of them is hidden
    [None, None, 0]
    >>> suppress([10, 6], [20, 9], 5)
    [10, 6]
    """
    hidden = [size < k or 0 < count < k for count, size in zip(counts, group_sizes, strict=True)]
    if sum(hidden) == 1:
        # The smallest other count, a non-zero one if there is one (hiding a zero still
        # leaves a reader two unknowns).
        candidates = [(c == 0, c, i) for i, c in enumerate(counts) if not hidden[i]]
        if candidates:
            hidden[min(candidates)[2]] = True
    return [None if h else c for c, h in zip(counts, hidden, strict=True)]


def build_participation(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Create ``marts.participation`` with small groups suppressed."""
    k = k_anonymity(parameters)
    frame = con.sql(_COUNTS_SQL, params={"frequent": FREQUENT_TRANSFERS}).pl()
    rows: list[dict[str, Any]] = []
    for (month, dimension), part in frame.group_by(["month", "dimension"], maintain_order=True):
        records = part.to_dicts()
        sizes = [int(r["group_accounts"]) for r in records]
        visible = {
            m: suppress([int(r[m]) for r in records], sizes, k)
            if dimension != "all"
            else [int(r[m]) if int(r[m]) == 0 or int(r[m]) >= k else None for r in records]
            for m in MEASURES
        }
        for i, record in enumerate(records):
            values = {m: visible[m][i] for m in MEASURES}
            rows.append(
                {
                    "month": month,
                    "dimension": dimension,
                    "group_value": record["group_value"],
                    **values,
                    "suppressed": any(v is None for v in values.values()),
                    "k_anonymity": k,
                }
            )
    schema: dict[str, Any] = {"month": pl.Date, "dimension": pl.String, "group_value": pl.String}
    schema |= {m: pl.Int64 for m in MEASURES}
    schema |= {"suppressed": pl.Boolean, "k_anonymity": pl.Int64}
    write_frame(con, pl.DataFrame(rows, schema=schema), "marts.participation")


MODELS = [
    PythonModel(
        "marts",
        "participation",
        frozenset({"staging.transactions", "staging.accounts", "intermediate.issuer_accounts"}),
        build_participation,
        "Participation per calendar month by dimension (all, account_type, sector, area) and "
        "group: active accounts (1+ transfer paid or received), frequent traders (4+), new "
        "(first transfer ever), churned (active last month, not this). Groups with fewer than "
        "k accounts and counts between 1 and k-1 are hidden (null, suppressed = true), with "
        "complementary suppression so totals cannot reveal a hidden count.",
        REBUILT_NIGHTLY,
    )
]
