"""The fan-out flow: month marts from the lake, one Dask task per scheme and month.

Lists the lake's partitions, maps :func:`circulate.lake.compute_month` over them with
Prefect's Dask task runner, combines the months in the flow and writes the month marts
under ``<lake>/marts``. The cluster is an existing one (``dask_address`` or the
environment variable ``CIRCULATE_DASK_ADDRESS``, e.g. ``tcp://10.0.0.5:8786``) or else a
local one started for the run. Workers need circulate installed and the lake's path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import polars as pl
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner
from prefect_dask.task_runners import DaskTaskRunner

from circulate import lake as lakes
from circulate.errors import InputError
from circulate.settings import Settings
from flows.nightly import io_task  # the same retry rule: I/O errors only

DASK_ADDRESS_VARIABLE = "CIRCULATE_DASK_ADDRESS"
LOCAL_WORKERS = 2
compute_task = task(cache_policy=NO_CACHE)


Runner = TaskRunner[PrefectFuture[Any]]


def dask_task_runner(address: str | None = None, workers: int = LOCAL_WORKERS) -> Runner:
    """A runner on the cluster at ``address`` (or ``$CIRCULATE_DASK_ADDRESS``), else local.

    The local cluster runs ``workers`` processes of one thread each: the month models are
    CPU-bound Python and DuckDB, so processes rather than threads share the cores.
    """
    address = address or os.environ.get(DASK_ADDRESS_VARIABLE) or None
    if address:
        runner = DaskTaskRunner(address=address)
    else:
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",  # any free port: several runs may share a machine
            }
        )
    # prefect-dask does not parameterise its TaskRunner base; its futures are Prefect's.
    return cast(Runner, runner)


@io_task
def list_partitions(
    lake: Path, schemes: list[str] | None, since: str | None
) -> list[lakes.Partition]:
    return lakes.list_partitions(lake, schemes=schemes, since=_month(since))


@io_task  # reads its partition: a worker's hiccup on a network share is worth a retry
def compute_month(partition: lakes.Partition, k_anonymity: int) -> lakes.MonthResult:
    return lakes.compute_month(partition, k_anonymity=k_anonymity)


@io_task
def read_opening_supplies(partitions: list[lakes.Partition]) -> dict[str, Decimal]:
    return lakes.opening_supplies(partitions)


@compute_task
def combine_months(
    results: list[lakes.MonthResult], opening: dict[str, Decimal]
) -> dict[str, pl.DataFrame]:
    return lakes.combine(results, opening)


@io_task
def write_marts(lake: Path, frames: dict[str, pl.DataFrame], since: str | None) -> list[Path]:
    return lakes.write_marts(lake, frames, since=_month(since))


def _month(text: str | None) -> date | None:
    return lakes.parse_month(text) if text else None


@flow(name="circulate-fanout", task_runner=dask_task_runner())
def fanout(
    lake: str,
    schemes: list[str] | None = None,
    since: str | None = None,
    k_anonymity: int | None = None,
) -> list[str]:
    """Compute the month marts of ``schemes`` (default all) from month ``since`` (YYYY-MM).

    Without ``since`` every month is computed and each scheme's marts rewritten; with it
    the months before keep their stored rows and the money in circulation continues from
    the stored end of the month before. Returns the mart files written.
    """
    root = Path(lake)
    k = k_anonymity if k_anonymity is not None else Settings().k_anonymity
    partitions = list_partitions(root, schemes, since)
    if not partitions:
        raise InputError(
            f"No partitions in the lake {root} for schemes {schemes or 'all'} from "
            f"{since or 'the start'}: write the lake first or pick an earlier month."
        )
    results = compute_month.map(partitions, k_anonymity=unmapped(k)).result()
    opening = read_opening_supplies(partitions)
    frames = combine_months(results, opening)
    return [str(path) for path in write_marts(root, frames, since)]


def run_fanout(
    lake: Path,
    *,
    schemes: list[str] | None = None,
    since: str | None = None,
    k_anonymity: int | None = None,
    dask_address: str | None = None,
    workers: int = LOCAL_WORKERS,
) -> list[str]:
    """Run :func:`fanout` on a Dask cluster; return the mart files written.

    The cluster is the one at ``dask_address``, else at ``$CIRCULATE_DASK_ADDRESS``, else
    a local one of ``workers`` processes started for the run.
    """
    runner = dask_task_runner(dask_address, workers)
    with _api_for_workers():
        return fanout.with_options(task_runner=runner)(
            lake=str(lake), schemes=schemes, since=since, k_anonymity=k_anonymity
        )


@contextmanager
def _api_for_workers() -> Iterator[None]:
    """Give the flow and its Dask workers one Prefect API.

    Without ``PREFECT_API_URL`` Prefect starts a temporary API server in each process
    that needs one, every worker included (each start takes seconds); start the flow
    process's one here and hand its address to them all. Like Prefect's own, it stops
    when the process exits, after the last logs reach it. It listens on 127.0.0.1:
    workers on other machines need ``PREFECT_API_URL`` set to a server they can reach.
    """
    if PREFECT_API_URL.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's temporary mode would use
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield
