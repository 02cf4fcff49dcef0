"""The funder report on generated schemes: flags match the scenario, nothing small leaks.

Two one-year schemes from the same seed: a healthy one, and one whose parameters destroy
value (leakage climbing as businesses cash out, a supermarket hub taking over spending,
members leaving). Each runs through the real pipeline and report.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.report.render import ReportResult, render_report
from circulate.settings import Settings

K = 5
TRANSACTIONS = 20_000
SEED = 3


def build(root: Path, scenario: str) -> tuple[Settings, ReportResult]:
    generate_scheme(
        root / "inbox", seed=SEED, transactions=TRANSACTIONS, days=365, scenario=scenario
    )
    settings = Settings(
        inbox=root / "inbox",
        warehouse=root / "warehouse" / "circulate.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "pseudonym.key",
        k_anonymity=K,
    )
    pipeline.run_in_process(settings)
    return settings, render_report(settings.warehouse, settings.reports, k_anonymity=K)


@pytest.fixture(scope="module")
def schemes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Settings, ReportResult]]:
    return {name: build(tmp_path_factory.mktemp(name), name) for name in ("healthy", "declining")}


def raised_flags(settings: Settings, *, every_month: bool = False) -> set[str]:
    """Flags raised for the latest complete month (the one the report shows), or any month."""
    latest = (
        ""
        if every_month
        else (" and period_start = (select max(period_start) from marts.risk_flags)")
    )
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        rows = con.execute(f"select flag from marts.risk_flags where raised{latest}").fetchall()
    return {r[0] for r in rows}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_value_destruction_raises_the_matching_flags(schemes: dict) -> None:
    settings, result = schemes["declining"]
    flags = raised_flags(settings)
    assert {"leakage_rising", "receipts_concentrated"} <= flags
    page = result.index_html.read_text(encoding="utf-8")
    for flag in ("leakage_rising", "receipts_concentrated"):
        assert f'id="flag-{flag}"' in page
    assert "risk flag(s) raised" in page


def test_healthy_scheme_raises_none_of_them(schemes: dict) -> None:
    settings, result = schemes["healthy"]
    value_flags = {"leakage_rising", "receipts_concentrated", "active_members_down",
                   "multiplier_falling", "public_flows_stopped", "dormancy_rising"}  # fmt: skip
    assert not raised_flags(settings) & value_flags
    # Nor in any month before: the launch, December's shopping and a quarter's lumpy
    # redemptions are not leakage or concentration. (The generated scheme's supply grows all
    # year, so its velocity and multiplier do drift down mid-year; those flags may fire.)
    steady = {"leakage_rising", "receipts_concentrated", "active_members_down",
              "public_flows_stopped"}  # fmt: skip
    assert not raised_flags(settings, every_month=True) & steady
    page = result.index_html.read_text(encoding="utf-8")
    assert 'id="flag-receipts_concentrated"' not in page


@pytest.mark.parametrize("scenario", ["healthy", "declining"])
def test_no_published_cell_describes_fewer_than_k_accounts(schemes: dict, scenario: str) -> None:
    _, result = schemes[scenario]
    tables = result.report_dir / "tables"
    # Sector flows: every shown cell has k payers and k payees, and no row or column of the
    # matrix hides exactly one cell (a row total would give it away by subtraction).
    cells = read_csv(tables / "sector_flows.csv")
    assert cells
    for cell in cells:
        if cell["suppressed"] == "false":
            assert int(cell["source_accounts"]) >= K and int(cell["target_accounts"]) >= K
        else:
            assert cell["volume"] == "" and cell["source_accounts"] == ""
    for side in ("source_sector", "target_sector"):
        hidden = Counter(c[side] for c in cells if c["suppressed"] == "true")
        shown = Counter(c[side] for c in cells if c["suppressed"] == "false")
        assert all(not (n == 1 and shown[line]) for line, n in hidden.items()), side
    # Deciles: shown shares rest on k people; one hidden share is never alone.
    deciles = read_csv(tables / "deprivation_deciles.csv")
    for value, people in (("residents_spend", "residents"), ("business_receipts", "businesses")):
        hidden_count = sum(1 for d in deciles if d[value] == "")
        assert hidden_count != 1
        assert all(int(d[people]) >= K for d in deciles if d[value] != "")
    # Monthly counts: none between 1 and k - 1.
    for row in read_csv(tables / "monthly_trends.csv"):
        for column in ("active_accounts", "new_accounts", "churned_accounts", "frequent_traders"):
            assert row[column] == "" or int(row[column]) == 0 or int(row[column]) >= K
    # No account pseudonym anywhere in the published folder.
    for path in result.report_dir.rglob("*"):
        if path.suffix in {".csv", ".html", ".json", ".svg"}:
            assert "acct_" not in path.read_text(encoding="utf-8"), path


def test_every_chart_and_table_is_written(schemes: dict) -> None:
    _, result = schemes["declining"]
    names = {p.stem for p in result.charts}
    assert {"circulation_trends", "multiplier", "concentration", "sector_flows",
            "deprivation", "participation", "public_flows"} <= names  # fmt: skip
    assert {p.suffix for p in result.charts} == {".png", ".svg"}
    assert {p.stem for p in result.tables} >= {"scorecard", "risk_flags", "thresholds",
                                               "sector_flows", "deprivation_deciles"}  # fmt: skip
    scorecard = read_csv(result.report_dir / "tables" / "scorecard.csv")
    assert {r["pillar"] for r in scorecard} == {"proposition", "authorising", "operational"}
