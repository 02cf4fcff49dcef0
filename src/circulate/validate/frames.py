"""The pandas frames a batch is validated on, each computed in one DuckDB query.

Great Expectations runs on pandas frames (DESIGN §7: a DuckDB datasource is fragile), so
everything that needs the warehouse — export days, account attributes, trailing
history — is joined here and handed over as plain columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from circulate.validate.suites import CONTRACT_TYPES

#: The reason ingestion gives a row whose txn_id was loaded before with other content.
CONFLICT_REASON = "txn_id already used with different content"

#: Ratio given to a day with rows when its trailing median is zero (any band fails it).
NO_BASELINE_RATIO = 1e9

_TRANSACTIONS = """
with batch as (
    select * from raw.transactions where batch_id = $batch_id
),

files as (
    select file_name, batch_id, export_day from audit.files where file_role = 'transactions'
),

accounts as (
    select account_id, account_type from raw.accounts
),

issuers as (
    select account_id from accounts where account_type = 'issuer'
),

-- The ledger replay of sql/tests/account_balances_never_negative.sql, on raw rows, so an
-- overdrawn member is caught before the models (and the money tracer) are built.
outside_circulation as (
    select account_id from issuers
    union select source_id from raw.transactions where kind = 'issuance'
    union select target_id from raw.transactions where kind in ('redemption', 'fee')
),

movements as (
    select txn_id, occurred_at, target_id as account_id, amount as delta
    from raw.transactions
    where target_id not in (select account_id from outside_circulation)
    union all
    select txn_id, occurred_at, source_id as account_id, -amount as delta
    from raw.transactions
    where source_id not in (select account_id from outside_circulation)
),

replay as (
    select
        txn_id,
        delta,
        sum(delta) over (
            partition by account_id order by occurred_at, txn_id, delta desc
            rows unbounded preceding
        ) as running_balance
    from movements
),

payer_balance as (
    select txn_id, min(running_balance) as balance_after
    from replay
    where delta < 0
    group by txn_id
)

select
    batch.txn_id,
    batch.source_file,
    batch.occurred_at,
    batch.source_id,
    batch.target_id,
    cast(batch.amount as double) as amount,
    batch.kind,
    files.export_day,
    -- Hours before the start or after the end of the file's local day (0 inside it).
    case when files.export_day is not null then greatest(
        0,
        epoch(timezone($timezone, cast(files.export_day as timestamp)) - batch.occurred_at),
        epoch(batch.occurred_at - timezone($timezone, cast(files.export_day + 1 as timestamp)))
    ) / 3600.0 end as hours_outside_export_day,
    source_account.account_type as source_account_type,
    target_account.account_type as target_account_type,
    case when batch.kind = 'issuance'
        then batch.source_id in (select account_id from issuers) end as issuance_from_issuer,
    case when batch.kind in ('redemption', 'fee')
        then batch.target_id in (select account_id from issuers) end as outflow_to_issuer,
    cast(payer_balance.balance_after as double) as payer_balance_after
from batch
left join payer_balance on payer_balance.txn_id = batch.txn_id
left join files on files.file_name = batch.source_file and files.batch_id = batch.batch_id
left join accounts as source_account on source_account.account_id = batch.source_id
left join accounts as target_account on target_account.account_id = batch.target_id
order by batch.source_file, batch.source_line
"""

_FILES = """
with files as (
    select * from audit.files where batch_id = $batch_id
),

reasons as (
    select reason, count(*) as n
    from audit.quarantine
    where batch_id = $batch_id
    group by reason
),

conflicts as (
    select count(*) as conflicts, string_agg(distinct source_file, ', ') as conflict_files
    from audit.quarantine
    where batch_id = $batch_id and reason = $conflict_reason
)

select
    count(*) as files,
    count(*) filter (where status in ('rejected', 'quarantined')) as files_unusable,
    coalesce(
        string_agg(file_name, ', ') filter (where status in ('rejected', 'quarantined')), ''
    ) as unusable_files,
    coalesce(sum(rows_in), 0) as rows_in,
    coalesce(sum(rows_quarantined), 0) as rows_quarantined,
    coalesce(sum(rows_duplicate), 0) as rows_duplicate,
    coalesce(sum(rows_quarantined) / nullif(sum(rows_in), 0), 0) as quarantine_share,
    coalesce(sum(rows_duplicate) / nullif(sum(rows_in), 0), 0) as duplicate_share,
    coalesce((
        select string_agg(reason || ': ' || n, '; ' order by n desc, reason)
        from (select * from reasons order by n desc, reason limit 3)
    ), '') as top_reasons,
    (select conflicts from conflicts) as conflicts,
    coalesce((select conflict_files from conflicts), '') as conflict_files
from files
"""

_DAY_TOTALS = """
create or replace temp table validation_day_totals as
select
    files.export_day as day,
    count(transactions.txn_id) as row_count,
    coalesce(sum(transactions.amount) filter (where transactions.kind = 'transfer'), 0) as volume
from audit.files as files
left join raw.transactions as transactions
    on transactions.source_file = files.file_name and transactions.batch_id = files.batch_id
where files.file_role = 'transactions' and files.status <> 'rejected'
    and files.export_day is not null
group by files.export_day
"""

_DAYS = """
with batch_days as (
    select distinct export_day as day
    from audit.files
    where batch_id = $batch_id and file_role = 'transactions' and status <> 'rejected'
        and export_day is not null
),

history_band as (
    select
        batch_days.day,
        count(history.day) as history_days,
        -- Same weekday only: the weekly rhythm (quiet Sundays) is not an anomaly.
        median(history.row_count) filter (where (batch_days.day - history.day) % 7 = 0)
            as median_rows,
        median(history.volume) filter (where (batch_days.day - history.day) % 7 = 0)
            as median_volume
    from batch_days
    left join validation_day_totals as history
        on history.day >= batch_days.day - $history_days and history.day < batch_days.day
    group by batch_days.day
)

select
    history_band.day as export_day,
    totals.row_count,
    cast(totals.volume as double) as volume,
    history_band.history_days,
    cast(history_band.median_rows as double) as median_rows,
    cast(history_band.median_volume as double) as median_volume,
    case
        when history_band.median_rows > 0 then totals.row_count / history_band.median_rows
        when totals.row_count = 0 then 1.0
        else $no_baseline
    end as row_ratio,
    case
        when history_band.median_volume > 0
            then cast(totals.volume / history_band.median_volume as double)
        when totals.volume = 0 then 1.0
        else $no_baseline
    end as volume_ratio
from history_band
join validation_day_totals as totals on totals.day = history_band.day
order by history_band.day
"""

_EXPORT_DAYS = """
with bounds as (
    select
        (select min(day) from validation_day_totals) as first_day,
        (
            select max(export_day) from audit.files
            where batch_id = $batch_id and file_role = 'transactions' and status <> 'rejected'
        ) as last_day
)

select cast(spine.day as date) as day, count(totals.day) as files
from bounds, range(bounds.first_day, bounds.last_day + interval 1 day, interval 1 day) as spine(day)
left join validation_day_totals as totals on totals.day = cast(spine.day as date)
group by spine.day
order by spine.day
"""


@dataclass(frozen=True)
class BatchFrames:
    """The frames of one batch plus what decides whether conditional checks run.

    Attributes
    ----------
    frames
        Frame name (``schema``, ``transactions``, ``files``, ``days``, ``export_days``)
        to its pandas frame.
    skip_reasons
        For each condition a check may need (``accounts``, ``issuers``, ``history``) the
        reason it is not met, or absent when it is met.
    """

    frames: dict[str, pd.DataFrame]
    skip_reasons: dict[str, str]


def _df(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, object]) -> pd.DataFrame:
    frame: pd.DataFrame = con.execute(query, params).df()
    return frame


def _schema_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    actual = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'transactions'"
        ).fetchall()
    )
    return pd.DataFrame(
        {
            "column_name": list(CONTRACT_TYPES),
            "expected_type": list(CONTRACT_TYPES.values()),
            "actual_type": [actual.get(c, "missing") for c in CONTRACT_TYPES],
        }
    )


def load_frames(
    con: duckdb.DuckDBPyConnection, batch_id: str, *, timezone: str, history_days: int
) -> BatchFrames:
    """Compute every frame for ``batch_id`` from the warehouse ``con`` points at.

    Parameters
    ----------
    con
        Connection to a warehouse holding ``raw`` and ``audit`` (read-only is enough:
        only a temporary table is written).
    batch_id
        The batch to validate (the pipeline's run id).
    timezone
        Scheme timezone; export days are its calendar days.
    history_days
        Length of the history_band window for the volume band.
    """
    con.execute(_DAY_TOTALS)
    frames = {
        "schema": _schema_frame(con),
        "transactions": _df(con, _TRANSACTIONS, {"batch_id": batch_id, "timezone": timezone}),
        "files": _df(con, _FILES, {"batch_id": batch_id, "conflict_reason": CONFLICT_REASON}),
        "days": _df(
            con,
            _DAYS,
            {"batch_id": batch_id, "history_days": history_days, "no_baseline": NO_BASELINE_RATIO},
        ),
        "export_days": _df(con, _EXPORT_DAYS, {"batch_id": batch_id}),
    }
    skip: dict[str, str] = {}
    counts = con.execute(
        "select count(*), count(*) filter (where account_type = 'issuer') from raw.accounts"
    ).fetchone()
    accounts, issuers = counts if counts else (0, 0)
    if not accounts:
        skip["accounts"] = "no accounts file loaded: accounts cannot be checked"
    if not issuers:
        skip["issuers"] = "no issuer account listed in the accounts file"
    days = frames["days"]
    enough = days["history_days"] >= history_days
    if not bool(enough.any()):
        most = int(days["history_days"].max()) if len(days) else 0
        skip["history"] = (
            f"not enough history: {most} of {history_days} trailing days on file"
            if len(days)
            else "not enough history: the batch has no dated export file"
        )
    frames["days"] = days[enough].reset_index(drop=True)
    return BatchFrames(frames, skip)
