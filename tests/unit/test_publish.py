"""Build-then-swap publishing and the run lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from circulate import pipeline
from circulate.errors import AssertionsFailed, ValidationFailed
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from circulate.warehouse.runner import default_sql_dir
from tests.conftest import run_stages, write_export

FIRST = [("T1", "2025-02-03T10:00:00Z", "ISSUER", "ANN", "40.00", "issuance", "app")]
SPEND = [("T2", "2025-02-04T10:00:00Z", "ANN", "SHOP", "10.00", "transfer", "app")]
# ANN holds 40 but pays 100: validation must stop this night before the models run.
OVERSPEND = [("T2", "2025-02-04T10:00:00Z", "ANN", "SHOP", "100.00", "transfer", "app")]


def test_failing_assertion_leaves_the_published_file_byte_identical(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_export(settings, "2025-02-03.csv", FIRST)
    run_stages(settings)
    before = settings.warehouse.read_bytes()
    # The project's models plus one assertion that the second night's data violates.
    sql_dir = tmp_path / "sql"
    shutil.copytree(default_sql_dir(), sql_dir)
    (sql_dir / "tests" / "zz_no_day_after_feb_3.sql").write_text(
        "select day from marts.daily_circulation where day > date '2025-02-03'"
    )
    monkeypatch.setattr(pipeline, "default_sql_dir", lambda: sql_dir)
    write_export(settings, "2025-02-04.csv", SPEND)
    with pytest.raises(AssertionsFailed, match="zz_no_day_after_feb_3") as failure:
        run_stages(settings)
    assert "previous snapshot stays" in str(failure.value)
    assert settings.warehouse.read_bytes() == before
    leftovers = [p.name for p in settings.warehouse.parent.iterdir()]
    assert not [name for name in leftovers if ".building" in name or name.endswith(".wal")]
    last = json.loads((settings.warehouse.parent / "runs.jsonl").read_text().splitlines()[-1])
    assert (last["status"], last["stage"]) == ("failed", "check")


def test_failed_validation_leaves_the_published_file_byte_identical(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", FIRST)
    run_stages(settings)
    before = settings.warehouse.read_bytes()
    write_export(settings, "2025-02-04.csv", OVERSPEND)
    with pytest.raises(ValidationFailed, match="payer_never_overdrawn"):
        run_stages(settings)
    assert settings.warehouse.read_bytes() == before


def test_leftover_build_from_a_crashed_run_is_cleared(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", FIRST)
    run_stages(settings)
    crashed = settings.warehouse.with_name("circulate.duckdb.20250101T000000Z-dead.building")
    crashed.write_bytes(b"half-written")
    write_export(settings, "2025-02-04.csv", [])
    run_stages(settings)
    assert not crashed.exists()


def test_marts_are_mirrored_as_parquet(published: Settings) -> None:
    import polars as pl

    from circulate.warehouse.export import export_marts

    out = published.warehouse.parent / "marts"
    written = export_marts(published.warehouse, out)
    assert {p.name for p in written} >= {
        "daily_circulation.parquet",
        "monthly_circulation.parquet",
        "account_balances.parquet",
    }
    daily = pl.read_parquet(out / "daily_circulation.parquet")
    assert daily["money_supply"].cast(pl.Float64).to_list() == [150.0, 150.0, 123.5]
    # A second export replaces the folder whole and leaves no staging folders behind.
    export_marts(published.warehouse, out)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith("marts")) == ["marts"]


def test_audit_runs_lists_failed_and_idle_runs_once_a_run_publishes(
    settings: Settings,
) -> None:
    write_export(settings, "2025-02-03.csv", FIRST)
    run_stages(settings)
    run_stages(settings)  # nothing new: logged, not published
    write_export(settings, "2025-02-04.csv", OVERSPEND)
    with pytest.raises(ValidationFailed):
        run_stages(settings)
    write_export(settings, "2025-02-04.csv", SPEND)  # the corrected export, sent again
    run_stages(settings)
    con = connect(settings.warehouse, read_only=True)
    runs = con.execute(
        "select status, stage, validation from audit.runs order by started_at"
    ).fetchall()
    assert runs == [
        ("success", "published", "passed"),
        ("success", "ingest", None),
        ("failed", "validate", "blocked"),
        ("success", "published", "passed"),
    ]
