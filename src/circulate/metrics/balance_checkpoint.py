"""Member balances at the end of the latest complete month, for the never-negative check.

``sql/tests/account_balances_never_negative.sql`` replays every member account's balance
in time order and fails on any moment below zero. Over the whole ledger that is the
dearest check of a night (a window over every movement), and almost all of it repeats the
night before. So the replay up to the end of the latest complete month (the cut) runs in
full when that month closes and is stored here: each member account's balance at the cut
and the lowest balance its replay reached, with the entry that reached it. A night's check
then replays only the movements after the cut, starting from these balances, and also
fails on a stored lowest balance below zero.

A stored cut is reused only while it still describes a prefix of today's ledger: the same
cut day, the load batches of ``intermediate.account_movements`` it covered still there
exactly as they were appended (``audit.appended_batches``: same rows, model digest and
append time; a rebuilt table has new append times, as after a change of issuer
accounts), no movement of a later batch on or before the cut day (a late or corrected
entry) and the same version of this module. Otherwise the whole replay runs again, as it
does on ``circulate run --full``, which drops every built table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from circulate.metrics.network import closed_history_end
from circulate.warehouse.connection import table_exists
from circulate.warehouse.runner import PythonModel

__all__ = ["CHECKPOINT", "CUT", "MODELS"]

CHECKPOINT = "intermediate.balance_checkpoint"
CUT = "intermediate.balance_checkpoint_cut"
MOVEMENTS = "intermediate.account_movements"

_BATCHES_SQL = """
select batch_id, source_rows, model_digest, appended_at
from audit.appended_batches
where table_name = $table
order by batch_id
"""
# Movements of batches the stored cut did not cover that fall on or before its day.
_LATE_SQL = """
select count(*) from intermediate.account_movements
where local_day <= $cut_day and batch_id not in (select unnest($batches))
"""
# The order is that of the check (sql/tests/account_balances_never_negative.sql): by time,
# then txn_id, money arriving before money leaving within one entry.
_REPLAY_SQL = """
create or replace table intermediate.balance_checkpoint as
with replay as (
    select
        account_id,
        delta,
        {
            'balance': sum(delta) over (
                partition by account_id order by occurred_at, txn_id, delta desc
                rows unbounded preceding
            ),
            'occurred_at': occurred_at,
            'txn_id': txn_id
        } as moment
    from intermediate.account_movements
    where local_day <= $cut_day
),

per_account as (
    select account_id, sum(delta) as balance, min(moment) as lowest
    from replay
    group by account_id
)

select
    account_id,
    cast(balance as decimal(18, 2)) as balance,
    cast(lowest.balance as decimal(18, 2)) as lowest_balance,
    lowest.occurred_at as lowest_at,
    lowest.txn_id as lowest_txn_id
from per_account
order by account_id
"""
_CUT_SQL = """
create or replace table intermediate.balance_checkpoint_cut as
select
    cast($cut_day as date) as cut_day,
    cast($batches as varchar[]) as batches,
    cast($batches_digest as varchar) as batches_digest,
    cast($version as varchar) as version
"""
_STORED_CUT_SQL = """
select cut_day, batches, batches_digest, version from intermediate.balance_checkpoint_cut
"""

DESCRIPTIONS = {
    CHECKPOINT: (
        "Each member account's balance at the end of the latest complete month (the cut, "
        "in intermediate.balance_checkpoint_cut) and the lowest balance a replay of its "
        "movements in time order reached up to then, with the entry that reached it "
        "(lowest_at, lowest_txn_id). Made in full when a month closes, when an entry lands "
        "on or before the cut and on circulate run --full; the never-negative check "
        "replays only the movements after the cut from these balances."
    ),
    CUT: (
        "The cut of intermediate.balance_checkpoint (one row): its day (null before any "
        "month is complete), the load batches of intermediate.account_movements it "
        "covered, their digest as appended and the version of the code that made it."
    ),
}


@cache
def _version() -> str:
    # A change to this module may change what a stored row means: it invalidates them all.
    return hashlib.blake2b(Path(__file__).read_bytes(), digest_size=16).hexdigest()


def _covered_batches(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(_BATCHES_SQL, {"table": MOVEMENTS}).fetchall()


def _digest(batches: list[tuple[Any, ...]]) -> str:
    return hashlib.blake2b(repr(batches).encode(), digest_size=16).hexdigest()


def _stored_cut_holds(
    con: duckdb.DuckDBPyConnection, cut_day: date | None, batches: list[tuple[Any, ...]]
) -> bool:
    """Whether the stored checkpoint is that of ``cut_day`` on a prefix of today's ledger."""
    if not (table_exists(con, CUT) and table_exists(con, CHECKPOINT)):
        return False
    stored = con.execute(_STORED_CUT_SQL).fetchall()
    if len(stored) != 1:
        return False
    stored_day, stored_batches, stored_digest, version = stored[0]
    if stored_day != cut_day or version != _version():
        return False
    covered = [b for b in batches if b[0] in set(stored_batches)]
    if len(covered) != len(stored_batches) or _digest(covered) != stored_digest:
        return False
    if cut_day is None:
        return True
    [(late,)] = con.execute(_LATE_SQL, {"cut_day": cut_day, "batches": stored_batches}).fetchall()
    return bool(late == 0)


def build_balance_checkpoint(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Keep the stored checkpoint when it still holds, or replay up to the latest cut."""
    [(first_day, last_day)] = con.execute(
        "select min(day), max(day) from intermediate.day_spine"
    ).fetchall()
    cut_day = closed_history_end(first_day, last_day)
    batches = _covered_batches(con)
    if not _stored_cut_holds(con, cut_day, batches):
        replay_to_cut(con, cut_day, batches)


def replay_to_cut(
    con: duckdb.DuckDBPyConnection, cut_day: date | None, batches: list[tuple[Any, ...]]
) -> None:
    """Replay every movement up to ``cut_day`` and store the checkpoint and its cut."""
    # Before the first close nothing is stored: the check replays the whole ledger.
    con.execute(_REPLAY_SQL, {"cut_day": cut_day or date.min})
    con.execute(
        _CUT_SQL,
        {
            "cut_day": cut_day,
            "batches": [str(b[0]) for b in batches],
            "batches_digest": _digest(batches),
            "version": _version(),
        },
    )


MODELS = [
    PythonModel(
        "intermediate",
        "balance_checkpoint",
        frozenset({MOVEMENTS, "intermediate.day_spine", "audit.appended_batches"}),
        build_balance_checkpoint,
        DESCRIPTIONS[CHECKPOINT],
        refresh="made in full when a month closes, when an entry lands on or before the cut "
        "(a late or corrected entry, changed issuer accounts) and on `circulate run --full`; "
        "kept as it is on other nights",
        also_builds={CUT: DESCRIPTIONS[CUT]},
    )
]
