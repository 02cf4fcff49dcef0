"""Transaction files load in chunks: one read, one classification, one commit per chunk.

The outcome must be exactly that of loading the files one at a time in name order: the
tests below work it out by hand, then check it against that file-by-file oracle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from circulate.ingest import canonical, readers
from circulate.ingest.canonical import FileResult
from circulate.warehouse.schema import ensure_persistent_tables
from tests.unit.ingest_helpers import LEDGER_COLUMNS, TEST_KEY, ingest_in_memory

HEADER = "txn_id,occurred_at,source_id,target_id,amount,kind,channel"


def _row(txn_id: str, amount: str, day: str = "2025-03-02") -> str:
    return f"{txn_id},{day}T10:00:00Z,ANN,SHOP,{amount},transfer,app"


# Night 1 loads W1. Night 2 brings three files, which load as one chunk.
NIGHT_1 = {"exports/2025-03-01.csv": [_row("W1", "5.00", "2025-03-01")]}
NIGHT_2 = {
    "exports/2025-03-02.csv": [
        _row("A1", "1.00"),  # line 2: new → loaded
        _row("A2", "2.00"),  # line 3: new → loaded
        _row("W1", "5.00", "2025-03-01"),  # line 4: as night 1 → duplicate
    ],
    "exports/2025-03-03.csv": [
        _row("A1", "1.00"),  # line 2: as 03-02 loaded it → duplicate
        _row("A1", "9.00"),  # line 3: differs from this file's first A1 → conflict
        _row("A3", "3.00"),  # line 4: new → loaded
        _row("A3", "3.00"),  # line 5: as this file's first A3 → duplicate
        _row("W1", "6.00", "2025-03-01"),  # line 6: differs from night 1 → conflict
        _row("W1", "6.00", "2025-03-01"),  # line 7: as this file's first W1 → duplicate
    ],
    "exports/2025-03-04.csv": [
        _row("A3", "4.00"),  # line 2: differs from what 03-03 loaded → conflict
        _row("A2", "2.00"),  # line 3: as 03-02 loaded it → duplicate
        _row("A4", "4.00"),  # line 4: new → loaded
        "A9,2025-03-02T10:00:00Z,ANN,SHOP",  # line 5: ragged → quarantined
        _row("A5", "5.00"),  # line 6: new → loaded (numbered after the ragged line)
    ],
}
CONFLICT = "txn_id already used with different content"


def _write(inbox: Path, files: dict[str, list[str]]) -> None:
    for name, rows in files.items():
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")


def _outcomes(results: list[FileResult]) -> dict[str, tuple[int, int, int, int]]:
    return {
        r.file_name: (r.rows_in, r.rows_loaded, r.rows_duplicate, r.rows_quarantined)
        for r in results
    }


def _state(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """Everything ingestion writes, in a stable order."""
    return {
        "ledger": con.execute(
            f"select {LEDGER_COLUMNS}, source_file, source_line from raw.transactions "
            "order by txn_id"
        ).fetchall(),
        "quarantine": con.execute(
            "select source_file, source_line, reason, txn_id, source_id, target_id "
            "from audit.quarantine order by all"
        ).fetchall(),
        "files": con.execute(
            "select file_name, sha256, rows_in, rows_loaded, rows_duplicate, rows_quarantined, "
            "status, message, redactions, file_format from audit.files order by file_name"
        ).fetchall(),
    }


def _night_two_in_one_chunk(tmp_path: Path) -> tuple[duckdb.DuckDBPyConnection, list[FileResult]]:
    inbox = tmp_path / "chunked"
    _write(inbox, NIGHT_1)
    con, _ = ingest_in_memory(inbox, tmp_path / "private")
    _write(inbox, NIGHT_2)
    return ingest_in_memory(inbox, tmp_path / "private", con)


def test_a_chunk_of_files_gives_the_hand_worked_outcome(tmp_path: Path) -> None:
    con, results = _night_two_in_one_chunk(tmp_path)
    assert _outcomes(results) == {
        "exports/2025-03-02.csv": (3, 2, 1, 0),
        "exports/2025-03-03.csv": (6, 1, 3, 2),
        "exports/2025-03-04.csv": (5, 2, 1, 2),
    }
    assert con.execute(
        "select source_file, source_line, reason from audit.quarantine order by 1, 2"
    ).fetchall() == [
        ("exports/2025-03-03.csv", 3, CONFLICT),
        ("exports/2025-03-03.csv", 6, CONFLICT),
        ("exports/2025-03-04.csv", 2, CONFLICT),
        ("exports/2025-03-04.csv", 5, "wrong number of fields"),
    ]
    assert con.execute(
        "select txn_id, amount::varchar, source_file, source_line from raw.transactions "
        "order by txn_id"
    ).fetchall() == [
        ("A1", "1.00", "exports/2025-03-02.csv", 2),
        ("A2", "2.00", "exports/2025-03-02.csv", 3),
        ("A3", "3.00", "exports/2025-03-03.csv", 4),
        ("A4", "4.00", "exports/2025-03-04.csv", 4),
        ("A5", "5.00", "exports/2025-03-04.csv", 6),
        ("W1", "5.00", "exports/2025-03-01.csv", 2),
    ]


def test_a_chunk_equals_loading_its_files_one_by_one(tmp_path: Path) -> None:
    chunked, chunked_results = _night_two_in_one_chunk(tmp_path)
    inbox = tmp_path / "one-by-one"
    _write(inbox, NIGHT_1)
    con, _ = ingest_in_memory(inbox, tmp_path / "private-2")
    one_by_one: list[FileResult] = []
    for name, rows in NIGHT_2.items():
        _write(inbox, {name: rows})
        con, [result] = ingest_in_memory(inbox, tmp_path / "private-2", con)
        one_by_one.append(result)
    assert [r.reasons for r in chunked_results] == [r.reasons for r in one_by_one]
    assert _outcomes(chunked_results) == _outcomes(one_by_one)
    assert _state(chunked) == _state(con)


def test_files_with_different_headers_share_a_chunk(tmp_path: Path) -> None:
    """Five files, four layouts, one chunk: each file is read with its own fields.

    03-02 has a channel; 03-03 has no channel but a memo holding an e-mail address (one
    redaction, its channel NULL); 03-04 calls the amount "value" (every row quarantined,
    its private copy shows its own columns only); a TSV and a JSON Lines file load.
    """
    exports = tmp_path / "in" / "exports"
    exports.mkdir(parents=True)
    (exports / "2025-03-02.csv").write_text(f"{HEADER}\n{_row('B1', '1.00')}\n")
    (exports / "2025-03-03.csv").write_text(
        "txn_id,occurred_at,source_id,target_id,amount,kind,memo\n"
        "B2,2025-03-03T10:00:00Z,ANN,SHOP,2.00,transfer,write to jo@example.org\n"
    )
    (exports / "2025-03-04.csv").write_text(
        "txn_id,occurred_at,source_id,target_id,value,kind\n"
        "B3,2025-03-04T10:00:00Z,ANN,SHOP,3.00,transfer\n"
        "B4,2025-03-04T11:00:00Z,ANN,SHOP,4.00,transfer\n"
    )
    (exports / "2025-03-05.tsv").write_text(
        HEADER.replace(",", "\t") + "\n" + _row("B5", "5.00").replace(",", "\t") + "\n"
    )
    record = dict(zip(HEADER.split(","), _row("B6", "6.00").split(","), strict=True))
    (exports / "2025-03-06.jsonl").write_text(json.dumps(record) + "\n")
    con, results = ingest_in_memory(tmp_path / "in", tmp_path / "private")
    assert _outcomes(results) == {
        "exports/2025-03-02.csv": (1, 1, 0, 0),
        "exports/2025-03-03.csv": (1, 1, 0, 0),
        "exports/2025-03-04.csv": (2, 0, 0, 2),
        "exports/2025-03-05.tsv": (1, 1, 0, 0),
        "exports/2025-03-06.jsonl": (1, 1, 0, 0),
    }
    assert [(r.status, r.redactions, r.file_format) for r in results] == [
        ("loaded", 0, "csv"),
        ("loaded", 1, "csv"),
        ("quarantined", 0, "csv"),
        ("loaded", 0, "csv"),
        ("loaded", 0, "jsonl"),
    ]
    assert results[2].reasons == {"file lacks column(s): amount": 2}
    assert con.execute(
        "select txn_id, channel, memo from raw.transactions order by txn_id"
    ).fetchall() == [
        ("B1", "app", None),
        ("B2", None, "write to [redacted email]"),
        ("B5", "app", None),
        ("B6", "app", None),
    ]
    private = next((tmp_path / "private").rglob("exports__2025-03-04.csv.csv")).read_text()
    assert (
        private.splitlines()[0] == "source_line,txn_id,occurred_at,source_id,target_id,value,kind"
    )
    assert len(private.splitlines()) == 3


def _baseline(tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    inbox = tmp_path / "baseline"
    _write(inbox, {**NIGHT_1, **NIGHT_2})
    con, _ = ingest_in_memory(inbox, tmp_path / "private-baseline")
    return _state(con)


def test_files_the_scan_interleaves_are_read_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should DuckDB ever mix files' rows in one scan, each file is read alone instead."""
    want = _baseline(tmp_path)
    kept_together = readers._rows_kept_together

    def mixed_when_several(con: duckdb.DuckDBPyConnection, part: str) -> bool:
        files = con.execute(f"select count(distinct file_index) from {part}").fetchone()
        return bool(files and files[0] == 1) and kept_together(con, part)

    monkeypatch.setattr(readers, "_rows_kept_together", mixed_when_several)
    inbox = tmp_path / "in"
    _write(inbox, {**NIGHT_1, **NIGHT_2})
    con, _ = ingest_in_memory(inbox, tmp_path / "private")
    assert _state(con) == want


def test_rows_duckdb_cannot_attribute_to_their_file_reject_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are never loaded under the wrong file name: that file is rejected whole."""
    kept_together = readers._rows_kept_together

    def lost(con: duckdb.DuckDBPyConnection, part: str) -> bool:
        files = con.execute(f"select list(distinct file_index) from {part}").fetchone()
        return files is not None and 2 not in files[0] and kept_together(con, part)

    monkeypatch.setattr(readers, "_rows_kept_together", lost)
    inbox = tmp_path / "in"
    _write(inbox, {**NIGHT_1, **NIGHT_2})
    _, results = ingest_in_memory(inbox, tmp_path / "private")
    assert [(r.file_name, r.status) for r in results] == [
        ("exports/2025-03-01.csv", "loaded"),
        ("exports/2025-03-02.csv", "loaded"),
        ("exports/2025-03-03.csv", "rejected"),
        ("exports/2025-03-04.csv", "loaded"),
    ]
    assert results[2].message.startswith(
        "exports/2025-03-03.csv was read, but DuckDB did not report its rows as coming from it"
    )
    assert results[2].rows_in == 0


def test_a_file_duckdb_cannot_parse_is_rejected_and_its_chunk_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk's scan fails; read one by one, only the failing file is rejected."""
    read_group = readers._read_csv_group

    def failing(con: duckdb.DuckDBPyConnection, plans: list[readers._CsvPlan], part: str) -> bool:
        if any(plan.path.name == "2025-03-03.csv" for plan in plans):
            raise duckdb.InvalidInputException("Invalid unicode (byte sequence mismatch)")
        return read_group(con, plans, part)

    monkeypatch.setattr(readers, "_read_csv_group", failing)
    inbox = tmp_path / "in"
    _write(inbox, {**NIGHT_1, **NIGHT_2})
    _, results = ingest_in_memory(inbox, tmp_path / "private")
    rejected = [r for r in results if r.status == "rejected"]
    assert [r.file_name for r in rejected] == ["exports/2025-03-03.csv"]
    assert rejected[0].message.startswith(
        "exports/2025-03-03.csv could not be parsed as delimited text (Invalid unicode"
    )
    assert rejected[0].message.endswith("send it again")
    # Without 03-03, 03-04's A3 is new and loads.
    assert _outcomes([r for r in results if r.status != "rejected"]) == {
        "exports/2025-03-01.csv": (1, 1, 0, 0),
        "exports/2025-03-02.csv": (3, 2, 1, 0),
        "exports/2025-03-04.csv": (5, 3, 1, 1),
    }


def _context(inbox: Path, tmp_path: Path) -> canonical.IngestContext:
    return canonical.IngestContext(
        inbox=inbox,
        run_id="run-1",
        batch_id="batch-1",
        key=TEST_KEY,
        timezone="Europe/London",
        private_dir=tmp_path / "private",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_progress_every_50_files_and_a_failed_chunk_leaves_earlier_ones_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 one-row files: chunks of 50, 50 and 20; the second chunk's manifest insert fails."""
    inbox = tmp_path / "in"
    for day in range(120):
        name = f"exports/2025-{1 + day // 28:02d}-{1 + day % 28:02d}.csv"
        _write(inbox, {name: [_row(f"D{day:03d}", f"{day + 1}.00")]})
    record_files = canonical._record_files
    calls = 0

    def fail_second(
        con: duckdb.DuckDBPyConnection, results: list[FileResult], ctx: canonical.IngestContext
    ) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        record_files(con, results, ctx)

    monkeypatch.setattr(canonical, "_record_files", fail_second)
    con = duckdb.connect()
    ensure_persistent_tables(con)
    lines: list[str] = []
    with pytest.raises(OSError, match="disk full"):
        canonical.ingest_inbox(con, _context(inbox, tmp_path), progress=lines.append)
    assert lines == ["ingested 50/120 new files (50 rows)"]
    assert con.execute("select count(*) from audit.files").fetchone() == (50,)
    assert con.execute("select count(*), max(txn_id) from raw.transactions").fetchone() == (
        50,
        "D049",
    )
    # The next run loads exactly the other 70 files.
    monkeypatch.setattr(canonical, "_record_files", record_files)
    lines.clear()
    rest = canonical.ingest_inbox(con, _context(inbox, tmp_path), progress=lines.append)
    assert len(rest) == 70
    assert lines == ["ingested 50/70 new files (50 rows)", "ingested 70/70 new files (70 rows)"]
    assert con.execute("select count(distinct txn_id) from raw.transactions").fetchone() == (120,)


def test_a_byte_limit_splits_chunks_without_changing_the_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = _baseline(tmp_path)
    monkeypatch.setattr(canonical, "CHUNK_BYTES", 1)  # every file its own chunk
    inbox = tmp_path / "in"
    _write(inbox, {**NIGHT_1, **NIGHT_2})
    con, _ = ingest_in_memory(inbox, tmp_path / "private")
    assert _state(con) == want
