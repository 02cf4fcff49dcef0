"""The never-negative check: a replay to the latest month end, made at month close only,
plus a nightly replay of the movements after it — equal to replaying the whole ledger."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate import pipeline
from circulate.ingest.pseudonym import pseudonymise
from circulate.metrics import balance_checkpoint
from circulate.metrics.month_close import Cut
from circulate.warehouse.runner import default_sql_dir
from tests.conftest import TEST_KEY, run_stages, settings_in, write_csv, write_export
from tests.unit.test_build_shortcuts import (
    ACCOUNT_HEADER,
    CLOSES_NIGHTS,
    MONTHS_ACCOUNTS,
    closes_nights,
)

CHECK = (default_sql_dir() / "tests" / "account_balances_never_negative.sql").read_text()
# The whole ledger replayed at once: the check as it was before the checkpoint.
WHOLE_REPLAY = """
select distinct account_id from (
    select account_id, sum(delta) over (
        partition by account_id order by occurred_at, txn_id, delta desc
        rows unbounded preceding
    ) as running_balance
    from intermediate.account_movements
)
where running_balance < 0
"""


def _name(account: str) -> str:
    return pseudonymise(account, TEST_KEY.encode())


def test_the_replay_runs_at_month_close_and_on_a_late_entry_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replays: list[date | None] = []
    replay = balance_checkpoint.replay_to_cut

    def counting(con: duckdb.DuckDBPyConnection, cut_day: date | None) -> None:
        replays.append(cut_day)
        replay(con, cut_day)

    monkeypatch.setattr(balance_checkpoint, "replay_to_cut", counting)
    settings = settings_in(tmp_path / "nightly")
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    replayed, cuts, checkpoints = [], [], []
    for _night in closes_nights(settings):
        replays.clear()
        run_stages(settings)  # runs the check, which must pass every night
        replayed.append(bool(replays))
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            [(cut,)] = con.execute(
                "select cut_day from intermediate.balance_checkpoint_cut"
            ).fetchall()
            cuts.append(cut)
            checkpoints.append(
                con.execute("from intermediate.balance_checkpoint order by all").fetchall()
            )
    # Night 1: no month complete; 2: January closes; 3: mid-February, kept; 4: February
    # closes; 5: an entry dated 20 January, on or before the cut.
    assert replayed == [True, True, False, True, True]
    january, february = date(2025, 1, 31), date(2025, 2, 28)
    assert cuts == [None, january, january, february, february]
    assert checkpoints[0] == []
    # January by hand: ANN +100 −20; BEN +100; CAFE +20 −10 +5 (lowest 10 after N4);
    # DELI +10 −5 (lowest 5 after N5).
    assert {row[0]: (row[1], row[2], row[4]) for row in checkpoints[1]} == {
        _name("ANN"): (Decimal("80.00"), Decimal("80.00"), "N3"),
        _name("BEN"): (Decimal("100.00"), Decimal("100.00"), "N2"),
        _name("CAFE"): (Decimal("15.00"), Decimal("10.00"), "N4"),
        _name("DELI"): (Decimal("5.00"), Decimal("5.00"), "N5"),
    }
    assert checkpoints[2] == checkpoints[1], "kept mid-month"
    # The late N11 (BEN → CAFE 2.00 on 20 January) is in the checkpoint of night 5.
    late = {row[0]: row[1] for row in checkpoints[4]}
    before = {row[0]: row[1] for row in checkpoints[3]}
    assert late[_name("BEN")] == before[_name("BEN")] - 2
    assert late[_name("CAFE")] == before[_name("CAFE")] + 2


def _movements_warehouse(rows: list[tuple[str, str, int, float]]) -> duckdb.DuckDBPyConnection:
    """A warehouse holding only ``intermediate.account_movements``: (account, txn, day, delta)."""
    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.account_movements (txn_id varchar, occurred_at timestamptz,"
        " local_day date, kind varchar, account_id varchar, delta decimal(18, 2),"
        " batch_id varchar)"
    )
    start = datetime.fromisoformat("2025-01-01T12:00:00+00:00")
    if not rows:
        return con
    con.executemany(
        "insert into intermediate.account_movements values (?, ?, ?, 'transfer', ?, ?, 'b')",
        [
            (txn, start + timedelta(days=day), (start + timedelta(days=day)).date(), account, delta)
            for account, txn, day, delta in rows
        ],
    )
    return con


def _checkpoint(con: duckdb.DuckDBPyConnection, cut_day: date | None) -> None:
    """The checkpoint and its cut, as the build stores them, at ``cut_day``."""
    balance_checkpoint.replay_to_cut(con, cut_day)
    Cut(cut_day, None, (balance_checkpoint.MOVEMENTS,), [], "test").store(
        con, balance_checkpoint.CUT
    )


def _flagged(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {str(row[0]) for row in con.execute(CHECK).fetchall()}


def test_a_spend_after_the_cut_counts_from_the_stored_balance() -> None:
    con = _movements_warehouse(
        [
            ("ANN", "T1", 0, 10.0),  # January: ANN holds 10
            ("ANN", "T2", 40, -8.0),  # February: within what she holds
            ("BEN", "T3", 0, 5.0),
            ("BEN", "T4", 40, -6.0),  # overdrawn in February
            ("CAT", "T5", 3, -1.0),  # overdrawn in January, before the cut
            ("CAT", "T6", 4, 1.0),
        ]
    )
    _checkpoint(con, date(2025, 1, 31))
    assert con.execute(
        "select account_id, balance, lowest_balance, lowest_txn_id "
        "from intermediate.balance_checkpoint order by 1"
    ).fetchall() == [
        ("ANN", Decimal("10.00"), Decimal("10.00"), "T1"),
        ("BEN", Decimal("5.00"), Decimal("5.00"), "T3"),
        ("CAT", Decimal("0.00"), Decimal("-1.00"), "T5"),
    ]
    rows = con.execute(CHECK).fetchall()
    assert sorted((r[0], r[1], r[3]) for r in rows) == [
        ("BEN", "T4", Decimal("-1.00")),
        ("CAT", "T5", Decimal("-1.00")),
    ]


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "D"]),
            st.integers(min_value=0, max_value=89),
            st.integers(min_value=-30, max_value=40),
        ),
        max_size=40,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=89)),
)
def test_the_check_flags_the_accounts_a_whole_ledger_replay_flags(
    rows: list[tuple[str, int, int]], cut: int | None
) -> None:
    movements = [(a, f"T{n:03d}", day, float(delta)) for n, (a, day, delta) in enumerate(rows)]
    con = _movements_warehouse(movements)
    cut_day = None if cut is None else date(2025, 1, 1) + timedelta(days=cut)
    _checkpoint(con, cut_day)
    whole = {str(row[0]) for row in con.execute(WHOLE_REPLAY).fetchall()}
    assert _flagged(con) == whole


def test_a_full_rebuild_makes_the_checkpoint_again(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "full")
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    for offset in range(41):  # 1 January .. 10 February: January is complete
        write_export(settings, f"{date(2025, 1, 1) + timedelta(days=offset)}.csv", [])
    write_export(settings, "2025-01-01.csv", CLOSES_NIGHTS[0][1])
    run_stages(settings)
    stamp = "select batches_digest from intermediate.balance_checkpoint_cut"
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        [(before,)] = con.execute(stamp).fetchall()
    pipeline.run_in_process(settings, full=True)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        [(after,)] = con.execute(stamp).fetchall()
        cut = con.execute("select cut_day from intermediate.balance_checkpoint_cut").fetchall()
    assert after != before, "made again from the rebuilt movements"
    assert cut == [(date(2025, 1, 31),)]
