"""The operator's way forward from a blocked night: review, accept, set aside, take back.

``circulate review`` says what blocked the last run: each failing check with its files
and sample rows (pseudonyms only) and the commands that move on. The decisions are
recorded by :mod:`circulate.decisions` and act on the next run.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circulate.decisions import (
    Decision,
    FileRef,
    append_decision,
    decisions_path,
    files_of,
    new_decision,
    read_decisions,
    set_aside_dir,
    txn_pseudonym,
)
from circulate.errors import InputError
from circulate.ingest.adapters import SCHEME_FILE
from circulate.ingest.canonical import discover_files, sha256_of
from circulate.ingest.pseudonym import load_key
from circulate.pipeline import lock_path, run_log_path
from circulate.settings import Settings
from circulate.validate.store import (
    ValidationResult,
    read_evidence_file,
    read_results_file,
    results_path,
)
from circulate.warehouse.lock import run_lock

#: The examples GX puts in an observed value may be raw ids: review shows pseudonymised
#: sample rows instead.
_EXAMPLES = re.compile(r" \(e\.g\. .*\)$")


@dataclass(frozen=True)
class Review:
    """What ``circulate review`` prints and whether the last run was blocked."""

    text: str
    blocked: bool


def _last_run(settings: Settings) -> dict[str, Any] | None:
    path = run_log_path(settings)
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def _quoted(text: str) -> str:
    """``text`` as one shell word.

    >>> _quoted("exports/2025-03-04.csv"), _quoted("a b")
    ('exports/2025-03-04.csv', "'a b'")
    """
    return text if re.fullmatch(r"[\w./@:=+-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def review_blocked_run(settings: Settings, options: Sequence[str] = ()) -> Review:
    """Describe the last run: what blocked it and the commands that move on.

    Parameters
    ----------
    settings
        Where the run log, results and inbox are.
    options
        Options to repeat in the suggested commands (such as ``--warehouse FILE``).
    """
    last = _last_run(settings)
    if last is None:
        return Review(
            f"No run is logged in {run_log_path(settings)} yet: nothing to review.", False
        )
    run_id = str(last["run_id"])
    results_file = results_path(settings.warehouse, run_id)
    if last.get("status") != "failed" or last.get("stage") != "validate":
        state = (
            "published"
            if last.get("status") == "success"
            else f"failed at the {last.get('stage')} stage, not on a data check"
        )
        text = (
            f"The last run, {run_id} (started {last.get('started_at')}), was not blocked: {state}."
        )
        if last.get("status") != "success":
            first_line = str(last.get("message") or "").splitlines()[:1]
            text += (
                "\n"
                + "".join(first_line)
                + "\nSee docs/operations.md, 'When something goes wrong'."
            )
        return Review(text, False)
    if not results_file.is_file():
        return Review(
            f"The last run, {run_id}, failed at the validate stage but left no results in "
            f"{results_file}; its message: {last.get('message')}",
            True,
        )
    report = read_results_file(results_file)
    evidence = read_evidence_file(results_file)
    log = read_decisions(decisions_path(settings))
    pseudonym = txn_pseudonym(load_key(settings.key_file))
    extra = " ".join(_quoted(o) for o in options)
    prefix = "circulate"
    failures = report.critical_failures
    lines = [
        f"The last run, {run_id} (started {last.get('started_at')}), was blocked by "
        f"{len(failures)} critical data check(s): nothing was published and the previous "
        "snapshot stays in place.",
        f"Results: {results_file}",
    ]
    for number, result in enumerate(failures, start=1):
        files = files_of(evidence, result.expectation)
        lines += ["", f"{number}. {result.expectation} ({result.suite}): {_observed(result)}"]
        lines.append(f"   expects: {result.description}")
        lines.append("   files:")
        lines += [f"     {f.file_name}  sha256 {f.sha256}" for f in files] or [
            "     (none recorded)"
        ]
        rows = _sample_lines(result, evidence.get(result.expectation) or {}, pseudonym)
        if rows:
            lines.append("   sample rows (ids are pseudonyms):")
            lines += [f"     {row}" for row in rows]
        accepted = log.acceptance(result.expectation, files)
        if accepted is not None:
            lines.append(f"   already {accepted.note()}")
            lines.append("   the next run publishes this failure as a warning: circulate run")
            continue
        lines += [
            "   to move on, one of:",
            "     fix the export: have the scheme correct it, put the corrected file in the inbox "
            "(same name) and run again:",
            f"       {prefix} run{' ' + extra if extra else ''}",
            "     accept these exact files as they are (published as a warning with your reason):",
            f"       {prefix} accept --run {run_id} --check {result.expectation} "
            f'--reason "..."{" " + extra if extra else ""}',
            "     set a file aside (moved out of the inbox, never loaded; the night goes on "
            "without it):",
            *(
                f"       {prefix} set-aside {_quoted(f.file_name)} "
                f'--reason "..."{" " + extra if extra else ""}'
                for f in files
            ),
        ]
    warnings = report.warnings
    if warnings:
        lines += ["", f"Also failing, as warnings (they do not block): {len(warnings)}"]
        lines += [f"  {r.suite}.{r.expectation}: {_observed(r)}" for r in warnings]
    lines += ["", "Then run again: circulate run (docs/operations.md, 'Blocked-night runbook')."]
    return Review("\n".join(lines), True)


def _observed(result: ValidationResult) -> str:
    return _EXAMPLES.sub("", result.observed_value)


def _sample_lines(result: ValidationResult, evidence: dict[str, Any], pseudonym: Any) -> list[str]:
    """Sample rows in words; transaction ids replaced by keyed pseudonyms."""
    out = []
    for row in evidence.get("rows", []):
        first = (
            f" (first loaded from {row['loaded_from']}, amount {row['loaded_amount']})"
            if row.get("loaded_from")
            else ""
        )
        out.append(
            f"{row['source_file']} line {row['source_line']}: {row['txn']} re-sent with "
            f"other content{first}"
        )
    if out:
        return out
    try:
        sample = json.loads(result.unexpected_sample or "[]")
    except ValueError:
        return []
    for record in sample if isinstance(sample, list) else []:
        if not isinstance(record, dict):
            continue
        if record.get("txn_id") is not None:
            record["txn_id"] = pseudonym(str(record["txn_id"]))
        out.append(", ".join(f"{k}={v}" for k, v in record.items()))
    return out


def accept(
    settings: Settings, *, run_id: str, check: str, reason: str, by: str | None = None
) -> Decision:
    """Record that ``check``, failed in blocked run ``run_id``, is accepted on its files.

    Raises
    ------
    InputError
        When the reason is empty, ``run_id`` left no results, or ``check`` did not fail
        critically in it.
    """
    if not reason.strip():
        new_decision("accept", reason=reason, files=())  # raises, saying what to write
    results_file = results_path(settings.warehouse, run_id)
    if not results_file.is_file():
        raise InputError(
            f"Run {run_id} left no blocked results ({results_file} does not exist): "
            "`circulate review` names the last blocked run and its failing checks."
        )
    report = read_results_file(results_file)
    failed = [r.expectation for r in report.critical_failures]
    if check not in failed:
        raise InputError(
            f"Check {check} did not block run {run_id}, so there is nothing to accept; "
            f"the checks that did: {', '.join(failed) or 'none'}."
        )
    files = files_of(read_evidence_file(results_file), check)
    if not files:
        raise InputError(
            f"{results_file} records no files for {check} (written by an older circulate): "
            "run again to record them, then accept the new run."
        )
    decision = new_decision(
        "accept", reason=reason, files=files, by=by, run_id=run_id, check_name=check
    )
    append_decision(decisions_path(settings), decision)
    return decision


def changed_since(settings: Settings, files: Sequence[FileRef]) -> list[str]:
    """Files of ``files`` whose copy in the inbox now has other content (or is gone)."""
    out = []
    for f in files:
        path = settings.inbox / f.file_name
        if not path.is_file():
            out.append(f"{f.file_name} is no longer in the inbox")
        elif sha256_of(path) != f.sha256:
            out.append(f"{f.file_name} has changed since the run: the acceptance does not cover it")
    return out


def _inbox_file(settings: Settings, file: str) -> tuple[Path, str]:
    """The inbox file ``file`` names (a path, or a name relative to the inbox)."""
    inbox = settings.inbox.resolve()
    given = Path(file)
    for candidate in (given, settings.inbox / given):
        path = candidate.resolve()
        if path.is_file() and path.is_relative_to(inbox):
            return path, path.relative_to(inbox).as_posix()
    raise InputError(
        f"{file} is not a file in the inbox {settings.inbox}: give its path relative to the "
        "inbox as `circulate review` prints it (for example exports/2025-03-04.csv)."
    )


def _loaded_by(settings: Settings, sha256: str) -> str | None:
    """The run that loaded content ``sha256`` into the published snapshot, if any."""
    if not settings.warehouse.is_file():
        return None
    from circulate.analyst import open_published

    con = open_published(settings.warehouse)
    try:
        row = con.execute(
            "select run_id from audit.files where sha256 = $sha and status <> 'set_aside' limit 1",
            {"sha": sha256},
        ).fetchone()
    finally:
        con.close()
    return None if row is None else str(row[0])


def set_aside(settings: Settings, file: str, *, reason: str, by: str | None = None) -> Decision:
    """Move an export out of the inbox so that no run loads it; record why.

    The decision is written before the file moves: if the move is interrupted the file is
    still skipped by its sha256.

    Raises
    ------
    InputError
        When the reason is empty, the file is not an input of the inbox, or its content
        is already published (setting it aside would not remove its rows).
    """
    if not reason.strip():
        new_decision("set_aside", reason=reason, files=())  # raises, saying what to write
    path, name = _inbox_file(settings, file)
    roles = {p.resolve(): role for p, role in discover_files(settings.inbox)}
    if name == SCHEME_FILE or path not in roles:
        raise InputError(
            f"{name} is not an input file of {settings.inbox} (scheme.toml [files] does not "
            "match it), so no run loads it: nothing to set aside."
        )
    sha = sha256_of(path)
    loaded_by = _loaded_by(settings, sha)
    if loaded_by:
        raise InputError(
            f"{name} (sha256 {sha}) was loaded by run {loaded_by} and is published: setting it "
            "aside would not remove its rows. To drop them, move the file out of the inbox and "
            "rebuild with `circulate backfill` (docs/operations.md)."
        )
    with run_lock(lock_path(settings)):
        target = set_aside_dir(settings) / name
        if target.exists() and sha256_of(target) != sha:
            target = target.with_name(f"{target.name}.{sha[:12]}")
        decision = new_decision(
            "set_aside",
            reason=reason,
            files=[FileRef(name, sha)],
            by=by,
            moved_to=str(target),
            file_role=roles[path],
        )
        append_decision(decisions_path(settings), decision)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    return decision


def take_back(settings: Settings, file: str, *, reason: str, by: str | None = None) -> Decision:
    """Return a set-aside export to the inbox; the next run loads it like any new file.

    Raises
    ------
    InputError
        When the reason is empty, ``file`` is not set aside, or the inbox holds another
        file under its name.
    """
    if not reason.strip():
        new_decision("take_back", reason=reason, files=())  # raises, saying what to write
    active = read_decisions(decisions_path(settings)).active_set_asides()
    matches = [
        (ref, d)
        for sha, d in active.items()
        for ref in d.files
        if ref.sha256 == sha and file in (ref.file_name, d.moved_to)
    ]
    if not matches:
        names = sorted(ref.file_name for sha, d in active.items() for ref in d.files)
        raise InputError(f"{file} is not set aside; set-aside files: {', '.join(names) or 'none'}.")
    ref, decision = matches[-1]
    home = settings.inbox / ref.file_name
    with run_lock(lock_path(settings)):
        if home.exists():
            if sha256_of(home) != ref.sha256:
                raise InputError(
                    f"{home} holds another file: move it away first, then take back "
                    f"{ref.file_name}."
                )
        elif decision.moved_to and Path(decision.moved_to).is_file():
            home.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(decision.moved_to, home)
        else:
            raise InputError(
                f"{decision.moved_to} is gone: put the export back at {home} by hand and run "
                "this command again."
            )
        taken = new_decision("take_back", reason=reason, files=[ref], by=by)
        append_decision(decisions_path(settings), taken)
    return taken
