"""Canonical ingestion: every row loaded, a duplicate or quarantined with a reason.

These tests run the ingestion stages alone (begin_run → ingest_new_files → publish) via
``tests.unit.ingest_helpers.ingest_only``, so they do not depend on the metric models.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as settings_hyp
from hypothesis import strategies as st

from circulate.errors import InputError
from circulate.ingest import canonical
from circulate.ingest.adapters import load_scheme_map
from circulate.pipeline import IngestSummary
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from circulate.warehouse.schema import PERSISTENT_DDL, ensure_persistent_tables
from tests.conftest import write_csv, write_export
from tests.unit.ingest_helpers import (
    LEDGER_COLUMNS,
    circulation_sql_dir,
    ingest_and_build,
    ingest_in_memory,
)
from tests.unit.ingest_helpers import ingest_only as run_stages

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


def _count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files read to hash them, from now on."""
    hashed: list[str] = []
    read = canonical.sha256_of

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return read(path)

    monkeypatch.setattr(canonical, "sha256_of", counting)
    return hashed


def test_a_night_reads_only_new_or_changed_files_to_hash_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once hashed, a file is not read again while its stat is unchanged; a rewrite of the
    same size with its modification time set back is still read (its status-change time
    moved) and loaded as a new version."""
    monkeypatch.setattr(canonical, "SETTLE_SECONDS", 0)
    first = write_export(settings, "2025-02-03.csv", GOOD)
    run_stages(settings)
    hashed = _count_hashing(monkeypatch)
    before = first.stat()
    first.write_bytes(first.read_bytes().replace(b"12.5", b"13.5"))
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert first.stat().st_mtime_ns == before.st_mtime_ns
    assert first.stat().st_size == before.st_size
    write_export(settings, "2025-02-04.csv", [])
    summary = run_stages(settings)
    assert sorted(hashed) == ["2025-02-03.csv", "2025-02-04.csv"]
    assert [(f.file_name, f.new_version) for f in summary.files] == [
        ("exports/2025-02-03.csv", True),
        ("exports/2025-02-04.csv", False),
    ]
    hashed.clear()
    assert run_stages(settings).files_new == 0
    assert hashed == []


def test_a_hash_taken_just_after_a_change_is_taken_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file hashed within SETTLE_SECONDS of its last change could be rewritten within
    the same clock tick: the next night reads it once more."""
    write_export(settings, "2025-02-03.csv", GOOD)
    run_stages(settings)
    hashed = _count_hashing(monkeypatch)
    run_stages(settings)
    assert hashed == ["2025-02-03.csv"]


def test_unreadable_file_is_rejected_and_others_still_load(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    broken = settings.inbox / "exports" / "2025-02-04.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00truncated")
    summary = run_stages(settings)
    rejected = summary.files_rejected
    assert [f.file_name for f in rejected] == ["exports/2025-02-04.csv.gz"]
    assert "damaged or truncated compressed file" in rejected[0].message
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


# --- formats, encodings, ragged lines, privacy (issue 4) -----------------------------

LEDGER_CSV = (
    "txn_id,occurred_at,source_id,target_id,amount,kind,channel\n"
    "G1,2025-02-03T10:00:00Z,ISSUER,ANN,40.00,issuance,app\n"
    "G2,2025-02-03T11:00:00Z,ANN,SHOP,12.5,transfer,card\n"
)


def _ledger(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(f"select {LEDGER_COLUMNS} from raw.transactions order by txn_id").fetchall()


def _parquet_bytes() -> bytes:
    frame = pl.read_csv(io.StringIO(LEDGER_CSV), infer_schema=False)
    buffer = io.BytesIO()
    frame.with_columns(pl.col("amount").cast(pl.Float64)).write_parquet(buffer)
    return buffer.getvalue()


def _jsonl_bytes() -> bytes:
    frame = pl.read_csv(io.StringIO(LEDGER_CSV), infer_schema=False)
    return "".join(json.dumps(row) + "\n" for row in frame.iter_rows(named=True)).encode()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.csv", LEDGER_CSV.encode()),
        ("a.csv", b"\xef\xbb\xbf" + LEDGER_CSV.encode()),
        ("a.csv", LEDGER_CSV.replace(",", ";").encode()),
        ("a.csv", LEDGER_CSV.replace(",", "|").replace("\n", "\r\n").encode()),
        ("a.tsv", LEDGER_CSV.replace(",", "\t").encode()),
        ("a.csv.gz", gzip.compress(LEDGER_CSV.encode())),
        ("a.parquet", _parquet_bytes()),
        ("a.jsonl", _jsonl_bytes()),
    ],
    ids=["csv", "bom", "semicolon", "pipe-crlf", "tab", "gzip", "parquet", "jsonl"],
)
def test_every_format_loads_the_same_ledger(tmp_path: Path, name: str, content: bytes) -> None:
    """Two rows, eight encodings of them: the loaded ledger is identical (12.5 → 12.50)."""
    (tmp_path / "in" / "exports").mkdir(parents=True)
    (tmp_path / "in" / "exports" / name).write_bytes(content)
    con, [result] = ingest_in_memory(tmp_path / "in", tmp_path / "private")
    reference, _ = ingest_in_memory(_canonical_inbox(tmp_path), tmp_path / "private")
    assert (result.rows_in, result.rows_loaded, result.status) == (2, 2, "loaded")
    assert _ledger(con) == _ledger(reference)
    assert [row[4] for row in _ledger(con)] == [Decimal("40.00"), Decimal("12.50")]


def _canonical_inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "reference" / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.csv").write_text(LEDGER_CSV, encoding="utf-8")
    return folder.parent


def test_latin1_file_is_decoded_and_the_manifest_says_so(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(
        LEDGER_CSV.replace("card", "caf\u00e9").encode("latin-1")
    )
    con, [result] = ingest_in_memory(tmp_path / "in", tmp_path / "private")
    assert result.rows_loaded == 2
    assert result.message == "not valid UTF-8: decoded as Latin-1"
    assert con.execute("select channel from raw.transactions where txn_id = 'G2'").fetchone() == (
        "caf\u00e9",
    )


def test_ragged_lines_are_quarantined_and_the_rest_load(tmp_path: Path) -> None:
    """Lines 3 (5 fields) and 5 (9 fields) are ragged; 2, 4 and 6 (after a quoted
    newline on line 4, which stays one record) load: rows_in 5 = 3 loaded + 2 quarantined.
    """
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text(
        "txn_id,occurred_at,source_id,target_id,amount,kind,channel\n"
        "R1,2025-02-03T10:00:00Z,ISSUER,ANN,40.00,issuance,app\n"
        "R2,2025-02-03T10:00:00Z,ANN,SHOP,1.00\n"
        'R3,2025-02-03T11:00:00Z,ANN,SHOP,2.00,transfer,"two\nlines"\n'
        "R4,2025-02-03T12:00:00Z,ANN,SHOP,1.00,transfer,app,x,y\n"
        "R5,2025-02-03T13:00:00Z,ANN,SHOP,3.00,transfer,app\n",
        encoding="utf-8",
    )
    con, [result] = ingest_in_memory(tmp_path / "in", tmp_path / "private")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (5, 3, 2)
    assert con.execute(
        "select source_line, reason from audit.quarantine order by 1"
    ).fetchall() == [(3, "wrong number of fields"), (5, "wrong number of fields")]
    assert con.execute(
        "select txn_id, source_line from raw.transactions order by 1"
    ).fetchall() == [("R1", 2), ("R3", 4), ("R5", 6)]
    unparsed = next((tmp_path / "private").rglob("*.unparsed.csv")).read_text()
    assert "R2,2025-02-03T10:00:00Z,ANN,SHOP,1.00" in unparsed


def test_personal_data_in_free_text_is_redacted_and_counted(settings: Settings) -> None:
    write_export(
        settings,
        "2025-02-03.csv",
        [
            (
                "P1",
                "2025-02-03T10:00:00Z",
                "ISSUER",
                "ANN",
                "9.00",
                "issuance",
                "ring 0117 496 0000",
            ),
            ("P2", "2025-02-03T10:00:00Z", "ANN", "SHOP", "1.00", "transfer", "jo@example.org"),
            ("P3", "2025-02-03T10:00:00Z", "ANN", "SHOP", "2.00", "transfer", "app"),
        ],
    )
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area"),
        [("ANN", "individual", "", "flat 2, BS3 1AB"), ("SHOP", "business", "food", "Easton")],
    )
    run_stages(settings)
    con = connect(settings.warehouse, read_only=True)
    assert con.execute("select channel from raw.transactions order by txn_id").fetchall() == [
        ("ring [redacted phone]",),
        ("[redacted email]",),
        ("app",),
    ]
    assert con.execute("select area from raw.accounts order by area").fetchall() == [
        ("Easton",),
        ("flat 2, [redacted postcode]",),
    ]
    assert dict(con.execute("select file_name, redactions from audit.files").fetchall()) == {
        "accounts.csv": 1,
        "exports/2025-02-03.csv": 2,
    }


def test_rejected_files_are_listed_for_the_report(settings: Settings) -> None:
    write_export(settings, "2025-02-03.csv", GOOD)
    (settings.inbox / "exports" / "2025-02-04.csv").write_bytes(b"")
    run_stages(settings)
    con = connect(settings.warehouse, read_only=True)
    assert con.execute("select file_name, status from audit.rejected_files").fetchall() == [
        ("exports/2025-02-04.csv", "rejected")
    ]


def test_a_warehouse_from_before_gains_the_new_columns(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    old_ddl = PERSISTENT_DDL.split("-- Added by ingestion v2")[0]
    con.execute(old_ddl)
    assert "memo" not in {row[0] for row in con.execute("describe raw.transactions").fetchall()}
    ensure_persistent_tables(con)
    columns = {row[0] for row in con.execute("describe audit.files").fetchall()}
    assert {"redactions", "file_format", "adapter"} <= columns
    assert "memo" in {row[0] for row in con.execute("describe raw.transactions").fetchall()}


def test_scheme_toml_errors_name_the_file_and_the_setting(tmp_path: Path) -> None:
    (tmp_path / "scheme.toml").write_text('adapter = "ledgerly"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"scheme\.toml: adapter = 'ledgerly' is unknown"):
        load_scheme_map(tmp_path)
    (tmp_path / "scheme.toml").write_text('[kinds]\n"top up" = "gift"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"\[kinds\] maps to \['gift'\]"):
        load_scheme_map(tmp_path)


# Each generated row is one of these; the oracle says what ingestion must do with it.
_ROW_SHAPES = ("good", "bad_amount", "bad_kind", "resend", "conflict", "ragged")


@settings_hyp(max_examples=25, deadline=None)
@given(shapes=st.lists(st.sampled_from(_ROW_SHAPES), min_size=0, max_size=30))
def test_row_accounting_matches_an_independent_oracle(
    tmp_path_factory: pytest.TempPathFactory, shapes: list[str]
) -> None:
    """Property: per-outcome counts equal a plain-Python oracle over the generated rows."""
    folder = tmp_path_factory.mktemp("prop")
    lines = ["txn_id,occurred_at,source_id,target_id,amount,kind,channel"]
    expected = {"loaded": 0, "duplicate": 0, "quarantined": 0}
    sent: list[str] = []
    for index, shape in enumerate(shapes):
        row = f"X{index},2025-02-03T10:00:00Z,ANN,SHOP,{index + 1}.00,transfer,app"
        if shape in ("resend", "conflict") and sent:
            row = sent[0] if shape == "resend" else sent[0].replace(".00,", ".50,")
            expected["duplicate" if shape == "resend" else "quarantined"] += 1
        elif shape == "bad_amount":
            row, expected["quarantined"] = row.replace(".00,", ".0x,"), expected["quarantined"] + 1
        elif shape == "bad_kind":
            row, expected["quarantined"] = (
                row.replace("transfer", "gift"),
                expected["quarantined"] + 1,
            )
        elif shape == "ragged":
            row, expected["quarantined"] = row + ",extra", expected["quarantined"] + 1
        else:
            expected["loaded"] += 1
            sent.append(row)
        lines.append(row)
    (folder / "in").mkdir()
    (folder / "in" / "a.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, [result] = ingest_in_memory(folder / "in", folder / "private")
    assert result.rows_in == len(shapes)
    assert (result.rows_loaded, result.rows_duplicate, result.rows_quarantined) == (
        expected["loaded"],
        expected["duplicate"],
        expected["quarantined"],
    )


def test_late_rows_for_past_days_change_exactly_those_days(
    settings: Settings, tmp_path: Path
) -> None:
    """Night 1 loads 3 and 4 February; night 2 brings a late file with a 3 February row.

    3 Feb before: issued 40.00, one transfer of 12.50, supply (issued − redeemed) 40.00;
    4 Feb: one transfer of 2.00. The late L1 (ANN → SHOP 7.50, 3 Feb 15:00) arrives in
    the 5 February export and adds a transfer on 3 Feb: transfer_volume 12.50 → 20.00,
    transfer_count 1 → 2. 4 Feb is unchanged; the money supply is unchanged (a transfer
    moves money, creates none).
    """
    sql_dir = circulation_sql_dir(tmp_path / "sql")
    write_export(settings, "2025-02-03.csv", GOOD)
    write_export(
        settings,
        "2025-02-04.csv",
        [("G3", "2025-02-04T09:00:00Z", "SHOP", "ANN", "2.00", "transfer", "app")],
    )
    ingest_and_build(settings, sql_dir)
    query = (
        "select day::varchar, issued::varchar, transfer_volume::varchar, transfer_count, "
        "money_supply::varchar from marts.daily_circulation order by day"
    )
    con = connect(settings.warehouse, read_only=True)
    before = con.execute(query).fetchall()
    con.close()
    assert before == [
        ("2025-02-03", "40.00", "12.50", 1, "40.00"),
        ("2025-02-04", "0.00", "2.00", 1, "40.00"),
    ]
    write_export(
        settings,
        "2025-02-05-late.csv",
        [("L1", "2025-02-03T15:00:00Z", "ANN", "SHOP", "7.50", "transfer", "app")],
    )
    summary = ingest_and_build(settings, sql_dir)
    assert [(f.file_name, f.rows_loaded) for f in summary.files] == [
        ("exports/2025-02-05-late.csv", 1)
    ]
    con = connect(settings.warehouse, read_only=True)
    assert con.execute(query).fetchall() == [
        ("2025-02-03", "40.00", "20.00", 2, "40.00"),
        ("2025-02-04", "0.00", "2.00", 1, "40.00"),
        ("2025-02-05", "0.00", "0.00", 0, "40.00"),  # the late file's own (quiet) day
    ]
