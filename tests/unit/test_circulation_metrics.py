"""Circulation marts, the Markov estimate and the bootstrap, checked by hand and by truth.

The ten-row ledger is the one of tests/unit/test_tracing.py (traced by hand there), loaded
through the pipeline with one export file per day. Daily figures:

- d1 (Mon 6 Jan): issued 140, transfers 60 (1), supply 140;
- d2: issued 50, transfers 70 + 80 = 150 (2), supply 190;
- d3: redeemed 90, fees 5, transfers 40 (1; the reversal is not a transfer), supply 95.

Whole history: issued 190, transfer_volume 250, M = 440 / 190, leakage = 90 / 190, mean
supply 425 / 3, velocity = 250 / (425 / 3) = 750 / 425. Traced (see test_tracing):
LM2 = 360 / 190, LM3 = LM4 = LM5 = 440 / 190, mean trajectory 250 / 190, still held 95,
holding mean 24,534,000 / 355 s, median 21 h = 0.875 days.

Markov, whole history (available = inflow, as every balance starts at zero):
π0 = ANN 150/190, BEN 40/190; P(ANN→CAFE) = 130/150, P(BEN→SHOP) = 40/50 (BEN also got
the 10 reversal), P(CAFE→SHOP) = 80/130, SHOP pays nobody. Step 1 mass = 130/190 at CAFE +
32/190 at SHOP, so LM2 = 352/190; step 2 = 80/190 at SHOP, LM3 = LM4 = LM5 = 432/190.
Traced LM3 is 440/190: BEN's money travels further than CAFE's average — the flows are
not memoryless, and the gap shows it.

Day d2 alone: issued 50 (T04), transfers 150, M = 200 / 50 = 4; the issuance of d2 (o3)
ends 20 at h0 and 30 at h1, so traced LM2 = LM3 = 80 / 50 = 1.6.
Participation, whole history: active {ANN, BEN, CAFE, SHOP} = 4, all new; d3 churned =
accounts active on d2 ({ANN, CAFE, SHOP}) not active on d3 ({BEN, SHOP}) = 2.

LIFO (``read_metrics(..., policy="lifo")``; lots bottom to top, amount origin hops @arrival,
a payment's pieces landing with the payer's newest on top):

- T03: ANN [40 o1 h0]; CAFE [60 o1 h1 @d1 12]. Spell 60 × 3 h.
- T05 takes 50 o3 (3 h), then 20 o1 (27 h): CAFE [60 o1 h1, 20 o1 h1, 50 o3 h1]; ANN [20 o1].
- T06 takes 50 o3 (3 h), 20 o1 (3 h), 10 of the 60 o1 (27 h): SHOP [30 o1 h2, 50 o3 h2];
  CAFE [50 o1 h1].
- T07: 40 o2 (48 h) to SHOP as h1, on top. T08 redeems 40 o2 h1 (2 h) and 50 o3 h2 (21 h).
- T09: fee 5 o1 h1 (49 h). T10: 10 o1 h2 (23 h) back to BEN, still h2.

End: held ANN 20 o1 h0, BEN 10 o1 h2, CAFE 45 o1 h1, SHOP 20 o1 h2 (95 in all, as FIFO).
Reach by issuance: o1 [100, 80, 30], o2 [40, 40, 0], o3 [50, 50, 50]. Issued on d1 (o1,
o2): LM2 = 260 / 140, LM3 = 290 / 140, still held 95; on d2 (o3): LM2 = 2, LM3 = 3, still
held 0. Whole history: LM2 = 360 / 190, LM3 = 440 / 190 (here the same as FIFO; M and the
mean trajectory are equal under any order). Spells (amount × hours): 60×3, 50×3, 20×27,
50×3, 20×3, 10×27, 40×48, 40×2, 50×21, 5×49, 10×23: Σ 355, Σ amount·hours 4,875, mean
4,875 / 355 h; median 3 h (cumulative 40 at 2 h, 220 ≥ 177.5 at 3 h) = 0.125 days.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circulate import pipeline
from circulate.generate import GroundTruth, generate_scheme
from circulate.metrics import trace_checkpoint, tracing
from circulate.metrics.circulation import (
    TRACED_COLUMNS,
    bootstrap_ratio_interval,
    period_of_day,
    read_metrics,
    traced_figures,
)
from circulate.metrics.markov import markov_lm, markov_lm_by_period
from circulate.metrics.participation import suppress
from circulate.metrics.trace_checkpoint import read_checkpoint
from circulate.metrics.tracing import (
    Ledger,
    TraceState,
    load_ledger,
    local_multiplier,
    replay,
    trace,
)
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from circulate.warehouse.runner import run_assertions
from tests.conftest import write_csv, write_export

MINE = (
    "circulation_",
    "participation_",
    "daily_circulation_",
    "monthly_circulation_",
    "account_balances_",
)
HAND_EXPORTS = {
    "2025-01-06.csv": [
        ("T01", "2025-01-06T09:00:00Z", "ISSUER", "ANN", "100.00", "issuance", "app"),
        ("T02", "2025-01-06T10:00:00Z", "ISSUER", "BEN", "40.00", "issuance", "app"),
        ("T03", "2025-01-06T12:00:00Z", "ANN", "CAFE", "60.00", "transfer", "card"),
    ],
    "2025-01-07.csv": [
        ("T04", "2025-01-07T09:00:00Z", "ISSUER", "ANN", "50.00", "issuance", "app"),
        ("T05", "2025-01-07T12:00:00Z", "ANN", "CAFE", "70.00", "transfer", "card"),
        ("T06", "2025-01-07T15:00:00Z", "CAFE", "SHOP", "80.00", "transfer", "app"),
    ],
    "2025-01-08.csv": [
        ("T07", "2025-01-08T10:00:00Z", "BEN", "SHOP", "40.00", "transfer", "app"),
        ("T08", "2025-01-08T12:00:00Z", "SHOP", "ISSUER", "90.00", "redemption", "app"),
        ("T09", "2025-01-08T13:00:00Z", "CAFE", "ISSUER", "5.00", "fee", "app"),
        ("T10", "2025-01-08T14:00:00Z", "SHOP", "BEN", "10.00", "reversal", "app"),
    ],
}


def build(settings: Settings) -> Path:
    """Ingest and build (no publish); fail on this issue's and the core assertions.

    Assertions owned by other modules are left to their own tests so that work in
    progress elsewhere cannot mask (or break) these checks.
    """
    ctx = pipeline.begin_run(settings)
    pipeline.ingest_new_files(ctx)
    pipeline.build_models(ctx)
    con = connect(ctx.build)
    try:
        failures = [
            f.describe()
            for f in run_assertions(con, ctx.sql_dir, ctx.parameters)
            if f.name.startswith(MINE)
        ]
    finally:
        con.close()
    assert failures == []
    return ctx.build


def built_warehouse(
    settings: Settings, exports: Mapping[str, Iterable[Sequence[object]]]
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Build ``exports`` (file name → rows) with one issuer account; yield the warehouse."""
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        [("ISSUER", "issuer", "", "", "2024-12-01")],
    )
    for name, rows in exports.items():
        write_export(settings, name, rows)
    con = connect(build(settings), read_only=True)
    yield con
    con.close()


@pytest.fixture
def hand_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    yield from built_warehouse(settings, HAND_EXPORTS)


def row(con: duckdb.DuckDBPyConnection, kind: str, start: date) -> dict[str, object]:
    relation = con.execute(
        "from marts.circulation_metrics where period_kind = $kind and period_start = $start",
        {"kind": kind, "start": start},
    )
    names = [d[0] for d in relation.description or []]
    rows = relation.fetchall()
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def test_whole_history_by_hand(hand_warehouse: duckdb.DuckDBPyConnection) -> None:
    got = row(hand_warehouse, "all", date(2025, 1, 6))
    assert (got["issued"], got["redeemed"], got["fees"]) == (
        Decimal("190.00"),
        Decimal("90.00"),
        Decimal("5.00"),
    )
    assert (got["transfer_volume"], got["transfer_count"]) == (Decimal("250.00"), 4)
    assert got["full_multiplier"] == pytest.approx(440 / 190)
    assert got["leakage"] == pytest.approx(90 / 190)
    assert got["velocity"] == pytest.approx(750 / 425)
    assert got["lm2"] == pytest.approx(360 / 190)
    for k in (3, 4, 5):
        assert got[f"lm{k}"] == pytest.approx(440 / 190)
        assert got[f"markov_lm{k}"] == pytest.approx(432 / 190)
    assert got["markov_lm2"] == pytest.approx(352 / 190)
    assert got["mean_trajectory_length"] == pytest.approx(250 / 190)
    assert got["still_held"] == Decimal("95.00")
    assert got["mean_holding_days"] == pytest.approx(24_534_000 / 355 / 86_400)
    assert got["median_holding_days"] == pytest.approx(0.875)
    assert got["dormancy"] == 0.0
    assert (got["active_accounts"], got["new_accounts"], got["churned_accounts"]) == (4, 4, None)
    low, lm3, high = (float(str(got[name])) for name in ("lm3_low", "lm3", "lm3_high"))
    assert low <= lm3 <= high


def test_day_rows_by_hand(hand_warehouse: duckdb.DuckDBPyConnection) -> None:
    d2 = row(hand_warehouse, "day", date(2025, 1, 7))
    assert d2["full_multiplier"] == pytest.approx(4.0)
    assert d2["lm2"] == pytest.approx(1.6) and d2["lm3"] == pytest.approx(1.6)
    d3 = row(hand_warehouse, "day", date(2025, 1, 8))
    assert d3["issued"] == Decimal("0.00") and d3["full_multiplier"] is None
    assert (d3["active_accounts"], d3["churned_accounts"], d3["new_accounts"]) == (2, 2, 1)
    month = row(hand_warehouse, "month", date(2025, 1, 1))
    assert month["lm3"] == pytest.approx(440 / 190) and month["frequent_traders"] == 0
    week = row(hand_warehouse, "week", date(2025, 1, 6))
    assert week["frequent_traders"] is None


def test_read_metrics_returns_the_mart(hand_warehouse: duckdb.DuckDBPyConnection) -> None:
    (whole,) = read_metrics(hand_warehouse, "all")
    assert whole["issued"] == "190.00" and whole["period_start"] == "2025-01-06"
    assert whole["lm3"] == pytest.approx(440 / 190)
    json.dumps(whole)  # JSON-ready
    assert [r["period_start"] for r in read_metrics(hand_warehouse, "day")] == [
        "2025-01-06",
        "2025-01-07",
        "2025-01-08",
    ]


def test_read_metrics_lifo_by_hand(hand_warehouse: duckdb.DuckDBPyConnection) -> None:
    """The LIFO figures worked out in the module docstring; the rest as published."""
    (fifo,) = read_metrics(hand_warehouse, "all")
    (lifo,) = read_metrics(hand_warehouse, "all", "lifo")
    assert (fifo["policy"], lifo["policy"]) == ("fifo", "lifo")
    assert lifo["lm2"] == pytest.approx(360 / 190) and lifo["lm3"] == pytest.approx(440 / 190)
    assert lifo["mean_trajectory_length"] == pytest.approx(250 / 190)
    assert lifo["still_held"] == "95.00"
    assert lifo["mean_holding_days"] == pytest.approx(4_875 / 355 / 24)
    assert fifo["mean_holding_days"] == pytest.approx(24_534_000 / 355 / 86_400)
    assert (lifo["median_holding_days"], fifo["median_holding_days"]) == (0.125, 0.875)
    assert lifo["lm3_low"] <= lifo["lm3"] <= lifo["lm3_high"]
    unchanged = set(fifo) - set(TRACED_COLUMNS) - {"policy"}
    assert {c: lifo[c] for c in unchanged} == {c: fifo[c] for c in unchanged}
    days = read_metrics(hand_warehouse, "day", "lifo")
    assert [(d["period_start"], d["still_held"]) for d in days] == [
        ("2025-01-06", "95.00"),
        ("2025-01-07", "0.00"),
        ("2025-01-08", "0.00"),
    ]
    assert (days[0]["lm2"], days[0]["lm3"]) == (pytest.approx(260 / 140), pytest.approx(290 / 140))
    assert (days[1]["lm2"], days[1]["lm3"]) == (2.0, 3.0)
    assert days[2]["lm2"] is None and days[2]["lm3_low"] is None


def test_traced_figures_recompute_the_published_fifo_mart(
    hand_warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """Second computation: numpy over a FIFO trace gives the mart's SQL figures."""
    assert_traced_figures_match_the_mart(hand_warehouse)


def assert_traced_figures_match_the_mart(con: duckdb.DuckDBPyConnection) -> None:
    ledger = load_ledger(con)
    result = trace(ledger)
    for kind in ("day", "week", "month", "all"):
        figures = traced_figures(ledger, result, kind)
        published = read_metrics(con, kind)
        assert published
        for got in published:
            start = ledger.first_day if kind == "all" else date.fromisoformat(got["period_start"])
            mine = figures.get(start, {"still_held": Decimal("0.00")})
            for column in TRACED_COLUMNS:
                expected = mine.get(column)
                if column == "still_held":
                    assert got[column] == str(expected)
                elif expected is None:
                    assert got[column] is None, (kind, start, column)
                else:
                    assert got[column] == pytest.approx(expected, rel=1e-12), (kind, start, column)


# --- Markov estimate -------------------------------------------------------------------


def test_markov_equals_trace_on_a_forwarding_chain() -> None:
    """A → B → C → D each forward everything: every unit makes exactly 3 hops.

    Traced and Markov: LM2 = 2, LM3 = 3, LM4 = LM5 = 4 (the chain ends at D, who redeems).
    """
    ledger = Ledger(
        at=np.arange(5, dtype=np.int64) * 60,
        day=np.zeros(5, dtype=np.int64),
        kind=np.array([0, 1, 1, 1, 2], dtype=np.int64),
        source=np.array([-1, 0, 1, 2, 3], dtype=np.int64),
        target=np.array([0, 1, 2, 3, -1], dtype=np.int64),
        pence=np.full(5, 500, dtype=np.int64),
        first_day=date(2025, 1, 6),
    )
    ((_, markov),) = markov_lm_by_period(ledger, np.zeros(1, dtype=np.int64))
    reach = trace(ledger).origin_reach.sum(axis=0)
    traced = [local_multiplier(reach, k) for k in range(1, 6)]
    assert markov == [1.0, 2.0, 3.0, 4.0, 4.0]
    assert traced == markov


tree_strategy = st.lists(
    st.tuples(st.integers(0, 30), st.floats(0.05, 1.0), st.booleans()),
    min_size=1,
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(tree_strategy, st.integers(1, 3))
def test_markov_equals_trace_on_payment_trees(
    steps: list[tuple[int, float, bool]], roots: int
) -> None:
    """Each account receives from one stream only (issuance for roots, its parent else).

    Then all of an account's money has made the same number of hops, the flows are
    memoryless by construction and the Markov LM_k must equal the traced LM_k.
    """
    balance = {r: 10_000 * (r + 1) for r in range(roots)}
    rows = [(0, -1, r, balance[r]) for r in range(roots)]
    children: dict[tuple[int, int], int] = {}
    for pick, share, redeem in steps:
        payer = sorted(balance)[pick % len(balance)]
        amount = int(share * balance[payer])
        if amount == 0:
            continue
        if redeem:
            rows.append((2, payer, -1, amount))
        else:
            child = children.setdefault((payer, pick % 2), 1_000 + len(children))
            if child not in balance:
                balance[child] = 0
            rows.append((1, payer, child, amount))
            balance[child] += amount
        balance[payer] -= amount
    # Children ids must be dense member indices.
    ids = {a: i for i, a in enumerate(sorted({a for r in rows for a in r[1:3] if a >= 0}))}
    n = len(rows)
    ledger = Ledger(
        at=np.arange(n, dtype=np.int64),
        day=np.zeros(n, dtype=np.int64),
        kind=np.array([r[0] for r in rows], dtype=np.int64),
        source=np.array([ids.get(r[1], -1) for r in rows], dtype=np.int64),
        target=np.array([ids.get(r[2], -1) for r in rows], dtype=np.int64),
        pence=np.array([r[3] for r in rows], dtype=np.int64),
        first_day=date(2025, 1, 6),
    )
    ((_, markov),) = markov_lm_by_period(ledger, np.zeros(1, dtype=np.int64))
    assert markov is not None
    reach = trace(ledger).origin_reach.sum(axis=0)
    for k in range(1, 6):
        assert markov[k - 1] == pytest.approx(local_multiplier(reach, k), rel=1e-12)


def test_markov_lm_needs_issuance() -> None:
    assert markov_lm([0, 0], [0], [1], [5], [5, 0]) is None


def test_period_ids_are_contiguous_and_monday_based() -> None:
    months = period_of_day(date(2025, 1, 1), 365, "month")
    assert months.max() == 11 and (np.diff(months) >= 0).all()
    weeks = period_of_day(date(2025, 1, 1), 14, "week")  # Wednesday
    assert weeks.tolist() == [0] * 5 + [1] * 7 + [2] * 2


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(3)
    num, den = rng.gamma(2, 3, 300), rng.gamma(2, 2, 300)
    first = bootstrap_ratio_interval(num, den)
    assert first == bootstrap_ratio_interval(num, den)
    assert first is not None
    assert first[0] < num.sum() / den.sum() < first[1]
    assert bootstrap_ratio_interval([], []) is None


# --- a generated scheme against its ground truth ---------------------------------------


@pytest.mark.slow
def test_generated_scheme_matches_ground_truth(settings: Settings) -> None:
    truth = generate_scheme(
        settings.inbox, seed=11, transactions=3_000, days=75, start=date(2025, 3, 1)
    )
    assert GroundTruth.from_json(settings.inbox / "ground_truth.json") == truth
    con = connect(build(settings), read_only=True)
    try:
        (whole,) = read_metrics(con, "all")
        totals = truth.totals
        assert Decimal(whole["issued"]) == totals.issued
        assert Decimal(whole["redeemed"]) == totals.redeemed
        assert Decimal(whole["fees"]) == totals.fees
        assert Decimal(whole["transfer_volume"]) == totals.transfer_volume
        assert whole["transfer_count"] == totals.transfer_count
        assert Decimal(whole["still_held"]) == truth.money_supply
        issued = float(totals.issued)
        expected_m = (issued + float(totals.transfer_volume)) / issued
        assert whole["full_multiplier"] == pytest.approx(expected_m)
        assert whole["full_multiplier"] == pytest.approx(1 + whole["mean_trajectory_length"])
        months = {r["period_start"][:7]: r for r in read_metrics(con, "month")}
        assert months.keys() == truth.monthly.keys()
        assert_traced_figures_match_the_mart(con)
        for month, expected in truth.monthly.items():
            assert Decimal(months[month]["issued"]) == expected.issued
            assert Decimal(months[month]["transfer_volume"]) == expected.transfer_volume
        # Participation: the all-accounts row equals active traders counted from the ledger.
        active = dict(
            con.execute(
                "select cast(date_trunc('month', local_day) as date), count(distinct a) from ("
                " select local_day, source_id as a from staging.transactions"
                " where kind = 'transfer' union all"
                " select local_day, target_id from staging.transactions where kind = 'transfer')"
                " group by all"
            ).fetchall()
        )
        published = con.execute(
            "select month, active_accounts from marts.participation where dimension = 'all'"
        ).fetchall()
        assert published and all(n == active[m] for m, n in published if n is not None)
        assert all(n is not None for _m, n in published)
        # Traced and Markov multipliers are both real numbers in range.
        assert 1 <= whole["lm2"] <= whole["lm3"] <= whole["lm5"] <= 5
        assert 1 <= whole["markov_lm2"] <= whole["markov_lm3"] <= 5
        assert whole["lm3_low"] <= whole["lm3"] <= whole["lm3_high"]
        assert whole["velocity_low"] <= whole["velocity"] <= whole["velocity_high"]
    finally:
        con.close()


# --- participation ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=8),
    st.integers(3, 6),
)
def test_suppression_leaves_no_small_or_lone_hidden_count(
    cells: list[tuple[int, int]], k: int
) -> None:
    counts = [c for c, _ in cells]
    sizes = [max(c, s) for c, s in cells]  # a group has at least as many accounts as count
    shown = suppress(counts, sizes, k)
    assert all(v is None or v == 0 or v >= k for v in shown)
    assert sum(v is None for v in shown) != 1 or len(counts) == 1
    assert all(v is None or v == c for v, c in zip(shown, counts, strict=True))
    assert all(v is None for v, s in zip(shown, sizes, strict=True) if s < k)


def test_participation_hides_the_tiny_hand_ledger(
    hand_warehouse: duckdb.DuckDBPyConnection,
) -> None:
    """Four traders in January: every count is below k = 5, so all are hidden."""
    rows = hand_warehouse.execute(
        "select dimension, group_value, active_accounts, new_accounts, suppressed "
        "from marts.participation where dimension = 'all'"
    ).fetchall()
    assert rows == [("all", "all", None, None, True)]


def _built_hand_ledger(settings: Settings) -> Path:
    """The hand ledger's exports and its issuer, built (not published)."""
    for name, rows in HAND_EXPORTS.items():
        write_export(settings, name, rows)
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        [("ISSUER", "issuer", "", "", "2024-12-01")],
    )
    return build(settings)


def test_stored_trace_state_round_trips_and_refuses_another_ledger(settings: Settings) -> None:
    """The state read back is the state replayed; a changed ledger or table reads as none."""
    con = connect(_built_hand_ledger(settings))
    try:
        ledger = load_ledger(con)
        stored = read_checkpoint(con, ledger)
        assert stored is not None and stored.rows == ledger.at.size
        replayed = replay(ledger)
        for field in dataclasses.fields(TraceState):
            mine, theirs = getattr(stored, field.name), getattr(replayed, field.name)
            assert np.array_equal(mine, theirs) if isinstance(mine, np.ndarray) else mine == theirs
        assert stored.result().equals(trace(ledger))
        # Resuming with nothing new replays nothing and changes nothing.
        assert replay(ledger, start=stored).result().equals(trace(ledger))

        shorter = dataclasses.replace(ledger, at=ledger.at[:-1])  # a ledger it does not cover
        assert read_checkpoint(con, shorter) is None
        later = dataclasses.replace(ledger, first_day=date(2025, 1, 7))
        assert read_checkpoint(con, later) is None
        assert read_checkpoint(con, ledger, "lifo") is None
        con.execute("alter table intermediate.trace_checkpoint drop column days")
        assert read_checkpoint(con, ledger) is None  # stored by another version
    finally:
        con.close()


def test_stored_trace_state_of_another_tracer_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lots stored by a tracer with other code (such as another order of a payment's
    pieces) may sit in another order: the digest of the tracer's source refuses them."""
    con = connect(_built_hand_ledger(settings))
    try:
        ledger = load_ledger(con)
        assert read_checkpoint(con, ledger) is not None
        source = Path(tracing.__file__).read_bytes() + Path(trace_checkpoint.__file__).read_bytes()
        assert trace_checkpoint._tracer_source() == source
        monkeypatch.setattr(trace_checkpoint, "_tracer_source", lambda: source + b"# edited")
        assert read_checkpoint(con, ledger) is None
    finally:
        con.close()
