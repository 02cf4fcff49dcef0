"""Validation results: the record kept per expectation, and where it is kept.

Results go to ``audit.validation_results`` of the build; a blocked run's results also
go to ``validation/<run_id>.json`` beside the warehouse, because a blocked build is never
published. Nothing here imports Great Expectations, so the report can read results fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

Status = Literal["passed", "failed", "skipped"]
Severity = Literal["critical", "warning"]


@dataclass(frozen=True)
class ValidationResult:
    """One expectation's outcome, as stored in ``audit.validation_results``.

    Attributes
    ----------
    suite
        The frame the expectation ran on, or ``warehouse`` for a SQL assertion.
    status
        ``passed``, ``failed`` or ``skipped`` (with the reason in ``observed_value``).
    observed_value
        What was seen, in words and numbers.
    unexpected_count
        Offending rows (``None`` when skipped).
    unexpected_sample
        Up to five offending rows as JSON; ids in them are pseudonyms.
    """

    run_id: str
    batch_id: str
    suite: str
    expectation: str
    severity: Severity
    status: Status
    observed_value: str
    unexpected_count: int | None
    unexpected_sample: str
    description: str
    validated_at: datetime

    @property
    def success(self) -> bool:
        """Skipped counts as a success: the reason is recorded and shown."""
        return self.status != "failed"


@dataclass(frozen=True)
class ValidationReport:
    """All results of validating one batch."""

    run_id: str
    batch_id: str
    results: list[ValidationResult] = field(default_factory=list)

    @property
    def critical_failures(self) -> list[ValidationResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def warnings(self) -> list[ValidationResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def exit_code(self) -> int:
        """0 clean, 1 warnings only, 2 critical failures (``circulate validate``).

        >>> ValidationReport("r", "b").exit_code
        0
        """
        if self.critical_failures:
            return 2
        return 1 if self.warnings else 0

    def summary(self) -> str:
        """One count line, then one line per failing expectation."""
        counts = {s: sum(r.status == s for r in self.results) for s in ("passed", "failed")}
        skipped = sum(r.status == "skipped" for r in self.results)
        lines = [
            f"batch {self.batch_id}: {len(self.results)} expectations, {counts['passed']} "
            f"passed, {len(self.critical_failures)} critical failure(s), "
            f"{len(self.warnings)} warning(s), {skipped} skipped"
        ]
        for r in self.critical_failures + self.warnings:
            lines.append(f"  {r.severity.upper()} {r.suite}.{r.expectation}: {r.observed_value}")
        return "\n".join(lines)


def store_results(
    con: duckdb.DuckDBPyConnection, report: ValidationReport, *, suite: str | None = None
) -> None:
    """Replace this run's rows of ``audit.validation_results`` (of ``suite`` only, if given)."""
    con.execute(
        "delete from audit.validation_results where run_id = $run_id "
        "and ($suite is null or suite = $suite)",
        {"run_id": report.run_id, "suite": suite},
    )
    con.executemany(
        "insert into audit.validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.run_id,
                r.batch_id,
                r.suite,
                r.expectation,
                r.severity,
                r.success,
                r.status,
                r.observed_value,
                r.unexpected_count,
                r.unexpected_sample,
                r.description,
                r.validated_at,
            )
            for r in report.results
        ],
    )


def read_stored(con: duckdb.DuckDBPyConnection, run_id: str) -> ValidationReport:
    """Every stored result of ``run_id`` (batch suites first, then the SQL assertions)."""
    rows = con.execute(
        "select run_id, batch_id, suite, expectation, severity, status, observed_value, "
        "unexpected_count, unexpected_sample, description, validated_at "
        "from audit.validation_results where run_id = $run_id "
        "order by suite = 'warehouse', validated_at, suite, expectation",
        {"run_id": run_id},
    ).fetchall()
    results = [
        ValidationResult(
            run_id=r[0],
            batch_id=r[1],
            suite=r[2],
            expectation=r[3],
            severity=r[4],
            status=r[5],
            observed_value=r[6] or "",
            unexpected_count=r[7],
            unexpected_sample=r[8] or "[]",
            description=r[9] or "",
            validated_at=r[10],
        )
        for r in rows
    ]
    batch_id = results[0].batch_id if results else run_id
    return ValidationReport(run_id, batch_id, results)


def results_path(warehouse: Path, run_id: str) -> Path:
    """Where a blocked run's results are kept: ``validation/<run_id>.json`` beside the warehouse."""
    return warehouse.parent / "validation" / f"{run_id}.json"


def write_results_file(
    path: Path, report: ValidationReport, evidence: Mapping[str, Any] | None = None
) -> Path:
    """Write ``report`` as JSON (atomically: a reader never sees half a file).

    ``evidence`` (check name to the files and rows behind its failure, see
    :func:`circulate.decisions.failure_evidence`) is kept beside the results for
    ``circulate review`` and ``circulate accept``, since the blocked build is thrown away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "run_id": report.run_id,
        "batch_id": report.batch_id,
        "results": [
            {**asdict(r), "validated_at": r.validated_at.isoformat()} for r in report.results
        ],
        "evidence": dict(evidence or {}),
    }
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    partial.replace(path)
    return path


def read_results_file(path: Path) -> ValidationReport:
    """Read a report written by :func:`write_results_file`."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    results = [
        ValidationResult(**{**r, "validated_at": datetime.fromisoformat(r["validated_at"])})
        for r in payload["results"]
    ]
    return ValidationReport(payload["run_id"], payload["batch_id"], results)


def read_evidence_file(path: Path) -> dict[str, Any]:
    """The ``evidence`` :func:`write_results_file` kept (empty for files written before it)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    return dict(payload.get("evidence") or {})


def format_table(results: Sequence[ValidationResult]) -> str:
    """A plain-text table: one line per expectation, failures first.

    >>> from datetime import UTC
    >>> r = ValidationResult("r", "b", "files", "duplicate_share", "warning", "failed",
    ...     "duplicate_share = 0.05", 1, "[]", "", datetime(2025, 1, 1, tzinfo=UTC))
    >>> print(format_table([r]))
    status  severity  suite  expectation      observed
    FAILED  warning   files  duplicate_share  duplicate_share = 0.05
    """
    order = {"failed": 0, "skipped": 1, "passed": 2}
    rank = {"critical": 0, "warning": 1}
    rows = [("status", "severity", "suite", "expectation", "observed")] + [
        (r.status.upper(), r.severity, r.suite, r.expectation, r.observed_value)
        for r in sorted(results, key=lambda r: (order[r.status], rank[r.severity]))
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )
