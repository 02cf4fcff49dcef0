"""Validation through the real Prefect flow: a critical failure publishes nothing."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from circulate.errors import ValidationFailed
from circulate.generate import generate_scheme
from circulate.generate.faults import inject_fault
from circulate.report.page import VALIDATION_BANNER
from circulate.settings import Settings
from circulate.warehouse.connection import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_flow(settings: Settings) -> str:
    from flows.nightly import nightly

    return nightly(
        inbox=str(settings.inbox),
        warehouse=str(settings.warehouse),
        reports=str(settings.reports),
    )


def test_blocked_night_keeps_yesterdays_snapshot_and_says_why(
    settings: Settings, tmp_path: Path
) -> None:
    scheme = tmp_path / "scheme"
    generate_scheme(scheme, seed=11, transactions=2_000, days=32, start=date(2025, 3, 1))
    last = sorted((scheme / "exports").glob("*.csv"))[-1]
    settings = settings.with_paths(inbox=tmp_path / "nightly_inbox")
    shutil.copytree(scheme, settings.inbox)
    (settings.inbox / "exports" / last.name).unlink()

    # Night 1: everything but the last day; clean, so it publishes with its results.
    first_report = Path(_run_flow(settings))
    con = connect(settings.warehouse, read_only=True)
    stored = con.execute(
        "select count(*), count(*) filter (where severity = 'critical' and not success) "
        "from audit.validation_results"
    ).fetchone()
    con.close()
    assert stored is not None and stored[0] > 0 and stored[1] == 0
    assert "Data checks" in first_report.read_text()

    # Night 2: the last day arrives with re-sent txn_ids whose amounts changed.
    shutil.copy(last, settings.inbox / "exports" / last.name)
    inject_fault(settings.inbox, "conflicts", share=0.05)
    before = settings.warehouse.read_bytes()
    with pytest.raises(ValidationFailed, match="no_conflicting_resends"):
        _run_flow(settings)
    assert settings.warehouse.read_bytes() == before

    page = first_report.read_text()  # same as-of day: the report was re-rendered
    assert VALIDATION_BANNER in page
    assert "no_conflicting_resends" in page
    run_log = [
        json.loads(line)
        for line in (settings.warehouse.parent / "runs.jsonl").read_text().splitlines()
    ]
    assert (run_log[-1]["status"], run_log[-1]["stage"]) == ("failed", "validate")
    assert "no_conflicting_resends" in run_log[-1]["message"]
    kept = list((settings.warehouse.parent / "validation").glob("*.json"))
    assert [p.stem for p in kept] == [run_log[-1]["run_id"]]
