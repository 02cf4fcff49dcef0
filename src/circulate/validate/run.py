"""Run the batch suites (Great Expectations) and the SQL assertions; store every result.

Great Expectations runs the suites when a plain count (see :mod:`circulate.validate.suites`)
finds an unexpected row; a night on which every count is zero passes every check without
importing it, with the same stored results.

``validate_batch`` returns a :class:`ValidationReport`; the pipeline stores it in
``audit.validation_results`` of the build and, when a critical check failed, also in a
JSON file beside the warehouse (the build is then abandoned, so the warehouse never holds
a blocked run's results) and raises :class:`circulate.errors.ValidationFailed`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
import pandas as pd

from circulate.errors import InputError
from circulate.settings import ValidationThresholds
from circulate.validate.assertions import run_sql_assertions
from circulate.validate.frames import BatchFrames, load_frames
from circulate.validate.store import Severity, ValidationReport, ValidationResult
from circulate.validate.suites import Check, batch_checks

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation import Expectation

SAMPLE_ROWS = 5
_UNITS = {"schema": "columns", "days": "days", "export_days": "days"}


def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars would write to the nightly run's log for every suite.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _observed(frame_name: str, element: int, result: Mapping[str, Any]) -> str:
    unexpected = int(result.get("unexpected_count") or 0)
    if frame_name == "files":
        # One row for the whole batch: say the value itself.
        return ""
    unit = _UNITS.get(frame_name, "rows")
    text = f"{unexpected:,} of {element:,} {unit} unexpected"
    examples = [v for v in result.get("partial_unexpected_list") or [] if v is not None][:3]
    if unexpected and examples:
        text += " (e.g. " + ", ".join(_short(v) for v in examples) + ")"
    return text


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _sample(frame: pd.DataFrame, columns: Sequence[str], index: Sequence[Any]) -> str:
    rows = [int(i) for i in index if isinstance(i, int | float)][:SAMPLE_ROWS]
    if not rows or not columns:
        return "[]"
    picked = frame.loc[rows, [c for c in columns if c in frame.columns]]
    return json.dumps(picked.to_dict("records"), default=str)


def _single_row_value(frame: pd.DataFrame, column: str) -> str:
    value: Any = frame[column].iloc[0] if len(frame) else None
    if hasattr(value, "item"):
        value = value.item()  # numpy scalar to a Python number
    return f"{column} = {_short(value)}"


def _result_of(
    check: Check,
    frames: BatchFrames,
    outcome: ExpectationValidationResult | None,
    base: dict[str, Any],
    plain_count: int | None,
) -> ValidationResult:
    """The stored result of ``check``: from Great Expectations' ``outcome``, or, when
    Great Expectations did not run (``outcome`` None), passed with the plain count 0."""
    frame = frames.frames[check.frame]
    result: dict[str, Any] = {"unexpected_count": 0}
    if outcome is None:
        if plain_count != 0:
            counted = "cannot count" if plain_count is None else f"finds {plain_count:,} unexpected"
            raise RuntimeError(
                f"Check {check.name}: the plain count {counted}, but Great Expectations did not run"
            )
        success = True
    else:
        info = outcome.exception_info or {}
        if info.get("raised_exception"):
            return ValidationResult(
                **base,
                status="failed",
                observed_value=f"expectation could not run: {info.get('exception_message')}",
                unexpected_count=None,
                unexpected_sample="[]",
            )
        success, result = bool(outcome.success), dict(outcome.result or {})
    unexpected = int(result.get("unexpected_count") or 0)
    flagged = frames.flagged_counts.get(check.name)
    if flagged is not None and flagged != unexpected:
        # The frame held only the flagged rows: a disagreement means rows were missed.
        raise RuntimeError(
            f"Check {check.name}: its unexpected_rows_sql in circulate/validate/suites.py "
            f"flags {flagged:,} row(s) of batch {base['batch_id']} but the expectation "
            f"finds {unexpected:,} among the flagged rows; make the SQL condition match "
            "the expectation exactly"
        )
    if plain_count is not None and plain_count != unexpected:
        # A night whose plain counts are all zero skips Great Expectations: they must agree.
        raise RuntimeError(
            f"Check {check.name}: Great Expectations finds {unexpected:,} unexpected row(s) "
            f"of batch {base['batch_id']} but Expected.unexpected_count in "
            f"circulate/validate/suites.py counts {plain_count:,}; make the plain count "
            "apply the expectation's rule exactly"
        )
    element = frames.row_counts.get(check.frame, len(frame))
    observed = _observed(check.frame, element, result)
    if check.frame == "files":
        observed = _single_row_value(frame, str(check.expected.arguments["column"]))
        index: Sequence[Any] = [] if success else [0]
    else:
        index = result.get("partial_unexpected_index_list") or []
    return ValidationResult(
        **base,
        status="passed" if success else "failed",
        observed_value=observed,
        unexpected_count=unexpected,
        unexpected_sample="[]" if success else _sample(frame, check.sample_columns, index),
    )


def _alike(first: Expectation, second: Expectation) -> bool:
    """Whether a suite would keep only one of the two (what it compares, meta aside)."""
    ignored = {"id", "rendered_content", "notes", "meta"}
    return bool(
        first.expectation_type == second.expectation_type
        and first.dict(exclude=ignored) == second.dict(exclude=ignored)
    )


def _run_great_expectations(
    frames: BatchFrames, to_run: Sequence[Check]
) -> dict[str, ExpectationValidationResult]:
    """Each check's outcome in Great Expectations, one suite per frame."""
    import great_expectations as gx

    context = _context()
    source = context.data_sources.add_pandas("batch")
    outcomes: dict[str, ExpectationValidationResult] = {}
    twins: dict[str, str] = {}
    for frame_name in dict.fromkeys(c.frame for c in to_run):
        frame = frames.frames[frame_name]
        suite = context.suites.add(gx.ExpectationSuite(name=frame_name))
        added: dict[str, Expectation] = {}
        for check in to_run:
            if check.frame == frame_name:
                expectation = check.make()
                # A suite keeps one of two expectations alike but for their meta (for
                # example a warning and a critical share check set to the same threshold):
                # the second check takes the first one's outcome.
                twin = next((n for n, e in added.items() if _alike(e, expectation)), None)
                if twin is not None:
                    twins[check.name] = twin
                    continue
                expectation.meta = {"check": check.name}
                suite.add_expectation(expectation)
                added[check.name] = expectation
        asset = source.add_dataframe_asset(frame_name)
        batch = asset.add_batch_definition_whole_dataframe(frame_name).get_batch(
            batch_parameters={"dataframe": frame}
        )
        validated = batch.validate(
            suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20}
        )
        for outcome in validated.results:
            config = outcome.expectation_config
            if config is not None and config.meta:
                outcomes[str(config.meta["check"])] = outcome
    for check_name, twin in twins.items():
        outcomes[check_name] = outcomes[twin]
    return outcomes


def run_checks(
    frames: BatchFrames,
    checks: Sequence[Check],
    *,
    run_id: str,
    batch_id: str,
    now: datetime | None = None,
    great_expectations: bool | None = None,
) -> list[ValidationResult]:
    """Run ``checks`` on ``frames``; store-ready results in the order of ``checks``.

    A check whose condition is not met (no accounts file, not enough history) is
    recorded as ``skipped`` with the reason, never silently dropped. When ``frames``
    holds only the flagged transactions, each such check's count must equal DuckDB's
    (``frames.flagged_counts``) and its row total is the batch's (``frames.row_counts``).

    ``great_expectations``: ``None`` runs the suites in Great Expectations only when a
    plain count finds an unexpected row (or cannot count); ``True`` always, ``False``
    never (then every plain count must be zero).
    """
    now = now or datetime.now(UTC)
    to_run = [c for c in checks if c.needs is None or c.needs not in frames.skip_reasons]
    plain = {c.name: c.expected.unexpected_count(frames.frames[c.frame]) for c in to_run}
    if great_expectations is None:
        great_expectations = any(count != 0 for count in plain.values())
    outcomes = _run_great_expectations(frames, to_run) if great_expectations else {}
    results = []
    for check in checks:
        base: dict[str, Any] = {
            "run_id": run_id,
            "batch_id": batch_id,
            "suite": check.frame,
            "expectation": check.name,
            "severity": check.severity,
            "description": f"{check.description}. If it fails: {check.fix}",
            "validated_at": now,
        }
        if check.needs is not None and check.needs in frames.skip_reasons:
            results.append(
                ValidationResult(
                    **base,
                    status="skipped",
                    observed_value=f"skipped: {frames.skip_reasons[check.needs]}",
                    unexpected_count=None,
                    unexpected_sample="[]",
                )
            )
            continue
        outcome = outcomes.get(check.name)
        if great_expectations and outcome is None:
            raise RuntimeError(f"Great Expectations returned no result for {check.name}")
        results.append(_result_of(check, frames, outcome, base, plain[check.name]))
    return results


def with_severities(
    checks: Sequence[Check], severities: Mapping[str, str], source: Path | None = None
) -> list[Check]:
    """``checks`` with the severities a scheme chose (``[validation]`` of its scheme.toml).

    Raises
    ------
    InputError
        Naming ``source``, the unknown check and the valid names.
    """
    names = [c.name for c in checks]
    unknown = sorted(set(severities) - set(names))
    if unknown:
        where = f"{source}: " if source else ""
        raise InputError(
            f"{where}[validation] {', '.join(unknown)} is not a check; valid names: "
            f"{', '.join(names)}"
        )
    # load_scheme_map admits only critical and warning.
    return [
        replace(c, severity=cast(Severity, severities[c.name])) if c.name in severities else c
        for c in checks
    ]


def validate_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    batch_id: str,
    thresholds: ValidationThresholds,
    timezone: str,
    sql_dir: Path | None = None,
    severities: Mapping[str, str] | None = None,
    severities_source: Path | None = None,
) -> ValidationReport:
    """Validate one batch: the GX suites, then (when ``sql_dir`` is given) the SQL assertions.

    Parameters
    ----------
    con
        Warehouse holding the batch and the models built from it.
    run_id, batch_id
        The run doing the validation and the batch validated (the same in the nightly
        run; ``circulate validate`` re-checks older batches under a new run id).
    thresholds
        Limits from the settings.
    timezone
        Scheme timezone (export days are local days).
    sql_dir
        Folder with ``tests/*.sql``; ``None`` skips the warehouse-wide assertions.
    severities, severities_source
        Check name to ``critical`` or ``warning``, overriding the defaults, and the file
        that says so (named in the error for an unknown check).
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    now = datetime.now(UTC)
    checks = with_severities(batch_checks(thresholds), severities or {}, severities_source)
    frames = load_frames(
        con, batch_id, timezone=timezone, history_days=thresholds.history_days, checks=checks
    )
    results = run_checks(frames, checks, run_id=run_id, batch_id=batch_id, now=now)
    if sql_dir is not None:
        results += run_sql_assertions(
            con, sql_dir, {"timezone": timezone}, run_id=run_id, batch_id=batch_id, now=now
        )
    return ValidationReport(run_id, batch_id, results)


def validate_published(
    warehouse: Path,
    *,
    run_id: str,
    thresholds: ValidationThresholds,
    timezone: str,
    all_batches: bool = False,
    severities: Mapping[str, str] | None = None,
    severities_source: Path | None = None,
) -> list[ValidationReport]:
    """Re-run the suites read-only on a published warehouse (nothing is stored).

    The latest batch (or every batch, oldest first, with ``all_batches``) gets the batch
    suites, with the scheme's ``severities`` as the nightly run applies them; the SQL
    assertions run once, with the last report.
    """
    from circulate.analyst import open_published
    from circulate.warehouse.runner import default_sql_dir

    con = open_published(warehouse)
    try:
        batches = [
            str(row[0])
            for row in con.execute(
                "select batch_id from audit.files where file_role = 'transactions' "
                "group by batch_id order by min(ingested_at), batch_id"
            ).fetchall()
        ]
        chosen = batches if all_batches else batches[-1:]
        reports = [
            validate_batch(
                con,
                run_id=run_id,
                batch_id=batch,
                thresholds=thresholds,
                timezone=timezone,
                sql_dir=default_sql_dir() if batch == chosen[-1] else None,
                severities=severities,
                severities_source=severities_source,
            )
            for batch in chosen
        ]
    finally:
        con.close()
    return reports
