"""The money tracer's stored state, so that a night replays only the entries it added.

After every replay the build stores where the tracer stopped (:class:`TraceState`) in
three warehouse tables:

- ``intermediate.trace_checkpoint`` — one row: entries replayed, the last of them
  (``occurred_at``, ``txn_id``), the load batches of ``staging.transactions`` they came
  from and a digest of what the replay depends on besides them; the money that has left
  circulation by day (trajectories and holding spells) as arrays;
- ``intermediate.trace_checkpoint_lots`` — every open lot: account, place in its queue,
  amount, arrival, origin issuance and hops;
- ``intermediate.trace_checkpoint_issuances`` — per issuance, its day and the money of it
  that has left circulation (reach by hops, redeemed, fees, Σ amount × hops).

The next build resumes from that state only when it describes a prefix of today's
ledger: the source of the tracer and of this module and the issuer accounts are
unchanged (the digest), the batches it replayed are still in ``staging.transactions``
exactly as they were appended (``audit.appended_batches``: same rows, same model
digest, same append time; a rebuilt staging table has new append times), every other
row sorts after the last entry replayed, day 0 is the same and the tables have the
layout this version writes. Otherwise it replays the whole ledger. Either way the
result is the same, bit for bit (``tests/unit/test_tracing.py`` proves a resumed replay
equals one replay).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.metrics import tracing
from circulate.metrics.tracing import REACH_DEPTH, SPELL_BINS, Ledger, TraceState
from circulate.warehouse.connection import table_content, table_exists
from circulate.warehouse.runner import write_frame

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_ISSUANCES",
    "CHECKPOINT_LOTS",
    "DESCRIPTIONS",
    "read_checkpoint",
    "write_checkpoint",
]

CHECKPOINT = "intermediate.trace_checkpoint"
CHECKPOINT_LOTS = "intermediate.trace_checkpoint_lots"
CHECKPOINT_ISSUANCES = "intermediate.trace_checkpoint_issuances"
DESCRIPTIONS = {
    CHECKPOINT: (
        "Where the last build's FIFO trace stopped (one row): entries replayed, the last "
        "of them, the staging load batches they came from and, as arrays, the money that "
        "has left circulation by day. A build resumes from it when it describes a prefix "
        "of the ledger, and replays the whole ledger otherwise; resumed_from_rows says "
        "which (0 = replayed from the first entry)."
    ),
    CHECKPOINT_LOTS: (
        "Open lots of the last build's FIFO trace: each member account's queue, oldest "
        "first (position 0), with the amount, arrival, origin issuance and transfers made."
    ),
    CHECKPOINT_ISSUANCES: (
        "Per issuance (numbered in replay order) of the last build's FIFO trace: its local "
        "day and the money of it that has left circulation so far (reach by transfers "
        "made, redeemed, fees, amount x transfers), in pence; open lots are added on top."
    ),
}

# The batches behind staging.transactions, as the runner recorded their appending.
_STAGING_BATCHES_SQL = """
select batch_id, source_rows, model_digest, appended_at
from audit.appended_batches
where table_name = 'staging.transactions'
order by batch_id
"""
# Rows of the replayed batches, and rows of other batches sorting at or before the last
# entry replayed (a late row makes the stored state a state of another ledger).
_PREFIX_SQL = """
select
    count(*) filter (where batch_id in (select unnest($batches))),
    count(*) filter (
        where batch_id not in (select unnest($batches))
        and (occurred_at < $last_at or (occurred_at = $last_at and txn_id <= $last_txn))
    )
from staging.transactions
"""
_LAST_ENTRY_SQL = """
select occurred_at, txn_id from staging.transactions
order by occurred_at desc, txn_id desc
limit 1
"""


@cache
def _tracer_source() -> bytes:
    # A change to the tracer may change any lot, and a change to this module the meaning
    # of a stored column: either invalidates every stored state.
    return Path(tracing.__file__).read_bytes() + Path(__file__).read_bytes()


def _depends_on(con: duckdb.DuckDBPyConnection, order: str) -> str:
    """Digest of what a replay depends on besides the ledger's rows."""
    digest = hashlib.blake2b(_tracer_source(), digest_size=16)
    issuers = table_content(con, "intermediate.issuer_accounts")
    digest.update(repr((order, SPELL_BINS, REACH_DEPTH, issuers)).encode())
    return digest.hexdigest()


def _staging_batches(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    if not table_exists(con, "audit.appended_batches"):
        return []
    return con.execute(_STAGING_BATCHES_SQL).fetchall()


def _batches_digest(batches: Sequence[tuple[Any, ...]]) -> str:
    return hashlib.blake2b(repr(list(batches)).encode(), digest_size=16).hexdigest()


def _blob(array: npt.NDArray[Any]) -> bytes:
    # Little-endian whatever the machine, so a warehouse file moves between machines.
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def write_checkpoint(
    con: duckdb.DuckDBPyConnection,
    state: TraceState,
    account_ids: Sequence[str],
    resumed_from_rows: int,
) -> None:
    """Store ``state`` (a replay of all of ``staging.transactions``) for the next build.

    ``account_ids`` names the ledger's account indices (index i = ``account_ids[i]``).
    Without load batches recorded for ``staging.transactions`` nothing is stored that a
    later build could resume from: the tables are written with ``resumable = false``.
    """
    batches = _staging_batches(con)
    last = con.execute(_LAST_ENTRY_SQL).fetchall()
    last_at, last_txn = last[0] if last else (None, None)
    covered = sum(rows for _batch, rows, _digest, _at in batches)
    resumable = bool(batches) and covered == state.rows
    queue_start = np.searchsorted(state.open_account, state.open_account, side="left")
    ids = np.asarray(account_ids, dtype=object)
    lots = pl.DataFrame(
        {
            "account_id": ids[state.open_account].tolist() if state.open_account.size else [],
            "position": np.arange(state.open_account.size, dtype=np.int64) - queue_start,
            "amount_pence": state.open_lots[:, 0],
            "arrived_epoch_seconds": state.open_lots[:, 1],
            "origin": state.open_lots[:, 2],
            "hops": state.open_lots[:, 3],
        },
        schema={
            "account_id": pl.String,
            "position": pl.Int64,
            "amount_pence": pl.Int64,
            "arrived_epoch_seconds": pl.Int64,
            "origin": pl.Int64,
            "hops": pl.Int64,
        },
    )
    write_frame(con, lots, CHECKPOINT_LOTS)
    issuances = pl.DataFrame(
        {
            "origin": np.arange(state.issuances, dtype=np.int64),
            "origin_day_index": state.origin_day,
            **{f"ended_reach_{t}_pence": state.ended_reach[:, t] for t in range(REACH_DEPTH)},
            "redeemed_pence": state.ended_end[:, 0],
            "fees_pence": state.ended_end[:, 1],
            "ended_hop_pence": state.ended_hop_pence,
        }
    )
    write_frame(con, issuances, CHECKPOINT_ISSUANCES)
    con.execute(
        f"""
        create or replace table {CHECKPOINT} as select
            $order as trace_order,
            $rows::bigint as rows_replayed,
            $resumed::bigint as resumed_from_rows,
            $last_at::timestamptz as last_occurred_at,
            $last_txn::varchar as last_txn_id,
            $first_day::date as first_day,
            $overdrawn::bigint as overdrawn_row,
            $resumable as resumable,
            $depends_on as depends_on,
            $batch_ids::varchar[] as staging_batches,
            $batches_digest as staging_batches_digest,
            $days::bigint as days,
            $width::bigint as trajectory_width,
            $trajectories::blob as ended_trajectories_pence,
            $spells::blob as spell_pence,
            $spell_seconds::blob as spell_pence_seconds
        """,
        {
            "order": state.order,
            "rows": state.rows,
            "resumed": resumed_from_rows,
            "last_at": last_at,
            "last_txn": last_txn,
            "first_day": state.first_day,
            "overdrawn": state.overdrawn_row,
            "resumable": resumable,
            "depends_on": _depends_on(con, state.order),
            "batch_ids": [batch for batch, *_ in batches],
            "batches_digest": _batches_digest(batches),
            "days": state.spell_pence.shape[0],
            "width": state.ended_trajectories.shape[2],
            "trajectories": _blob(state.ended_trajectories),
            "spells": _blob(state.spell_pence),
            "spell_seconds": _blob(state.spell_pence_seconds),
        },
    )


def read_checkpoint(
    con: duckdb.DuckDBPyConnection, ledger: Ledger, order: str = "fifo"
) -> TraceState | None:
    """The stored state if it is a state of ``ledger``'s first entries, in its numbering.

    ``None`` (replay everything) when there is none, or when anything it describes
    changed: the tracer, the issuer accounts, a replayed batch, or a row sorting among
    the entries it replayed.
    """
    if not all(table_exists(con, t) for t in (CHECKPOINT, CHECKPOINT_LOTS, CHECKPOINT_ISSUANCES)):
        return None
    try:
        found = con.execute(
            f"""
            select trace_order, rows_replayed, last_occurred_at, last_txn_id, first_day,
                   overdrawn_row, resumable, depends_on, staging_batches,
                   staging_batches_digest, days, trajectory_width, ended_trajectories_pence,
                   spell_pence, spell_pence_seconds
            from {CHECKPOINT}
            """  # noqa: S608 (the module's own table name)
        ).fetchall()
    except duckdb.BinderException:
        return None  # stored by a version of circulate with other columns
    if len(found) != 1:
        return None
    (
        stored_order,
        rows,
        last_at,
        last_txn,
        first_day,
        overdrawn,
        resumable,
        depends_on,
        batch_ids,
        batches_digest,
        days,
        width,
        trajectories,
        spells,
        spell_seconds,
    ) = found[0]
    if first_day != ledger.first_day or rows > ledger.at.size:
        return None
    if not resumable or stored_order != order or depends_on != _depends_on(con, order):
        return None
    replayed_batches = set(batch_ids)
    held = [batch for batch in _staging_batches(con) if batch[0] in replayed_batches]
    if len(held) != len(batch_ids) or _batches_digest(held) != batches_digest:
        return None
    [(replayed, late)] = con.execute(
        _PREFIX_SQL, {"batches": batch_ids, "last_at": last_at, "last_txn": last_txn}
    ).fetchall()
    if replayed != rows or late != 0:
        return None
    return _state(
        con,
        order,
        rows,
        first_day,
        overdrawn,
        ledger.account_ids,
        (days, width, trajectories, spells, spell_seconds),
    )


def _state(
    con: duckdb.DuckDBPyConnection,
    order: str,
    rows: int,
    first_day: Any,
    overdrawn: int,
    account_ids: Sequence[str],
    arrays: tuple[int, int, bytes, bytes, bytes],
) -> TraceState | None:
    days, width, trajectories, spells, spell_seconds = arrays
    index = pl.DataFrame(
        {"account_id": list(account_ids), "idx": np.arange(len(account_ids), dtype=np.int64)},
        schema={"account_id": pl.String, "idx": pl.Int64},
    )
    lots = (
        con.sql(f"select * from {CHECKPOINT_LOTS}")  # noqa: S608 (the module's own table)
        .pl()
        .join(index, on="account_id", how="left")
        .sort("idx", "position")
    )
    if lots["idx"].null_count():
        return None  # a lot of an account that is no member account today
    issuances = con.sql(
        f"select * from {CHECKPOINT_ISSUANCES} order by origin"  # noqa: S608 (the module's own)
    ).pl()
    return TraceState(
        order=order,
        rows=int(rows),
        first_day=first_day,
        open_account=lots["idx"].to_numpy().astype(np.int64),
        open_lots=lots.select("amount_pence", "arrived_epoch_seconds", "origin", "hops")
        .to_numpy()
        .astype(np.int64),
        origin_day=issuances["origin_day_index"].to_numpy().astype(np.int64),
        ended_reach=issuances.select([f"ended_reach_{t}_pence" for t in range(REACH_DEPTH)])
        .to_numpy()
        .astype(np.int64)
        .reshape(-1, REACH_DEPTH),
        ended_end=np.column_stack(
            [
                issuances["redeemed_pence"].to_numpy(),
                issuances["fees_pence"].to_numpy(),
                np.zeros(issuances.height, dtype=np.int64),
            ]
        ).astype(np.int64),
        ended_hop_pence=issuances["ended_hop_pence"].to_numpy().astype(np.int64),
        ended_trajectories=np.frombuffer(trajectories, dtype="<i8")
        .reshape(days, 3, width)
        .astype(np.int64),
        spell_pence=np.frombuffer(spells, dtype="<i8").reshape(days, SPELL_BINS).astype(np.int64),
        spell_pence_seconds=np.frombuffer(spell_seconds, dtype="<f8")
        .reshape(days, SPELL_BINS)
        .astype(np.float64),
        overdrawn_row=int(overdrawn),
    )
