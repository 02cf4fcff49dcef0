"""Each injected fault trips the expectation aimed at it, with the right outcome.

A generated 36-day scheme is published up to its last two days; each test injects one
fault into those days and validates that night's batch. Which check fails, and why:

- duplicates: ingestion loads each re-sent row once, so the figures are right; the
  duplicate share (5 % of a day ≈ 2.5 % of the batch > 1 %) is a warning → flagged.
- conflicts: the re-sent txn_ids are quarantined; which version is right is unknown, so
  ``no_conflicting_resends`` is critical → blocked.
- negative amounts: quarantined at row level (``amount_positive`` cannot see them); the
  quarantine share (≈ 1 % of the batch) passes the 5 % critical limit but not the 0.5 %
  warning → flagged.
- unknown accounts: ``target_account_known`` (warning) → flagged.
- overspending: only a ledger replay sees it: ``payer_never_overdrawn`` (critical, the
  replay of ``account_balances_never_negative`` on raw rows, before the models) → blocked.
- missing day: ``export_day_present`` (critical) → blocked; the mart would show a quiet
  day (and the next day's payments of money received on the missing day overdraw).
- volume spike: ``row_count_within_band`` (warning, ≈ 10× the same weekday) → flagged.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.generate.faults import FAULTS, inject_fault
from circulate.settings import Settings
from circulate.validate.assertions import run_sql_assertions
from circulate.validate.store import ValidationReport
from circulate.warehouse.connection import connect
from circulate.warehouse.runner import default_sql_dir
from tests.conftest import TEST_KEY, validate_in_build

pytestmark = pytest.mark.slow

#: The invariants this test relies on (other marts' assertions belong to their tests).
CORE_ASSERTIONS = (
    "account_balances_never_negative",
    "account_balances_sum_to_supply",
    "daily_circulation_matches_ledger",
    "daily_circulation_no_gaps",
    "daily_circulation_supply_conserved",
    "daily_circulation_within_covered_range",
    "monthly_circulation_matches_daily",
    "monthly_circulation_no_gaps",
    "raw_transactions_traceable_to_batch",
    "raw_transactions_txn_id_unique",
)

EXPECTED = {
    # fault: (expectation that fails, its severity, blocked?)
    "duplicates": ("duplicate_share", "warning", False),
    "conflicts": ("no_conflicting_resends", "critical", True),
    "negative_amounts": ("quarantine_share_warning", "warning", False),
    "unknown_accounts": ("target_account_known", "warning", False),
    "overspending": ("payer_never_overdrawn", "critical", True),
    "missing_day": ("export_day_present", "critical", True),
    "volume_spike": ("row_count_within_band", "warning", False),
}
SHARES = {"duplicates": 0.05, "conflicts": 0.02, "negative_amounts": 0.02}


def _sql_dir(root: Path) -> Path:
    """The project's models with only the core assertions."""
    source = default_sql_dir()
    root.mkdir()
    for layer in ("staging", "intermediate", "marts"):
        (root / layer).symlink_to(source / layer)
    (root / "tests").mkdir()
    for name in CORE_ASSERTIONS:
        shutil.copy(source / "tests" / f"{name}.sql", root / "tests")
    return root


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(scheme, published warehouse up to the day before yesterday, sql dir)."""
    root = tmp_path_factory.mktemp("faults")
    scheme = root / "scheme"
    generate_scheme(scheme, seed=5, transactions=3_000, days=36, start=date(2025, 3, 3))
    early = root / "early"
    shutil.copytree(scheme, early)
    for late in sorted((early / "exports").glob("*.csv"))[-2:]:
        late.unlink()
    sql_dir = _sql_dir(root / "sql")
    settings = Settings(
        inbox=early,
        warehouse=root / "warehouse" / "circulate.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "key",
    )
    with pytest.MonkeyPatch.context() as env:
        # The same key as every test's night, so both batches share pseudonyms.
        env.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        ctx = pipeline.begin_run(settings, sql_dir=sql_dir)
        summary = pipeline.ingest_new_files(ctx)
        pipeline.build_models(ctx)
        pipeline.publish_snapshot(ctx, summary)
    return scheme, settings.warehouse, sql_dir


def _night(settings: Settings, sql_dir: Path) -> ValidationReport:
    """The nightly order: ingest, validate the batch; if not blocked, build and assert."""
    ctx = pipeline.begin_run(settings, sql_dir=sql_dir)
    try:
        pipeline.ingest_new_files(ctx)
        report = validate_in_build(ctx, settings)
        if report.critical_failures:
            return report
        pipeline.build_models(ctx)
        with connect(ctx.build) as con:
            sql = run_sql_assertions(
                con, sql_dir, ctx.parameters, run_id=ctx.run_id, batch_id=ctx.run_id
            )
        return ValidationReport(report.run_id, report.batch_id, report.results + sql)
    finally:
        pipeline.skip_publish(ctx)


def _settings_for(tmp_path: Path, scheme: Path, warehouse: Path) -> Settings:
    inbox = tmp_path / "inbox"
    shutil.copytree(scheme, inbox)
    settings = Settings(
        inbox=inbox,
        warehouse=tmp_path / "warehouse" / "circulate.duckdb",
        reports=tmp_path / "reports",
        private_dir=tmp_path / "private",
        key_file=tmp_path / "key",
    )
    settings.warehouse.parent.mkdir()
    shutil.copy(warehouse, settings.warehouse)
    return settings


def test_the_clean_last_two_days_pass(baseline: tuple[Path, Path, Path], tmp_path: Path) -> None:
    scheme, warehouse, sql_dir = baseline
    report = _night(_settings_for(tmp_path, scheme, warehouse), sql_dir)
    assert report.exit_code == 0, report.summary()
    statuses = {r.expectation: r.status for r in report.results}
    assert statuses["row_count_within_band"] == "passed"  # 28 days of history on file


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_fails_its_expectation(
    fault: str, baseline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scheme, warehouse, sql_dir = baseline
    settings = _settings_for(tmp_path, scheme, warehouse)
    injected = inject_fault(settings.inbox, fault, share=SHARES.get(fault, 0.02), seed=3)
    assert injected.rows_changed > 0, injected
    report = _night(settings, sql_dir)
    expectation, severity, blocked = EXPECTED[fault]
    failed = {r.expectation: r for r in report.results if r.status == "failed"}
    assert expectation in failed, f"{injected.detail}\n{report.summary()}"
    assert failed[expectation].severity == severity
    assert bool(report.critical_failures) is blocked, report.summary()
    assert report.exit_code == (2 if blocked else 1)


def test_volume_spike_is_about_ten_times_the_day(
    baseline: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    scheme, _warehouse, _sql = baseline
    inbox = tmp_path / "inbox"
    shutil.copytree(scheme, inbox)
    last = sorted((inbox / "exports").glob("*.csv"))[-1]
    rows = len(last.read_text().splitlines()) - 1
    injected = inject_fault(inbox, "volume_spike")
    assert injected.rows_changed in (9 * rows, 9 * rows + 1)
    assert len(last.read_text().splitlines()) - 1 == rows + injected.rows_changed


def test_unknown_fault_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fault 'typo'"):
        inject_fault(tmp_path, "typo")
