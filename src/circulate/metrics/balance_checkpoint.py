"""Member balances at the end of the latest complete month, for the never-negative check.

``sql/tests/account_balances_never_negative.sql`` replays every member account's balance
in time order and fails on any moment below zero. Over the whole ledger that is the
dearest check of a night (a window over every movement), and almost all of it repeats the
night before. So the replay up to the end of the latest complete month (the cut) runs in
full when that month closes and is stored here: each member account's balance at the cut
and the lowest balance its replay reached, with the entry that reached it. A night's check
then replays only the movements after the cut, starting from these balances, and also
fails on a stored lowest balance below zero.

The stored checkpoint is reused only while its cut still describes a prefix of today's
``intermediate.account_movements`` (:mod:`circulate.metrics.month_close`: the same cut,
first day and code, the covered load batches unchanged as appended, so not rebuilt as
after a change of issuer accounts, and no movement of a later batch on or before the cut
day: a late or corrected entry). Otherwise the whole replay runs again, as it does on
``circulate run --full``, which drops every built table.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import duckdb

from circulate.metrics.month_close import current_cut, cut_description, version_of
from circulate.warehouse.connection import table_exists
from circulate.warehouse.runner import PythonModel

__all__ = ["CHECKPOINT", "CUT", "MODELS"]

CHECKPOINT = "intermediate.balance_checkpoint"
CUT = "intermediate.balance_checkpoint_cut"
MOVEMENTS = "intermediate.account_movements"

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

DESCRIPTIONS = {
    CHECKPOINT: (
        "Each member account's balance at the end of the latest complete month (the cut, "
        "in intermediate.balance_checkpoint_cut) and the lowest balance a replay of its "
        "movements in time order reached up to then, with the entry that reached it "
        "(lowest_at, lowest_txn_id). Made in full when a month closes, when an entry lands "
        "on or before the cut and on circulate run --full; the never-negative check "
        "replays only the movements after the cut from these balances."
    ),
    CUT: cut_description(CHECKPOINT, (MOVEMENTS,)),
}


def build_balance_checkpoint(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
    """Keep the stored checkpoint when its cut still holds, or replay up to today's cut."""
    cut = current_cut(con, (MOVEMENTS,), version_of(__file__))
    if cut.holds_for(con, CUT) and table_exists(con, CHECKPOINT):
        return
    replay_to_cut(con, cut.day)
    cut.store(con, CUT)


def replay_to_cut(con: duckdb.DuckDBPyConnection, cut_day: date | None) -> None:
    """Replay every movement up to ``cut_day`` into the checkpoint (before the first
    close nothing is stored: the check then replays the whole ledger)."""
    con.execute(_REPLAY_SQL, {"cut_day": cut_day or date.min})


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
