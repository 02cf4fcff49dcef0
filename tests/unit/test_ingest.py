"""Canonical ingestion: every row loaded, a duplicate or quarantined with a reason."""

from __future__ import annotations

import os
import stat

import pytest

from circulate.pipeline import IngestSummary
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import run_stages, write_csv, write_export

GOOD = [
    ("G1", "2025-02-03T10:00:00Z", "ISSUER", "ANN", "40.00", "issuance", "app"),
    ("G2", "2025-02-03T11:00:00Z", "ANN", "SHOP", "12.5", "transfer", "card"),
]


def _by_file(summary: IngestSummary) -> dict[str, tuple[int, int, int, int]]:
    return {
        f.file_name: (f.rows_in, f.rows_loaded, f.rows_duplicate, f.rows_quarantined)
        for f in summary.files
    }


def test_each_bad_row_is_quarantined_with_its_reason(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    write_export(
        settings,
        "2025-02-04.csv",
        [
            ("B1", "2025-02-04T10:00:00Z", "ANN", "SHOP", "abc", "transfer", "app"),
            ("B2", "not a time", "ANN", "SHOP", "1.00", "transfer", "app"),
            ("B3", "2025-02-04T10:00:00Z", "ANN", "SHOP", "-5.00", "transfer", "app"),
            ("B4", "2025-02-04T10:00:00Z", "ANN", "SHOP", "1.00", "gift", "app"),
            ("B5", "2025-02-04T10:00:00Z", "", "SHOP", "1.00", "transfer", "app"),
            ("B6", "2025-02-04T10:00:00Z", "ANN", "ANN", "1.00", "transfer", "app"),
            ("B7", "2099-01-01T10:00:00Z", "ANN", "SHOP", "1.00", "transfer", "app"),
            ("B8", "2025-02-04T10:00:00Z", "ANN", "SHOP", "1.005", "transfer", "app"),
            ("G1", "2025-02-03T10:00:00Z", "ISSUER", "ANN", "40.00", "issuance", "app"),
            ("G2", "2025-02-03T11:00:00Z", "ANN", "SHOP", "99.00", "transfer", "card"),
            ("G3", "2025-02-04T12:00:00Z", "ANN", "SHOP", "1.00", "transfer", "app"),
            ("G3", "2025-02-04T12:00:00Z", "ANN", "SHOP", "1.00", "transfer", "app"),
        ],
    )
    summary = run_stages(settings)
    assert _by_file(summary) == {
        "exports/2025-02-03.csv": (2, 2, 0, 0),
        "exports/2025-02-04.csv": (12, 1, 2, 9),
    }
    con = connect(settings.warehouse, read_only=True)
    reasons = dict(
        con.execute(
            "select source_line, reason from audit.quarantine where source_file like '%04.csv'"
        ).fetchall()
    )
    assert reasons == {
        2: "unparseable amount",
        3: "unparseable timestamp",
        4: "amount not positive",
        5: "unknown kind",
        6: "missing source_id",
        7: "self-transfer",
        8: "timestamp in the future",
        9: "more than two decimal places",
        11: "txn_id already used with different content",
    }
    manifest = con.execute(
        "select rows_in, rows_loaded, rows_duplicate, rows_quarantined, status "
        "from audit.files where file_name like '%04.csv'"
    ).fetchone()
    assert manifest == (12, 1, 2, 9, "loaded")


def test_quarantined_raw_text_is_kept_privately(settings: Settings) -> None:
    write_export(
        settings,
        "2025-02-04.csv",
        [("B1", "2025-02-04T10:00:00Z", "ANN", "SHOP", "abc", "transfer", "app")],
    )
    run_stages(settings)
    private_files = list((settings.private_dir / "quarantine").rglob("*.csv"))
    assert len(private_files) == 1
    assert "ANN" in private_files[0].read_text()
    assert stat.S_IMODE(os.stat(settings.private_dir).st_mode) == 0o700


def test_second_run_on_the_same_inbox_adds_nothing(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    first = run_stages(settings)
    assert first.rows_loaded == 2
    before = settings.warehouse.read_bytes()
    second = run_stages(settings)
    assert second.files_new == 0
    assert settings.warehouse.read_bytes() == before


def test_changed_file_is_a_new_version_and_resent_rows_are_duplicates(
    settings: Settings,
) -> None:
    path = write_export(settings, "2025-02-03.csv", GOOD)
    run_stages(settings)
    write_export(
        settings,
        "2025-02-03.csv",
        [*GOOD, ("G4", "2025-02-03T18:00:00Z", "SHOP", "ANN", "2.00", "transfer", "app")],
    )
    summary = run_stages(settings)
    assert path.exists()
    assert _by_file(summary) == {"exports/2025-02-03.csv": (3, 1, 2, 0)}
    assert summary.files[0].new_version
    con = connect(settings.warehouse, read_only=True)
    assert con.execute("select count(*) from raw.transactions").fetchone() == (3,)


def test_unreadable_file_is_rejected_and_others_still_load(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    broken = settings.inbox / "exports" / "2025-02-04.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00truncated")
    summary = run_stages(settings)
    rejected = summary.files_rejected
    assert [f.file_name for f in rejected] == ["exports/2025-02-04.csv.gz"]
    assert "could not be read" in rejected[0].message
    assert summary.rows_loaded == 2


def test_missing_column_quarantines_every_row(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    write_csv(
        settings.inbox / "exports" / "2025-02-04.csv",
        ("txn_id", "occurred_at", "source_id", "target_id", "value", "kind"),
        [("X1", "2025-02-04T10:00:00Z", "ANN", "SHOP", "1.00", "transfer")],
    )
    summary = run_stages(settings)
    bad = next(f for f in summary.files if f.file_name.endswith("04.csv"))
    assert (bad.rows_in, bad.rows_quarantined, bad.status) == (1, 1, "quarantined")
    assert bad.reasons == {"file lacks column(s): amount": 1}


def test_empty_inbox_names_the_folder(settings: Settings) -> None:
    from circulate.errors import InputError

    missing = settings.with_paths(inbox=settings.inbox / "nope")
    with pytest.raises(InputError, match="nope"):
        run_stages(missing)
