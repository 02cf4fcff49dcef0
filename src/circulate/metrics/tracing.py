"""Money tracing: follow every unit of currency from its issuance to where it ends.

Every member account holds a queue of *lots* (amount, received_at, origin issuance, hops
so far). The ledger is replayed in ``(occurred_at, txn_id)`` order (DESIGN.md §4):

- an issuance (or any entry whose source is an issuer account) creates a lot at its
  target, with 0 hops and itself as origin;
- a ``transfer`` between member accounts moves lots from source to target, oldest first
  (FIFO, the default) or newest first (LIFO), splitting the last lot when needed; every
  unit moved makes one more hop. Incoming money lands on top: the pieces of one payment
  are put on the payee's newest end in the order they had at the payer, so the payer's
  newest piece ends on top. FIFO takes the oldest piece first and appends each piece in
  turn; LIFO takes the newest first, so each later (older) piece goes in under the
  pieces of the same payment already moved. Which money an account spends next thus
  does not depend on how many times a payment was forwarded whole (stacking the pieces
  in the order taken would reverse a LIFO payment at every such hop);
- a ``reversal`` moves lots the same way but does **not** add a hop: it returns money
  along an earlier payment, it is not a new round of local spending. This keeps the
  identity ``M = (issued + transfer_volume) / issued = 1 + amount-weighted mean hops``
  exact, with ``transfer_volume`` counting ``transfer`` rows only as the marts do;
- a ``redemption`` or ``fee`` (any entry whose target is an issuer account) consumes
  lots, which end there (end state ``redeemed`` or ``fee``);
- lots left at the end are ``held`` (censored: their hops and holding so far are known,
  their end is not).

Every outflow (transfer, reversal, redemption, fee) ends a *holding spell* of the units it
consumes: seconds between the lot's arrival in the account and the outflow.

Nothing is materialised per split lot; the tracer aggregates on the fly:

- ``trajectories[origin_day, end_state, hops]`` — amount (pence) by the local day of its
  issuance, how it ended and the transfers it made;
- ``origin_reach[issuance, t]`` — amount of each issuance that made ≥ t transfers,
  t = 0 … ``REACH_DEPTH`` − 1 (for LM_k per issuance and the bootstrap);
- ``spells[exit_day, bin]`` — amount and amount × seconds of holding spells by the local
  day they ended, on logarithmic bins: bin 0 holds spells under ``SPELL_BASE_SECONDS``,
  bin b ≥ 1 holds ``[base·r^(b−1), base·r^b)`` with ``r = SPELL_RATIO``. The mean holding
  time is exact (Σ amount × seconds / Σ amount); the median is the amount-weighted mean
  duration of the bin in which the cumulative amount passes one half, so it is within
  one bin (2 % relative, or one minute) of the exact median.

:func:`trace` is the numba kernel; :func:`trace_reference` is a straightforward
pure-Python FIFO/LIFO with the same output, used as test oracle and benchmark baseline.
:func:`replay` returns where the kernel stopped (:class:`TraceState`: the open lots and
what has ended so far); a later replay resumes from it with only the entries that
followed, and its result equals a replay of the whole ledger, bit for bit.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, TypeVar, cast

import duckdb
import numba
import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.errors import InputError

__all__ = [
    "END_STATES",
    "KIND_CODES",
    "REACH_DEPTH",
    "SPELL_BASE_SECONDS",
    "SPELL_RATIO",
    "Ledger",
    "TraceResult",
    "TraceState",
    "load_ledger",
    "local_multiplier",
    "replay",
    "spell_bin",
    "spell_bin_edges",
    "trace",
    "trace_reference",
    "weighted_median_from_bins",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Order = Literal["fifo", "lifo"]
_Array = TypeVar("_Array", IntArray, FloatArray)

KIND_CODES: dict[str, int] = {
    "issuance": 0,
    "transfer": 1,
    "redemption": 2,
    "fee": 3,
    "reversal": 4,
}
END_STATES: tuple[str, ...] = ("redeemed", "fee", "held")
REDEEMED, FEE, HELD = 0, 1, 2
REACH_DEPTH = 6  # origin_reach columns: amount that made >= 0, 1, ..., 5 transfers
SPELL_BASE_SECONDS = 60.0
SPELL_RATIO = 1.02
# Spells up to 40 years fit; longer ones go to the last bin.
SPELL_BINS = 1 + math.ceil(math.log(40 * 366 * 86400 / SPELL_BASE_SECONDS, SPELL_RATIO))
_LOG_RATIO = math.log(SPELL_RATIO)
# Columns of the kernel's lot pool.
_AMOUNT, _AT, _ORIGIN, _HOPS, _NEXT, _PREV = range(6)


@dataclass(frozen=True)
class Ledger:
    """The ledger as numpy arrays, in replay order ``(occurred_at, txn_id)``.

    Attributes
    ----------
    at
        Seconds since the Unix epoch (UTC) of each entry.
    day
        Local day of each entry, as days since ``first_day``.
    kind
        Codes of :data:`KIND_CODES`.
    source, target
        Member account index, or −1 for an issuer account.
    pence
        Amount in pence (> 0).
    first_day
        The local day numbered 0.
    txn_ids
        Transaction ids, used only to name the row in errors (may be empty).
    account_ids
        Account id of each member account index (may be empty).
    """

    at: IntArray
    day: IntArray
    kind: IntArray
    source: IntArray
    target: IntArray
    pence: IntArray
    first_day: date
    txn_ids: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()

    @property
    def accounts(self) -> int:
        """Number of member accounts (indices run 0 … accounts − 1)."""
        top = max(int(self.source.max(initial=-1)), int(self.target.max(initial=-1)))
        return top + 1

    @property
    def days(self) -> int:
        """Number of local days from ``first_day`` to the last entry's day."""
        return int(self.day.max(initial=-1)) + 1

    @property
    def issuances(self) -> int:
        """Entries that create money (source is an issuer, target a member)."""
        return int(np.count_nonzero((self.source < 0) & (self.target >= 0)))


@dataclass(frozen=True)
class TraceResult:
    """Aggregated trajectories of every unit of currency (see the module docstring).

    Attributes
    ----------
    order
        ``"fifo"`` or ``"lifo"``.
    trajectories
        Pence by ``[origin_day, end_state, hops]`` (end states as in :data:`END_STATES`).
    origin_reach
        Pence of each issuance (in replay order) that made ≥ t transfers, ``[issuance, t]``.
    origin_day
        Local day index of each issuance.
    origin_end
        Pence of each issuance by end state, ``[issuance, end_state]``.
    origin_hop_pence
        Σ amount × hops of each issuance's units.
    spell_pence, spell_pence_seconds
        Holding spells by ``[exit_day, bin]``: amount and Σ amount × seconds.
    overdrawn_row
        Replay position of the first entry paying more than its account held (only with
        ``strict=False``; the shortfall is not traced), or −1.
    """

    order: str
    trajectories: IntArray
    origin_reach: IntArray
    origin_day: IntArray
    origin_end: IntArray
    origin_hop_pence: IntArray
    spell_pence: IntArray
    spell_pence_seconds: FloatArray
    overdrawn_row: int = -1

    def equals(self, other: TraceResult) -> bool:
        """True when both results agree exactly (trajectory arrays compared without padding)."""
        return (
            self.overdrawn_row == other.overdrawn_row
            and _trimmed(self.trajectories).shape == _trimmed(other.trajectories).shape
            and bool(np.array_equal(_trimmed(self.trajectories), _trimmed(other.trajectories)))
            and bool(np.array_equal(self.origin_reach, other.origin_reach))
            and bool(np.array_equal(self.origin_day, other.origin_day))
            and bool(np.array_equal(self.origin_end, other.origin_end))
            and bool(np.array_equal(self.origin_hop_pence, other.origin_hop_pence))
            and bool(np.array_equal(self.spell_pence, other.spell_pence))
            and bool(np.allclose(self.spell_pence_seconds, other.spell_pence_seconds, rtol=1e-12))
        )

    @property
    def issued(self) -> int:
        """Pence issued (every lot's origin)."""
        return int(self.trajectories.sum())

    @property
    def hop_pence(self) -> int:
        """Σ amount × hops: equals the ``transfer`` volume moved between members."""
        hops = np.arange(self.trajectories.shape[2], dtype=np.int64)
        return int((self.trajectories.sum(axis=(0, 1)) * hops).sum())

    def end_state_pence(self) -> dict[str, int]:
        """Pence by how it ended: redeemed, fee, held."""
        totals = self.trajectories.sum(axis=(0, 2))
        return {state: int(totals[i]) for i, state in enumerate(END_STATES)}


def _trimmed(array: IntArray) -> IntArray:
    nonzero = np.nonzero(array.sum(axis=(0, 1)))[0]
    width = int(nonzero.max()) + 1 if nonzero.size else 0
    return array[:, :, :width]


def spell_bin(seconds: float) -> int:
    """Histogram bin of a holding spell of ``seconds`` (see the module docstring).

    >>> spell_bin(0), spell_bin(59.9), spell_bin(60), spell_bin(61.3), spell_bin(86400)
    (0, 0, 1, 2, 368)
    """
    if seconds < SPELL_BASE_SECONDS:
        return 0
    b = 1 + math.floor(math.log(seconds / SPELL_BASE_SECONDS) / _LOG_RATIO)
    return min(b, SPELL_BINS - 1)


def spell_bin_edges(b: int) -> tuple[float, float]:
    """Lower and upper seconds of bin ``b``.

    >>> spell_bin_edges(0)
    (0.0, 60.0)
    >>> [round(x, 2) for x in spell_bin_edges(2)]
    [61.2, 62.42]
    """
    if b == 0:
        return 0.0, SPELL_BASE_SECONDS
    return SPELL_BASE_SECONDS * SPELL_RATIO ** (b - 1), SPELL_BASE_SECONDS * SPELL_RATIO**b


def weighted_median_from_bins(pence: npt.ArrayLike, pence_seconds: npt.ArrayLike) -> float | None:
    """Amount-weighted median seconds from binned spells (bins in increasing order).

    The answer is the mean duration of the bin where the cumulative amount first reaches
    half the total; ``None`` when there is no amount.

    >>> weighted_median_from_bins([100, 150, 200], [100 * 10.0, 150 * 70.0, 200 * 90.0])
    70.0
    >>> weighted_median_from_bins([0, 0], [0.0, 0.0]) is None
    True
    """
    weights = np.asarray(pence, dtype=np.float64)
    seconds = np.asarray(pence_seconds, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return None
    at = int(np.searchsorted(np.cumsum(weights), total / 2.0))
    return float(seconds[at] / weights[at])


def local_multiplier(reach: npt.ArrayLike, k: int) -> float | None:
    """LM_k = Σ_{t<k} (amount with ≥ t transfers) / issued, from ``reach[t]``.

    ``reach[0]`` is the amount issued. LM1 = 1; LM3 = (R1 + R2 + R3) / R1.

    >>> local_multiplier([100, 60, 60, 0], 3)
    2.2
    >>> local_multiplier([0, 0], 2) is None
    True
    """
    values = np.asarray(reach, dtype=np.float64)
    if values.size < k:
        raise ValueError(f"local_multiplier needs reach for t < {k}, got {values.size} values")
    if values[0] <= 0:
        return None
    return float(values[:k].sum() / values[0])


# --- ledger loading ------------------------------------------------------------------

# Member accounts in account id order: index i of the ledger is row i.
_MEMBERS_SQL = """
select account_id
from (
    select source_id as account_id from staging.transactions
    union
    select target_id from staging.transactions
)
where account_id not in (select account_id from intermediate.issuer_accounts)
order by account_id
"""
_MEMBERS_VIEW = "_ledger_members"
_LEDGER_SQL = f"""
select
    cast(epoch_us(t.occurred_at) // 1000000 as bigint) as at,
    cast(t.local_day - (select min(local_day) from staging.transactions) as bigint) as day,
    cast(case t.kind
        when 'issuance' then 0 when 'transfer' then 1 when 'redemption' then 2
        when 'fee' then 3 else 4 end as bigint) as kind,
    coalesce(s.idx, -1) as source,
    coalesce(g.idx, -1) as target,
    cast(t.amount * 100 as bigint) as pence
from staging.transactions as t
left join {_MEMBERS_VIEW} as s on s.account_id = t.source_id
left join {_MEMBERS_VIEW} as g on g.account_id = t.target_id
order by t.occurred_at, t.txn_id
"""  # noqa: S608 (the module's own view name)


def load_ledger(con: duckdb.DuckDBPyConnection) -> Ledger:
    """Pull ``staging.transactions`` as arrays in replay order (member accounts indexed)."""
    first = con.execute("select min(local_day) from staging.transactions").fetchall()
    first_day = first[0][0] if first and first[0][0] is not None else date(1970, 1, 1)
    account_ids = [row[0] for row in con.execute(_MEMBERS_SQL).fetchall()]
    members = pl.DataFrame(
        {"account_id": account_ids, "idx": np.arange(len(account_ids), dtype=np.int64)},
        schema={"account_id": pl.String, "idx": pl.Int64},
    )
    con.register(_MEMBERS_VIEW, members)
    try:
        arrays = con.execute(_LEDGER_SQL).fetchnumpy()
    finally:
        con.unregister(_MEMBERS_VIEW)
    return Ledger(
        at=np.ascontiguousarray(arrays["at"], dtype=np.int64),
        day=np.ascontiguousarray(arrays["day"], dtype=np.int64),
        kind=np.ascontiguousarray(arrays["kind"], dtype=np.int64),
        source=np.ascontiguousarray(arrays["source"], dtype=np.int64),
        target=np.ascontiguousarray(arrays["target"], dtype=np.int64),
        pence=np.ascontiguousarray(arrays["pence"], dtype=np.int64),
        first_day=first_day,
        account_ids=tuple(account_ids),
    )


def _txn_id(ledger: Ledger, row: int, con: duckdb.DuckDBPyConnection | None) -> str:
    if ledger.txn_ids:
        return ledger.txn_ids[row]
    if con is not None:
        found = con.execute(
            "select txn_id from staging.transactions order by occurred_at, txn_id "
            "limit 1 offset $row",
            {"row": row},
        ).fetchall()
        if found:
            return str(found[0][0])
    return f"#{row}"


def _overdrawn(
    ledger: Ledger, row: int, con: duckdb.DuckDBPyConnection | None = None
) -> InputError:
    return InputError(
        f"staging.transactions row {_txn_id(ledger, row, con)} (replay position {row}): the "
        f"paying account holds less than the {ledger.pence[row] / 100:.2f} it pays, so the money "
        "cannot be traced. Fix or quarantine the export row (or the earlier entry it depends "
        "on); sql/tests/account_balances_never_negative.sql lists every such row."
    )


# --- numba kernel --------------------------------------------------------------------


@numba.njit(cache=True)
def _grow_lots(lots: IntArray, size: int) -> IntArray:
    out = np.zeros((size, lots.shape[1]), dtype=np.int64)
    out[: lots.shape[0]] = lots
    return out


@numba.njit(cache=True)
def _grow_hops(array: IntArray, hops: int) -> IntArray:
    out = np.zeros((array.shape[0], array.shape[1], hops), dtype=np.int64)
    out[:, :, : array.shape[2]] = array
    return out


@numba.njit(cache=True)
def _replay_kernel(
    at: IntArray,
    day: IntArray,
    kind: IntArray,
    source: IntArray,
    target: IntArray,
    pence: IntArray,
    accounts: int,
    lifo: bool,
    spell_bins: int,
    base: float,
    log_ratio: float,
    depth: int,
    open_account: IntArray,
    open_lots: IntArray,
    issued: int,
    overdrawn: int,
    row_offset: int,
    trajectories: IntArray,
    reach: IntArray,
    origin_day: IntArray,
    origin_end: IntArray,
    origin_hop: IntArray,
    spell_pence: IntArray,
    spell_seconds: FloatArray,
) -> tuple[IntArray, int, IntArray, IntArray]:
    """Replay entries on top of open lots; the accumulators are updated in place.

    Returns the (possibly widened) trajectories, the first overdrawn position and the
    open lots afterwards, account by account, each account's lots from the bottom (spent
    first by FIFO) to the top (spent first by LIFO).
    """
    n = at.size
    head = np.full(accounts, -1, dtype=np.int64)
    tail = np.full(accounts, -1, dtype=np.int64)
    capacity = max(1024, 2 * open_account.size)
    # One row per lot (amount, arrived at, origin, hops, next, prev): a lot's fields share
    # a cache line, which matters because queues are linked lists over the whole pool.
    lots = np.zeros((capacity, 6), dtype=np.int64)
    for j in range(open_account.size):
        owner = open_account[j]
        lots[j, _AMOUNT] = open_lots[j, 0]
        lots[j, _AT] = open_lots[j, 1]
        lots[j, _ORIGIN] = open_lots[j, 2]
        lots[j, _HOPS] = open_lots[j, 3]
        lots[j, _NEXT] = -1
        lots[j, _PREV] = tail[owner]
        if tail[owner] >= 0:
            lots[tail[owner], _NEXT] = j
        else:
            head[owner] = j
        tail[owner] = j
    free = -1
    used = open_account.size
    for i in range(n):
        src = source[i]
        dst = target[i]
        amount = pence[i]
        if src < 0:
            if dst < 0:
                continue  # issuer to issuer: outside circulation
            # New money: one lot at the target.
            if free >= 0:
                lot = free
                free = lots[lot, _NEXT]
            else:
                if used == capacity:
                    capacity *= 2
                    lots = _grow_lots(lots, capacity)
                lot = used
                used += 1
            lots[lot, _AMOUNT] = amount
            lots[lot, _AT] = at[i]
            lots[lot, _ORIGIN] = issued
            lots[lot, _HOPS] = 0
            lots[lot, _NEXT] = -1
            lots[lot, _PREV] = tail[dst]
            if tail[dst] >= 0:
                lots[tail[dst], _NEXT] = lot
            else:
                head[dst] = lot
            tail[dst] = lot
            origin_day[issued] = day[i]
            issued += 1
            continue
        step = 1 if (kind[i] == 1 and dst >= 0) else 0
        end_state = 1 if kind[i] == 3 else 0
        remaining = amount
        # dst's top lot before this payment: LIFO slots every piece in just above it.
        below = tail[dst] if lifo and dst >= 0 else -1
        while remaining > 0:
            lot = tail[src] if lifo else head[src]
            if lot < 0:
                # Overdrawn: the shortfall has no origin; remember the first such row and
                # move only what the account held.
                if overdrawn < 0:
                    overdrawn = row_offset + i
                break
            take = min(remaining, lots[lot, _AMOUNT])
            remaining -= take
            # The units taken end a holding spell in src.
            held = float(at[i] - lots[lot, _AT])
            if held < base:
                b = 0
            else:
                b = 1 + int(np.floor(np.log(held / base) / log_ratio))
                if b > spell_bins - 1:
                    b = spell_bins - 1
            spell_pence[day[i], b] += take
            spell_seconds[day[i], b] += take * held
            hops = lots[lot, _HOPS] + step
            origin = lots[lot, _ORIGIN]
            if dst < 0:
                if hops >= trajectories.shape[2]:
                    trajectories = _grow_hops(trajectories, 2 * hops)
                trajectories[origin_day[origin], end_state, hops] += take
                origin_end[origin, end_state] += take
                origin_hop[origin] += take * hops
                for t in range(min(hops + 1, depth)):
                    reach[origin, t] += take
            # Units arriving together with the same origin and hops as the lot they land
            # beside join it: the queue order and every later figure are unchanged, and
            # replay no longer fragments into one lot per piece. FIFO lands on top, beside
            # dst's newest lot; LIFO under this payment's pieces so far, beside the lowest
            # of them (never into ``below``: the payment's later pieces go between the two).
            merge = False
            if dst >= 0:
                last = (lots[below, _NEXT] if below >= 0 else head[dst]) if lifo else tail[dst]
                merge = (
                    last >= 0
                    and lots[last, _AT] == at[i]
                    and lots[last, _ORIGIN] == origin
                    and lots[last, _HOPS] == hops
                )
                if merge:
                    lots[last, _AMOUNT] += take
            if take == lots[lot, _AMOUNT]:
                # Unlink the whole lot from src.
                if lifo:
                    tail[src] = lots[lot, _PREV]
                    if tail[src] >= 0:
                        lots[tail[src], _NEXT] = -1
                    else:
                        head[src] = -1
                else:
                    head[src] = lots[lot, _NEXT]
                    if head[src] >= 0:
                        lots[head[src], _PREV] = -1
                    else:
                        tail[src] = -1
                if dst >= 0 and not merge:
                    moved = lot  # reuse the slot at the target
                else:
                    lots[lot, _NEXT] = free
                    free = lot
                    moved = -1
            else:
                lots[lot, _AMOUNT] -= take
                if dst >= 0 and not merge:
                    if free >= 0:
                        moved = free
                        free = lots[moved, _NEXT]
                    else:
                        if used == capacity:
                            capacity *= 2
                            lots = _grow_lots(lots, capacity)
                        moved = used
                        used += 1
                    lots[moved, _ORIGIN] = origin
                else:
                    moved = -1
            if moved >= 0:
                lots[moved, _AMOUNT] = take
                lots[moved, _AT] = at[i]
                lots[moved, _HOPS] = hops
                if lifo:
                    # LIFO takes the payer's newest piece first; slotting each later
                    # (older) piece in under the earlier ones keeps the newest on top.
                    above = lots[below, _NEXT] if below >= 0 else head[dst]
                    lots[moved, _PREV] = below
                    lots[moved, _NEXT] = above
                    if below >= 0:
                        lots[below, _NEXT] = moved
                    else:
                        head[dst] = moved
                    if above >= 0:
                        lots[above, _PREV] = moved
                    else:
                        tail[dst] = moved
                else:
                    # FIFO takes the payer's oldest piece first: appending keeps the
                    # newest on top.
                    lots[moved, _NEXT] = -1
                    lots[moved, _PREV] = tail[dst]
                    if tail[dst] >= 0:
                        lots[tail[dst], _NEXT] = moved
                    else:
                        head[dst] = moved
                    tail[dst] = moved
    # The open lots, account by account, each from the bottom to the top.
    count = 0
    for account in range(accounts):
        lot = head[account]
        while lot >= 0:
            count += 1
            lot = lots[lot, _NEXT]
    out_account = np.empty(count, dtype=np.int64)
    out_lots = np.empty((count, 4), dtype=np.int64)
    j = 0
    for account in range(accounts):
        lot = head[account]
        while lot >= 0:
            out_account[j] = account
            out_lots[j, 0] = lots[lot, _AMOUNT]
            out_lots[j, 1] = lots[lot, _AT]
            out_lots[j, 2] = lots[lot, _ORIGIN]
            out_lots[j, 3] = lots[lot, _HOPS]
            j += 1
            lot = lots[lot, _NEXT]
    return trajectories, overdrawn, out_account, out_lots


@numba.njit(cache=True)
def _add_held(
    open_lots: IntArray,
    origin_day: IntArray,
    trajectories: IntArray,
    reach: IntArray,
    origin_end: IntArray,
    origin_hop: IntArray,
    depth: int,
) -> IntArray:
    """Count the open lots as still held (censored); returns the widened trajectories."""
    for j in range(open_lots.shape[0]):
        amount = open_lots[j, 0]
        origin = open_lots[j, 2]
        hops = open_lots[j, 3]
        if hops >= trajectories.shape[2]:
            trajectories = _grow_hops(trajectories, 2 * hops)
        trajectories[origin_day[origin], 2, hops] += amount
        origin_end[origin, 2] += amount
        origin_hop[origin] += amount * hops
        for t in range(min(hops + 1, depth)):
            reach[origin, t] += amount
    return trajectories


@dataclass(frozen=True)
class TraceState:
    """Where a replay of the first ``rows`` entries of a ledger stopped.

    Resuming from it with the entries that follow (:func:`replay` with ``start``) gives
    exactly what replaying the whole ledger at once gives: the same lots in the same
    queues, the same sums added in the same order.

    Attributes
    ----------
    order
        ``"fifo"`` or ``"lifo"``.
    rows
        Entries replayed.
    first_day
        The ledger's day 0.
    open_account
        Account index of every open lot, grouped by account.
    open_lots
        ``[lot, (amount, arrived at, origin, hops)]`` of the open lots, each account's
        lots from the bottom (spent first by FIFO) to the top (spent first by LIFO):
        arrival times never decrease, and the pieces of one payment keep the order they
        had at the payer (see the module docstring).
    origin_day
        Local day index of each issuance so far.
    ended_reach, ended_end, ended_hop_pence, ended_trajectories
        ``TraceResult``'s per-issuance arrays and trajectories counting only money that
        has left circulation (redeemed or fee); the open lots are added by :meth:`result`.
    spell_pence, spell_pence_seconds
        Holding spells ended so far, by ``[exit_day, bin]``.
    overdrawn_row
        Replay position of the first entry that paid more than its account held, or −1.
    """

    order: str
    rows: int
    first_day: date
    open_account: IntArray
    open_lots: IntArray
    origin_day: IntArray
    ended_reach: IntArray
    ended_end: IntArray
    ended_hop_pence: IntArray
    ended_trajectories: IntArray
    spell_pence: IntArray
    spell_pence_seconds: FloatArray
    overdrawn_row: int = -1

    @classmethod
    def empty(cls, order: Order, first_day: date) -> TraceState:
        """The state before the first entry."""
        none = np.zeros(0, dtype=np.int64)
        return cls(
            order,
            0,
            first_day,
            none,
            np.zeros((0, 4), dtype=np.int64),
            none,
            np.zeros((0, REACH_DEPTH), dtype=np.int64),
            np.zeros((0, 3), dtype=np.int64),
            none,
            np.zeros((0, 3, 8), dtype=np.int64),
            np.zeros((0, SPELL_BINS), dtype=np.int64),
            np.zeros((0, SPELL_BINS), dtype=np.float64),
        )

    @property
    def issuances(self) -> int:
        """Issuances replayed so far."""
        return int(self.origin_day.size)

    def result(self) -> TraceResult:
        """The trace of the entries replayed, the open lots counted as still held."""
        reach = self.ended_reach.copy()
        ends = self.ended_end.copy()
        hop_pence = self.ended_hop_pence.copy()
        trajectories = _add_held(
            self.open_lots,
            self.origin_day,
            self.ended_trajectories.copy(),
            reach,
            ends,
            hop_pence,
            REACH_DEPTH,
        )
        return TraceResult(
            self.order,
            _trimmed(trajectories),
            reach,
            self.origin_day,
            ends,
            hop_pence,
            self.spell_pence,
            self.spell_pence_seconds,
            self.overdrawn_row,
        )


def _padded(array: _Array, shape: tuple[int, ...]) -> _Array:
    """``array`` copied into the top-left corner of zeros of ``shape`` (never smaller)."""
    out = np.zeros(tuple(max(a, b) for a, b in zip(array.shape, shape, strict=True)), array.dtype)
    out[tuple(slice(0, size) for size in array.shape)] = array
    return cast(_Array, out)


def replay(ledger: Ledger, order: Order = "fifo", *, start: TraceState | None = None) -> TraceState:
    """Replay ``ledger`` (FIFO or LIFO) with the numba kernel and return where it stopped.

    With ``start`` (a state of this ledger's first ``start.rows`` entries, its open lots
    numbered as this ledger numbers accounts) only the entries after those are replayed.
    An account paying more than it holds moves what it holds; the state records where
    that first happened (``overdrawn_row``).
    """
    if order not in ("fifo", "lifo"):
        raise ValueError(f"order must be 'fifo' or 'lifo', got {order!r}")
    begin = TraceState.empty(order, ledger.first_day) if start is None else start
    if begin.order != order or begin.first_day != ledger.first_day:
        raise ValueError(
            f"cannot resume a {begin.order} replay from day 0 = {begin.first_day} with a "
            f"{order} replay from day 0 = {ledger.first_day}"
        )
    if begin.rows > ledger.at.size:
        raise ValueError(f"the state covers {begin.rows} entries, the ledger has {ledger.at.size}")
    rest = slice(begin.rows, None)
    source, target = ledger.source[rest], ledger.target[rest]
    issuances = begin.issuances + int(np.count_nonzero((source < 0) & (target >= 0)))
    days = max(ledger.days, begin.spell_pence.shape[0], 1)
    origin_day = _padded(begin.origin_day, (issuances,))
    reach = _padded(begin.ended_reach, (issuances, REACH_DEPTH))
    ends = _padded(begin.ended_end, (issuances, 3))
    hop_pence = _padded(begin.ended_hop_pence, (issuances,))
    trajectories = _padded(begin.ended_trajectories, (days, 3, 8))
    spell_pence = _padded(begin.spell_pence, (days, SPELL_BINS))
    spell_seconds = _padded(begin.spell_pence_seconds, (days, SPELL_BINS))
    accounts = max(ledger.accounts, int(begin.open_account.max(initial=-1)) + 1)
    trajectories, overdrawn, open_account, open_lots = _replay_kernel(
        np.ascontiguousarray(ledger.at[rest]),
        np.ascontiguousarray(ledger.day[rest]),
        np.ascontiguousarray(ledger.kind[rest]),
        np.ascontiguousarray(source),
        np.ascontiguousarray(target),
        np.ascontiguousarray(ledger.pence[rest]),
        accounts,
        order == "lifo",
        SPELL_BINS,
        SPELL_BASE_SECONDS,
        _LOG_RATIO,
        REACH_DEPTH,
        np.ascontiguousarray(begin.open_account, dtype=np.int64),
        np.ascontiguousarray(begin.open_lots, dtype=np.int64),
        begin.issuances,
        begin.overdrawn_row,
        begin.rows,
        trajectories,
        reach,
        origin_day,
        ends,
        hop_pence,
        spell_pence,
        spell_seconds,
    )
    return TraceState(
        order,
        int(ledger.at.size),
        ledger.first_day,
        open_account,
        open_lots,
        origin_day,
        reach,
        ends,
        hop_pence,
        trajectories,
        spell_pence,
        spell_seconds,
        int(overdrawn),
    )


def trace(
    ledger: Ledger,
    order: Order = "fifo",
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    strict: bool = True,
) -> TraceResult:
    """Trace every unit of ``ledger`` with the numba kernel (FIFO or LIFO).

    With ``strict=False`` an account paying more than it holds moves only what it holds
    (the shortfall has no origin to trace) and the result says where it first happened
    (``overdrawn_row``); the warehouse build uses this so that the SQL assertion
    ``account_balances_never_negative`` reports the rows instead of the build crashing.

    Raises
    ------
    InputError
        When ``strict`` and an account pays more than its lots hold (the row is named).
    """
    state = replay(ledger, order)
    if state.overdrawn_row >= 0 and strict:
        raise _overdrawn(ledger, state.overdrawn_row, con)
    return state.result()


# --- pure-Python reference -----------------------------------------------------------


def trace_reference(ledger: Ledger, order: Order = "fifo", *, strict: bool = True) -> TraceResult:
    """The same tracing as :func:`trace`, written plainly with a deque of lots per account.

    Slow; it is the oracle the numba kernel is tested against and the benchmark baseline.
    """
    lifo = order == "lifo"
    days = max(ledger.days, 1)
    queues: dict[int, deque[list[int]]] = {}
    trajectories: dict[tuple[int, int, int], int] = {}
    reach: list[list[int]] = []
    origin_days: list[int] = []
    origin_end: list[list[int]] = []
    origin_hop: list[int] = []
    spells_pence = np.zeros((days, SPELL_BINS), dtype=np.int64)
    spells_seconds = np.zeros((days, SPELL_BINS), dtype=np.float64)
    overdrawn = -1

    def end(origin: int, state: int, hops: int, amount: int) -> None:
        key = (origin_days[origin], state, hops)
        trajectories[key] = trajectories.get(key, 0) + amount
        origin_end[origin][state] += amount
        origin_hop[origin] += amount * hops
        for t in range(min(hops + 1, REACH_DEPTH)):
            reach[origin][t] += amount

    rows = zip(
        ledger.at.tolist(),
        ledger.day.tolist(),
        ledger.kind.tolist(),
        ledger.source.tolist(),
        ledger.target.tolist(),
        ledger.pence.tolist(),
        strict=True,
    )
    for i, (at, day, kind, src, dst, amount) in enumerate(rows):
        if src < 0:
            if dst >= 0:
                # lot = [amount, received_at, origin, hops]
                queues.setdefault(dst, deque()).append([amount, at, len(origin_days), 0])
                origin_days.append(day)
                reach.append([0] * REACH_DEPTH)
                origin_end.append([0, 0, 0])
                origin_hop.append(0)
            continue
        step = 1 if kind == KIND_CODES["transfer"] and dst >= 0 else 0
        state = FEE if kind == KIND_CODES["fee"] else REDEEMED
        queue = queues.setdefault(src, deque())
        pieces: list[list[int]] = []  # what reaches dst, in the order it was taken
        remaining = amount
        while remaining > 0:
            if not queue:
                if strict:
                    raise _overdrawn(ledger, i)
                overdrawn = i if overdrawn < 0 else overdrawn
                break
            lot = queue[-1] if lifo else queue[0]
            take = min(remaining, lot[0])
            remaining -= take
            held = float(at - lot[1])
            b = spell_bin(held)
            spells_pence[day, b] += take
            spells_seconds[day, b] += take * held
            if take == lot[0]:
                if lifo:
                    queue.pop()
                else:
                    queue.popleft()
            else:
                lot[0] -= take
            if dst >= 0:
                pieces.append([take, at, lot[2], lot[3] + step])
            else:
                end(lot[2], state, lot[3] + step, take)
        # Incoming money lands on top with the payer's newest piece uppermost: FIFO took
        # the oldest first, LIFO the newest first.
        if pieces:
            queues.setdefault(dst, deque()).extend(reversed(pieces) if lifo else pieces)
    for account in sorted(queues):
        for amount, _at, origin, hops in queues[account]:
            end(origin, HELD, hops, amount)
    width = max((hops for _d, _s, hops in trajectories), default=-1) + 1
    array = np.zeros((days, 3, width), dtype=np.int64)
    for (d, s, h), amount in trajectories.items():
        array[d, s, h] += amount
    return TraceResult(
        order,
        array,
        np.array(reach, dtype=np.int64).reshape(len(reach), REACH_DEPTH),
        np.array(origin_days, dtype=np.int64),
        np.array(origin_end, dtype=np.int64).reshape(len(origin_end), 3),
        np.array(origin_hop, dtype=np.int64),
        spells_pence,
        spells_seconds,
        overdrawn,
    )


def day_of(ledger: Ledger, index: int) -> date:
    """The local calendar day of day index ``index``.

    >>> day_of(Ledger(*(np.zeros(0, dtype=np.int64),) * 6, first_day=date(2025, 1, 6)), 2)
    datetime.date(2025, 1, 8)
    """
    return ledger.first_day + timedelta(days=index)
