"""The nightly flow: pull (when the inbox names a [source]), ingest new exports, build,
check, publish, render the report.

Each task is one call into ``circulate`` (``pipeline``, ``pull``); retries only on I/O.
``circulate run`` runs this flow without a server; ``flows/deploy.py`` schedules it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker

from circulate import pipeline
from circulate.pull import pull_configured_source
from circulate.report import ReportResult, render_report
from circulate.settings import Settings
from circulate.warehouse.lock import run_lock

IO_RETRIES = 2
IO_RETRY_DELAYS: list[float] = [5, 30]  # seconds: a busy disk or NFS hiccup, not bad data


def _io_error(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass by itself: I/O errors, not bad input or failed checks."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, OSError)


io_task = task(
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=_io_error,
)
compute_task = task(cache_policy=NO_CACHE)  # a failed build or check is not retried


def _log(message: str) -> None:
    get_run_logger().info(message)


def send_pending_logs(timeout: float = 30) -> None:
    """Deliver the log lines and events still queued for the Prefect API.

    Prefect sends them in the background and at interpreter exit; a command that stops
    its own temporary server first calls this, so nothing is sent to a server that is gone.
    """
    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


@io_task
def start_run(settings: Settings, full: bool) -> pipeline.RunContext:
    return pipeline.begin_run(settings, full=full)


@io_task  # retries its requests itself; a refused token or unknown answer is not retried
def pull_from_source(settings: Settings) -> None:
    pull_configured_source(settings, progress=_log)


@io_task
def ingest_new_files(ctx: pipeline.RunContext) -> pipeline.IngestSummary:
    return pipeline.ingest_new_files(ctx, progress=_log)


@compute_task
def build_models(ctx: pipeline.RunContext) -> list[str]:
    return pipeline.build_models(ctx, progress=_log)


@compute_task
def validate_batch(ctx: pipeline.RunContext) -> None:
    pipeline.validate_new_batch(ctx, progress=_log)


@compute_task
def check_warehouse(ctx: pipeline.RunContext) -> None:
    pipeline.check_warehouse(ctx)


@io_task
def publish_snapshot(ctx: pipeline.RunContext, summary: pipeline.IngestSummary) -> None:
    pipeline.publish_snapshot(ctx, summary)


@io_task
def export_parquet(ctx: pipeline.RunContext) -> list[Path]:
    return pipeline.export_parquet(ctx)


@io_task
def render(settings: Settings, run_status: str, run_id: str) -> ReportResult:
    return render_report(
        settings.warehouse,
        settings.reports,
        run_status=run_status,
        run_id=run_id,
        scheme_name=settings.scheme_name,
        currency_symbol=settings.currency_symbol,
        k_anonymity=settings.k_anonymity,
    )


@flow(name="circulate-nightly")
def nightly(
    inbox: str | None = None,
    warehouse: str | None = None,
    reports: str | None = None,
    full: bool = False,
) -> str:
    """Run one night; return the path of the rendered report page.

    ``full`` recomputes every built table from the loaded rows, reusing nothing a
    previous build stored, also when no new export arrived.
    """
    settings = Settings().with_paths(
        inbox=Path(inbox) if inbox else None,
        warehouse=Path(warehouse) if warehouse else None,
        reports=Path(reports) if reports else None,
    )
    with run_lock(pipeline.lock_path(settings)):
        ctx = start_run(settings, full)
        stage = "pull"
        try:
            pull_from_source(settings)  # only when scheme.toml names a [source]
            stage = "ingest"
            summary = ingest_new_files(ctx)
            if summary.files_new or full:
                if summary.files_new:
                    stage = "validate"
                    validate_batch(ctx)
                stage = "build"
                build_models(ctx)
                stage = "check"
                check_warehouse(ctx)
                stage = "publish"
                publish_snapshot(ctx, summary)
                stage = "export"
                export_parquet(ctx)
            else:
                _log("No new export files: the published snapshot is already current.")
                pipeline.skip_publish(ctx)
            pipeline.record_run(ctx, status="success", stage=stage, summary=summary)
        except Exception as error:
            pipeline.fail_run(ctx, stage, error)
            if settings.warehouse.exists():
                render(settings, pipeline.failure_status(error), ctx.run_id)
            raise
        return str(render(settings, "success", ctx.run_id).index_html)
