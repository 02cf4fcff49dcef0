"""Multiplier by entry point and where spend goes, on a ledger worked out by hand.

k = 3. Ledger (January 2025): the issuer pays ANN 10, BEN 20, CAT 30 (individuals in
Easton); ANN pays SHOP 5, BEN pays SHOP 10, CAT pays CAFE 15 (businesses); SHOP pays the
COUNCIL 4 in rates.

Traced FIFO: every issuance ends half spent, so reach_1 = 5 + 10 + 15 = 30. SHOP's oldest
lot is ANN's 5, so the rates carry 4 of ANN's money on a second transfer: reach_2 = 4.
First holders: three individuals, all in Easton.
  lm2 = (60 + 30) / 60 = 1.5;  lm3 = (60 + 30 + 4) / 60 = 1.5667;
  full multiplier = 1 + (30 + 4) / 60 = 1.5667; nothing redeemed, all still held.
Spend: individuals paid 30, all of it to businesses: local_business_share = 1. The
council was paid 4 by one member (SHOP): fewer than k payers, so that figure is hidden.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from circulate.settings import Settings
from circulate.warehouse.connection import connect
from circulate.warehouse.runner import default_sql_dir, run_models
from tests.conftest import run_stages, write_csv, write_export

LEDGER = [
    ("T1", "2025-01-06T09:00:00Z", "ISSUER", "ANN", "10.00", "issuance", "app"),
    ("T2", "2025-01-06T09:01:00Z", "ISSUER", "BEN", "20.00", "issuance", "app"),
    ("T3", "2025-01-06T09:02:00Z", "ISSUER", "CAT", "30.00", "issuance", "app"),
    ("T4", "2025-01-07T10:00:00Z", "ANN", "SHOP", "5.00", "transfer", "card"),
    ("T5", "2025-01-07T10:01:00Z", "BEN", "SHOP", "10.00", "transfer", "card"),
    ("T6", "2025-01-07T10:02:00Z", "CAT", "CAFE", "15.00", "transfer", "card"),
    ("T7", "2025-01-08T10:00:00Z", "SHOP", "COUNCIL", "4.00", "transfer", "app"),
]
ACCOUNTS = [
    ("ISSUER", "issuer", "", "", "2024-12-01"),
    ("ANN", "individual", "", "Easton", "2025-01-01"),
    ("BEN", "individual", "", "Easton", "2025-01-01"),
    ("CAT", "individual", "", "Easton", "2025-01-01"),
    ("SHOP", "business", "retail", "Easton", "2025-01-01"),
    ("CAFE", "business", "food & drink", "Easton", "2025-01-01"),
    ("COUNCIL", "public_body", "", "Central", "2024-12-01"),
]


@pytest.fixture
def built(settings: Settings) -> Settings:
    settings = replace(settings, k_anonymity=3)
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        ACCOUNTS,
    )
    write_export(settings, "2025-01-06.csv", LEDGER[:3])
    write_export(settings, "2025-01-07.csv", LEDGER[3:6])
    write_export(settings, "2025-01-08.csv", LEDGER[6:])
    run_stages(settings)
    return settings


def test_multiplier_by_entry_point_by_hand(built: Settings) -> None:
    con = connect(built.warehouse, read_only=True)
    rows = con.execute(
        "select dimension, group_value, suppressed, first_holders, issued, lm2, "
        "round(lm3, 4), round(full_multiplier, 4), redeemed_share, still_held_share "
        "from marts.multiplier_by_entry_point order by dimension"
    ).fetchall()
    expected_figures = (False, 3, Decimal("60.00"), 1.5, 1.5667, 1.5667, 0.0, 1.0)
    assert rows == [
        ("account_type", "individual", *expected_figures),
        ("area", "Easton", *expected_figures),
        ("sector", "individual", *expected_figures),
    ]


def test_spend_breakdown_by_hand(built: Settings) -> None:
    con = connect(built.warehouse, read_only=True)
    rows = con.execute(
        "select period_kind, individuals, individual_spend, spend_at_businesses, "
        "local_business_share, paid_to_public_bodies, payers_to_public_bodies "
        "from marts.spend_breakdown order by period_kind"
    ).fetchall()
    figures = (3, Decimal("30.00"), Decimal("30.00"), 1.0, None, 1)
    assert rows == [("all", *figures), ("month", *figures)]


def test_spend_breakdown_without_transfers_has_no_rows(tmp_path: Path) -> None:
    # The whole-history row comes from an empty grouping set, which alone would give a
    # row of nulls when no member has paid another yet.
    model = default_sql_dir() / "marts" / "spend_breakdown.sql"
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / model.name).write_text(model.read_text(encoding="utf-8"))
    con = duckdb.connect()
    con.execute("create schema staging; create schema intermediate; create schema marts")
    con.execute("create table staging.accounts (account_id varchar, account_type varchar)")
    con.execute(
        "create table intermediate.member_transfers "
        "(local_day date, source_id varchar, target_id varchar, amount decimal(18, 2))"
    )
    run_models(con, tmp_path, {"k_anonymity": 3})
    assert con.execute("select count(*) from marts.spend_breakdown").fetchall() == [(0,)]
