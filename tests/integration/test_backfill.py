"""`circulate backfill` rebuilds history from a date range into a fresh snapshot."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from circulate.generate import generate_scheme
from circulate.ingest.pseudonym import pseudonymise
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import TEST_KEY, run_stages

pytestmark = pytest.mark.integration

NEW_KEY = "a-rotated-pseudonym-key-9876543210"


def _backfill(settings: Settings, *args: str, key: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CIRCULATE_PSEUDONYM_KEY=key)
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "circulate"), "backfill", *args,
            "--input", str(settings.inbox), "--warehouse", str(settings.warehouse),
            "--reports", str(settings.reports),
        ],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def test_backfill_rebuilds_only_the_range_under_a_new_key(settings: Settings) -> None:
    truth = generate_scheme(
        settings.inbox, seed=4, transactions=1_500, days=20, start=date(2025, 5, 1)
    )
    run_stages(settings)
    ran = _backfill(settings, "--from", "2025-05-01", "--to", "2025-05-10", key=NEW_KEY)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip().endswith("2025-05-10/index.html")

    con = connect(settings.warehouse, read_only=True)
    span = con.execute("select min(local_day), max(local_day) from staging.transactions")
    assert span.fetchone() == (date(2025, 5, 1), date(2025, 5, 10))
    files = con.execute(
        "select count(*) from audit.files where file_role = 'transactions'"
    ).fetchone()
    assert files == (10,)
    issued = con.execute("select sum(issued) from marts.monthly_circulation").fetchone()
    assert issued is not None and issued[0] < truth.totals.issued
    ids = {
        row[0] for row in con.execute("select account_id from marts.account_balances").fetchall()
    }
    old = {pseudonymise(raw, TEST_KEY.encode()) for raw in truth.final_balances}
    new = {pseudonymise(raw, NEW_KEY.encode()) for raw in truth.final_balances}
    assert ids and not ids & old, "pseudonyms under the old key survived the backfill"
    assert ids <= new


def test_backfill_with_no_export_in_range_changes_nothing(settings: Settings) -> None:
    generate_scheme(settings.inbox, seed=4, transactions=300, days=5, start=date(2025, 5, 1))
    run_stages(settings)
    before = settings.warehouse.read_bytes()
    ran = _backfill(settings, "--from", "2026-01-01", "--to", "2026-01-31", key=TEST_KEY)
    assert ran.returncode == 2
    assert "No export" in ran.stderr and "2026-01-01" in ran.stderr
    assert settings.warehouse.read_bytes() == before
