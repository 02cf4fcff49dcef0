"""Helpers shared by the ingestion tests: run ingestion alone, build only circulation marts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from circulate import pipeline
from circulate.ingest.canonical import FileResult, IngestContext, ingest_inbox
from circulate.settings import Settings
from circulate.warehouse.runner import default_sql_dir, run_models
from circulate.warehouse.schema import ensure_persistent_tables

TEST_KEY = b"test-key-for-pseudonyms-0123456789"
LEDGER_COLUMNS = "txn_id, occurred_at, source_id, target_id, amount, kind, channel"
# The SQL models of the circulation marts only: ingestion tests must not depend on the
# metric models other issues are building at the same time.
CIRCULATION_MODELS = (
    "staging/accounts.sql",
    "staging/transactions.sql",
    "intermediate/account_movements.sql",
    "intermediate/day_spine.sql",
    "intermediate/issuer_accounts.sql",
    "marts/daily_circulation.sql",
    "marts/monthly_circulation.sql",
    "marts/account_balances.sql",
)


def ingest_only(settings: Settings) -> pipeline.IngestSummary:
    """begin_run → ingest_new_files → publish_snapshot (or skip_publish when nothing is new)."""
    ctx = pipeline.begin_run(settings)
    try:
        summary = pipeline.ingest_new_files(ctx)
        if not summary.files_new:
            pipeline.skip_publish(ctx)
            return summary
        pipeline.publish_snapshot(ctx, summary)
    except Exception as error:
        pipeline.fail_run(ctx, "test", error)
        raise
    return summary


def circulation_sql_dir(target: Path) -> Path:
    """A copy of the circulation models' SQL (no tests, no Python models)."""
    source = default_sql_dir()
    for relative in CIRCULATION_MODELS:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / relative, target / relative)
    return target


def ingest_and_build(settings: Settings, sql_dir: Path) -> pipeline.IngestSummary:
    """Ingest, build the circulation marts, publish."""
    ctx = pipeline.begin_run(settings, sql_dir=sql_dir)
    try:
        summary = pipeline.ingest_new_files(ctx)
        con = duckdb.connect(ctx.build)
        try:
            run_models(con, sql_dir, ctx.parameters)
        finally:
            con.close()
        pipeline.publish_snapshot(ctx, summary)
    except Exception as error:
        pipeline.fail_run(ctx, "test", error)
        raise
    return summary


def ingest_in_memory(
    inbox: Path, private_dir: Path, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[duckdb.DuckDBPyConnection, list[FileResult]]:
    """Ingest ``inbox`` into an in-memory warehouse (fast; for per-file accounting)."""
    con = con or duckdb.connect()
    ensure_persistent_tables(con)
    ctx = IngestContext(
        inbox=inbox,
        run_id="run-1",
        batch_id="batch-1",
        key=TEST_KEY,
        timezone="Europe/London",
        private_dir=private_dir,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return con, ingest_inbox(con, ctx)
