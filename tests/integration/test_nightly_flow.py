"""The real Prefect flow on a generated scheme, checked against the generator's ground truth."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from circulate.generate import GroundTruth, generate_scheme
from circulate.ingest.pseudonym import pseudonymise
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scheme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    inbox = tmp_path_factory.mktemp("scheme")
    truth = generate_scheme(inbox, seed=11, transactions=4_000, days=75, start=date(2025, 3, 1))
    return inbox, truth


def _run_flow(settings: Settings) -> str:
    from flows.nightly import nightly

    return nightly(
        inbox=str(settings.inbox),
        warehouse=str(settings.warehouse),
        reports=str(settings.reports),
    )


def test_flow_publishes_exactly_the_ground_truth(
    scheme: tuple[Path, GroundTruth], settings: Settings
) -> None:
    inbox, truth = scheme
    settings = settings.with_paths(inbox=inbox)
    report = Path(_run_flow(settings))
    assert report == settings.reports / "2025-05-14" / "index.html"
    assert report.is_file()
    assert (settings.reports / "index.html").is_file()

    con = connect(settings.warehouse, read_only=True)
    monthly = {
        f"{row[0]:%Y-%m}": row[1:]
        for row in con.execute(
            "select month, issued, redeemed, fees, transfer_volume, transfer_count, "
            "money_supply_end from marts.monthly_circulation"
        ).fetchall()
    }
    expected = {
        month: (
            t.issued,
            t.redeemed,
            t.fees,
            t.transfer_volume,
            t.transfer_count,
            t.money_supply_end,
        )
        for month, t in truth.monthly.items()
    }
    assert monthly == expected

    assert con.execute("select count(*) from raw.transactions").fetchone() == (truth.rows,)
    days = con.execute("select count(*), min(day), max(day) from marts.daily_circulation")
    assert days.fetchone() == (75, date(2025, 3, 1), date(2025, 5, 14))

    key = TEST_KEY.encode()
    balances = dict(
        con.execute("select account_id, balance from marts.account_balances").fetchall()
    )
    expected_balances = {pseudonymise(raw, key): b for raw, b in truth.final_balances.items()}
    assert {a: b for a, b in balances.items() if b} == {
        a: b for a, b in expected_balances.items() if b
    }
    assert sum(balances.values(), Decimal(0)) == truth.totals.money_supply_end
    con.close()

    parquet = settings.warehouse.parent / "marts" / "monthly_circulation.parquet"
    assert pl.read_parquet(parquet).height == len(truth.monthly)

    # A second night on the same inbox loads nothing and leaves the snapshot as it was.
    before = settings.warehouse.read_bytes()
    _run_flow(settings)
    assert settings.warehouse.read_bytes() == before


def test_analysts_duckdb_cli_reads_the_published_file(
    scheme: tuple[Path, GroundTruth], settings: Settings
) -> None:
    inbox, _truth = scheme
    settings = settings.with_paths(inbox=inbox)
    _run_flow(settings)
    cli = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    assert cli, "duckdb-cli is a dependency: `uv run duckdb` must exist"
    shown = subprocess.run(
        [
            cli,
            "-readonly",
            "-csv",
            str(settings.warehouse),
            "-c",
            "select day, money_supply from marts.daily_circulation order by day limit 5",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = shown.stdout.strip().splitlines()
    assert lines[0] == "day,money_supply"
    assert len(lines) == 6
    assert lines[1].startswith("2025-03-01,")
