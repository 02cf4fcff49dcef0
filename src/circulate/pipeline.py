"""The nightly run's stages as plain functions; ``flows/nightly.py`` makes each one a task.

A run copies the published snapshot to a build file, loads new exports into it, rebuilds
the SQL models, runs the assertions and only then swaps the build in. Any failure
abandons the build, so the published snapshot is exactly yesterday's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from circulate.decisions import (
    apply_acceptances,
    copy_decisions,
    decisions_path,
    failure_evidence,
    read_decisions,
    set_aside_for_ingest,
    txn_pseudonym,
)
from circulate.errors import AssertionsFailed, InputError, ValidationFailed
from circulate.ingest.adapters import SCHEME_FILE, load_scheme_map
from circulate.ingest.canonical import FileResult, IngestContext, ingest_inbox
from circulate.ingest.pseudonym import load_key
from circulate.ingest.summary import file_line
from circulate.metrics import python_models
from circulate.pull.state import copy_pulls, pull_log_path
from circulate.settings import Settings
from circulate.warehouse import publish as snapshot
from circulate.warehouse.connection import connect
from circulate.warehouse.export import export_marts
from circulate.warehouse.lock import run_lock
from circulate.warehouse.runner import (
    apply_glossary,
    cap_memory,
    default_sql_dir,
    run_assertions,
    run_models,
)
from circulate.warehouse.schema import ensure_persistent_tables

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class RunContext:
    """Identity and paths of one run."""

    settings: Settings
    run_id: str
    started_at: datetime
    build: Path
    sql_dir: Path
    #: A backfill's first and last export day: only those days' files are loaded.
    export_days: tuple[date, date] | None = None
    #: Recompute every built table from the loaded rows, reusing nothing stored
    #: (``circulate run --full``); also when no new export arrived.
    full: bool = False

    @property
    def parameters(self) -> dict[str, Any]:
        """Named parameters available to every SQL model and assertion."""
        thresholds = self.settings.impact_thresholds
        return {
            "timezone": self.settings.timezone,
            "k_anonymity": self.settings.k_anonymity,
            "impact_thresholds": "" if thresholds is None else str(thresholds),
            "run_started_at": self.started_at,
        }


@dataclass
class IngestSummary:
    """What a run's ingestion did, file by file."""

    files: list[FileResult] = field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        """Transactions loaded (attribute rows such as accounts are not counted)."""
        return sum(f.rows_loaded for f in self.files if f.role == "transactions")

    @property
    def files_new(self) -> int:
        return len(self.files)

    @property
    def files_rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "rejected"]

    @property
    def files_set_aside(self) -> list[FileResult]:
        """Set-aside exports listed in the manifest this run (never loaded)."""
        return [f for f in self.files if f.status == "set_aside"]

    def lines(self) -> list[str]:
        """A total line, then one line for each file that needs a person's attention."""
        rows_in = sum(f.rows_in for f in self.files)
        duplicates = sum(f.rows_duplicate for f in self.files)
        quarantined = sum(f.rows_quarantined for f in self.files)
        out = [
            f"{self.files_new} new file(s): {rows_in:,} rows in, {self.rows_loaded:,} "
            f"transactions loaded, {duplicates:,} duplicates, {quarantined:,} quarantined, "
            f"{len(self.files_rejected)} file(s) rejected"
            + (f", {len(self.files_set_aside)} set aside" if self.files_set_aside else "")
        ]
        out += [
            file_line(f)
            for f in self.files
            if f.status in ("rejected", "set_aside")
            or f.rows_duplicate
            or f.rows_quarantined
            or f.new_version
        ]
        return out


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique run id such as ``20261123T020000Z-3f9a``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def lock_path(settings: Settings) -> Path:
    return settings.warehouse.with_name(settings.warehouse.name + ".lock")


def run_log_path(settings: Settings) -> Path:
    """Every run, published or not, is appended here (the warehouse only holds published)."""
    return settings.warehouse.with_name("runs.jsonl")


def begin_run(
    settings: Settings,
    *,
    sql_dir: Path | None = None,
    backfill: tuple[date, date] | None = None,
    full: bool = False,
) -> RunContext:
    """Start a run: a build file copied from the published snapshot.

    A ``backfill`` (first and last export day) starts from an empty build instead and
    loads only the exports of those days, for example after a pseudonym key change.
    ``full`` rebuilds every built table from the loaded rows (see :attr:`RunContext.full`).
    """
    if backfill and backfill[0] > backfill[1]:
        raise InputError(f"--from {backfill[0]} is after --to {backfill[1]}: swap them.")
    started = datetime.now(UTC)
    run_id = new_run_id(started)
    build = snapshot.start_build(settings.warehouse, run_id, from_scratch=backfill is not None)
    return RunContext(
        settings,
        run_id,
        started,
        build,
        sql_dir or default_sql_dir(),
        export_days=backfill,
        full=full,
    )


@contextmanager
def _open_build(ctx: RunContext) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(ctx.build)
    cap_memory(con)
    try:
        yield con
    finally:
        con.close()


def ingest_new_files(ctx: RunContext, progress: Progress = _quiet) -> IngestSummary:
    """Load every file of the inbox not loaded before into the build.

    Exports set aside (``circulate set-aside``) are skipped, and listed once in the
    manifest with status ``set_aside``.
    """
    settings = ctx.settings
    ingest_ctx = IngestContext(
        inbox=settings.inbox,
        run_id=ctx.run_id,
        batch_id=ctx.run_id,
        key=load_key(settings.key_file),
        timezone=settings.timezone,
        private_dir=settings.private_dir,
        future_tolerance=settings.future_tolerance,
        now=ctx.started_at,
        export_days=ctx.export_days,
        set_aside=set_aside_for_ingest(read_decisions(decisions_path(settings))),
    )
    with _open_build(ctx) as con:
        ensure_persistent_tables(con)
        results = ingest_inbox(con, ingest_ctx, progress=progress)
    summary = IngestSummary(results)
    for line in summary.lines():
        progress(line)
    return summary


def build_models(ctx: RunContext, progress: Progress = _quiet) -> list[str]:
    """Rebuild every staging, intermediate and mart model in the build."""
    with _open_build(ctx) as con:
        built = run_models(
            con,
            ctx.sql_dir,
            ctx.parameters,
            python_models=python_models(),
            progress=progress,
            full=ctx.full,
        )
        apply_glossary(con, ctx.sql_dir / "glossary.toml")
        return built


def validate_new_batch(ctx: RunContext, progress: Progress = _quiet) -> None:
    """Run the batch suites on the rows this run loaded; store every result in the build.

    Runs after ingestion and before the models, so a blocked batch never reaches the
    money tracer; the warehouse-wide SQL assertions follow in ``check_warehouse``. A
    critical failure also writes the results beside the warehouse (the build holding
    them in ``audit.validation_results`` is abandoned) and raises ``ValidationFailed``;
    warnings are published with the run and shown in the report.

    Each check's severity is the inbox's ``scheme.toml`` ``[validation]`` choice, else
    the default; a critical failure an operator accepted on the same files
    (``circulate accept``) is published as a warning that carries the decision.
    """
    # Great Expectations takes seconds to import: only runs that validate pay for it.
    from circulate.validate.run import validate_batch
    from circulate.validate.store import results_path, store_results, write_results_file

    settings = ctx.settings
    scheme = load_scheme_map(settings.inbox)
    with _open_build(ctx) as con:
        report = validate_batch(
            con,
            run_id=ctx.run_id,
            batch_id=ctx.run_id,
            thresholds=settings.validation,
            timezone=settings.timezone,
            severities=scheme.validation,
            severities_source=settings.inbox / SCHEME_FILE,
        )
        evidence = failure_evidence(con, report, txn_pseudonym(load_key(settings.key_file)))
        report, accepted = apply_acceptances(
            report, evidence, read_decisions(decisions_path(settings))
        )
        store_results(con, report)
    for decision in accepted:
        progress(f"{decision.check_name} failed on files an operator accepted: {decision.note()}")
    progress(report.summary())
    if report.critical_failures:
        path = write_results_file(results_path(settings.warehouse, ctx.run_id), report, evidence)
        raise ValidationFailed(
            "The new batch failed validation; nothing was published and the previous "
            f"snapshot stays in place. Results: {path}\n{report.summary()}\n"
            "See why and how to move on: circulate review"
        )


def check_warehouse(ctx: RunContext) -> None:
    """Run the SQL assertions; raise, naming each failing one, if any returns rows.

    Each assertion's outcome is stored in ``audit.validation_results`` (suite
    ``warehouse``, all critical), so a published run carries its pass record; a failure's
    details go to the run log through the error message.
    """
    from circulate.validate.assertions import record_assertions

    with _open_build(ctx) as con:
        failures = run_assertions(con, ctx.sql_dir, ctx.parameters)
        record_assertions(con, ctx.sql_dir, failures, run_id=ctx.run_id)
    if failures:
        details = "\n".join(f.describe() for f in failures)
        raise AssertionsFailed(
            f"{len(failures)} warehouse assertion(s) failed; nothing was published and the "
            f"previous snapshot stays in place:\n{details}\n"
            "Bad input is stopped at ingest or validation, so this is a defect in circulate: "
            "please report it with these lines. Setting the night's exports aside "
            "(`circulate set-aside FILE --reason TEXT`) lets the next nights publish meanwhile."
        )


def publish_snapshot(ctx: RunContext, summary: IngestSummary) -> None:
    """Record the run in ``audit.runs`` and atomically swap the build in.

    Runs that published nothing since the last snapshot (failed, or nothing new) are in
    the run log only; they are copied into ``audit.runs`` here, so the published
    snapshot lists every run up to its own. ``audit.decisions`` and ``audit.pulls`` are
    replaced by the decisions and pulls logs the same way.
    """
    with _open_build(ctx) as con:
        _copy_logged_runs(con, ctx.settings)
        copy_decisions(con, decisions_path(ctx.settings))
        copy_pulls(con, pull_log_path(ctx.settings.warehouse))
        con.execute(
            """
            insert into audit.runs (run_id, started_at, finished_at, status, stage,
                                    files_loaded, rows_loaded, message, validation)
            select $run_id, $started, $finished, 'success', 'published', $files, $rows, null,
                   case
                       when count(*) = 0 then 'not run'
                       when count(*) filter (where status = 'failed') = 0 then 'passed'
                       else count(*) filter (where status = 'failed') || ' warning(s)'
                   end
            from audit.validation_results
            where run_id = $run_id and suite <> 'warehouse'
            """,
            {
                "run_id": ctx.run_id,
                "started": ctx.started_at,
                "finished": datetime.now(UTC),
                "files": summary.files_new,
                "rows": summary.rows_loaded,
            },
        )
        con.execute("checkpoint")
    snapshot.publish(ctx.build, ctx.settings.warehouse)


def _copy_logged_runs(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    path = run_log_path(settings)
    if not path.exists():
        return
    con.execute(
        """
        insert into audit.runs (run_id, started_at, finished_at, status, stage,
                                files_loaded, rows_loaded, message, validation)
        select run_id, started_at::timestamptz, finished_at::timestamptz, status, stage,
               files_new, rows_loaded, nullif(message, ''),
               case when status = 'failed' and stage = 'validate' then 'blocked' end
        from read_json($path, format = 'newline_delimited', columns = {
            run_id: 'varchar', started_at: 'varchar', finished_at: 'varchar',
            status: 'varchar', stage: 'varchar', files_new: 'bigint',
            rows_loaded: 'bigint', message: 'varchar'
        })
        where run_id not in (select run_id from audit.runs)
        """,
        {"path": str(path)},
    )


def parquet_dir(settings: Settings) -> Path:
    """Where the marts are mirrored as Parquet: ``marts/`` beside the published file."""
    return settings.warehouse.parent / "marts"


def export_parquet(ctx: RunContext) -> list[Path]:
    """Mirror the published marts as Parquet files for other engines."""
    return export_marts(ctx.settings.warehouse, parquet_dir(ctx.settings))


def skip_publish(ctx: RunContext) -> None:
    """Nothing new arrived: drop the build, the published snapshot is already current."""
    snapshot.abandon(ctx.build)


def failure_status(error: BaseException) -> str:
    """Run status the report shows for a failed run: a blocked batch is named.

    >>> failure_status(ValidationFailed("x")), failure_status(AssertionsFailed("y"))
    ('failed_validation', 'failed')
    """
    return "failed_validation" if isinstance(error, ValidationFailed) else "failed"


def fail_run(ctx: RunContext, stage: str, error: BaseException) -> None:
    """Abandon the build and log the failure; the published snapshot is untouched."""
    snapshot.abandon(ctx.build)
    record_run(ctx, status="failed", stage=stage, message=str(error))


def record_run(
    ctx: RunContext,
    *,
    status: str,
    stage: str,
    message: str = "",
    summary: IngestSummary | None = None,
) -> None:
    """Append the run's outcome to the run log beside the warehouse."""
    entry = {
        "run_id": ctx.run_id,
        "started_at": ctx.started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "status": status,
        "stage": stage,
        "files_new": summary.files_new if summary else 0,
        "rows_loaded": summary.rows_loaded if summary else 0,
        "message": message,
    }
    path = run_log_path(ctx.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def run_in_process(
    settings: Settings,
    *,
    progress: Progress = _quiet,
    on_stage: Progress = _quiet,
    backfill: tuple[date, date] | None = None,
    full: bool = False,
) -> IngestSummary:
    """Every stage of a night in order, without Prefect.

    ``circulate ingest``, the tests and the benchmarks use this; ``flows/nightly.py`` runs
    the same stages as Prefect tasks. ``on_stage`` is called with each stage's name just
    before it starts (benchmarks time stages with it). A failure abandons the build, logs
    the run and re-raises; the published snapshot is untouched. ``full`` recomputes every
    built table, also when no new export arrived.
    """
    with run_lock(lock_path(settings)):
        return _run_stages(settings, progress, on_stage, backfill, full)


def _run_stages(
    settings: Settings,
    progress: Progress,
    on_stage: Progress,
    backfill: tuple[date, date] | None,
    full: bool,
) -> IngestSummary:
    on_stage("start")
    ctx = begin_run(settings, backfill=backfill, full=full)
    stage = "ingest"
    try:
        on_stage(stage)
        summary = ingest_new_files(ctx, progress)
        if ctx.export_days and not any(f.role == "transactions" for f in summary.files):
            raise InputError(
                f"No export in {settings.inbox} is dated {ctx.export_days[0]} to "
                f"{ctx.export_days[1]} (by the day in its file name): nothing was rebuilt."
            )
        if not summary.files_new and not full:
            skip_publish(ctx)
        else:
            stages: list[tuple[str, Callable[[], object]]] = [
                ("validate", lambda: validate_new_batch(ctx, progress)),
                ("build", lambda: build_models(ctx, progress)),
                ("check", lambda: check_warehouse(ctx)),
                ("publish", lambda: publish_snapshot(ctx, summary)),
                ("export", lambda: export_parquet(ctx)),
            ]
            # A full rebuild with no new export has no batch to validate.
            for stage, run_stage in stages[0 if summary.files_new else 1 :]:
                on_stage(stage)
                run_stage()
    except Exception as error:
        fail_run(ctx, stage, error)
        raise
    on_stage("done")
    record_run(ctx, status="success", stage=stage, summary=summary)
    return summary
