"""Adapters: Sarafu, Cyclos and generic exports load into exactly the canonical ledger.

The generator writes a scheme canonically; ``circulate.generate.formats`` rewrites it as
each platform. Ingesting either must give the same ``raw.transactions`` (after
pseudonymisation) and the same circulation marts: two independent routes to one answer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from circulate.generate import generate_scheme
from circulate.generate.formats import convert_scheme
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.unit.ingest_helpers import (
    LEDGER_COLUMNS,
    circulation_sql_dir,
    ingest_and_build,
    ingest_in_memory,
)

MARTS = ("marts.daily_circulation", "marts.monthly_circulation", "marts.account_balances")


FORMATS = ("canonical", "sarafu", "cyclos")
ROWS = 1_500


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scheme") / "canonical"
    generate_scheme(folder, seed=7, transactions=ROWS, days=14)
    return folder


@pytest.fixture(scope="module")
def warehouses(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated scheme in each format, ingested, built and published once."""
    root = tmp_path_factory.mktemp("formats")
    sql_dir = circulation_sql_dir(root / "sql")
    published = {}
    for fmt in FORMATS:
        inbox = root / fmt / "inbox"
        shutil.copytree(generated, inbox)
        convert_scheme(inbox, fmt)
        # A file rejected whole must not leak ids into the manifest or quarantine either.
        (inbox / "exports" / "zz-broken.csv").write_text(
            "nonsense;header\nIND-000001;BUS-00001\n", encoding="utf-8"
        )
        settings = Settings(
            inbox=inbox,
            warehouse=root / fmt / "warehouse" / "w.duckdb",
            reports=root / fmt / "reports",
            private_dir=root / fmt / "private",
            key_file=root / "pseudonym.key",  # one key: the same pseudonyms in every format
        )
        summary = ingest_and_build(settings, sql_dir)
        assert {f.adapter for f in summary.files} == {fmt}
        assert [f.file_name for f in summary.files if f.rows_quarantined] == [
            "exports/zz-broken.csv"
        ]
        published[fmt] = settings.warehouse
    return published


def _table(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[object, ...]]:
    return con.execute(query).fetchall()


@pytest.mark.parametrize("fmt", ["sarafu", "cyclos"])
def test_adapter_reproduces_the_canonical_ledger_and_marts(
    warehouses: dict[str, Path], generated: Path, fmt: str
) -> None:
    want = connect(warehouses["canonical"], read_only=True)
    got = connect(warehouses[fmt], read_only=True)
    ledger = f"select {LEDGER_COLUMNS} from raw.transactions order by txn_id"
    accounts = "select * exclude (batch_id, source_file) from raw.accounts order by account_id"
    assert len(_table(got, ledger)) == ROWS
    assert _table(got, ledger) == _table(want, ledger)
    assert _table(got, accounts) == _table(want, accounts)
    for mart in MARTS:
        assert _table(got, f"from {mart} order by all") == _table(want, f"from {mart} order by all")
    # And the marts agree with the generator's own bookkeeping (a third, independent route).
    truth = json.loads((generated / "ground_truth.json").read_text())["totals"]
    totals = _table(
        got,
        "select sum(issued)::varchar, sum(redeemed)::varchar, sum(transfer_volume)::varchar "
        "from marts.daily_circulation",
    )[0]
    assert totals == (truth["issued"], truth["redeemed"], truth["transfer_volume"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_raw_account_id_anywhere_in_the_published_warehouse(
    warehouses: dict[str, Path], generated: Path, fmt: str
) -> None:
    """Every VARCHAR column of every table: no value contains any raw account id."""
    raw_ids = sorted(
        {line.split(",")[0] for line in (generated / "accounts.csv").read_text().splitlines()[1:]}
    )
    con = connect(warehouses[fmt], read_only=True)
    con.execute("create temp table raw_ids as select unnest($ids) as raw_id", {"ids": raw_ids})
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR' and table_schema not in ('information_schema', 'pg_catalog') "
        "and table_catalog = current_database()"
    ).fetchall()
    assert len(columns) > 20
    leaks = []
    for schema, table, column in columns:
        found = con.execute(
            f'select count(*) from "{schema}"."{table}" as t join raw_ids '
            f'on contains(t."{column}", raw_ids.raw_id)'
        ).fetchone()
        if found and found[0]:
            leaks.append((schema, table, column, found[0]))
    assert leaks == []
    # The check itself can fail: the private quarantine copy does hold raw text.
    assert any(
        "IND-000001" in p.read_text()
        for p in (warehouses[fmt].parent.parent / "private").rglob("*.csv")
    )


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_cyclos_legs_by_hand(tmp_path: Path) -> None:
    """Six legs of four transactions, worked out by hand.

    C1 top-up of ANN (system leg, +50)            → issuance ISSUER → ANN 50.00
    C2 ANN pays SHOP 20: ANN's leg −20, SHOP's +20 → transfer ANN → SHOP 20.00 and one
       duplicate (the second leg)
    C3 SHOP cashes out 5 (system leg, −5)          → redemption SHOP → ISSUER 5.00
    C4 chargeback SHOP → ANN 3, only ANN's leg     → reversal SHOP → ANN 3.00
    C5 legs disagree (4 vs 40)                     → first loaded, second a conflict
    C6 related_account_kind "bank"                 → quarantined
    rows_in 8 = 5 loaded + 1 duplicate + 2 quarantined.
    """
    inbox = tmp_path / "in"
    _write(inbox, "scheme.toml", 'adapter = "cyclos"\n')
    _write(
        inbox,
        "exports/2025-03-01.csv",
        "date,account,amount,related_account,related_account_kind,transfer_type,"
        "transaction_number,description\n"
        "2025-03-01 09:00:00,ANN,50.00,ISSUER,system,Top-up,C1,\n"
        "2025-03-01 10:00:00,ANN,-20.00,SHOP,user,Payment,C2,lunch\n"
        "2025-03-01 10:00:00,SHOP,20.00,ANN,user,Payment,C2,lunch\n"
        "2025-03-01 11:00:00,SHOP,-5.00,ISSUER,system,Cash out,C3,\n"
        "2025-03-01 12:00:00,ANN,3.00,SHOP,user,Chargeback,C4,refund\n"
        "2025-03-01 13:00:00,ANN,-4.00,SHOP,user,Payment,C5,\n"
        "2025-03-01 13:00:00,SHOP,40.00,ANN,user,Payment,C5,\n"
        "2025-03-01 14:00:00,ANN,-1.00,BANK,bank,Payment,C6,\n",
    )
    con, [result] = ingest_in_memory(inbox, tmp_path / "private")
    assert (result.rows_in, result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (
        8,
        5,
        1,
        2,
    )
    con.execute("create temp table raw_ids as select * from (values ('ANN'), ('SHOP'), ('ISSUER'))")
    rows = con.execute(
        "select txn_id, amount::varchar, kind, memo from raw.transactions order by txn_id"
    ).fetchall()
    assert rows == [
        ("C1", "50.00", "issuance", None),
        ("C2", "20.00", "transfer", "lunch"),
        ("C3", "5.00", "redemption", None),
        ("C4", "3.00", "reversal", "refund"),
        ("C5", "4.00", "transfer", None),
    ]
    flows = con.execute(
        "select txn_id, source_id = (select source_id from raw.transactions where txn_id = 'C1'),"
        " target_id = (select target_id from raw.transactions where txn_id = 'C1') "
        "from raw.transactions where txn_id in ('C3', 'C4') order by 1"
    ).fetchall()
    # C3 goes to the issuer (C1's source); C4 goes to ANN (C1's target).
    assert flows == [("C3", False, False), ("C4", False, True)]
    assert result.reasons == {
        "related_account_kind is neither system nor user": 1,
        "txn_id already used with different content": 1,
    }


def test_sarafu_subtypes_and_token_by_hand(tmp_path: Path) -> None:
    """DISBURSEMENT, STANDARD, RECLAMATION, AGENT_OUT map; another token and an unknown
    subtype are quarantined: rows_in 6 = 4 loaded + 2 quarantined.
    """
    inbox = tmp_path / "in"
    _write(inbox, "scheme.toml", 'adapter = "sarafu"\ntoken = "SARAFU"\n')
    _write(
        inbox,
        "exports/txns.csv",
        "id,timeset,transfer_subtype,source,target,weight,token_name,transfer_use\n"
        "S1,2025-03-01 09:00:00.123,DISBURSEMENT,ADMIN,ANN,100,SARAFU,\n"
        "S2,2025-03-01 10:00:00,STANDARD,ANN,SHOP,20.5,SARAFU,Food\n"
        "S3,2025-03-01 11:00:00,RECLAMATION,SHOP,ADMIN,5,SARAFU,\n"
        "S4,2025-03-01 12:00:00,AGENT_OUT,ANN,AGENT,7,SARAFU,\n"
        "S5,2025-03-01 13:00:00,STANDARD,ANN,SHOP,1,OTHER,\n"
        "S6,2025-03-01 14:00:00,MYSTERY,ANN,SHOP,1,SARAFU,\n",
    )
    _write(
        inbox,
        "users.csv",
        "id,start,area_name,area_type,held_roles,business_type\n"
        "ADMIN,2020-01-01 00:00:00,Nairobi,urban,ADMIN,\n"
        "ANN,2020-02-03 08:15:00,Kinango,rural,BENEFICIARY,\n"
        "SHOP,2020-02-04 00:00:00,Kinango,rural,VENDOR,food\n",
    )
    con, results = ingest_in_memory(inbox, tmp_path / "private")
    users, txns = results
    assert (users.role, users.rows_loaded) == ("accounts", 3)
    assert (txns.rows_in, txns.rows_loaded, txns.rows_quarantined) == (6, 4, 2)
    assert con.execute(
        "select txn_id, kind, amount::varchar from raw.transactions order by 1"
    ).fetchall() == [
        ("S1", "issuance", "100.00"),
        ("S2", "transfer", "20.50"),
        ("S3", "redemption", "5.00"),
        ("S4", "redemption", "7.00"),
    ]
    assert txns.reasons == {"token_name is not this scheme's token": 1, "unknown kind": 1}
    assert con.execute(
        "select account_type, area, joined_at::varchar from raw.accounts order by joined_at"
    ).fetchall() == [
        ("issuer", "Nairobi", "2020-01-01"),
        ("individual", "Kinango", "2020-02-03"),
        ("business", "Kinango", "2020-02-04"),
    ]


def test_generic_mapping_by_hand(tmp_path: Path) -> None:
    """Renamed columns, day-first timestamps, semicolons and a kinds table.

    Top up → issuance, Spend → transfer, Cash out → redemption; "Gift" is unmapped and
    not a canonical kind → quarantined. rows_in 4 = 3 loaded + 1 quarantined.
    """
    inbox = tmp_path / "in"
    _write(
        inbox,
        "scheme.toml",
        'adapter = "generic"\n'
        'timestamp_format = "%d/%m/%Y %H:%M"\n'
        '[files]\ntransactions = ["ledger/*.csv"]\n'
        "[columns]\n"
        'txn_id = "Ref"\noccurred_at = "When"\nsource_id = "From"\ntarget_id = "To"\n'
        'amount = "Value"\nkind = "Type"\nmemo = "Note"\n'
        '[kinds]\n"Top up" = "issuance"\nSpend = "transfer"\n"Cash out" = "redemption"\n',
    )
    _write(
        inbox,
        "ledger/march.csv",
        "Ref;When;From;To;Value;Type;Note\n"
        "G1;01/03/2025 09:00;BANK;ANN;10.00;Top up;\n"
        "G2;01/03/2025 10:30;ANN;SHOP;4.00;Spend;call 07700 900123\n"
        "G3;02/03/2025 11:00;SHOP;BANK;1.00;Cash out;\n"
        "G4;02/03/2025 12:00;ANN;SHOP;1.00;Gift;\n",
    )
    con, [result] = ingest_in_memory(inbox, tmp_path / "private")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    assert result.redactions == 1
    assert con.execute(
        "select txn_id, kind, occurred_at::varchar, memo from raw.transactions order by 1"
    ).fetchall() == [
        ("G1", "issuance", "2025-03-01 09:00:00+00", None),
        ("G2", "transfer", "2025-03-01 10:30:00+00", "call [redacted phone]"),
        ("G3", "redemption", "2025-03-02 11:00:00+00", None),
    ]
