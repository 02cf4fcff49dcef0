"""Great Expectations sees only the rows DuckDB flags, and reports what the whole batch would.

Ledgers are written straight into ``raw`` and ``audit`` (no ingestion), so a batch can
hold what ingestion never lets through: unknown kinds, repeated txn_ids, late rows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate.settings import Settings, ValidationThresholds
from circulate.validate.frames import load_frames
from circulate.validate.run import run_checks
from circulate.validate.suites import KINDS, Check, batch_checks
from circulate.warehouse.connection import connect
from circulate.warehouse.schema import ensure_persistent_tables
from tests.conftest import (
    HAND_ACCOUNTS,
    HAND_LEDGER,
    validate_in_build,
    write_csv,
    write_export,
)

TIMEZONE = "Europe/London"
FIRST_DAY = date(2025, 3, 28)  # London leaves GMT on 2025-03-30: a 23-hour day inside
NOW = datetime(2025, 4, 2, tzinfo=UTC)
ACCOUNT_TYPES = {"ISSUER": "issuer", "ANN": "individual", "BEN": "individual", "CAFE": "business"}
PEOPLE = (*ACCOUNT_TYPES, "DAN")  # DAN is missing from the accounts file
ACCOUNT_HEADER = ("account_id", "account_type", "sector", "area", "joined_at")

#: (day of the file, minutes after that day's UTC midnight, source, target, amount, kind)
Row = tuple[int, int, str, str, str, str]


def _transaction_checks() -> list[Check]:
    return [c for c in batch_checks(ValidationThresholds()) if c.frame == "transactions"]


def _warehouse(
    history: Sequence[Row],
    batch: Sequence[Row],
    *,
    with_accounts: bool = True,
    batch_txn_ids: Sequence[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """History under batch ``h``, the rest under batch ``b``; one file per batch and day."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    ensure_persistent_tables(con)
    if with_accounts:
        con.executemany(
            "insert into raw.accounts (account_id, account_type, batch_id, source_file) "
            "values (?, ?, 'h', 'accounts.csv')",
            list(ACCOUNT_TYPES.items()),
        )
    ids = [f"H{i:03d}" for i in range(len(history))]
    ids += list(batch_txn_ids or [f"B{i:03d}" for i in range(len(batch))])
    files: dict[tuple[str, int], int] = defaultdict(int)
    for position, (txn_id, (day, minutes, source, target, amount, kind)) in enumerate(
        zip(ids, [*history, *batch], strict=True)
    ):
        batch_id = "h" if position < len(history) else "b"
        files[(batch_id, day)] += 1
        at = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), UTC)
        con.execute(
            "insert into raw.transactions (txn_id, occurred_at, source_id, target_id, amount, "
            "kind, batch_id, source_file, source_line, ingested_at) values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                txn_id,
                at + timedelta(minutes=minutes),
                source,
                target,
                Decimal(amount),
                kind,
                batch_id,
                f"{batch_id}-{day}.csv",
                position + 2,
            ],
        )
    for (batch_id, day), rows in files.items():
        con.execute(
            "insert into audit.files (file_name, sha256, file_role, export_day, rows_in, "
            "rows_loaded, rows_duplicate, rows_quarantined, status, batch_id, run_id, "
            "ingested_at) values (?, ?, 'transactions', ?, ?, ?, 0, 0, 'loaded', ?, ?, now())",
            [
                f"{batch_id}-{day}.csv",
                f"{batch_id}-{day}",
                FIRST_DAY + timedelta(days=day),
                rows,
                rows,
                batch_id,
                batch_id,
            ],
        )
    return con


def _replayed_balances(history: Sequence[Row], batch: Sequence[Row]) -> list[float | None]:
    """Independent replay: every movement of the whole ledger in time order, in Python.

    Returns for each batch row the payer's lowest balance from that payment until their
    next payment in the batch (``None`` for a payer outside circulation: an issuer, or an
    account that ever issued or received an outflow).
    """
    rows = [("H", i, r) for i, r in enumerate(history)] + [("B", i, r) for i, r in enumerate(batch)]
    outside = {a for a, kind in ACCOUNT_TYPES.items() if kind == "issuer"}
    outside |= {r[2] for _, _, r in rows if r[5] == "issuance"}
    outside |= {r[3] for _, _, r in rows if r[5] in ("redemption", "fee")}
    movements = []
    for prefix, index, (day, minutes, source, target, amount, _kind) in rows:
        txn_id = f"{prefix}{index:03d}"
        at = day * 24 * 60 + minutes
        if target not in outside:
            movements.append((target, at, txn_id, Decimal(amount)))
        if source not in outside:
            movements.append((source, at, txn_id, -Decimal(amount)))
    balances: dict[str, Decimal] = defaultdict(Decimal)
    latest_batch_payment: dict[str, str] = {}
    lowest: dict[str, Decimal] = {}
    # Same order as the SQL: time, then txn_id, then money in before money out.
    for account, _at, txn_id, delta in sorted(movements, key=lambda m: (m[1], m[2], -m[3])):
        balances[account] += delta
        if delta < 0 and txn_id.startswith("B"):
            latest_batch_payment[account] = txn_id
            lowest[txn_id] = balances[account]
        elif delta < 0 and account in latest_batch_payment:
            owner = latest_batch_payment[account]
            lowest[owner] = min(lowest[owner], balances[account])
    return [
        float(lowest[f"B{i:03d}"]) if f"B{i:03d}" in lowest else None for i in range(len(batch))
    ]


ROWS = st.tuples(
    st.integers(min_value=0, max_value=3),
    # Few distinct minutes: many rows share a timestamp, so ties are broken by txn_id.
    st.sampled_from([-200, 0, 61, 600, 1380, 1500, 1620]),
    st.sampled_from(PEOPLE),
    st.sampled_from(PEOPLE),
    st.sampled_from(["0.01", "5.00", "40.00", "250.00", "150000.00"]),
    st.sampled_from([*KINDS, "gift"]),
).filter(lambda row: row[2] != row[3])


@hypothesis_settings(max_examples=10, deadline=None)
@given(
    history=st.lists(ROWS, max_size=12),
    batch=st.lists(ROWS, min_size=1, max_size=12),
    repeats=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=3),
    with_accounts=st.booleans(),
)
# Only the payment to DAN is flagged, so its target_account_type is null in every flagged
# row but not in the batch: the missing value must read as in the whole batch's frame.
@example(
    history=[],
    batch=[
        (0, 600, "ISSUER", "ANN", "40.00", "issuance"),
        (0, 700, "ANN", "DAN", "5.00", "transfer"),
    ],
    repeats=[],
    with_accounts=True,
)
def test_flagged_rows_give_the_results_of_the_whole_batch(
    history: list[Row],
    batch: list[Row],
    repeats: list[tuple[int, int]],
    with_accounts: bool,
) -> None:
    """Every transactions check, run by GE on the whole batch and on the flagged rows only:
    the same status, counts, examples and samples (the run stops if a count differs)."""
    txn_ids = [f"B{i:03d}" for i in range(len(batch))]
    for copy, original in repeats:  # a txn_id loaded twice in the batch
        if copy < len(batch) and original < len(batch):
            txn_ids[copy] = txn_ids[original]
    con = _warehouse(history, batch, with_accounts=with_accounts, batch_txn_ids=txn_ids)
    checks = _transaction_checks()
    whole = load_frames(con, "b", timezone=TIMEZONE, history_days=28)
    flagged = load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=checks)
    assert len(whole.frames["transactions"]) == len(batch)
    assert whole.row_counts["transactions"] == flagged.row_counts["transactions"] == len(batch)
    expected = run_checks(whole, checks, run_id="r", batch_id="b", now=NOW)
    got = run_checks(flagged, checks, run_id="r", batch_id="b", now=NOW)
    assert got == expected
    failing = {r.expectation for r in expected if r.status == "failed"}
    assert len(flagged.frames["transactions"]) <= len(batch)
    if not failing:
        assert flagged.frames["transactions"].empty


@hypothesis_settings(max_examples=40, deadline=None)
@given(history=st.lists(ROWS, max_size=25), batch=st.lists(ROWS, min_size=1, max_size=10))
def test_payer_balance_matches_a_replay_of_the_whole_ledger(
    history: list[Row], batch: list[Row]
) -> None:
    """The SQL replays only the batch's payers from their first payment in the batch on,
    with one opening sum for the rest; history rows may lie before, between or after the
    batch's rows (a late file). A plain replay of every movement agrees exactly."""
    assume(any(row[5] == "transfer" for row in batch))
    con = _warehouse(history, batch)
    frame = load_frames(con, "b", timezone=TIMEZONE, history_days=28).frames["transactions"]
    by_txn = dict(zip(frame["txn_id"], frame["payer_lowest_balance"], strict=True))
    got = [by_txn[f"B{i:03d}"] for i in range(len(batch))]
    expected = _replayed_balances(history, batch)
    assert [None if g != g else g for g in got] == expected  # NaN (no payer) as None


def test_opening_balance_comes_from_earlier_nights() -> None:
    """ANN receives 40.00 and pays 30.00 in history; tonight she pays 20.00 (10.00 short)
    and BEN, who received 5.00 long ago, pays 5.00 (balance 0: allowed)."""
    history = [
        (0, 600, "ISSUER", "ANN", "40.00", "issuance"),
        (0, 620, "ISSUER", "BEN", "5.00", "issuance"),
        (1, 600, "ANN", "CAFE", "30.00", "transfer"),
    ]
    batch = [
        (3, 600, "ANN", "BEN", "20.00", "transfer"),
        (3, 700, "BEN", "CAFE", "5.00", "transfer"),
    ]
    con = _warehouse(history, batch)
    frames = load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=_transaction_checks())
    transactions = frames.frames["transactions"]
    assert list(transactions["txn_id"]) == ["B000"]  # BEN's payment breaks nothing
    assert transactions["payer_lowest_balance"].tolist() == [-10.0]
    assert frames.flagged_counts["payer_never_overdrawn"] == 1
    assert frames.row_counts["transactions"] == 2
    results = {
        r.expectation: r
        for r in run_checks(frames, _transaction_checks(), run_id="r", batch_id="b", now=NOW)
    }
    assert results["payer_never_overdrawn"].observed_value == "1 of 2 rows unexpected (e.g. -10)"


def test_a_late_row_that_overdraws_a_later_payment_on_file_is_named() -> None:
    """History: ANN gets 40.00 on day 0 and pays 30.00 on day 2. Tonight a late file for
    day 1 has ANN paying 25.00: in time order 40 - 25 = 15 after it, then 15 - 30 = -15 at
    the day-2 payment. That payment is history, so the late row answers for it (-15),
    before sql/tests/account_balances_never_negative.sql can trip on it."""
    history = [
        (0, 600, "ISSUER", "ANN", "40.00", "issuance"),
        (2, 600, "ANN", "CAFE", "30.00", "transfer"),
    ]
    con = _warehouse(history, [(1, 600, "ANN", "BEN", "25.00", "transfer")])
    frames = load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=_transaction_checks())
    assert frames.frames["transactions"]["payer_lowest_balance"].tolist() == [-15.0]
    results = {
        r.expectation: r
        for r in run_checks(frames, _transaction_checks(), run_id="r", batch_id="b", now=NOW)
    }
    assert results["payer_never_overdrawn"].observed_value == "1 of 1 rows unexpected (e.g. -15)"


def test_each_batch_payment_answers_only_up_to_the_payers_next_one() -> None:
    """ANN gets 40.00 (day 0) and, on file, pays 30.00 on day 2. Tonight: 5.00 on day 1
    (35 left; the day-2 payment leaves 5, the lowest until her next batch payment) and
    10.00 on day 3 (5 - 10 = -5). Only the day-3 payment overdraws."""
    history = [
        (0, 600, "ISSUER", "ANN", "40.00", "issuance"),
        (2, 600, "ANN", "CAFE", "30.00", "transfer"),
    ]
    batch = [
        (1, 600, "ANN", "BEN", "5.00", "transfer"),
        (3, 600, "ANN", "BEN", "10.00", "transfer"),
    ]
    con = _warehouse(history, batch)
    frame = load_frames(con, "b", timezone=TIMEZONE, history_days=28).frames["transactions"]
    assert frame["payer_lowest_balance"].tolist() == [5.0, -5.0]


def test_a_sql_condition_that_disagrees_with_its_expectation_stops_the_run() -> None:
    """amount_positive's SQL widened to every amount below 10: GE finds none of the
    flagged 5.00 rows non-positive, so the counts differ and the run names the check."""
    checks = [
        dataclasses.replace(c, unexpected_rows_sql="amount < 10")
        if c.name == "amount_positive"
        else c
        for c in _transaction_checks()
    ]
    con = _warehouse([], [(0, 600, "ISSUER", "ANN", "5.00", "issuance")])
    frames = load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=checks)
    with pytest.raises(RuntimeError, match=r"amount_positive.*suites\.py.*flags 1 row"):
        run_checks(frames, checks, run_id="r", batch_id="b", now=NOW)


def test_a_transactions_check_without_its_sql_condition_is_refused() -> None:
    checks = [
        dataclasses.replace(c, unexpected_rows_sql=None) if c.name == "kind_allowed" else c
        for c in _transaction_checks()
    ]
    con = _warehouse([], [(0, 600, "ISSUER", "ANN", "5.00", "issuance")])
    with pytest.raises(ValueError, match=r"kind_allowed in circulate/validate/suites\.py"):
        load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=checks)


def test_incremental_band_and_export_days_read_only_the_window(settings: Settings) -> None:
    """40 published days with 2 issuances a day, then a night adding day 41 with 6: the
    band compares it with the 4 same-weekday days of the trailing 28 (2 rows each): ratio
    3 (within 4x). The export-day spine still runs from the first day: 41 days, none missing.
    """
    from circulate import pipeline

    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, HAND_ACCOUNTS)

    def day_file(offset: int, count: int) -> None:
        day = date(2025, 1, 1) + timedelta(days=offset)
        rows = [
            (
                f"T{offset}-{i}",
                f"{day.isoformat()}T10:{i:02d}:00Z",
                "ISSUER",
                "ANN",
                "1.00",
                "issuance",
                "app",
            )
            for i in range(count)
        ]
        write_export(settings, f"{day.isoformat()}.csv", rows)

    for offset in range(40):
        day_file(offset, 2)
    pipeline.run_in_process(settings)
    day_file(40, 6)
    ctx = pipeline.begin_run(settings)
    pipeline.ingest_new_files(ctx)
    report = validate_in_build(ctx, settings)
    with connect(ctx.build) as con:
        days = load_frames(con, ctx.run_id, timezone=settings.timezone, history_days=28)
    results = {r.expectation: r for r in report.results}
    assert results["row_count_within_band"].status == "passed"
    assert days.frames["days"][["row_count", "history_days", "median_rows", "row_ratio"]].to_dict(
        "records"
    ) == [{"row_count": 6, "history_days": 28, "median_rows": 2.0, "row_ratio": 3.0}]
    assert results["export_day_present"].observed_value == "0 of 41 days unexpected"
    assert results["payer_never_overdrawn"].observed_value == "0 of 6 rows unexpected"


def test_hand_ledger_reaches_great_expectations_as_an_empty_frame(published: Settings) -> None:
    """The clean six-row ledger: no row is flagged, yet each check reports all six rows."""
    con = connect(published.warehouse, read_only=True)
    try:
        batch = con.execute("select any_value(batch_id) from raw.transactions").fetchone()
        assert batch is not None
        checks = batch_checks(published.validation)
        frames = load_frames(
            con, batch[0], timezone=published.timezone, history_days=28, checks=checks
        )
    finally:
        con.close()
    assert frames.frames["transactions"].empty
    assert frames.row_counts["transactions"] == len(HAND_LEDGER)
    assert set(frames.flagged_counts.values()) == {0}


#: (history, batch, with_accounts, the flagged batch rows' issuer_role_problem in order).
#: Lines: history first, from line 2 (see _warehouse); files are ``<batch>-<day>.csv``.
ISSUER_ROLE_CASES = {
    # The issue's case: a fee booked as a plain payment, no accounts file (inferred issuer).
    "transfer to the issuer": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [(1, 600, "ANN", "ISSUER", "5.00", "transfer")],
        False,
        ["b-1.csv line 3: a transfer to an issuer account (it issues money in h-0.csv line 2)"],
    ),
    "transfer from the issuer": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [(1, 600, "ISSUER", "BEN", "5.00", "transfer")],
        False,
        ["b-1.csv line 3: a transfer from an issuer account (it issues money in h-0.csv line 2)"],
    ),
    # A fee refunded as a reversal: the issuer is known only from the fee.
    "reversal from the issuer": (
        [(0, 600, "ANN", "ISSUER", "1.00", "fee")],
        [(1, 600, "ISSUER", "ANN", "1.00", "reversal")],
        False,
        ["b-1.csv line 3: a reversal from an issuer account (it takes a fee in h-0.csv line 2)"],
    ),
    "reversal to the issuer": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [(1, 600, "ANN", "ISSUER", "5.00", "reversal")],
        True,
        [
            "b-1.csv line 3: a reversal to an issuer account "
            "(it is listed as issuer in accounts.csv)"
        ],
    ),
    "issuance to an issuer account": (
        [],
        [(0, 600, "DAN", "ISSUER", "10.00", "issuance")],
        True,
        [
            "b-0.csv line 2: an issuance to an issuer account "
            "(it is listed as issuer in accounts.csv)"
        ],
    ),
    "redemption and fee from an issuer account": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [(1, 600, "ISSUER", "DAN", "4.00", "redemption"), (1, 660, "ISSUER", "DAN", "1.00", "fee")],
        False,
        [
            "b-1.csv line 3: a redemption from an issuer account (it issues money in h-0.csv "
            "line 2)",
            "b-1.csv line 4: a fee from an issuer account (it issues money in h-0.csv line 2)",
        ],
    ),
    # BEN was a member on file; tonight's redemption makes him an issuer, which turns the
    # transfer he received into a conflict: the row to name is tonight's.
    "redemption to a member on file": (
        [
            (0, 600, "ISSUER", "ANN", "40.00", "issuance"),
            (0, 700, "ANN", "BEN", "10.00", "transfer"),
        ],
        [(1, 600, "ANN", "BEN", "5.00", "redemption")],
        False,
        [
            "b-1.csv line 4: a redemption to an account that is a member elsewhere "
            "(a transfer in h-0.csv line 3)"
        ],
    ),
    "issuance from a member on file": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [(1, 600, "ANN", "BEN", "5.00", "issuance")],
        False,
        [
            "b-1.csv line 3: an issuance from an account that is a member elsewhere "
            "(an issuance in h-0.csv line 2)"
        ],
    ),
    # Within the batch the member-side row is named, with the row that makes it an issuer.
    "redemption to a member in the batch": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [
            (1, 600, "ANN", "CAFE", "10.00", "transfer"),
            (1, 700, "ANN", "CAFE", "5.00", "redemption"),
        ],
        False,
        [
            "b-1.csv line 3: a transfer to an issuer account (it takes a redemption in b-1.csv "
            "line 4)"
        ],
    ),
    "clean night": (
        [(0, 600, "ISSUER", "ANN", "40.00", "issuance")],
        [
            (1, 600, "ISSUER", "BEN", "5.00", "issuance"),
            (1, 700, "ANN", "BEN", "10.00", "transfer"),
            (1, 800, "BEN", "ANN", "2.00", "reversal"),
            (1, 900, "BEN", "ISSUER", "1.00", "fee"),
            (1, 950, "ANN", "ISSUER", "3.00", "redemption"),
        ],
        False,
        [],
    ),
}


@pytest.mark.parametrize("case", ISSUER_ROLE_CASES)
def test_every_issuer_kind_mismatch_is_named_by_file_and_line(case: str) -> None:
    """Each mismatch that would make member balances differ from the money supply (the
    issuer set is the warehouse's: listed, or issuing or taking an outflow anywhere)."""
    history, batch, with_accounts, problems = ISSUER_ROLE_CASES[case]
    con = _warehouse(history, batch, with_accounts=with_accounts)
    checks = _transaction_checks()
    frames = load_frames(con, "b", timezone=TIMEZONE, history_days=28, checks=checks)
    flagged = frames.frames["transactions"]
    assert flagged["issuer_role_problem"].dropna().tolist() == problems
    result = {
        r.expectation: r for r in run_checks(frames, checks, run_id="r", batch_id="b", now=NOW)
    }["issuer_kind_consistent"]
    assert (result.status, result.severity) == ("failed" if problems else "passed", "critical")
    expected = f"{len(problems)} of {len(batch)} rows unexpected"
    if problems:
        expected += " (e.g. " + ", ".join(problems) + ")"
    assert result.observed_value == expected
