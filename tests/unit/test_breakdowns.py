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
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

import duckdb
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

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


def _spend_model_inputs(models: Path, types: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """A folder ``models`` holding only the spend breakdown model, and a connection with
    its schemas and ``staging.accounts`` (account id → type); the caller adds the
    transfers."""
    model = default_sql_dir() / "marts" / "spend_breakdown.sql"
    (models / "marts").mkdir()
    (models / "marts" / model.name).write_text(model.read_text(encoding="utf-8"))
    con = duckdb.connect()
    con.execute("create schema staging; create schema intermediate; create schema marts")
    con.execute("create table staging.accounts (account_id varchar, account_type varchar)")
    if types:
        con.executemany("insert into staging.accounts values (?, ?)", list(types.items()))
    return con


def test_spend_breakdown_without_transfers_has_no_rows(tmp_path: Path) -> None:
    # The whole-history row comes from an empty grouping set, which alone would give a
    # row of nulls when no member has paid another yet.
    con = _spend_model_inputs(tmp_path, {})
    con.execute(
        "create table intermediate.member_transfers "
        "(local_day date, source_id varchar, target_id varchar, amount decimal(18, 2))"
    )
    run_models(con, tmp_path, {"k_anonymity": 3})
    assert con.execute("select count(*) from marts.spend_breakdown").fetchall() == [(0,)]


TYPES = {"ANN": "individual", "BEN": "individual", "CAT": "individual", "DAN": "individual"}
TYPES |= {"SHOP": "business", "CAFE": "business", "COUNCIL": "public_body", "NHS": "public_body"}


def _spend_by_polars(transfers: pl.DataFrame, k: int) -> list[tuple[object, ...]]:
    """The spend breakdown computed transfer by transfer in Polars, a second method."""
    typed = transfers.with_columns(
        pl.col("local_day").dt.truncate("1mo").alias("month"),
        pl.col("source_id").replace_strict(TYPES, default="unknown").alias("payer"),
        pl.col("target_id").replace_strict(TYPES, default="unknown").alias("payee"),
    )
    rows = []
    periods = [("month", m, typed.filter(pl.col("month") == m)) for m in typed["month"].unique()]
    periods.append(("all", typed["local_day"].min(), typed))
    for kind, start, part in periods:
        individual = part.filter(pl.col("payer") == "individual")
        at_business = individual.filter(pl.col("payee") == "business")
        to_public = part.filter(
            (pl.col("payee") == "public_body") & (pl.col("payer") != "public_body")
        )
        by_public = part.filter(
            (pl.col("payer") == "public_body") & (pl.col("payee") != "public_body")
        )
        people, payers, payees = (
            individual["source_id"].n_unique(),
            to_public["source_id"].n_unique(),
            by_public["target_id"].n_unique(),
        )
        spend = Decimal(individual["amount"].sum()) if len(individual) else Decimal(0)
        at_shops = Decimal(at_business["amount"].sum()) if len(at_business) else Decimal(0)
        open_people = people >= k
        rows.append(
            (
                kind,
                start,
                people if open_people else None,
                spend if open_people else None,
                at_shops if open_people else None,
                float(at_shops / spend) if open_people and spend > 0 else None,
                Decimal(to_public["amount"].sum()) if payers >= k else None,
                payers,
                Decimal(by_public["amount"].sum()) if payees >= k else None,
                payees,
            )
        )
    return sorted(rows, key=repr)


def _share_rounded(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The rows with local_business_share (a float division) rounded to 12 places."""
    return [(*r[:5], None if r[5] is None else round(cast(float, r[5]), 12), *r[6:]) for r in rows]


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    transfers=st.lists(
        st.tuples(
            st.integers(0, 89),  # days from 1 January 2025: January to March
            st.sampled_from([*TYPES, "GHOST"]),  # GHOST is not in the accounts file
            st.sampled_from([*TYPES, "GHOST"]),
            st.integers(1, 5000),
        ),
        min_size=1,
        max_size=40,
    ),
    k=st.sampled_from([1, 2, 3]),
)
def test_spend_breakdown_equals_a_second_method(
    transfers: list[tuple[int, str, str, int]], k: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Per month and over the whole history, the SQL model (sums per month, distinct
    accounts per month and role) equals sums and distinct counts taken transfer by
    transfer, suppression included."""
    frame = pl.DataFrame(
        [
            (date(2025, 1, 1) + timedelta(days=day), payer, payee, Decimal(pence) / 100)
            for day, payer, payee, pence in transfers
        ],
        schema={
            "local_day": pl.Date,
            "source_id": pl.String,
            "target_id": pl.String,
            "amount": pl.Decimal(18, 2),
        },
        orient="row",
    )
    models = tmp_path_factory.mktemp("models")
    con = _spend_model_inputs(models, TYPES)
    con.execute("create table intermediate.member_transfers as select * from frame")
    run_models(con, models, {"k_anonymity": k})
    rows = con.execute(
        "select period_kind, period_start, individuals, individual_spend, spend_at_businesses, "
        "local_business_share, paid_to_public_bodies, payers_to_public_bodies, "
        "paid_by_public_bodies, payees_of_public_bodies from marts.spend_breakdown"
    ).fetchall()
    assert _share_rounded(sorted(rows, key=repr)) == _share_rounded(_spend_by_polars(frame, k))
