"""The operator's decisions on blocked nights: accept a failed check, set an export aside.

A critical check that fails blocks the night, and the next night again, for as long as
the export sits in the inbox. The way forward is a decision, recorded with who, when
and why in ``decisions.jsonl`` beside the warehouse (like ``runs.jsonl``: a blocked
run's build is thrown away and the published snapshot is read-only, so neither can hold
it) and copied into ``audit.decisions`` of every published snapshot.

accept
    A critical check that failed on these exact files (by sha256) is published as a
    warning, with the decision's reason beside it. A new or changed file failing the
    same check blocks again.
set_aside
    The export is moved out of the inbox and never loaded: a file with the same sha256
    arriving again is skipped and said so.
take_back
    A set-aside export goes back into the inbox and is loaded by the next run.

Nothing here imports Great Expectations or Prefect.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from circulate.errors import InputError
from circulate.ingest.canonical import CONFLICT_REASON, SetAside
from circulate.settings import Settings
from circulate.validate.store import ValidationReport, ValidationResult

Action = Literal["accept", "set_aside", "take_back"]


#: For these checks the files behind a failure are known exactly; any other check's
#: failure is put down to every file of the batch (an acceptance then covers them all).
_FILES_OF_CHECK = {
    "no_conflicting_resends": "select distinct source_file from audit.quarantine "
    "where batch_id = $batch_id and reason = $conflict_reason",
    "files_readable": "select file_name from audit.files "
    "where batch_id = $batch_id and status in ('rejected', 'quarantined')",
    "quarantine_share_warning": "select file_name from audit.files "
    "where batch_id = $batch_id and rows_quarantined > 0",
    "quarantine_share_critical": "select file_name from audit.files "
    "where batch_id = $batch_id and rows_quarantined > 0",
    "duplicate_share": "select file_name from audit.files "
    "where batch_id = $batch_id and rows_duplicate > 0",
}
_BATCH_FILES = (
    "select file_name from audit.files where batch_id = $batch_id and status <> 'set_aside'"
)
#: Conflicting rows kept per check for ``circulate review`` (file, line, pseudonyms).
SAMPLE_CONFLICTS = 5


@dataclass(frozen=True)
class FileRef:
    """One export by name (relative to the input folder) and content."""

    file_name: str
    sha256: str


@dataclass(frozen=True)
class Decision:
    """One line of ``decisions.jsonl``.

    Attributes
    ----------
    decision_id
        Sortable id such as ``20261124T093000Z-accept-3f9a``.
    action
        ``accept``, ``set_aside`` or ``take_back``.
    decided_at, decided_by, reason
        When (UTC), who (the OS user unless ``--by``) and why.
    files
        The exports the decision is about, by name and sha256.
    run_id, check_name
        ``accept``: the blocked run and the check accepted.
    moved_to, file_role
        ``set_aside``: where the file was moved, and what it holds (``transactions``,
        ``accounts`` or ``areas``).
    """

    decision_id: str
    action: Action
    decided_at: datetime
    decided_by: str
    reason: str
    files: tuple[FileRef, ...]
    run_id: str | None = None
    check_name: str | None = None
    moved_to: str | None = None
    file_role: str | None = None

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "decision_id": self.decision_id,
            "action": self.action,
            "decided_at": self.decided_at.isoformat(),
            "decided_by": self.decided_by,
            "reason": self.reason,
            "run_id": self.run_id,
            "check_name": self.check_name,
            "files": [{"file_name": f.file_name, "sha256": f.sha256} for f in self.files],
            "moved_to": self.moved_to,
            "file_role": self.file_role,
        }
        return json.dumps(record)

    @classmethod
    def from_json(cls, line: str) -> Decision:
        record = json.loads(line)
        return cls(
            decision_id=record["decision_id"],
            action=record["action"],
            decided_at=datetime.fromisoformat(record["decided_at"]),
            decided_by=record["decided_by"],
            reason=record["reason"],
            files=tuple(FileRef(f["file_name"], f["sha256"]) for f in record["files"]),
            run_id=record.get("run_id"),
            check_name=record.get("check_name"),
            moved_to=record.get("moved_to"),
            file_role=record.get("file_role"),
        )

    def note(self) -> str:
        """Who decided, when and why, in words.

        >>> d = Decision("d1", "accept", datetime(2026, 11, 24, 9, 30, tzinfo=UTC), "ann",
        ...              "scheme confirmed", ())
        >>> d.note()
        'accepted by ann on 2026-11-24 (decision d1): scheme confirmed'
        """
        verb = {"accept": "accepted", "set_aside": "set aside", "take_back": "taken back"}
        return (
            f"{verb[self.action]} by {self.decided_by} on {self.decided_at:%Y-%m-%d} "
            f"(decision {self.decision_id}): {self.reason}"
        )


@dataclass(frozen=True)
class DecisionLog:
    """Every decision in the order they were made."""

    decisions: list[Decision] = field(default_factory=list)

    def active_set_asides(self) -> dict[str, Decision]:
        """sha256 to the set-aside decision still in force (none taken back after it)."""
        active: dict[str, Decision] = {}
        for d in self.decisions:
            for f in d.files:
                if d.action == "set_aside":
                    active[f.sha256] = d
                elif d.action == "take_back":
                    active.pop(f.sha256, None)
        return active

    def acceptance(self, check_name: str, files: Sequence[FileRef]) -> Decision | None:
        """The latest acceptance of ``check_name`` covering every one of ``files``.

        >>> f = FileRef("exports/a.csv", "aa")
        >>> d = Decision("d1", "accept", datetime(2026, 1, 1, tzinfo=UTC), "ann", "ok", (f,),
        ...              run_id="r", check_name="no_conflicting_resends")
        >>> log = DecisionLog([d])
        >>> log.acceptance("no_conflicting_resends", [f]) is d
        True
        >>> log.acceptance("no_conflicting_resends", [f, FileRef("exports/b.csv", "bb")])
        >>> log.acceptance("no_conflicting_resends", [FileRef("exports/a.csv", "changed")])
        >>> log.acceptance("export_day_present", [f])
        """
        wanted = {f.sha256 for f in files}
        if not wanted:
            return None
        for d in reversed(self.decisions):
            if (
                d.action == "accept"
                and d.check_name == check_name
                and wanted <= {f.sha256 for f in d.files}
            ):
                return d
        return None


def decisions_path(settings: Settings) -> Path:
    """``decisions.jsonl`` beside the warehouse (beside ``runs.jsonl``)."""
    return settings.warehouse.with_name("decisions.jsonl")


def set_aside_dir(settings: Settings) -> Path:
    """Where set-aside exports go: ``CIRCULATE_SET_ASIDE_DIR``, else ``set-aside/`` beside
    the inbox (``data/set-aside`` for ``data/inbox``)."""
    return settings.set_aside_dir or settings.inbox.parent / "set-aside"


def read_decisions(path: Path) -> DecisionLog:
    """The log at ``path`` (empty when there is none).

    Raises
    ------
    InputError
        Naming the line that cannot be read.
    """
    if not path.is_file():
        return DecisionLog()
    decisions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            decisions.append(Decision.from_json(line))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"{path} line {number} is not a decision ({error}): restore it from a backup "
                "or delete that line, then run again"
            ) from error
    return DecisionLog(decisions)


def append_decision(path: Path, decision: Decision) -> None:
    """Add ``decision`` to the log (one line, appended: earlier decisions never change)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(decision.to_json() + "\n")


def new_decision(
    action: Action,
    *,
    reason: str,
    files: Sequence[FileRef],
    by: str | None = None,
    run_id: str | None = None,
    check_name: str | None = None,
    moved_to: str | None = None,
    file_role: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """A decision made now by ``by`` (default: the OS user).

    Raises
    ------
    InputError
        When ``reason`` is empty: a decision without a why cannot be reviewed later.
    """
    if not reason.strip():
        raise InputError(
            '--reason is empty: say why (for example --reason "the scheme confirmed the '
            'later amount by e-mail on 24 Nov"); it is kept in audit.decisions'
        )
    now = now or datetime.now(UTC)
    return Decision(
        decision_id=f"{now:%Y%m%dT%H%M%SZ}-{action.replace('_', '-')}-{secrets.token_hex(2)}",
        action=action,
        decided_at=now,
        decided_by=(by or "").strip() or operator_name(),
        reason=reason.strip(),
        files=tuple(files),
        run_id=run_id,
        check_name=check_name,
        moved_to=moved_to,
        file_role=file_role,
    )


def operator_name() -> str:
    """The OS user running the command (``unknown`` when the system cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def set_aside_for_ingest(log: DecisionLog) -> dict[str, SetAside]:
    """What ingestion skips: sha256 to the file's name, role and the decision in words."""
    out = {}
    for sha, decision in log.active_set_asides().items():
        ref = next(f for f in decision.files if f.sha256 == sha)
        out[sha] = SetAside(ref.file_name, decision.file_role or "transactions", decision.note())
    return out


def txn_pseudonym(key: bytes) -> Callable[[str], str]:
    """Keyed pseudonym of a transaction id, for what operators read (``circulate review``).

    >>> name = txn_pseudonym(b"0123456789abcdef")
    >>> name("T1") == name("T1") != name("T2"), name("T1")[:4], len(name("T1"))
    (True, 'txn_', 20)
    """

    def pseudonym(raw_txn_id: str) -> str:
        digest = hmac.new(key, b"txn:" + raw_txn_id.encode("utf-8"), hashlib.sha256)
        return "txn_" + digest.hexdigest()[:16]

    return pseudonym


def failure_evidence(
    con: duckdb.DuckDBPyConnection,
    report: ValidationReport,
    pseudonym: Callable[[str], str],
) -> dict[str, dict[str, Any]]:
    """For each failed batch check: its files (name and sha256) and, for conflicts, rows.

    ``pseudonym`` maps a raw transaction id to a keyed pseudonym: the rows name their
    file and line and never a raw id. Kept with a blocked run's results because its
    build, which holds the files' manifest, is thrown away.
    """
    hashes = dict(
        con.execute(
            "select file_name, sha256 from audit.files where batch_id = $batch_id "
            "and status <> 'set_aside'",
            {"batch_id": report.batch_id},
        ).fetchall()
    )
    evidence: dict[str, dict[str, Any]] = {}
    for result in report.results:
        if result.status != "failed" or result.suite == "warehouse":
            continue
        names = con.execute(
            _FILES_OF_CHECK.get(result.expectation, _BATCH_FILES),
            {"batch_id": report.batch_id, "conflict_reason": CONFLICT_REASON}
            if result.expectation == "no_conflicting_resends"
            else {"batch_id": report.batch_id},
        ).fetchall()
        files = [
            {"file_name": name, "sha256": hashes[name]}
            for (name,) in sorted(names)
            if name in hashes
        ]
        entry: dict[str, Any] = {"files": files}
        if result.expectation == "no_conflicting_resends":
            entry["rows"] = _conflict_rows(con, report.batch_id, pseudonym)
        evidence[result.expectation] = entry
    return evidence


def _conflict_rows(
    con: duckdb.DuckDBPyConnection, batch_id: str, pseudonym: Callable[[str], str]
) -> list[dict[str, Any]]:
    rows = con.execute(
        """
        select quarantine.source_file, quarantine.source_line, quarantine.txn_id,
               first.source_file, first.source_line, cast(first.amount as varchar)
        from audit.quarantine as quarantine
        left join raw.transactions as first on first.txn_id = quarantine.txn_id
        where quarantine.batch_id = $batch_id and quarantine.reason = $conflict_reason
        order by quarantine.source_file, quarantine.source_line
        limit $limit
        """,
        {"batch_id": batch_id, "conflict_reason": CONFLICT_REASON, "limit": SAMPLE_CONFLICTS},
    ).fetchall()
    return [
        {
            "source_file": file,
            "source_line": line,
            "txn": pseudonym(txn) if txn is not None else None,
            "loaded_from": f"{first_file} line {first_line}" if first_file else None,
            "loaded_amount": amount,
        }
        for file, line, txn, first_file, first_line, amount in rows
    ]


def files_of(evidence: Mapping[str, Any], check_name: str) -> list[FileRef]:
    """The files :func:`failure_evidence` put behind ``check_name``'s failure."""
    entry = evidence.get(check_name) or {}
    return [FileRef(f["file_name"], f["sha256"]) for f in entry.get("files", [])]


def apply_acceptances(
    report: ValidationReport, evidence: Mapping[str, Any], log: DecisionLog
) -> tuple[ValidationReport, list[Decision]]:
    """Turn each critical failure an acceptance covers into a warning that says so.

    Returns the new report and the decisions applied. A failure is covered when an
    ``accept`` decision names its check and every file behind it (by sha256).
    """
    applied: list[Decision] = []
    results: list[ValidationResult] = []
    for r in report.results:
        decision = (
            log.acceptance(r.expectation, files_of(evidence, r.expectation))
            if r.status == "failed" and r.severity == "critical" and r.suite != "warehouse"
            else None
        )
        if decision is None:
            results.append(r)
            continue
        applied.append(decision)
        results.append(
            replace(
                r,
                severity="warning",
                observed_value=f"{r.observed_value} — {decision.note()}",
            )
        )
    return ValidationReport(report.run_id, report.batch_id, results), applied


def copy_decisions(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Replace ``audit.decisions`` with the log (one row per decision and file)."""
    log = read_decisions(path)
    con.execute("delete from audit.decisions")
    rows = [
        (
            d.decision_id,
            d.action,
            d.decided_at,
            d.decided_by,
            d.reason,
            d.run_id,
            d.check_name,
            f.file_name,
            f.sha256,
            d.moved_to,
        )
        for d in log.decisions
        for f in d.files
    ]
    if rows:
        con.executemany(
            "insert into audit.decisions (decision_id, action, decided_at, decided_by, "
            "reason, run_id, check_name, file_name, sha256, moved_to) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
