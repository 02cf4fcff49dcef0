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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "inbox").mkdir()
    return Settings(
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "warehouse" / "circulate.duckdb",
        reports=tmp_path / "reports",
        private_dir=tmp_path / "private",
        key_file=tmp_path / "keys" / "pseudonym.key",
    )


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_export(settings: Settings, name: str, rows: Iterable[Sequence[object]]) -> Path:
    return write_csv(settings.inbox / "exports" / name, TRANSACTION_HEADER, rows)


def run_stages(settings: Settings) -> pipeline.IngestSummary:
    """The nightly flow's stages in order, without Prefect (the flow adds only tasks)."""
    ctx = pipeline.begin_run(settings)
    try:
        summary = pipeline.ingest_new_files(ctx)
        if not summary.files_new:
            pipeline.skip_publish(ctx)
            return summary
        pipeline.build_models(ctx)
        pipeline.check_warehouse(ctx)
        pipeline.publish_snapshot(ctx, summary)
    except Exception as error:
        pipeline.fail_run(ctx, "test", error)
        raise
    return summary
