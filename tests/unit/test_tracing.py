"""Money tracing on a ledger worked out by hand, and its invariants on random ledgers.

Hand ledger (UTC, January 2025; d1 = Mon 6th, d2 = 7th, d3 = 8th; pounds):

===  ==========  ==========  ======  ======  ======
txn  when        kind        source  target  amount
===  ==========  ==========  ======  ======  ======
T01  d1 09:00    issuance    ISSUER  ANN     100
T02  d1 10:00    issuance    ISSUER  BEN      40
T03  d1 12:00    transfer    ANN     CAFE     60
T04  d2 09:00    issuance    ISSUER  ANN      50
T05  d2 12:00    transfer    ANN     CAFE     70
T06  d2 15:00    transfer    CAFE    SHOP     80
T07  d3 10:00    transfer    BEN     SHOP     40
T08  d3 12:00    redemption  SHOP    ISSUER   90
T09  d3 13:00    fee         CAFE    ISSUER    5
T10  d3 14:00    reversal    SHOP    BEN      10
===  ==========  ==========  ======  ======  ======

FIFO, lots written (amount origin hops @arrival); o1 = T01, o2 = T02, o3 = T04:

- T03: ANN [40 o1 h0 @d1 09]; CAFE [60 o1 h1 @d1 12]. Spell 60 × 3 h.
- T05 takes 40 o1 (spell 27 h) then 30 o3 (3 h): ANN [20 o3 h0]; CAFE [60 o1 h1, 40 o1 h1,
  30 o3 h1].
- T06 takes 60 o1 h1 (27 h) and 20 of the 40 o1 h1 (3 h): SHOP [60 o1 h2, 20 o1 h2].
- T07: 40 o2 (48 h) to SHOP as h1.
- T08 redeems 60 + 20 o1 h2 (21 h each) and 10 o2 h1 (2 h).
- T09: fee 5 of CAFE's o1 h1 (25 h).
- T10: 10 o2 h1 (4 h) back to BEN, still h1 (a reversal is not a hop).

End: held ANN 20 o3 h0; BEN 10 o2 h1; CAFE 15 o1 h1 + 30 o3 h1; SHOP 20 o2 h1.
Per origin: o1 (100) = redeemed 80 at h2 + fee 5 at h1 + held 15 at h1, Σ amount·hops 180;
o2 (40) = redeemed 10 at h1 + held 30 at h1, 40; o3 (50) = held 20 at h0 + 30 at h1, 30.
Σ amount·hops = 250 = transfer volume (60 + 70 + 80 + 40), so M = 440 / 190 = 1 + 250 / 190.
Reach: ≥0 190, ≥1 170, ≥2 80, ≥3 0: LM2 = 360 / 190, LM3 = LM4 = LM5 = 440 / 190.
Spells (amount × hours): 60×3, 40×27, 30×3, 60×27, 20×3, 40×48, 60×21, 20×21, 10×2, 5×25,
10×4: 355 in all, Σ amount·seconds = 24,534,000; the amount-weighted median is 21 h
(cumulative 10, 120, 130, 210 ≥ 177.5 at 21 h).

LIFO differs at T05: it takes ANN's newest lot first (50 o3, then 20 o1), so ANN keeps
20 of o1 (issued d1) at h0 instead of 20 of o3 (issued d2).

Where the pieces of one payment land (``test_lifo_payment_lands_with_the_newest_piece_on_top``):
L1 ISSUER→ANN 10 (o1), L2 ISSUER→BEN 10 (o2), L3 BEN→ANN 10, L4 ANN→CAFE 20,
L5 CAFE→SHOP 10, an hour apart. After L3 ANN holds [10 o1 h0, 10 o2 h1] (bottom to top).
LIFO L4 takes o2 first, then o1; the payment lands with the payer's newest piece on top:
CAFE [10 o1 h1, 10 o2 h2]. L5 takes CAFE's top, o2, to SHOP at h3. End: o1 10 held at h1,
o2 10 held at h3; reach ≥0 20, ≥1 20, ≥2 10, ≥3 10: LM3 = 50 / 20 = 2.5, LM4 = 3.0.
(Stacking the pieces in the order taken would put o1 on top, L5 would move o1 and both
end at h2: LM3 = 60 / 20 = 3.0.) FIFO: L4 takes o1 then o2, CAFE [10 o1 h1, 10 o2 h2],
L5 takes o1 to SHOP: both at h2, LM3 = 3.0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circulate.errors import InputError
from circulate.metrics.tracing import (
    END_STATES,
    KIND_CODES,
    SPELL_RATIO,
    Ledger,
    TraceState,
    local_multiplier,
    replay,
    spell_bin,
    trace,
    trace_reference,
    weighted_median_from_bins,
)

ACCOUNTS = {"ISSUER": -1, "ANN": 0, "BEN": 1, "CAFE": 2, "SHOP": 3}
HAND = [
    ("T01", "2025-01-06T09:00", "issuance", "ISSUER", "ANN", 100),
    ("T02", "2025-01-06T10:00", "issuance", "ISSUER", "BEN", 40),
    ("T03", "2025-01-06T12:00", "transfer", "ANN", "CAFE", 60),
    ("T04", "2025-01-07T09:00", "issuance", "ISSUER", "ANN", 50),
    ("T05", "2025-01-07T12:00", "transfer", "ANN", "CAFE", 70),
    ("T06", "2025-01-07T15:00", "transfer", "CAFE", "SHOP", 80),
    ("T07", "2025-01-08T10:00", "transfer", "BEN", "SHOP", 40),
    ("T08", "2025-01-08T12:00", "redemption", "SHOP", "ISSUER", 90),
    ("T09", "2025-01-08T13:00", "fee", "CAFE", "ISSUER", 5),
    ("T10", "2025-01-08T14:00", "reversal", "SHOP", "BEN", 10),
]
HOUR = 3600


def ledger_of(rows: list[tuple[str, str, str, str, str, int]]) -> Ledger:
    """A Ledger from (txn_id, UTC time, kind, source, target, pounds) in replay order."""
    first = date.fromisoformat(rows[0][1][:10])
    at = [int(datetime.fromisoformat(r[1]).replace(tzinfo=UTC).timestamp()) for r in rows]
    days = [(date.fromisoformat(r[1][:10]) - first).days for r in rows]
    return Ledger(
        at=np.array(at, dtype=np.int64),
        day=np.array(days, dtype=np.int64),
        kind=np.array([KIND_CODES[r[2]] for r in rows], dtype=np.int64),
        source=np.array([ACCOUNTS[r[3]] for r in rows], dtype=np.int64),
        target=np.array([ACCOUNTS[r[4]] for r in rows], dtype=np.int64),
        pence=np.array([r[5] * 100 for r in rows], dtype=np.int64),
        first_day=first,
        txn_ids=tuple(r[0] for r in rows),
    )


@pytest.fixture(scope="module")
def hand() -> Ledger:
    return ledger_of(HAND)


def test_fifo_by_hand(hand: Ledger) -> None:
    result = trace(hand)
    assert result.issued == 19_000
    assert result.hop_pence == 25_000
    assert result.end_state_pence() == {"redeemed": 9_000, "fee": 500, "held": 9_500}
    assert result.origin_reach[:, :4].tolist() == [
        [10_000, 10_000, 8_000, 0],
        [4_000, 4_000, 0, 0],
        [5_000, 3_000, 0, 0],
    ]
    assert result.origin_end.tolist() == [[8_000, 500, 1_500], [1_000, 0, 3_000], [0, 0, 5_000]]
    assert result.origin_hop_pence.tolist() == [18_000, 4_000, 3_000]
    reach = result.origin_reach.sum(axis=0)
    assert local_multiplier(reach, 2) == pytest.approx(360 / 190)
    assert local_multiplier(reach, 3) == pytest.approx(440 / 190)
    assert local_multiplier(reach, 5) == pytest.approx(440 / 190)
    # Origin day index, end state, hops -> pence.
    expected = {(0, 0, 2): 8_000, (0, 0, 1): 1_000, (0, 1, 1): 500, (0, 2, 1): 4_500}
    expected |= {(1, 2, 0): 2_000, (1, 2, 1): 3_000}
    got = {
        tuple(int(x) for x in i): int(result.trajectories[i])
        for i in zip(*np.nonzero(result.trajectories), strict=True)
    }
    assert got == expected


def test_holding_spells_by_hand(hand: Ledger) -> None:
    result = trace(hand)
    assert int(result.spell_pence.sum()) == 35_500
    assert float(result.spell_pence_seconds.sum()) == pytest.approx(100 * 24_534_000)
    pence = result.spell_pence.sum(axis=0)
    seconds = result.spell_pence_seconds.sum(axis=0)
    assert weighted_median_from_bins(pence, seconds) == pytest.approx(21 * HOUR)
    # Spells end on the day of the outflow: d1 only T03's 60 x 3 h.
    assert int(result.spell_pence[0].sum()) == 6_000
    assert int(result.spell_pence[0, spell_bin(3 * HOUR)]) == 6_000


def test_lifo_differs_where_it_should(hand: Ledger) -> None:
    fifo, lifo = trace(hand, "fifo"), trace(hand, "lifo")
    held = END_STATES.index("held")
    assert fifo.trajectories[0, held, 0] == 0 and fifo.trajectories[1, held, 0] == 2_000
    assert lifo.trajectories[0, held, 0] == 2_000 and lifo.trajectories[1, held, 0] == 0
    assert lifo.issued == fifo.issued and lifo.hop_pence == fifo.hop_pence
    assert lifo.end_state_pence() == fifo.end_state_pence()
    assert lifo.equals(trace_reference(hand, "lifo"))


FORWARDED = [
    ("L1", "2025-01-06T09:00", "issuance", "ISSUER", "ANN", 10),
    ("L2", "2025-01-06T10:00", "issuance", "ISSUER", "BEN", 10),
    ("L3", "2025-01-06T11:00", "transfer", "BEN", "ANN", 10),
    ("L4", "2025-01-06T12:00", "transfer", "ANN", "CAFE", 20),
    ("L5", "2025-01-06T13:00", "transfer", "CAFE", "SHOP", 10),
]


def test_lifo_payment_lands_with_the_newest_piece_on_top() -> None:
    """The five rows worked in the module docstring."""
    ledger = ledger_of(FORWARDED)
    after_l4 = replay(first_rows(ledger, 4), "lifo")
    cafe = after_l4.open_lots[after_l4.open_account == ACCOUNTS["CAFE"]]
    assert cafe[:, [0, 2, 3]].tolist() == [[1_000, 0, 1], [1_000, 1, 2]]  # bottom to top
    lifo = trace(ledger, "lifo")
    assert lifo.origin_reach[:, :4].tolist() == [[1_000, 1_000, 0, 0], [1_000, 1_000, 1_000, 1_000]]
    reach = lifo.origin_reach.sum(axis=0)
    assert (local_multiplier(reach, 3), local_multiplier(reach, 4)) == (2.5, 3.0)
    assert lifo.equals(trace_reference(ledger, "lifo"))
    fifo = trace(ledger, "fifo")
    assert local_multiplier(fifo.origin_reach.sum(axis=0), 3) == 3.0
    assert fifo.equals(trace_reference(ledger, "fifo"))


def test_lifo_pieces_of_a_payment_stay_in_order_beside_a_same_second_payment() -> None:
    """T3 and T4 leave ANN at the same second with pieces of the same origin and hops.

    ANN holds [10 o1, 10 o2]. LIFO T3 moves 5 o2 to CAFE; T4 moves 5 o2 then 5 o1, landing
    as [5 o1, 5 o2] above T3's piece: CAFE [5 o2, 5 o1, 5 o2], all h1 at 10:00. T4's first
    piece equals CAFE's top lot (same arrival, origin, hops) but must not join it, or o1
    would end on top. T5 moves CAFE's top, o2, on to SHOP: o1 reaches h1, o2 h2 (5 of it).
    """
    ledger = ledger_of(
        [
            ("T1", "2025-01-06T09:00", "issuance", "ISSUER", "ANN", 10),
            ("T2", "2025-01-06T09:30", "issuance", "ISSUER", "ANN", 10),
            ("T3", "2025-01-06T10:00", "transfer", "ANN", "CAFE", 5),
            ("T4", "2025-01-06T10:00", "transfer", "ANN", "CAFE", 10),
            ("T5", "2025-01-06T11:00", "transfer", "CAFE", "SHOP", 5),
        ]
    )
    lifo = trace(ledger, "lifo")
    assert lifo.origin_reach[:, :3].tolist() == [[1_000, 500, 0], [1_000, 1_000, 500]]
    assert lifo.equals(trace_reference(ledger, "lifo"))


def test_reference_matches_kernel_by_hand(hand: Ledger) -> None:
    assert trace(hand).equals(trace_reference(hand))


def test_overdrawn_account_names_the_row(hand: Ledger) -> None:
    bad = ledger_of([*HAND[:2], ("T99", "2025-01-06T11:00", "transfer", "BEN", "ANN", 41)])
    with pytest.raises(InputError, match="T99"):
        trace(bad)
    with pytest.raises(InputError, match="T99"):
        trace_reference(bad)


def test_median_within_one_bin_of_exact() -> None:
    """Binned median vs the exact amount-weighted median of random spells."""
    rng = np.random.default_rng(5)
    seconds = rng.lognormal(11, 2, 2_000)
    amounts = rng.integers(1, 10_000, 2_000)
    order = np.argsort(seconds)
    cumulative = np.cumsum(amounts[order])
    exact = seconds[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    bins = np.array([spell_bin(s) for s in seconds])
    pence = np.bincount(bins, weights=amounts)
    weighted = np.bincount(bins, weights=amounts * seconds)
    estimate = weighted_median_from_bins(pence, weighted)
    assert estimate is not None
    assert exact / SPELL_RATIO <= estimate <= exact * SPELL_RATIO


# --- random ledgers --------------------------------------------------------------------

Op = tuple[int, int, int, float, int]
ops_strategy = st.lists(
    st.tuples(
        st.integers(0, 9),  # what happens: 0-2 issue, 3-6 transfer, 7 reversal, 8 redeem, 9 fee
        st.integers(0, 5),  # payer / recipient (6 member accounts)
        st.integers(0, 4),  # the other account (shifted to differ from the first)
        st.floats(0.01, 1.0),  # share of the payer's balance
        # Seconds since the previous entry; often none, as payments in the same second
        # are where lots of equal arrival, origin and hops can meet.
        st.one_of(st.just(0), st.integers(0, 3 * 86400)),
    ),
    min_size=1,
    max_size=60,
)


def random_ledger(ops: list[Op]) -> Ledger:
    """A feasible ledger from drawn operations: no account ever pays more than it holds."""
    balance = [0] * 6
    at, kind, source, target, pence = [], [], [], [], []
    now = 1_736_150_400  # 2025-01-06 08:00 UTC
    for what, a, b, share, gap in ops:
        now += gap
        other = b + 1 if b >= a else b
        if what <= 2 or balance[a] == 0:
            amount = int(share * 10_000) + 1
            row = (KIND_CODES["issuance"], -1, a, amount)
            balance[a] += amount
        else:
            amount = max(1, int(share * balance[a]))
            if what <= 7:
                code = KIND_CODES["transfer"] if what <= 6 else KIND_CODES["reversal"]
                row = (code, a, other, amount)
                balance[other] += amount
            else:
                row = (KIND_CODES["redemption" if what == 8 else "fee"], a, -1, amount)
            balance[a] -= amount
        at.append(now)
        kind.append(row[0])
        source.append(row[1])
        target.append(row[2])
        pence.append(row[3])
    times = np.array(at, dtype=np.int64)
    return Ledger(
        at=times,
        day=(times - times[0]) // 86400,
        kind=np.array(kind, dtype=np.int64),
        source=np.array(source, dtype=np.int64),
        target=np.array(target, dtype=np.int64),
        pence=np.array(pence, dtype=np.int64),
        first_day=date(2025, 1, 6),
    )


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_kernel_equals_reference(ops: list[Op]) -> None:
    ledger = random_ledger(ops)
    for order in ("fifo", "lifo"):
        assert trace(ledger, order).equals(trace_reference(ledger, order))


@settings(max_examples=150, deadline=None)
@given(ops_strategy)
def test_invariants(ops: list[Op]) -> None:
    ledger = random_ledger(ops)
    fifo, lifo = trace(ledger, "fifo"), trace(ledger, "lifo")
    member_transfers = (ledger.kind == KIND_CODES["transfer"]) & (ledger.target >= 0)
    issued = int(ledger.pence[ledger.source < 0].sum())
    exits = ledger.target < 0
    for result in (fifo, lifo):
        # Traced volume = ledger transfer volume, so M = 1 + amount-weighted mean hops.
        assert result.hop_pence == int(ledger.pence[member_transfers].sum())
        # Conservation: exited + still held = issued, per issuance too.
        assert result.issued == issued
        assert (result.origin_end.sum(axis=1) == result.origin_reach[:, 0]).all()
        ends = result.end_state_pence()
        assert ends["redeemed"] + ends["fee"] == int(ledger.pence[exits].sum())
        assert ends["fee"] == int(ledger.pence[ledger.kind == KIND_CODES["fee"]].sum())
        # Every outflow ends exactly one spell per unit moved.
        assert int(result.spell_pence.sum()) == int(ledger.pence[ledger.source >= 0].sum())
        # Reach is non-increasing in t.
        assert (np.diff(result.origin_reach, axis=1) <= 0).all()
        if issued:
            multiplier = (issued + int(ledger.pence[member_transfers].sum())) / issued
            mean_hops = result.hop_pence / issued
            assert multiplier == pytest.approx(1 + mean_hops, rel=1e-12)
    assert fifo.end_state_pence() == lifo.end_state_pence()
    assert fifo.issued == lifo.issued and fifo.hop_pence == lifo.hop_pence


def test_lenient_trace_moves_what_is_held_and_names_the_row() -> None:
    """BEN holds 40 and pays 41: lenient tracing moves the 40 and reports position 2."""
    bad = ledger_of([*HAND[:2], ("T99", "2025-01-06T11:00", "transfer", "BEN", "ANN", 41)])
    lenient = trace(bad, strict=False)
    assert lenient.overdrawn_row == 2
    assert lenient.hop_pence == 4_000
    assert lenient.equals(trace_reference(bad, strict=False))


def first_rows(ledger: Ledger, rows: int) -> Ledger:
    """The ledger as it stood after its first ``rows`` entries (same day 0 and accounts)."""
    cut = slice(0, rows)
    return Ledger(
        at=ledger.at[cut],
        day=ledger.day[cut],
        kind=ledger.kind[cut],
        source=ledger.source[cut],
        target=ledger.target[cut],
        pence=ledger.pence[cut],
        first_day=ledger.first_day,
    )


@settings(max_examples=150, deadline=None)
@given(ops_strategy, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3))
def test_resumed_replay_equals_one_replay(ops: list[Op], cuts: list[float]) -> None:
    """Nights replayed one after another from the stored state = the whole ledger at once."""
    ledger = random_ledger(ops)
    rows = sorted(int(c * ledger.at.size) for c in cuts)
    for order in ("fifo", "lifo"):
        state: TraceState | None = None
        for end in [*rows, ledger.at.size]:
            state = replay(first_rows(ledger, end), order, start=state)
            assert state.rows == end
        assert state is not None
        assert state.result().equals(trace(ledger, order))


@settings(max_examples=150, deadline=None)
@given(ops_strategy, st.integers(0, 5))
def test_forwarding_a_whole_balance_keeps_its_order(ops: list[Op], payer: int) -> None:
    """Paid on whole to a new account and on again, a balance keeps its order each time.

    Each forwarding adds one hop to every lot and nothing else, under either order: which
    money is spent next does not depend on how often it was forwarded whole. (Stacking a
    LIFO payment's pieces in the order taken reversed it at every hop.)
    """
    ledger = random_ledger(ops)
    held = replay(ledger, "fifo")
    balance = int(held.open_lots[held.open_account == payer, 0].sum())
    if balance == 0:
        return
    later = int(ledger.at[-1]) + 60
    extra = {"at": [later, later + 60], "source": [payer, 6], "target": [6, 7]}
    forwarded = Ledger(
        at=np.append(ledger.at, extra["at"]),
        day=np.append(ledger.day, [ledger.day[-1]] * 2),
        kind=np.append(ledger.kind, [KIND_CODES["transfer"]] * 2),
        source=np.append(ledger.source, extra["source"]),
        target=np.append(ledger.target, extra["target"]),
        pence=np.append(ledger.pence, [balance] * 2),
        first_day=ledger.first_day,
    )
    for order in ("fifo", "lifo"):
        before = replay(ledger, order)
        left = before.open_lots[before.open_account == payer][:, [0, 2, 3]]
        for hop, account in ((1, 6), (2, 7)):
            after = replay(first_rows(forwarded, ledger.at.size + hop), order)
            arrived = after.open_lots[after.open_account == account][:, [0, 2, 3]]
            # Lots that became neighbours with equal origin and hops merge on arrival.
            assert _runs(arrived) == _runs(left + np.array([0, 0, hop]))


def _runs(lots: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """(amount, origin, hops) rows with neighbours of equal origin and hops summed."""
    runs: list[tuple[int, int, int]] = []
    for amount, origin, hops in lots.tolist():
        if runs and runs[-1][1:] == (origin, hops):
            runs[-1] = (runs[-1][0] + amount, origin, hops)
        else:
            runs.append((amount, origin, hops))
    return runs


def test_resuming_from_the_hand_ledger_by_day(hand: Ledger) -> None:
    """Day by day, the state carries exactly the lots the module docstring lists."""
    state = replay(first_rows(hand, 3))  # after day 1: ANN 40 o1, BEN 40 o2, CAFE 60 o1 h1
    assert state.open_account.tolist() == [0, 1, 2]
    assert state.open_lots[:, [0, 2, 3]].tolist() == [[4_000, 0, 0], [4_000, 1, 0], [6_000, 0, 1]]
    assert state.ended_end.sum() == 0 and state.spell_pence.sum() == 6_000
    # After day 2: ANN 20 o3; BEN 40 o2; CAFE 20 o1 h1, 30 o3 h1; SHOP 80 o1 h2 (T06's two
    # pieces of o1 arrive together at the same hops and form one lot).
    state = replay(first_rows(hand, 6), start=state)
    assert state.open_account.tolist() == [0, 1, 2, 2, 3]
    assert state.open_lots[:, [0, 2, 3]].tolist() == [
        [2_000, 2, 0],
        [4_000, 1, 0],
        [2_000, 0, 1],
        [3_000, 2, 1],
        [8_000, 0, 2],
    ]
    state = replay(hand, start=state)
    result = state.result()
    assert result.equals(trace(hand))
    assert result.end_state_pence() == {"redeemed": 9_000, "fee": 500, "held": 9_500}


def test_resuming_rejects_a_state_of_another_ledger(hand: Ledger) -> None:
    state = replay(hand)
    with pytest.raises(ValueError, match="lifo"):
        replay(hand, "lifo", start=state)
    with pytest.raises(ValueError, match="covers 10 entries"):
        replay(first_rows(hand, 4), start=state)


def test_lenient_resume_names_the_overdrawn_row_in_the_whole_ledger() -> None:
    bad = ledger_of([*HAND[:2], ("T99", "2025-01-06T11:00", "transfer", "BEN", "ANN", 41)])
    state = replay(bad, start=replay(first_rows(bad, 2)))
    assert state.overdrawn_row == 2
    assert state.result().equals(trace(bad, strict=False))
