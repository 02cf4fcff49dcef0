"""The pandas frames a batch is validated on, each computed in one DuckDB query.

Great Expectations runs on pandas frames (DESIGN §7: a DuckDB datasource is fragile), so
everything that needs the warehouse — export days, account attributes, trailing
history — is joined here and handed over as plain columns. The ``transactions`` frame
holds only the rows some check flags (see :mod:`circulate.validate.suites`): a clean
batch of millions of rows reaches pandas as an empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from circulate.ingest.canonical import CONFLICT_REASON
from circulate.validate.suites import CONTRACT_TYPES, Check

#: Ratio given to a day with rows when its trailing median is zero (any band fails it).
NO_BASELINE_RATIO = 1e9

_TRANSACTIONS = """
create or replace temp table validation_flagged as
with batch as (
    select
        rowid as ledger_row,
        txn_id, source_file, source_line, occurred_at, source_id, target_id, amount, kind
    from raw.transactions
    where batch_id = $batch_id
),

-- The local day's bounds in epoch microseconds, once per file: per row, timezone() and
-- timestamptz arithmetic (calendar-aware) would cost far more than the rest of the checks.
files as (
    select
        file_name,
        export_day,
        epoch_us(timezone($timezone, cast(export_day as timestamp))) as day_starts_us,
        epoch_us(timezone($timezone, cast(export_day + 1 as timestamp))) as day_ends_us
    from audit.files
    where file_role = 'transactions' and batch_id = $batch_id
),

accounts as (
    select account_id, account_type from raw.accounts
),

listed_issuers as (
    select account_id from accounts where account_type = 'issuer'
),

repeated_txn_ids as (
    select txn_id from batch group by txn_id having count(*) > 1
),

-- The warehouse's issuer set (sql/intermediate/issuer_accounts.sql) over the whole raw
-- ledger, this batch included: listed as issuer, or issuing, or taking a redemption or fee
-- anywhere. Their balances are outside circulation, so a row that moves money between one
-- of them and a member without being an issuance, redemption or fee breaks the balances.
issuer_accounts as (
    select account_id from listed_issuers
    union select source_id from raw.transactions where kind = 'issuance'
    union select target_id from raw.transactions where kind in ('redemption', 'fee')
),

-- Batch rows that put an issuer account on a member's side: a transfer or reversal from
-- or to it, an issuance to it, a redemption or fee from it.
role_conflicts as (
    select ledger_row, kind, issuer_id, direction
    from (
        select
            ledger_row,
            kind,
            case
                when kind in ('transfer', 'reversal', 'redemption', 'fee')
                    and source_id in (select account_id from issuer_accounts) then source_id
                when kind in ('transfer', 'reversal', 'issuance')
                    and target_id in (select account_id from issuer_accounts) then target_id
            end as issuer_id,
            case
                when kind in ('transfer', 'reversal', 'redemption', 'fee')
                    and source_id in (select account_id from issuer_accounts) then 'from'
                else 'to'
            end as direction
        from batch
    )
    where issuer_id is not null
),

-- Why each of those accounts is an issuer, for the message: the listing, else its
-- earliest issuance, redemption or fee.
issuer_evidence as (
    select account_id, arg_min(evidence, (listing_first, occurred_at, txn_id, line)) as evidence
    from (
        select account_id, 'is listed as issuer in ' || source_file as evidence,
            0 as listing_first, null::timestamptz as occurred_at, null as txn_id, null as line
        from raw.accounts
        where account_type = 'issuer'
            and account_id in (select issuer_id from role_conflicts)
        union all
        select
            case when kind = 'issuance' then source_id else target_id end,
            case when kind = 'issuance' then 'issues money' else 'takes a ' || kind end
                || ' in ' || source_file || ' line ' || source_line,
            1, occurred_at, txn_id, source_line
        from raw.transactions
        where (kind = 'issuance' and source_id in (select issuer_id from role_conflicts))
            or (kind in ('redemption', 'fee')
                and target_id in (select issuer_id from role_conflicts))
    )
    group by account_id
),

-- Accounts this batch makes issuers that no row outside it does, and the earliest row
-- outside the batch where each acts as a member: the batch's issuance, redemption or fee
-- turns that older row into a conflict, which the batch alone would not show.
new_issuers as (
    select case when kind = 'issuance' then source_id else target_id end as account_id
    from batch
    where kind in ('issuance', 'redemption', 'fee')
    except (
        select source_id from raw.transactions
        where kind = 'issuance' and batch_id <> $batch_id
        union
        select target_id from raw.transactions
        where kind in ('redemption', 'fee') and batch_id <> $batch_id
    )
),

member_rows_elsewhere as (
    select
        account_id,
        arg_min(
            (case when kind = 'issuance' then 'an ' else 'a ' end) || kind || ' in '
                || source_file || ' line ' || source_line,
            (occurred_at, txn_id, source_line)
        ) as member_row
    from (
        select source_id as account_id, kind, source_file, source_line, occurred_at, txn_id
        from raw.transactions
        where batch_id <> $batch_id and kind in ('transfer', 'reversal', 'redemption', 'fee')
            and source_id in (select account_id from new_issuers)
        union all
        select target_id, kind, source_file, source_line, occurred_at, txn_id
        from raw.transactions
        where batch_id <> $batch_id and kind in ('transfer', 'reversal', 'issuance')
            and target_id in (select account_id from new_issuers)
    )
    group by account_id
),

issuer_role_problems as (
    select
        batch.ledger_row,
        coalesce(
            case when role_conflicts.ledger_row is not null then
                (case when batch.kind = 'issuance' then 'an ' else 'a ' end) || batch.kind
                || ' ' || role_conflicts.direction || ' an issuer account (it '
                || issuer_evidence.evidence || ')'
            end,
            case when member_rows_elsewhere.account_id is not null then
                (case when batch.kind = 'issuance' then 'an issuance from' else 'a '
                    || batch.kind || ' to' end)
                || ' an account that is a member elsewhere ('
                || member_rows_elsewhere.member_row || ')'
            end
        ) as problem
    from batch
    left join role_conflicts on role_conflicts.ledger_row = batch.ledger_row
    left join issuer_evidence on issuer_evidence.account_id = role_conflicts.issuer_id
    left join member_rows_elsewhere on batch.kind in ('issuance', 'redemption', 'fee')
        and member_rows_elsewhere.account_id
            = case when batch.kind = 'issuance' then batch.source_id else batch.target_id end
    where role_conflicts.ledger_row is not null or member_rows_elsewhere.account_id is not null
),

-- The ledger replay of sql/tests/account_balances_never_negative.sql, on raw rows, so an
-- overdrawn member is caught before the models (and the money tracer) are built.
-- Only the batch's payers need a balance, and only from their first payment in the batch
-- on: what they did before is one sum (the opening balance), not a replay. On a night
-- that adds a day to a long history this replays days, not years. Payers and ledger rows
-- are keyed by integers: sorting and joining on pseudonym strings costs twice as much.
batch_payers as (
    select
        source_id as account_id,
        min(occurred_at) as replay_from,
        row_number() over () as payer_key
    from batch
    where source_id not in (select account_id from issuer_accounts)
    group by source_id
),

-- Each payer's movements before its first payment in the batch (summed) and from it on
-- (replayed), as two streams: neither is held in memory whole.
earlier_movements as (
    select batch_payers.payer_key, ledger.amount as delta
    from raw.transactions as ledger
    join batch_payers on batch_payers.account_id = ledger.target_id
    where ledger.occurred_at < batch_payers.replay_from
    union all
    select batch_payers.payer_key, -ledger.amount as delta
    from raw.transactions as ledger
    join batch_payers on batch_payers.account_id = ledger.source_id
    where ledger.occurred_at < batch_payers.replay_from
),

opening as (
    select payer_key, sum(delta) as balance from earlier_movements group by payer_key
),

replayed_movements as (
    select ledger.rowid as ledger_row, ledger.txn_id, ledger.occurred_at,
        batch_payers.payer_key, ledger.amount as delta, false as batch_payment
    from raw.transactions as ledger
    join batch_payers on batch_payers.account_id = ledger.target_id
    where ledger.occurred_at >= batch_payers.replay_from
    union all
    select ledger.rowid as ledger_row, ledger.txn_id, ledger.occurred_at,
        batch_payers.payer_key, -ledger.amount as delta,
        ledger.batch_id = $batch_id as batch_payment
    from raw.transactions as ledger
    join batch_payers on batch_payers.account_id = ledger.source_id
    where ledger.occurred_at >= batch_payers.replay_from
),

-- A batch payment answers for the payer's balance from it up to their next payment in the
-- batch: a late row can leave enough for itself yet overdraw a later payment already on
-- file, and that later payment is not in the batch to be flagged.
replay as (
    select
        movements.ledger_row,
        movements.delta,
        movements.batch_payment,
        movements.payer_key,
        coalesce(opening.balance, 0) + sum(movements.delta) over in_time_order
            as running_balance,
        count(*) filter (where movements.batch_payment) over in_time_order as batch_segment
    from replayed_movements as movements
    left join opening on opening.payer_key = movements.payer_key
    window in_time_order as (
        partition by movements.payer_key
        order by movements.occurred_at, movements.txn_id, movements.delta desc
        rows unbounded preceding
    )
),

-- Only payments lower a balance; a ledger row moves money out of one account only.
payer_balance as (
    select
        max(ledger_row) filter (where batch_payment) as ledger_row,
        min(running_balance) as lowest_balance
    from replay
    where delta < 0 and batch_segment > 0
    group by payer_key, batch_segment
),

checked as (
    select
        batch.txn_id,
        batch.source_file,
        batch.source_line,
        batch.occurred_at,
        batch.source_id,
        batch.target_id,
        cast(batch.amount as double) as amount,
        batch.kind,
        files.export_day,
        -- Hours before the start or after the end of the file's local day (0 inside it).
        case when files.export_day is not null then greatest(
            0,
            (files.day_starts_us - epoch_us(batch.occurred_at)) / 1e6,
            (epoch_us(batch.occurred_at) - files.day_ends_us) / 1e6
        ) / 3600.0 end as hours_outside_export_day,
        source_account.account_type as source_account_type,
        target_account.account_type as target_account_type,
        case when batch.kind = 'issuance'
            then batch.source_id in (select account_id from listed_issuers) end
            as issuance_from_issuer,
        case when batch.kind in ('redemption', 'fee')
            then batch.target_id in (select account_id from listed_issuers) end
            as outflow_to_issuer,
        cast(payer_balance.lowest_balance as double) as payer_lowest_balance,
        batch.source_file || ' line ' || batch.source_line || ': '
            || issuer_role_problems.problem as issuer_role_problem,
        batch.txn_id in (select txn_id from repeated_txn_ids) as txn_id_repeated
    from batch
    left join payer_balance on payer_balance.ledger_row = batch.ledger_row
    left join issuer_role_problems on issuer_role_problems.ledger_row = batch.ledger_row
    left join files on files.file_name = batch.source_file
    left join accounts as source_account on source_account.account_id = batch.source_id
    left join accounts as target_account on target_account.account_id = batch.target_id
)

select * from checked where {flagged}
"""

#: The columns of the ``transactions`` frame, in batch order (file, then line).
_TRANSACTION_FRAME = """
select
    txn_id, source_file, source_line, occurred_at, source_id, target_id, amount, kind,
    export_day, hours_outside_export_day, source_account_type, target_account_type,
    issuance_from_issuer, outflow_to_issuer, issuer_role_problem, payer_lowest_balance
from validation_flagged
order by source_file, source_line
"""

#: Whether the whole batch has a value in each text column of the ``transactions`` frame.
_TEXT_PRESENT = """
with batch as (
    select source_id, target_id from raw.transactions where batch_id = $batch_id
)

select
    exists (select 1 from batch) as any_row,
    exists (
        select 1 from batch join raw.accounts on raw.accounts.account_id = batch.source_id
    ) as source_account_type,
    exists (
        select 1 from batch join raw.accounts on raw.accounts.account_id = batch.target_id
    ) as target_account_type
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
with batch_days as (
    select min(export_day) as first_day, max(export_day) as last_day
    from audit.files
    where batch_id = $batch_id and file_role = 'transactions' and status <> 'rejected'
),

-- Only the batch's days and their trailing windows are compared: the rest of the
-- history is not read.
banded_files as (
    select files.file_name, files.batch_id, files.export_day
    from audit.files as files, batch_days
    where files.file_role = 'transactions' and files.status <> 'rejected'
        and files.export_day between batch_days.first_day - $history_days
        and batch_days.last_day
)

select
    files.export_day as day,
    count(transactions.txn_id) as row_count,
    coalesce(sum(transactions.amount) filter (where transactions.kind = 'transfer'), 0) as volume
from banded_files as files
left join raw.transactions as transactions
    on transactions.source_file = files.file_name and transactions.batch_id = files.batch_id
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
with export_days as (
    select distinct export_day as day
    from audit.files
    where file_role = 'transactions' and status <> 'rejected' and export_day is not null
),

bounds as (
    select
        (select min(day) from export_days) as first_day,
        (
            select max(export_day) from audit.files
            where batch_id = $batch_id and file_role = 'transactions' and status <> 'rejected'
        ) as last_day
)

select cast(spine.day as date) as day, count(export_days.day) as files
from bounds, range(bounds.first_day, bounds.last_day + interval 1 day, interval 1 day) as spine(day)
left join export_days on export_days.day = cast(spine.day as date)
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
    row_counts
        Frame name to the number of rows the suite checks: the frame's length, except for
        ``transactions`` when only the flagged rows were kept (then the batch's size).
    flagged_counts
        For each check whose rows were pre-selected in DuckDB, how many rows its
        ``unexpected_rows_sql`` flags; the expectation must count as many.
    """

    frames: dict[str, pd.DataFrame]
    skip_reasons: dict[str, str]
    row_counts: dict[str, int] = field(default_factory=dict)
    flagged_counts: dict[str, int] = field(default_factory=dict)


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


def _skip_reasons(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Reasons the account checks cannot run (the history reason needs the days frame)."""
    skip: dict[str, str] = {}
    counts = con.execute(
        "select count(*), count(*) filter (where account_type = 'issuer') from raw.accounts"
    ).fetchone()
    accounts, issuers = counts if counts else (0, 0)
    if not accounts:
        skip["accounts"] = "no accounts file loaded: accounts cannot be checked"
    if not issuers:
        skip["issuers"] = "no issuer account listed in the accounts file"
    return skip


def _as_whole_batch_text(
    con: duckdb.DuckDBPyConnection, batch_id: str, frame: pd.DataFrame
) -> pd.DataFrame:
    """Give the text columns the dtype they would have in a frame of the whole batch.

    DuckDB hands pandas a text column with at least one value as a string dtype (missing
    values NaN) but an all-null one as objects (missing values None), and an expectation
    reports the missing values it finds (``nan`` or ``None``) as they are. A column can be
    all null among the flagged rows and not in the batch: convert it as the whole batch.
    """
    present = con.execute(_TEXT_PRESENT, {"batch_id": batch_id}).fetchone()
    if not present:
        return frame
    any_row, source_type, target_type = present
    text_dtype = con.execute("select 'text' as text").df()["text"].dtype
    in_batch = {
        **dict.fromkeys(("txn_id", "source_file", "source_id", "target_id", "kind"), any_row),
        "source_account_type": source_type,
        "target_account_type": target_type,
    }
    converted = {
        column: frame[column].astype(text_dtype)
        for column, present_in_batch in in_batch.items()
        if present_in_batch and frame[column].dtype != text_dtype
    }
    return frame.assign(**converted) if converted else frame


def _transactions(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    timezone: str,
    flag_checks: Sequence[Check] | None,
) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """The batch's rows that ``flag_checks`` flag (every row when ``None``), in batch order.

    Returns the frame, the batch's row count and each check's count of flagged rows.
    """
    unstated = [check.name for check in flag_checks or () if not check.unexpected_rows_sql]
    if unstated:
        # Its failures would reach Great Expectations only by chance: refuse to run.
        raise ValueError(
            f"Check(s) {', '.join(unstated)} in circulate/validate/suites.py run on the "
            "transactions frame without unexpected_rows_sql: add the DuckDB condition "
            "for the rows the expectation counts as unexpected"
        )
    conditions = {check.name: f"({check.unexpected_rows_sql})" for check in flag_checks or ()}
    if flag_checks is None:
        flagged = "true"
    else:
        # A condition is null where the expectation ignores the row (a null value).
        flagged = " or ".join(f"coalesce({c}, false)" for c in conditions.values()) or "false"
    con.execute(_TRANSACTIONS.format(flagged=flagged), {"batch_id": batch_id, "timezone": timezone})
    frame = _as_whole_batch_text(con, batch_id, _df(con, _TRANSACTION_FRAME, {}))
    counted = con.execute(
        "select count(*) from raw.transactions where batch_id = $batch_id",
        {"batch_id": batch_id},
    ).fetchone()
    batch_rows = int(counted[0]) if counted else 0
    flagged_counts: dict[str, int] = {}
    if conditions:
        sums = ", ".join(f"count(*) filter (where {c})" for c in conditions.values())
        # The conditions are the checks' own SQL (suites.py), never input data.
        row = con.execute(f"select {sums} from validation_flagged").fetchone()  # noqa: S608
        flagged_counts = dict(zip(conditions, (int(n) for n in row or ()), strict=True))
    return frame, batch_rows, flagged_counts


def load_frames(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    *,
    timezone: str,
    history_days: int,
    checks: Sequence[Check] | None = None,
) -> BatchFrames:
    """Compute every frame for ``batch_id`` from the warehouse ``con`` points at.

    Parameters
    ----------
    con
        Connection to a warehouse holding ``raw`` and ``audit`` (read-only is enough:
        only temporary tables are written).
    batch_id
        The batch to validate (the pipeline's run id).
    timezone
        Scheme timezone; export days are its calendar days.
    history_days
        Length of the history_band window for the volume band.
    checks
        The checks about to run: the ``transactions`` frame then keeps only the rows that
        the ``unexpected_rows_sql`` of at least one of them (not skipped) flags. ``None``
        keeps every row of the batch.
    """
    skip = _skip_reasons(con)
    flag_checks = (
        None
        if checks is None
        else [
            c
            for c in checks
            if c.frame == "transactions" and (c.needs is None or c.needs not in skip)
        ]
    )
    transactions, batch_rows, flagged_counts = _transactions(con, batch_id, timezone, flag_checks)
    con.execute(_DAY_TOTALS, {"batch_id": batch_id, "history_days": history_days})
    frames = {
        "schema": _schema_frame(con),
        "transactions": transactions,
        "files": _df(con, _FILES, {"batch_id": batch_id, "conflict_reason": CONFLICT_REASON}),
        "days": _df(
            con,
            _DAYS,
            {"batch_id": batch_id, "history_days": history_days, "no_baseline": NO_BASELINE_RATIO},
        ),
        "export_days": _df(con, _EXPORT_DAYS, {"batch_id": batch_id}),
    }
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
    row_counts = {name: len(frame) for name, frame in frames.items()}
    row_counts["transactions"] = batch_rows
    return BatchFrames(frames, skip, row_counts, flagged_counts)
