"""Batch expectations on small hand-made ledgers, each answer worked out by hand."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate import pipeline
from circulate.errors import AssertionsFailed, ValidationFailed
from circulate.ingest.pseudonym import pseudonymise
from circulate.settings import Settings, ValidationThresholds
from circulate.validate.frames import load_frames
from circulate.validate.store import (
    ValidationReport,
    ValidationResult,
    read_results_file,
    read_stored,
    results_path,
    store_results,
    write_results_file,
)
from circulate.warehouse.connection import connect
from circulate.warehouse.runner import default_sql_dir
from circulate.warehouse.schema import ensure_persistent_tables
from tests.conftest import (
    HAND_ACCOUNTS,
    HAND_LEDGER,
    TEST_KEY,
    validate_in_build,
    write_csv,
    write_export,
)

ACCOUNT_HEADER = ("account_id", "account_type", "sector", "area", "joined_at")
MY_ASSERTIONS = (
    "raw_transactions_traceable_to_batch",
    "raw_transactions_txn_id_unique",
    "daily_circulation_within_covered_range",
    "monthly_circulation_no_gaps",
    "staging_transactions_match_raw",
)


def _night(settings: Settings) -> tuple[pipeline.RunContext, ValidationReport]:
    """Ingest and build, then validate the batch (batch suites only) inside the build."""
    ctx = pipeline.begin_run(settings)
    pipeline.ingest_new_files(ctx)
    pipeline.build_models(ctx)
    return ctx, validate_in_build(ctx, settings)


def _by_name(report: ValidationReport) -> dict[str, ValidationResult]:
    return {r.expectation: r for r in report.results}


def _hand_inbox(settings: Settings) -> None:
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, HAND_ACCOUNTS)
    write_export(settings, "2025-01-06.csv", HAND_LEDGER[:3])
    write_export(settings, "2025-01-07.csv", [])
    write_export(settings, "2025-01-08.csv", HAND_LEDGER[3:])


def test_clean_hand_ledger_passes_and_says_what_it_skipped(settings: Settings) -> None:
    """The six-row ledger of test_marts: nothing fails; the band checks are skipped.

    Three export days, so each has at most 2 of the 28 trailing days on file.
    """
    _hand_inbox(settings)
    _ctx, report = _night(settings)
    results = _by_name(report)
    assert report.exit_code == 0, report.summary()
    assert results["row_count_within_band"].status == "skipped"
    assert results["row_count_within_band"].observed_value == (
        "skipped: not enough history: 2 of 28 trailing days on file"
    )
    assert results["txn_id_unique"].observed_value == "0 of 6 rows unexpected"
    assert results["export_day_present"].observed_value == "0 of 3 days unexpected"
    assert results["quarantine_share_critical"].observed_value == "quarantine_share = 0"


def test_issuance_from_a_member_is_critical_and_sampled_with_pseudonyms(
    settings: Settings,
) -> None:
    """T7: ANN 'issues' 5.00 to BEN. ANN is an individual, so issuance_from_issuer fails.

    One unexpected row out of seven; the sample names ANN only by her pseudonym.
    """
    _hand_inbox(settings)
    write_export(
        settings,
        "2025-01-08.csv",
        [*HAND_LEDGER[3:], ("T7", "2025-01-08T17:00:00Z", "ANN", "BEN", "5.00", "issuance", "")],
    )
    _ctx, report = _night(settings)
    failed = _by_name(report)["issuance_from_issuer"]
    assert (failed.status, failed.severity, failed.unexpected_count) == ("failed", "critical", 1)
    sample = json.loads(failed.unexpected_sample)
    ann = pseudonymise("ANN", TEST_KEY.encode())
    assert [(row["txn_id"], row["source_id"]) for row in sample] == [("T7", ann)]
    assert "ANN" not in failed.unexpected_sample
    assert report.exit_code == 2
    # Issuing makes ANN an issuer account for the warehouse, so her own rows conflict too.
    assert [r.expectation for r in report.critical_failures] == [
        "issuance_from_issuer",
        "issuer_kind_consistent",
    ]


def test_timestamp_outside_its_file_day_is_a_warning_with_the_hours(settings: Settings) -> None:
    """T3 at 23:30Z sits in 2025-01-06.csv; moved to 2025-01-07T03:00Z (London = UTC in
    January) it lies 3 h after that file's day, over the 2 h tolerance: a warning.
    A row at 01:00Z the next day (1 h out) stays within tolerance."""
    _hand_inbox(settings)
    rows = [
        HAND_LEDGER[0],
        ("T2", "2025-01-07T01:00:00Z", "ANN", "CAFE", "30.00", "transfer", "card"),
        ("T3", "2025-01-07T03:00:00Z", "ISSUER", "BEN", "50.00", "issuance", "app"),
    ]
    write_export(settings, "2025-01-06.csv", rows)
    _ctx, report = _night(settings)
    result = _by_name(report)["occurred_within_export_day"]
    assert (result.status, result.severity) == ("failed", "warning")
    assert result.observed_value == "1 of 6 rows unexpected (e.g. 3)"
    assert report.exit_code == 1


def test_unknown_accounts_are_flagged_when_an_accounts_file_exists(settings: Settings) -> None:
    """DAN is not in accounts.csv: CAFE pays DAN 10.00 (target unknown, source known)."""
    _hand_inbox(settings)
    write_export(
        settings,
        "2025-01-08.csv",
        [*HAND_LEDGER[3:], ("T7", "2025-01-08T17:00:00Z", "CAFE", "DAN", "1.00", "transfer", "")],
    )
    _ctx, report = _night(settings)
    results = _by_name(report)
    assert results["target_account_known"].status == "failed"
    assert results["target_account_known"].unexpected_count == 1
    assert results["source_account_known"].status == "passed"


def test_without_accounts_file_the_account_checks_are_skipped(settings: Settings) -> None:
    write_export(settings, "2025-01-06.csv", HAND_LEDGER[:3])
    _ctx, report = _night(settings)
    results = _by_name(report)
    for name in ("source_account_known", "issuance_from_issuer", "outflow_to_issuer"):
        assert results[name].status == "skipped", name
    assert results["issuance_from_issuer"].observed_value == (
        "skipped: no issuer account listed in the accounts file"
    )


def test_quarantine_share_over_the_critical_threshold_blocks(settings: Settings) -> None:
    """Four rows in, one with amount 'abc' quarantined: share 1/4 = 0.25 > 0.05."""
    _hand_inbox(settings)
    write_export(
        settings,
        "2025-01-06.csv",
        [*HAND_LEDGER[:3], ("T9", "2025-01-06T13:00:00Z", "ANN", "CAFE", "abc", "transfer", "")],
    )
    _ctx, report = _night(settings)
    results = _by_name(report)
    # accounts.csv (4 rows) counts too: 1 quarantined of 4 + 4 + 0 + 3 = 11 rows in.
    assert results["quarantine_share_critical"].observed_value == (
        f"quarantine_share = {1 / 11:,.4g}"
    )
    assert results["quarantine_share_critical"].status == "failed"
    assert results["quarantine_share_warning"].status == "failed"
    sample = json.loads(results["quarantine_share_critical"].unexpected_sample)
    assert sample[0]["top_reasons"] == "unparseable amount: 1"


def test_band_compares_a_day_with_the_same_weekday_median(settings: Settings) -> None:
    """28 days with 2 issuances each, then a day with 20: row_ratio = 20 / 2 = 10 > 4.

    No transfers at all: transfer volume is 0 every day, so volume_ratio = 1 (passes).
    """
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, HAND_ACCOUNTS)
    start = date(2025, 1, 1)
    n = 0
    for offset in range(29):
        day = start + timedelta(days=offset)
        count = 20 if offset == 28 else 2
        rows = []
        for i in range(count):
            n += 1
            at = f"{day.isoformat()}T10:{i:02d}:00Z"
            rows.append((f"T{n}", at, "ISSUER", "ANN", "1.00", "issuance", "app"))
        write_export(settings, f"{day.isoformat()}.csv", rows)
    _ctx, report = _night(settings)
    results = _by_name(report)
    assert results["row_count_within_band"].status == "failed"
    assert results["row_count_within_band"].observed_value == "1 of 1 days unexpected (e.g. 10)"
    assert results["volume_within_band"].status == "passed"
    sample = json.loads(results["row_count_within_band"].unexpected_sample)
    assert sample == [
        {
            "export_day": "2025-01-29 00:00:00",
            "row_count": 20,
            "median_rows": 2.0,
            "row_ratio": 10.0,
        }
    ]


def test_results_are_stored_and_round_trip_through_the_json_file(
    settings: Settings, tmp_path: Path
) -> None:
    _hand_inbox(settings)
    ctx, report = _night(settings)
    con = connect(ctx.build)
    store_results(con, report)
    store_results(con, report)  # re-storing replaces, never doubles
    stored = con.execute(
        "select count(*), count(*) filter (where success) from audit.validation_results "
        "where run_id = $r",
        {"r": ctx.run_id},
    ).fetchone()
    con.close()
    assert stored == (len(report.results), len(report.results))
    path = write_results_file(results_path(settings.warehouse, ctx.run_id), report)
    assert path == settings.warehouse.parent / "validation" / f"{ctx.run_id}.json"
    assert read_results_file(path) == report


def test_pipeline_stage_blocks_on_critical_and_keeps_results_beside_the_warehouse(
    settings: Settings,
) -> None:
    _hand_inbox(settings)
    write_export(
        settings,
        "2025-01-08.csv",
        [*HAND_LEDGER[3:], ("T7", "2025-01-08T17:00:00Z", "ANN", "BEN", "5.00", "issuance", "")],
    )
    ctx = pipeline.begin_run(settings)
    pipeline.ingest_new_files(ctx)
    pipeline.build_models(ctx)
    with pytest.raises(ValidationFailed, match="issuance_from_issuer"):
        pipeline.validate_new_batch(ctx)
    kept = read_results_file(results_path(settings.warehouse, ctx.run_id))
    # ANN then also counts as an issuer in intermediate.issuer_accounts, so the SQL
    # assertion on balances fails as well; the batch check is the one that names why.
    assert "issuance_from_issuer" in [r.expectation for r in kept.critical_failures]


@pytest.mark.parametrize("with_accounts", [True, False])
def test_a_fee_booked_as_a_transfer_blocks_the_night_before_any_assertion(
    settings: Settings, with_accounts: bool
) -> None:
    """The hand ledger plus T7, ANN paying the issuer 5.00 as a plain transfer (line 5 of
    2025-01-08.csv). Left alone, ANN's balance would be 5.00 short of the money supply
    (account_balances_sum_to_supply). The real run stops at validation naming the line,
    with or without an accounts file listing the issuer; no warehouse assertion runs and
    nothing is published."""
    _hand_inbox(settings)
    if not with_accounts:
        (settings.inbox / "accounts.csv").unlink()
    write_export(
        settings,
        "2025-01-08.csv",
        [*HAND_LEDGER[3:], ("T7", "2025-01-08T17:00:00Z", "ANN", "ISSUER", "5.00", "transfer", "")],
    )
    evidence = (
        "is listed as issuer in accounts.csv"
        if with_accounts
        else "issues money in exports/2025-01-06.csv line 2"
    )
    named = f"exports/2025-01-08.csv line 5: a transfer to an issuer account (it {evidence})"
    with pytest.raises(ValidationFailed, match="issuer_kind_consistent") as raised:
        pipeline.run_in_process(settings)
    assert f"1 of 7 rows unexpected (e.g. {named})" in str(raised.value)
    assert not settings.warehouse.exists()
    [kept] = (settings.warehouse.parent / "validation").glob("*.json")
    report = read_results_file(kept)
    assert [r.expectation for r in report.critical_failures] == ["issuer_kind_consistent"]
    assert "warehouse" not in {r.suite for r in report.results}
    sample = json.loads(report.critical_failures[0].unexpected_sample)
    assert [(row["txn_id"], row["source_file"], row["source_line"]) for row in sample] == [
        ("T7", "exports/2025-01-08.csv", 5)
    ]


def test_an_accounts_file_listing_a_member_as_issuer_is_quarantined_and_the_night_publishes(
    published: Settings,
) -> None:
    """A later accounts file lists CAFE, a business paid by ANN on line 3 of 2025-01-06.csv,
    as the issuer. Loaded, CAFE's balance (5.00 after its redemption) would leave
    circulation while its payments stay: member balances would be 5.00 short of the money
    supply. Ingestion quarantines that row naming CAFE's first member row; the rest of the
    file loads and the night publishes with CAFE still a business."""
    changed = [row if row[0] != "CAFE" else ("CAFE", "issuer", "", "", "") for row in HAND_ACCOUNTS]
    changed.append(("DEV", "individual", "", "Easton", "2025-01-09"))
    write_csv(published.inbox / "accounts.csv", ACCOUNT_HEADER, changed)
    # One row of five quarantined is far over the default share that blocks a night; a
    # scheme's accounts file holds hundreds. Equal warning and critical shares also make
    # two alike expectations, of which Great Expectations keeps one: both checks report.
    lenient = ValidationThresholds(quarantine_warning=0.5, quarantine_critical=0.5)
    pipeline.run_in_process(replace(published, validation=lenient))
    con = connect(published.warehouse, read_only=True)
    try:
        quarantined = con.execute(
            "select source_file, source_line, reason from audit.quarantine"
        ).fetchall()
        types = dict(
            con.execute("select account_id, account_type from staging.accounts").fetchall()
        )
        shares = con.execute(
            "select expectation, status from audit.validation_results "
            "where expectation like 'quarantine_share_%' "
            "and run_id = (select max(run_id) from audit.validation_results) order by 1"
        ).fetchall()
    finally:
        con.close()
    assert quarantined == [
        (
            "accounts.csv",
            5,
            "listed as issuer but a member in the ledger on file (exports/2025-01-06.csv "
            "line 3): correct its account_type, or rebook that account's rows as issuance, "
            "redemption or fee",
        )
    ]
    assert shares == [
        ("quarantine_share_critical", "passed"),
        ("quarantine_share_warning", "passed"),
    ]
    assert types[pseudonymise("CAFE", TEST_KEY.encode())] == "business"
    assert types[pseudonymise("DEV", TEST_KEY.encode())] == "individual"


def test_my_sql_assertions_pass_on_the_hand_ledger_and_catch_tampering(
    settings: Settings,
) -> None:
    """Published hand ledger: all five empty. Then a copy of T1 under batch 'X' (an
    orphan, a second T1 and a batch not staged) and the last daily row deleted: each
    returns one row."""
    _hand_inbox(settings)
    ctx, _report = _night(settings)
    con = duckdb.connect(str(ctx.build))
    sql = {
        name: (default_sql_dir() / "tests" / f"{name}.sql").read_text() for name in MY_ASSERTIONS
    }

    def offending(name: str) -> int:
        return len(con.execute(sql[name]).fetchall())

    assert {name: offending(name) for name in MY_ASSERTIONS} == dict.fromkeys(MY_ASSERTIONS, 0)
    con.execute(
        "insert into raw.transactions select * replace ('X' as batch_id) "
        "from raw.transactions where txn_id = 'T1'"
    )
    con.execute("delete from marts.daily_circulation where day = date '2025-01-08'")
    assert offending("raw_transactions_traceable_to_batch") == 1
    assert offending("raw_transactions_txn_id_unique") == 1
    assert offending("daily_circulation_within_covered_range") == 1
    assert con.execute(sql["staging_transactions_match_raw"]).fetchall() == [("X", 1, None)]
    con.close()


def test_a_first_night_of_header_only_exports_publishes_an_empty_series(
    settings: Settings,
) -> None:
    """A scheme's first export may have no payments yet (only the header): the daily series
    starts with the first transaction, so that night publishes no daily row instead of
    tripping daily_circulation_within_covered_range. The next night's rows start it."""
    write_export(settings, "2025-01-05.csv", [])
    pipeline.run_in_process(settings)
    assert settings.warehouse.exists()
    _hand_inbox(settings)
    pipeline.run_in_process(settings)
    with connect(settings.warehouse, read_only=True) as con:
        days = con.execute("select min(day), count(*) from marts.daily_circulation").fetchone()
    assert days == (date(2025, 1, 6), 3)


def test_monthly_gap_is_found() -> None:
    """Months January and March without February: one 'missing' row for February."""
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.monthly_circulation as select * from "
        "(values (date '2025-01-01'), (date '2025-03-01')) as t(month)"
    )
    sql = (default_sql_dir() / "tests" / "monthly_circulation_no_gaps.sql").read_text()
    assert con.execute(sql).fetchall() == [(date(2025, 2, 1), "missing")]


def _hours_outside(day: date, at: datetime, tz: str) -> float:
    """Independent method: zoneinfo local midnights, plain datetime arithmetic."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    return max(0.0, (start - at).total_seconds(), (at - end).total_seconds()) / 3600


@hypothesis_settings(max_examples=25, deadline=None)
@given(
    day=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)),
    minutes=st.integers(min_value=-3000, max_value=4500),
    tz=st.sampled_from(["Europe/London", "America/New_York", "Asia/Kolkata", "UTC"]),
)
def test_hours_outside_export_day_matches_zoneinfo(day: date, minutes: int, tz: str) -> None:
    """The SQL offset (DuckDB timezone()) equals a zoneinfo computation, DST days included."""
    at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minutes)
    con = duckdb.connect()
    ensure_persistent_tables(con)
    con.execute(
        "insert into audit.files (file_name, sha256, file_role, export_day, rows_in, "
        "rows_loaded, rows_duplicate, rows_quarantined, status, batch_id, run_id, "
        "ingested_at) values ('e.csv', 's', 'transactions', $day, 1, 1, 0, 0, 'loaded', "
        "'b', 'b', now())",
        {"day": day},
    )
    con.execute(
        "insert into raw.transactions (txn_id, occurred_at, source_id, target_id, amount, "
        "kind, batch_id, source_file, source_line, ingested_at) values ('T1', $at, 'A', 'B', "
        "1.00, 'transfer', 'b', 'e.csv', 2, now())",
        {"at": at},
    )
    frames = load_frames(con, "b", timezone=tz, history_days=28)
    got = float(frames.frames["transactions"]["hours_outside_export_day"][0])
    assert got == pytest.approx(_hours_outside(day, at, tz), abs=1e-9)


def test_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCULATE_VALIDATION_BAND_FACTOR", "6")
    monkeypatch.setenv("CIRCULATE_VALIDATION_QUARANTINE_CRITICAL", "0.2")
    thresholds = Settings().validation
    assert (thresholds.band_factor, thresholds.quarantine_critical) == (6.0, 0.2)
    with pytest.raises(Exception, match="quarantine_warning"):
        ValidationThresholds(quarantine_warning=0.5, quarantine_critical=0.1)


def test_check_warehouse_stores_each_assertion_as_a_critical_result(
    settings: Settings, tmp_path: Path
) -> None:
    """The real models plus two assertions: one empty (passes), one returning a row.

    The results sit in the build beside the batch suites' results of the same run."""
    sql_dir = tmp_path / "sql"
    (sql_dir / "tests").mkdir(parents=True)
    for layer in ("staging", "intermediate", "marts"):
        (sql_dir / layer).symlink_to(default_sql_dir() / layer)
    (sql_dir / "tests" / "always_empty.sql").write_text("-- Nothing wrong.\nselect 1 where false")
    (sql_dir / "tests" / "always_one_row.sql").write_text("-- One bad row.\nselect 7 as bad")
    _hand_inbox(settings)
    ctx = pipeline.begin_run(settings, sql_dir=sql_dir)
    pipeline.ingest_new_files(ctx)
    pipeline.validate_new_batch(ctx)
    pipeline.build_models(ctx)
    with pytest.raises(AssertionsFailed, match="always_one_row"):
        pipeline.check_warehouse(ctx)
    con = connect(ctx.build)
    kept = read_stored(con, ctx.run_id)
    con.close()
    warehouse = {r.expectation: r for r in kept.results if r.suite == "warehouse"}
    assert {k: (r.status, r.severity) for k, r in warehouse.items()} == {
        "always_empty": ("passed", "critical"),
        "always_one_row": ("failed", "critical"),
    }
    assert warehouse["always_one_row"].unexpected_sample == '[{"bad": 7}]'
    assert warehouse["always_one_row"].description == "One bad row."
    assert "txn_id_unique" in {r.expectation for r in kept.results}


def test_cli_validate_reruns_read_only_and_exits_by_severity(
    published: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """The published hand ledger re-checked, then a copy where CAFE 'issues' money: the
    latest batch gets issuance_from_issuer CRITICAL and exit code 2."""
    from circulate.cli import main

    before = published.warehouse.read_bytes()
    code = main(["validate", "--warehouse", str(published.warehouse)])
    out = capsys.readouterr().out
    assert published.warehouse.read_bytes() == before  # read-only
    assert re.search(r"PASSED\s+critical\s+transactions\s+txn_id_unique", out)
    critical, warning = re.search(r"FAILED\s+critical", out), re.search(r"FAILED\s+warning", out)
    assert code == (2 if critical else 1 if warning else 0)

    tampered = published.warehouse.with_name("tampered.duckdb")
    tampered.write_bytes(before)
    con = duckdb.connect(str(tampered))
    con.execute(
        "update raw.transactions set source_id = (select target_id from raw.transactions "
        "where txn_id = 'T2') where txn_id = 'T3'"
    )
    con.close()
    code = main(["validate", "--warehouse", str(tampered)])
    out = capsys.readouterr().out
    assert code == 2
    assert re.search(r"FAILED\s+critical\s+transactions\s+issuance_from_issuer", out)

    # The scheme's own severities apply, as in the nightly run.
    (published.inbox / "scheme.toml").write_text(
        '[validation]\nissuance_from_issuer = "warning"\nissuer_kind_consistent = "warning"\n',
        encoding="utf-8",
    )
    code = main(["validate", "--warehouse", str(tampered), "--input", str(published.inbox)])
    out = capsys.readouterr().out
    assert re.search(r"FAILED\s+warning\s+transactions\s+issuance_from_issuer", out)
    assert code == (2 if re.search(r"FAILED\s+critical", out) else 1)


def test_a_night_with_only_a_new_accounts_file_validates_an_empty_batch(
    published: Settings,
) -> None:
    """No transactions in the batch: every row check sees 0 rows and passes; the band
    has no day to look at, so it is skipped with that reason."""
    write_csv(
        published.inbox / "accounts.csv",
        ACCOUNT_HEADER,
        [*HAND_ACCOUNTS, ("DAN", "individual", "", "Easton", "2025-01-09")],
    )
    _ctx, report = _night(published)
    results = _by_name(report)
    assert report.exit_code == 0, report.summary()
    assert results["txn_id_unique"].observed_value == "0 of 0 rows unexpected"
    assert results["row_count_within_band"].observed_value == (
        "skipped: not enough history: the batch has no dated export file"
    )
    assert results["export_day_present"].observed_value == "0 of 0 days unexpected"
