"""Serve the nightly flow on a cron schedule from a Prefect server.

``circulate serve`` calls :func:`serve_nightly` once a server is reachable; the process
then waits for scheduled (or manually triggered) runs and executes them one at a time.
"""

from __future__ import annotations

from pathlib import Path

from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.nightly import nightly

DEPLOYMENT_NAME = "nightly"


def serve_nightly(*, cron: str, timezone: str, inbox: Path, warehouse: Path, reports: Path) -> None:
    """Register the ``circulate-nightly/nightly`` deployment and serve it until stopped."""
    nightly.serve(
        name=DEPLOYMENT_NAME,
        schedules=[Cron(cron, timezone=timezone)],
        parameters={
            # Absolute: scheduled runs start in a fresh process whose directory may differ.
            "inbox": str(inbox.resolve()),
            "warehouse": str(warehouse.resolve()),
            "reports": str(reports.resolve()),
        },
        description="Ingest new exports, build and check the warehouse, publish, report.",
        tags=["circulate"],
        limit=1,  # the run lock forbids overlap anyway; this keeps the queue honest
        pause_on_shutdown=False,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
