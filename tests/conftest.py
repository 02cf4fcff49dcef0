"""Shared fixtures: isolated settings and a way to run the pipeline stages without Prefect."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from circulate import pipeline
from circulate.settings import Settings
from circulate.validate.store import ValidationReport
from circulate.warehouse.connection import connect

TEST_KEY = "test-key-for-pseudonyms-0123456789"

# Prefect reads its home once per process, so the whole session shares one throwaway home.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="circulate-prefect-")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
TRANSACTION_HEADER = (
    "txn_id",
    "occurred_at",
    "source_id",
    "target_id",
    "amount",
    "kind",
    "channel",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("CIRCULATE_PRIVATE_DIR", str(tmp_path / "private"))
    monkeypatch.setenv("CIRCULATE_KEY_FILE", str(tmp_path / "keys" / "pseudonym.key"))


def settings_under(root: Path) -> Settings:
    """Settings with inbox, warehouse, reports and private files all under ``root``."""
    return Settings(
        inbox=root / "inbox",
        warehouse=root / "warehouse" / "circulate.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "keys" / "pseudonym.key",
    )


def settings_in(root: Path) -> Settings:
    """:func:`settings_under` ``root``, with the inbox folder made."""
    (root / "inbox").mkdir(parents=True)
    return settings_under(root)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_in(tmp_path)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_export(settings: Settings, name: str, rows: Iterable[Sequence[object]]) -> Path:
    return write_csv(settings.inbox / "exports" / name, TRANSACTION_HEADER, rows)


def validate_in_build(ctx: pipeline.RunContext, settings: Settings) -> ValidationReport:
    """The batch suites on the run's new batch, inside its build (results not stored)."""
    # Great Expectations takes seconds to import: only the tests that validate pay for it.
    from circulate.validate.run import validate_batch

    with connect(ctx.build) as con:
        return validate_batch(
            con,
            run_id=ctx.run_id,
            batch_id=ctx.run_id,
            thresholds=settings.validation,
            timezone=settings.timezone,
        )


def run_stages(settings: Settings) -> pipeline.IngestSummary:
    """The nightly flow's stages in order, without Prefect (the flow adds only tasks)."""
    return pipeline.run_in_process(settings)


# The six-row ledger worked out by hand in tests/unit/test_marts.py.
HAND_LEDGER = [
    ("T1", "2025-01-06T09:00:00Z", "ISSUER", "ANN", "100.00", "issuance", "app"),
    ("T2", "2025-01-06T12:00:00Z", "ANN", "CAFE", "30.00", "transfer", "card"),
    ("T3", "2025-01-06T23:30:00Z", "ISSUER", "BEN", "50.00", "issuance", "app"),
    ("T4", "2025-01-08T10:00:00Z", "BEN", "CAFE", "20.00", "transfer", "sms"),
    ("T5", "2025-01-08T11:00:00Z", "ANN", "ISSUER", "1.50", "fee", "app"),
    ("T6", "2025-01-08T16:00:00Z", "CAFE", "ISSUER", "25.00", "redemption", "app"),
]
HAND_ACCOUNTS = [
    ("ISSUER", "issuer", "", "", "2024-12-01"),
    ("ANN", "individual", "", "Easton", "2025-01-01"),
    ("BEN", "individual", "", "Bedminster", "2025-01-02"),
    ("CAFE", "business", "food & drink", "Easton", "2024-12-15"),
]


@pytest.fixture
def published(settings: Settings) -> Settings:
    """The six-row hand ledger of tests/unit/test_marts.py, published."""
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        HAND_ACCOUNTS,
    )
    write_csv(settings.inbox / "areas.csv", ("area", "deprivation_decile"), [("Easton", 2)])
    write_export(settings, "2025-01-06.csv", HAND_LEDGER[:3])
    write_export(settings, "2025-01-07.csv", [])
    write_export(settings, "2025-01-08.csv", HAND_LEDGER[3:])
    run_stages(settings)
    return settings
