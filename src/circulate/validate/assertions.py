"""The warehouse-wide SQL assertions (``sql/tests/*.sql``) as validation results.

No Great Expectations here: ``check_warehouse`` records its assertions without paying for
that import. Every assertion is critical (see ``SQL_ASSERTION_SEVERITY``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from circulate.validate.store import (
    Severity,
    ValidationReport,
    ValidationResult,
    read_stored,
    store_results,
)
from circulate.warehouse.runner import AssertionFailure, Model, run_assertions

SQL_SUITE = "warehouse"
#: Each SQL assertion guards a warehouse-wide invariant (conservation, no negative
#: balances, traceability, no gaps): a violation means published numbers would be wrong,
#: so all are critical.
SQL_ASSERTION_SEVERITY: Severity = "critical"


def assertion_results(
    sql_dir: Path,
    failures: Sequence[AssertionFailure],
    *,
    run_id: str,
    batch_id: str,
    now: datetime | None = None,
) -> list[ValidationResult]:
    """One result per ``sql/tests/*.sql``: ``failed`` when it is among ``failures``."""
    now = now or datetime.now(UTC)
    by_name = {f.name: f for f in failures}
    results = []
    for path in sorted((sql_dir / "tests").glob("*.sql")):
        description = Model("tests", path.stem, path, path.read_text(encoding="utf-8")).description
        failure = by_name.get(path.stem)
        sample = "[]"
        if failure is not None:
            sample = json.dumps(
                [dict(zip(failure.columns, row, strict=True)) for row in failure.sample],
                default=str,
            )
        results.append(
            ValidationResult(
                run_id=run_id,
                batch_id=batch_id,
                suite=SQL_SUITE,
                expectation=path.stem,
                severity=SQL_ASSERTION_SEVERITY,
                status="failed" if failure else "passed",
                observed_value=(
                    f"{failure.offending_rows:,} offending row(s) ({path.name})"
                    if failure
                    else "no offending rows"
                ),
                unexpected_count=failure.offending_rows if failure else 0,
                unexpected_sample=sample,
                description=description,
                validated_at=now,
            )
        )
    return results


def run_sql_assertions(
    con: duckdb.DuckDBPyConnection,
    sql_dir: Path,
    parameters: Mapping[str, Any],
    *,
    run_id: str,
    batch_id: str,
    now: datetime | None = None,
) -> list[ValidationResult]:
    """Run every ``sql/tests/*.sql`` and return one result each (empty = passed)."""
    failures = run_assertions(con, sql_dir, parameters)
    return assertion_results(sql_dir, failures, run_id=run_id, batch_id=batch_id, now=now)


def record_assertions(
    con: duckdb.DuckDBPyConnection,
    sql_dir: Path,
    failures: Sequence[AssertionFailure],
    *,
    run_id: str,
) -> ValidationReport:
    """Store the assertions' results beside the run's batch results; return them all."""
    results = assertion_results(sql_dir, failures, run_id=run_id, batch_id=run_id)
    store_results(con, ValidationReport(run_id, run_id, results), suite=SQL_SUITE)
    return read_stored(con, run_id)
