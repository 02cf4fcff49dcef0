"""The way forward from a blocked night: review, accept, set aside, take back, severities.

Night 1 publishes the six-row hand ledger (the ``published`` fixture). Night 2's export
re-sends T2 with another amount (a conflict, critical) beside one good payment, T7, and
blocks. The real pipeline runs in-process; the operator's commands run as a user runs
them, through the ``circulate`` command. One quarantined row in two is far above the
share that blocks a night, so these nights allow up to 90 % (the conflict is the point).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from circulate import pipeline
from circulate.errors import InputError, ValidationFailed
from circulate.report.data import load_report_data
from circulate.report.page import PageContext, validation_section
from circulate.settings import Settings, ValidationThresholds
from circulate.warehouse.connection import connect
from tests.conftest import HAND_ACCOUNTS, write_export

pytestmark = pytest.mark.integration

BLOCKING_FILE = "exports/2025-01-09.csv"
NIGHT_2 = [
    ("T2", "2025-01-06T12:00:00Z", "ANN", "CAFE", "31.00", "transfer", "card"),  # was 30.00
    ("T7", "2025-01-09T10:00:00Z", "ANN", "CAFE", "5.00", "transfer", "card"),
]
RAW_IDS = re.compile(r"\b(" + "|".join([a[0] for a in HAND_ACCOUNTS] + ["T2", "T7"]) + r")\b")


@pytest.fixture
def nights(published: Settings) -> Settings:
    """The published hand ledger; a night may quarantine up to 90 % of its rows."""
    return replace(published, validation=ValidationThresholds(quarantine_critical=0.9))


def _circulate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "circulate"), *args]
    command += ["--input", str(settings.inbox), "--warehouse", str(settings.warehouse)]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _blocked_night(settings: Settings) -> str:
    """Night 2 arrives and blocks; returns the blocked run's id."""
    write_export(settings, "2025-01-09.csv", NIGHT_2)
    with pytest.raises(ValidationFailed, match="no_conflicting_resends"):
        pipeline.run_in_process(settings)
    lines = pipeline.run_log_path(settings).read_text().splitlines()
    return str(json.loads(lines[-1])["run_id"])


def _query(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    con = connect(settings.warehouse, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _data_checks(settings: Settings) -> str:
    """The report's "Data checks" section for the published snapshot."""
    con = connect(settings.warehouse, read_only=True)
    try:
        data = load_report_data(con)
    finally:
        con.close()
    return validation_section(
        PageContext(data, "", "£", "success", None, datetime.now(UTC), 5, headline=[])
    )


def test_review_names_the_check_files_and_commands_without_raw_ids(nights: Settings) -> None:
    not_blocked = _circulate(nights, "review")
    assert not_blocked.returncode == 0, not_blocked.stderr
    assert "was not blocked: published" in not_blocked.stdout

    run_id = _blocked_night(nights)
    review = _circulate(nights, "review")
    assert review.returncode == 3, review.stderr
    text = review.stdout
    assert f"The last run, {run_id}" in text and "blocked by 1 critical data check" in text
    assert "no_conflicting_resends" in text
    assert f"{BLOCKING_FILE}  sha256 " in text
    # The conflicting row by file and line, pointing at the row it contradicts.
    assert f"{BLOCKING_FILE} line 2: txn_" in text
    assert "first loaded from exports/2025-01-06.csv line 3, amount 30.00" in text
    assert f"circulate accept --run {run_id} --check no_conflicting_resends" in text
    assert f"circulate set-aside {BLOCKING_FILE}" in text
    assert "circulate run" in text
    assert RAW_IDS.search(text) is None, RAW_IDS.search(text)


def test_blocked_then_accepted_night_publishes_everything_with_the_reason(
    nights: Settings,
) -> None:
    run_id = _blocked_night(nights)
    reason = "scheme confirmed 30.00 is right (ticket 4411)"

    refused = _circulate(
        nights, "accept", "--run", run_id, "--check", "export_day_present", "--reason", "x"
    )
    assert refused.returncode == 2
    assert "did not block run" in refused.stderr and "no_conflicting_resends" in refused.stderr
    empty = _circulate(
        nights, "accept", "--run", run_id, "--check", "no_conflicting_resends", "--reason", " "
    )
    assert empty.returncode == 2 and "--reason is empty" in empty.stderr

    accepted = _circulate(
        nights,
        "accept",
        *("--run", run_id, "--check", "no_conflicting_resends"),
        *("--reason", reason, "--by", "ops-anna"),
    )
    assert accepted.returncode == 0, accepted.stderr
    assert BLOCKING_FILE in accepted.stdout

    summary = pipeline.run_in_process(nights)
    assert summary.rows_loaded == 1  # T7; T2's other amount is quarantined, not lost
    files = _query(
        nights,
        "select file_name, rows_in, rows_loaded, rows_duplicate, rows_quarantined "
        "from audit.files where file_name = 'exports/2025-01-09.csv'",
    )
    assert files == [(BLOCKING_FILE, 2, 1, 0, 1)]
    assert _query(nights, "select count(*) from raw.transactions where txn_id = 'T7'") == [(1,)]
    [(severity, status, observed)] = _query(
        nights,
        "select severity, status, observed_value from audit.validation_results "
        "where expectation = 'no_conflicting_resends' order by validated_at desc limit 1",
    )
    assert (severity, status) == ("warning", "failed")
    assert "accepted by ops-anna" in str(observed) and reason in str(observed)
    decisions = _query(
        nights,
        "select action, decided_by, run_id, check_name, file_name, reason from audit.decisions",
    )
    assert decisions == [
        ("accept", "ops-anna", run_id, "no_conflicting_resends", BLOCKING_FILE, reason)
    ]
    section = _data_checks(nights)
    assert "files.no_conflicting_resends" in section and "ticket 4411" in section

    # The acceptance covers those bytes only: a new file with a conflict blocks again.
    write_export(
        nights,
        "2025-01-10.csv",
        [("T7", "2025-01-09T10:00:00Z", "ANN", "CAFE", "6.00", "transfer", "card")],
    )
    with pytest.raises(ValidationFailed, match="no_conflicting_resends"):
        pipeline.run_in_process(nights)


def test_set_aside_file_is_left_out_and_never_reloaded(nights: Settings) -> None:
    _blocked_night(nights)
    blocking = nights.inbox / BLOCKING_FILE
    copy = blocking.read_bytes()
    done = _circulate(nights, "set-aside", BLOCKING_FILE, "--reason", "wrong amounts")
    assert done.returncode == 0, done.stderr
    moved = nights.inbox.parent / "set-aside" / BLOCKING_FILE
    assert moved.read_bytes() == copy and not blocking.exists()

    summary = pipeline.run_in_process(nights)  # the night goes on without it
    assert [(f.file_name, f.status) for f in summary.files] == [(BLOCKING_FILE, "set_aside")]
    assert _query(nights, "select count(*) from raw.transactions where txn_id = 'T7'") == [(0,)]
    assert _query(nights, "select action, file_name from audit.decisions") == [
        ("set_aside", BLOCKING_FILE)
    ]
    assert f"<li>{BLOCKING_FILE}: set aside by " in _data_checks(nights)

    # The scheme sends the same bytes again under another name: skipped and said so.
    (nights.inbox / "exports" / "2025-01-09-resent.csv").write_bytes(copy)
    resent = pipeline.run_in_process(nights)
    assert [f.status for f in resent.files] == ["set_aside"]
    assert "arrived in the inbox again and was not loaded" in "\n".join(resent.lines())
    assert pipeline.run_in_process(nights).files == []  # said once, then quiet
    assert _query(nights, "select count(*) from raw.transactions where txn_id = 'T7'") == [(0,)]

    # Taking it back returns it to the inbox and the next run reads it again (and blocks).
    (nights.inbox / "exports" / "2025-01-09-resent.csv").unlink()
    back = _circulate(nights, "take-back", BLOCKING_FILE, "--reason", "scheme says keep")
    assert back.returncode == 0, back.stderr
    assert blocking.read_bytes() == copy
    with pytest.raises(ValidationFailed, match="no_conflicting_resends"):
        pipeline.run_in_process(nights)


def test_scheme_toml_severity_turns_the_block_into_a_warning(nights: Settings) -> None:
    (nights.inbox / "scheme.toml").write_text(
        '[validation]\nno_conflicting_resends = "warning"\n', encoding="utf-8"
    )
    write_export(nights, "2025-01-09.csv", NIGHT_2)
    pipeline.run_in_process(nights)
    assert _query(
        nights,
        "select severity, status from audit.validation_results "
        "where expectation = 'no_conflicting_resends' order by validated_at desc limit 1",
    ) == [("warning", "failed")]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'no_conflicting_resend = "warning"',
            r"\[validation\] no_conflicting_resend is not a "
            r"check; valid names: .*no_conflicting_resends",
        ),
        (
            'no_conflicting_resends = "ignore"',
            r"\[validation\] no_conflicting_resends = 'ignore'"
            r": a check's severity must be one of critical, warning",
        ),
    ],
)
def test_bad_validation_table_names_the_file_key_and_valid_values(
    nights: Settings, table: str, message: str
) -> None:
    scheme = nights.inbox / "scheme.toml"
    scheme.write_text(f"[validation]\n{table}\n", encoding="utf-8")
    write_export(nights, "2025-01-09.csv", NIGHT_2[1:])
    before = nights.warehouse.read_bytes()
    with pytest.raises(InputError, match=f"{re.escape(str(scheme))}: {message}"):
        pipeline.run_in_process(nights)
    assert nights.warehouse.read_bytes() == before
