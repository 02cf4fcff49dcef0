"""Participation and dormancy of the open periods, computed from the accounts' state at a
month end, equal the same rows computed from the whole ledger."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate.metrics import period_activity
from circulate.metrics.month_close import closed_history_end
from tests.conftest import run_stages, settings_in, write_csv
from tests.unit.test_build_shortcuts import (
    ACCOUNT_HEADER,
    MONTHS_ACCOUNTS,
    closes_nights,
    count_kept_periods,
)

FIRST_DAY = date(2025, 1, 1)
ACCOUNTS = ["A", "B", "C", "D", "E"]


def _ledger(
    issuances: list[tuple[int, str, int]], transfers: list[tuple[int, str, str, int]], days: int
) -> duckdb.DuckDBPyConnection:
    """A warehouse holding the three tables the model reads, from (day, to, amount) and
    (day, from, to, amount); every transfer is paid from money issued that day or before
    (the ledger may still overdraw: the model does not care)."""
    con = duckdb.connect()
    for schema in ("intermediate", "staging"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table staging.transactions (txn_id varchar, local_day date, source_id varchar,"
        " target_id varchar, amount decimal(18, 2), kind varchar)"
    )
    rows = [
        (f"I{n}", FIRST_DAY + timedelta(days=day), "ISSUER", to, amount, "issuance")
        for n, (day, to, amount) in enumerate(issuances)
    ] + [
        (f"T{n}", FIRST_DAY + timedelta(days=day), payer, payee, amount, "transfer")
        for n, (day, payer, payee, amount) in enumerate(transfers)
        if payer != payee
    ]
    if rows:
        con.executemany("insert into staging.transactions values (?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        """
        create table intermediate.account_movements as
        select txn_id, local_day, kind, target_id as account_id, amount as delta
        from staging.transactions where target_id <> 'ISSUER'
        union all
        select txn_id, local_day, kind, source_id, -amount
        from staging.transactions where source_id <> 'ISSUER'
        """
    )
    con.execute(
        "create table intermediate.day_spine as select cast(range as date) as day "
        "from range($first, $last + 1, interval 1 day)",
        {"first": FIRST_DAY, "last": FIRST_DAY + timedelta(days=days - 1)},
    )
    return con


def _activity(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(f"from {period_activity.ACTIVITY} order by all").fetchall()


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    issuances=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=80),
            st.sampled_from(ACCOUNTS),
            st.integers(min_value=1, max_value=50),
        ),
        min_size=1,
        max_size=12,
    ),
    transfers=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=80),
            st.sampled_from(ACCOUNTS),
            st.sampled_from(ACCOUNTS),
            st.integers(min_value=1, max_value=30),
        ),
        max_size=40,
    ),
    days=st.integers(min_value=32, max_value=81),
)
def test_open_periods_from_the_stored_state_equal_the_whole_ledger(
    issuances: list[tuple[int, str, int]],
    transfers: list[tuple[int, str, str, int]],
    days: int,
) -> None:
    """January is complete (32+ days from 1 January), so there is a cut: 31 January, or
    28 February once the ledger reaches it. Recomputing the open periods from the state
    stored at the cut leaves every row as the whole-ledger computation wrote it."""
    con = _ledger(
        [(d, a, n) for d, a, n in issuances if d < days],
        [(d, p, q, n) for d, p, q, n in transfers if d < days],
        days,
    )
    last_day = FIRST_DAY + timedelta(days=days - 1)
    cut = closed_history_end(FIRST_DAY, last_day)
    assert cut in (date(2025, 1, 31), date(2025, 2, 28))
    period_activity.compute_everything(con, cut)
    whole_ledger = _activity(con)
    period_activity.compute_open_periods(con, cut)
    assert _activity(con) == whole_ledger


def test_the_state_at_the_cut_by_hand() -> None:
    # A: +50 on 2 Jan, pays B 20 on 10 Jan and 5 on 3 Feb; B: +20, never pays.
    con = _ledger([(1, "A", 50)], [(9, "A", "B", 20), (33, "A", "B", 5)], days=40)
    period_activity.compute_everything(con, date(2025, 1, 31))
    state = con.execute(f"from {period_activity.ACCOUNTS} order by account_id").fetchall()
    assert [(a, float(b), paid, first, traded) for a, b, paid, first, traded in state] == [
        ("A", 30.0, date(2025, 1, 10), date(2025, 1, 2), date(2025, 1, 10)),
        ("B", 20.0, None, date(2025, 1, 10), date(2025, 1, 10)),
    ]
    # February so far (1-9 February): A paid B once; both active, neither new, and
    # nobody dormant yet (A paid 24 days ago, B joined 30 days ago): supply 50.
    february = con.execute(
        f"select active_accounts, new_accounts, churned_accounts, dormant_supply, supply "
        f"from {period_activity.ACTIVITY} "
        "where period_kind = 'month' and period_start = date '2025-02-01'"
    ).fetchall()
    assert [tuple(float(v) for v in row) for row in february] == [(2, 0, 0, 0, 50)]


def test_changed_issuer_accounts_make_the_night_compute_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing another issuer account rebuilds intermediate.account_movements, whose rows
    are the balances' source: the stored state is then no longer trusted, even mid-month
    with staging.transactions unchanged."""
    kept = count_kept_periods(monkeypatch)
    settings = settings_in(tmp_path / "issuers")
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    reused = []
    for number in closes_nights(settings, 3):
        if number == 2:  # mid-February: a vault account is listed as an issuer
            vault = ("VAULT", "issuer", "", "", "2025-02-01")
            write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, [*MONTHS_ACCOUNTS, vault])
        kept.clear()
        run_stages(settings)
        reused.append(bool(kept))
    assert reused == [False, False, False]
