"""The cut of month-close work: when stored work still describes today's ledger."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from circulate.metrics.month_close import current_cut
from circulate.warehouse.runner import APPENDED_BATCHES_DDL

CUT_TABLE = "intermediate.some_work_cut"


@pytest.fixture
def ledger() -> duckdb.DuckDBPyConnection:
    """A ledger of January and February 1–10 in one load batch, appended at noon UTC."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(APPENDED_BATCHES_DDL)
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.day_spine as select cast(unnest(generate_series("
        "date '2025-01-01', date '2025-02-10', interval 1 day)) as date) as day"
    )
    con.execute(
        "create table intermediate.ledger as "
        "select day as local_day, 'B1' as batch_id from intermediate.day_spine"
    )
    con.execute(
        "insert into audit.appended_batches values "
        "('intermediate.ledger', 'B1', 41, 'digest', timestamptz '2025-02-10 12:00:00+00')"
    )
    return con


def test_a_stored_cut_holds_in_any_session_timezone(ledger: duckdb.DuckDBPyConnection) -> None:
    """The append times are digested in UTC: a session in another timezone reads the same
    cut (its timestamps come back with that timezone's offset)."""
    cut = current_cut(ledger, ("intermediate.ledger",), "v1")
    assert cut.day == date(2025, 1, 31)
    cut.store(ledger, CUT_TABLE)
    ledger.execute("set TimeZone = 'America/New_York'")
    again = current_cut(ledger, ("intermediate.ledger",), "v1")
    assert again.holds_for(ledger, CUT_TABLE)


def test_a_late_row_or_a_new_version_breaks_the_cut(ledger: duckdb.DuckDBPyConnection) -> None:
    current_cut(ledger, ("intermediate.ledger",), "v1").store(ledger, CUT_TABLE)
    assert not current_cut(ledger, ("intermediate.ledger",), "v2").holds_for(ledger, CUT_TABLE)
    # A later batch with a row dated in January, the closed month.
    ledger.execute("insert into intermediate.ledger values (date '2025-02-11', 'B2')")
    assert current_cut(ledger, ("intermediate.ledger",), "v1").holds_for(ledger, CUT_TABLE)
    ledger.execute("insert into intermediate.ledger values (date '2025-01-20', 'B2')")
    assert not current_cut(ledger, ("intermediate.ledger",), "v1").holds_for(ledger, CUT_TABLE)
