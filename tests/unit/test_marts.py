"""The first marts on a six-row ledger whose every figure is worked out by hand.

Ledger (times UTC; January, so London local time equals UTC):

====  ==========  ==========  =======  ======  ==========
txn   occurred    kind        source   target  amount
====  ==========  ==========  =======  ======  ==========
T1    06 09:00    issuance    ISSUER   ANN     100.00
T2    06 12:00    transfer    ANN      CAFE     30.00
T3    06 23:30    issuance    ISSUER   BEN      50.00
T4    08 10:00    transfer    BEN      CAFE     20.00
T5    08 11:00    fee         ANN      ISSUER    1.50
T6    08 16:00    redemption  CAFE     ISSUER   25.00
====  ==========  ==========  =======  ======  ==========

Day 6: issued 150, transfers 30 (1), supply 150, active {ANN, CAFE} = 2.
Day 7: nothing happens; supply stays 150, zero-filled.
Day 8: redeemed 25, fees 1.50, transfers 20 (1), supply 150 - 25 - 1.50 = 123.50,
       active {BEN, CAFE} = 2.
Balances: ANN 100 - 30 - 1.50 = 68.50; BEN 50 - 20 = 30; CAFE 30 + 20 - 25 = 25;
          sum 123.50 = final supply.
January: issued 150, redeemed 25, fees 1.50, transfers 50 (2), active {ANN, BEN, CAFE} = 3.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from circulate.ingest.pseudonym import pseudonymise
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import TEST_KEY, run_stages, write_export


def money(*texts: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(text) for text in texts)


def test_daily_circulation_by_hand(published: Settings) -> None:
    con = connect(published.warehouse, read_only=True)
    rows = con.execute(
        "select day, issued, redeemed, fees, transfer_volume, transfer_count, money_supply, "
        "active_accounts from marts.daily_circulation order by day"
    ).fetchall()
    # day, issued, redeemed, fees, transfer_volume, transfer_count, money_supply, active
    assert rows == [
        (date(2025, 1, 6), *money("150.00", "0", "0", "30.00"), 1, money("150.00")[0], 2),
        (date(2025, 1, 7), *money("0", "0", "0", "0"), 0, money("150.00")[0], 0),
        (date(2025, 1, 8), *money("0", "25.00", "1.50", "20.00"), 1, money("123.50")[0], 2),
    ]


def test_monthly_circulation_by_hand(published: Settings) -> None:
    con = connect(published.warehouse, read_only=True)
    rows = con.execute("from marts.monthly_circulation").fetchall()
    assert rows == [
        (date(2025, 1, 1), *money("150.00", "25.00", "1.50", "50.00"), 2, money("123.50")[0], 3)
    ]


def test_account_balances_by_hand(published: Settings) -> None:
    con = connect(published.warehouse, read_only=True)
    rows = dict(con.execute("select account_id, balance from marts.account_balances").fetchall())
    key = TEST_KEY.encode()
    assert rows == {
        pseudonymise("ANN", key): Decimal("68.50"),
        pseudonymise("BEN", key): Decimal("30.00"),
        pseudonymise("CAFE", key): Decimal("25.00"),
    }
    cafe = con.execute(
        "select account_type, sector, area, received, spent, entry_count "
        "from marts.account_balances where account_id = ?",
        [pseudonymise("CAFE", key)],
    ).fetchone()
    assert cafe == ("business", "food & drink", "Easton", *money("50.00", "25.00"), 3)


def test_local_day_follows_the_scheme_timezone(settings: Settings) -> None:
    write_export(
        settings,
        "2025-03-31.csv",
        [
            # 23:30 UTC on 30 March is 00:30 BST on 31 March.
            ("S1", "2025-03-30T23:30:00Z", "ISSUER", "ANN", "10.00", "issuance", "app"),
            # A naive time is read as London time: 00:30 BST on 1 July = 23:30 UTC 30 June.
            ("S2", "2025-07-01 00:30:00", "ISSUER", "ANN", "5.00", "issuance", "app"),
        ],
    )
    run_stages(settings)
    con = connect(settings.warehouse, read_only=True)
    rows = con.execute(
        "select txn_id, local_day, strftime(occurred_at, '%Y-%m-%dT%H:%M') "
        "from staging.transactions order by txn_id"
    ).fetchall()
    assert rows == [
        ("S1", date(2025, 3, 31), "2025-03-30T23:30"),
        ("S2", date(2025, 7, 1), "2025-06-30T23:30"),
    ]


def test_no_raw_account_id_reaches_the_warehouse(published: Settings) -> None:
    raw_ids = ["ANN", "BEN", "CAFE", "ISSUER"]
    con = connect(published.warehouse, read_only=True)
    text_columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR'"
    ).fetchall()
    assert len(text_columns) > 10
    for schema, table, column in text_columns:
        hits = con.execute(
            f'select count(*) from "{schema}"."{table}" where "{column}" in ?', [raw_ids]
        ).fetchone()
        assert hits == (0,), f"{schema}.{table}.{column} holds a raw account id"
