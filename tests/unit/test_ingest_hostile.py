"""The hostile corpus (tests/fixtures/hostile/): nothing crashes, every row is accounted for.

Each file is ingested alone into a fresh in-memory warehouse. The table gives, worked
out by hand from each file, (rows_in, loaded, duplicates, quarantined) and the file's
status; rejected files have no rows. ``build_corpus.py`` beside the files writes them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from circulate import pipeline
from circulate.errors import ValidationFailed
from circulate.review import accept, set_aside
from circulate.settings import Settings
from circulate.validate.store import read_results_file
from circulate.warehouse.connection import connect
from tests.conftest import settings_in
from tests.unit.ingest_helpers import ingest_in_memory

CORPUS = Path(__file__).parent.parent / "fixtures" / "hostile"

# file: (rows_in, loaded, duplicates, quarantined, status)
EXPECTED: dict[str, tuple[int, int, int, int, str]] = {
    "01_truncated.csv.gz": (0, 0, 0, 0, "rejected"),  # gzip cut at 60 bytes
    "02_empty.csv": (0, 0, 0, 0, "rejected"),  # 0 bytes
    "03_header_only.csv": (0, 0, 0, 0, "loaded"),
    "04_bom.csv": (2, 2, 0, 0, "loaded"),
    "05_latin1.csv": (1, 1, 0, 0, "loaded"),  # café in Latin-1, decoded and noted
    "06_utf16.csv": (0, 0, 0, 0, "rejected"),
    "07_binary.csv": (0, 0, 0, 0, "rejected"),  # PNG bytes with NULs
    "08_semicolon.csv": (2, 2, 0, 0, "loaded"),
    "09_tab.tsv": (2, 2, 0, 0, "loaded"),
    "10_pipe.csv": (2, 2, 0, 0, "loaded"),
    "11_crlf.csv": (2, 2, 0, 0, "loaded"),
    "12_quoted_newline.csv": (2, 2, 0, 0, "loaded"),  # "pa\nper" is one field
    "13_ragged.csv": (4, 2, 0, 2, "loaded"),  # one row short, one long
    "14_extra_column.csv": (2, 2, 0, 0, "loaded"),  # unknown column ignored
    "15_missing_column.csv": (2, 0, 0, 2, "quarantined"),  # no amount column
    # Z, naive local and +01:00 parse; day-first and 30 February do not.
    "16_mixed_dates.csv": (5, 3, 0, 2, "loaded"),
    "17_duplicates_conflicts.csv": (4, 2, 1, 1, "loaded"),  # A1, A1 again, A1 changed, A2
    # -5, abc, 0, 1e3, £5.00, "1,000.00", 5.001 quarantined; 5 loads as 5.00.
    "18_bad_amounts.csv": (8, 1, 0, 7, "loaded"),
    "19_formula_injection.csv": (3, 3, 0, 0, "loaded"),  # text is data; CSV export escapes
    "21_kind_case.csv": (3, 2, 0, 1, "loaded"),  # TRANSFER and " Transfer " ok, gift not
    "22_missing_ids.csv": (3, 0, 0, 3, "loaded"),
    "23_self_and_future.csv": (2, 0, 0, 2, "loaded"),
    "24_personal_data.csv": (3, 3, 0, 0, "loaded"),  # loaded, with 3 redactions
    "25_blank_lines.csv": (2, 2, 0, 0, "loaded"),  # blank lines are not rows
    "26_stray_quote.csv": (2, 2, 0, 0, "loaded"),  # ca"fe mid-field is literal text
    "27_mixed.jsonl": (4, 1, 0, 3, "loaded"),  # invalid JSON, an array, no amount
    "28_typed.parquet": (2, 2, 0, 0, "loaded"),  # timestamptz and decimal columns
    "29_ok.csv.gz": (2, 2, 0, 0, "loaded"),
    "30_header_spaces.csv": (1, 1, 0, 0, "loaded"),  # " TXN_ID " etc. normalised
    "31_only_newlines.csv": (0, 0, 0, 0, "rejected"),  # no header
    "32_padded_values.csv": (1, 1, 0, 0, "loaded"),
    "33_repeated_header.csv": (1, 1, 0, 0, "loaded"),  # the first "amount" counts
    "34_unterminated_quote.csv": (2, 1, 0, 1, "loaded"),  # last line never closes "
    "35_header_repeated_in_body.csv": (3, 2, 0, 1, "loaded"),  # header row mid-file
    "36_quote_opened_mid_file.csv": (4, 1, 0, 3, "loaded"),  # " opens on line 3 of 5
    # Issuer/kind mismatches parse and load: validation names them (see below).
    "37_transfer_to_issuer.csv": (2, 2, 0, 0, "loaded"),
    "38_reversal_from_issuer.csv": (3, 3, 0, 0, "loaded"),
    "39_issuance_to_issuer.csv": (3, 3, 0, 0, "loaded"),
    "40_fee_from_issuer.csv": (2, 2, 0, 0, "loaded"),
    "41_redemption_to_member.csv": (3, 3, 0, 0, "loaded"),
}

# file: (rows, the line issuer_kind_consistent names and why), worked out by hand. With
# no accounts file, the issuers are the accounts that issue or take redemptions or fees.
ISSUER_KIND_MISMATCHES: dict[str, tuple[int, str]] = {
    "37_transfer_to_issuer.csv": (2, "line 3: a transfer to an issuer account (it issues money"),
    "38_reversal_from_issuer.csv": (
        3,
        "line 4: a reversal from an issuer account (it issues money",
    ),
    "39_issuance_to_issuer.csv": (
        3,
        "line 4: an issuance to an issuer account (it takes a redemption",
    ),
    "40_fee_from_issuer.csv": (2, "line 3: a fee from an issuer account (it issues money"),
    # SHOP "redeems" on line 4, so the transfer it received on line 3 conflicts.
    "41_redemption_to_member.csv": (
        3,
        "line 3: a transfer to an issuer account (it takes a redemption",
    ),
}


def _ingest_alone(path: Path, tmp_path: Path) -> tuple[int, int, int, int, str, str]:
    inbox = tmp_path / path.name / "inbox"
    (inbox / "exports").mkdir(parents=True)
    shutil.copy(path, inbox / "exports" / path.name)
    _, [result] = ingest_in_memory(inbox, tmp_path / path.name / "private")
    result.check_accounting()
    return (
        result.rows_in,
        result.rows_loaded,
        result.rows_duplicate,
        result.rows_quarantined,
        result.status,
        result.message,
    )


def test_the_corpus_has_at_least_25_small_files() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".py")
    assert files == sorted(EXPECTED)
    assert len(files) >= 25
    assert max((CORPUS / name).stat().st_size for name in files) < 8_192


def test_every_hostile_file_is_accounted_for_exactly(tmp_path: Path) -> None:
    outcomes = {name: _ingest_alone(CORPUS / name, tmp_path) for name in EXPECTED}
    assert {name: outcome[:5] for name, outcome in outcomes.items()} == EXPECTED
    for name, outcome in outcomes.items():
        if outcome[4] == "rejected":
            # The message names the file and says what to do.
            assert outcome[5].startswith(f"exports/{name} ")
            assert "send" in outcome[5] or "add the header" in outcome[5]


def test_the_whole_corpus_in_one_inbox_loads_without_a_crash(tmp_path: Path) -> None:
    """Together, later files' A1/A2 rows meet earlier ones: accounting still holds."""
    inbox = tmp_path / "inbox"
    shutil.copytree(CORPUS, inbox / "exports", ignore=shutil.ignore_patterns("*.py"))
    con, results = ingest_in_memory(inbox, tmp_path / "private")
    assert len(results) == len(EXPECTED)
    for result in results:
        result.check_accounting()
    stored = con.execute(
        "select sum(rows_in), sum(rows_loaded + rows_duplicate + rows_quarantined) from audit.files"
    ).fetchone()
    assert stored is not None and stored[0] == stored[1] == sum(r.rows_in for r in results)
    quarantined = con.execute("select count(*) from audit.quarantine").fetchone()
    assert quarantined == (sum(r.rows_quarantined for r in results),)


@pytest.mark.parametrize("size", [2 << 20])
def test_a_huge_field_is_quarantined_not_fatal(tmp_path: Path, size: int) -> None:
    """A 2 MiB channel (over the 1 MiB line limit) between two good rows: 3 in, 2 loaded."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "huge.csv").write_text(
        "txn_id,occurred_at,source_id,target_id,amount,kind,channel\n"
        "H1,2025-02-03T10:00:00Z,ISSUER,ANN,40.00,issuance,app\n"
        f"H2,2025-02-03T10:00:00Z,ANN,SHOP,1.00,transfer,{'x' * size}\n"
        "H3,2025-02-03T11:00:00Z,ANN,SHOP,2.00,transfer,app\n",
        encoding="utf-8",
    )
    _, [result] = ingest_in_memory(inbox, tmp_path / "private")
    assert (result.rows_in, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    assert result.reasons == {"line longer than the limit": 1}


@pytest.mark.parametrize("name", ISSUER_KIND_MISMATCHES)
def test_an_issuer_kind_mismatch_blocks_the_night_naming_file_and_line(
    name: str, tmp_path: Path
) -> None:
    """The real run on the file alone: validation blocks it with issuer_kind_consistent
    naming the line, so account_balances_sum_to_supply (which the row would trip) never
    runs, and nothing is published."""
    rows, why = ISSUER_KIND_MISMATCHES[name]
    settings = settings_in(tmp_path)
    (settings.inbox / "exports").mkdir()
    shutil.copy(CORPUS / name, settings.inbox / "exports" / name)
    with pytest.raises(ValidationFailed) as raised:
        pipeline.run_in_process(settings)
    named = f"issuer_kind_consistent: 1 of {rows} rows unexpected (e.g. exports/{name} {why}"
    assert named in str(raised.value)
    assert not settings.warehouse.exists()
    [kept] = (settings.warehouse.parent / "validation").glob("*.json")
    report = read_results_file(kept)
    assert [r.expectation for r in report.critical_failures] == ["issuer_kind_consistent"]
    assert "warehouse" not in {r.suite for r in report.results}


def _blocked_run(settings: Settings) -> tuple[str, list[str]]:
    """Run the night, which must block; return the run id and the checks that blocked it."""
    with pytest.raises(ValidationFailed):
        pipeline.run_in_process(settings)
    [kept] = (settings.warehouse.parent / "validation").glob("*.json")
    report = read_results_file(kept)
    return report.run_id, sorted(r.expectation for r in report.critical_failures)


def test_an_accepted_conflict_publishes_every_row_accounted_for(tmp_path: Path) -> None:
    """17 alone: A1 loads, A1 again is a duplicate, A1 at 41.00 conflicts, A2 loads. The
    conflict and the quarantine share (1 row in 4) block; once both are accepted on these
    bytes the night publishes, each failure a warning carrying the reason."""
    settings = settings_in(tmp_path)
    name = "17_duplicates_conflicts.csv"
    (settings.inbox / "exports").mkdir()
    shutil.copy(CORPUS / name, settings.inbox / "exports" / name)
    run_id, blocked = _blocked_run(settings)
    assert blocked == ["no_conflicting_resends", "quarantine_share_critical"]
    for check in blocked:
        accept(settings, run_id=run_id, check=check, reason="scheme: 40.00 is right", by="ops")

    summary = pipeline.run_in_process(settings)
    [result] = summary.files
    assert (result.rows_in, result.rows_loaded, result.rows_duplicate) == (4, 2, 1)
    assert result.rows_quarantined == 1
    con = connect(settings.warehouse, read_only=True)
    try:
        accepted = con.execute(
            "select expectation, severity, observed_value from audit.validation_results "
            "where status = 'failed' and expectation in "
            "('no_conflicting_resends', 'quarantine_share_critical') order by expectation"
        ).fetchall()
        quarantined = con.execute("select source_line, reason from audit.quarantine").fetchall()
        decided = con.execute("select count(*) from audit.decisions").fetchone()
    finally:
        con.close()
    assert [(e, s) for e, s, _ in accepted] == [(c, "warning") for c in blocked]
    assert all("accepted by ops" in o and "scheme: 40.00 is right" in o for _, _, o in accepted)
    assert quarantined == [(4, "txn_id already used with different content")]
    assert decided == (2,)


def test_a_set_aside_hostile_file_is_never_loaded(tmp_path: Path) -> None:
    """29 and 17 together block on 17's conflict; 17 set aside, the night publishes 29
    alone, and 17's bytes arriving again under another name are skipped."""
    settings = settings_in(tmp_path)
    exports = settings.inbox / "exports"
    exports.mkdir()
    for name in ("17_duplicates_conflicts.csv", "29_ok.csv.gz"):
        shutil.copy(CORPUS / name, exports / name)
    _, blocked = _blocked_run(settings)
    assert "no_conflicting_resends" in blocked
    set_aside(settings, "exports/17_duplicates_conflicts.csv", reason="ragged resend")
    assert not (exports / "17_duplicates_conflicts.csv").exists()

    summary = pipeline.run_in_process(settings)
    assert {f.file_name: f.status for f in summary.files} == {
        "exports/17_duplicates_conflicts.csv": "set_aside",
        "exports/29_ok.csv.gz": "loaded",
    }
    shutil.copy(CORPUS / "17_duplicates_conflicts.csv", exports / "17_again.csv")
    again = pipeline.run_in_process(settings)
    assert [(f.file_name, f.status) for f in again.files] == [("exports/17_again.csv", "set_aside")]
    con = connect(settings.warehouse, read_only=True)
    try:
        loaded = con.execute("select source_file, count(*) from raw.transactions group by 1")
        assert loaded.fetchall() == [("exports/29_ok.csv.gz", 2)]
    finally:
        con.close()
