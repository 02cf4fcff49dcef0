"""The fan-out flow on a local Dask cluster of two worker processes, against the warehouse.

A generated scheme goes through the single-process pipeline, then into the lake; the
fan-out flow computes its month marts on the cluster (reached by its address, as an
existing cluster would be) and must give exactly the warehouse's rows.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from circulate.generate import generate_scheme
from circulate.lake import MONTH_MARTS, list_partitions, read_mart, write_lake
from circulate.lake.layout import read_parquet_file
from circulate.settings import Settings
from tests.conftest import run_stages
from tests.unit.test_lake import assert_same_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def scheme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inbox = tmp_path_factory.mktemp("fanout-scheme")
    generate_scheme(inbox, seed=23, transactions=8_000, days=90, start=date(2025, 1, 10))
    return inbox


def test_fanout_on_two_dask_workers_gives_the_warehouse_month_marts(
    scheme: Path, settings: Settings, tmp_path: Path
) -> None:
    from distributed import Client, LocalCluster
    from flows.fanout import run_fanout

    settings = settings.with_paths(inbox=scheme)
    run_stages(settings)
    lake = tmp_path / "lake"
    partitions = write_lake(settings.warehouse, lake, "demo")
    assert [f"{p.month:%Y-%m}" for p in partitions] == ["2025-01", "2025-02", "2025-03", "2025-04"]

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        written = run_fanout(lake, dask_address=cluster.scheduler_address)
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        marts = {m.name: read_mart(lake, m.name) for m in MONTH_MARTS}
        assert_same_rows(marts, settings.warehouse, "demo")

        # Recomputing the last month continues from the stored end of March.
        run_fanout(lake, since="2025-04", dask_address=cluster.scheduler_address)
        for mart in MONTH_MARTS:
            assert read_mart(lake, mart.name).equals(marts[mart.name]), mart.name

    assert sorted(written) == sorted(
        str(lake / "marts" / m.name / "scheme=demo" / "data.parquet") for m in MONTH_MARTS
    )
    assert len(executed) == 2
    assert all(count >= 1 for count in executed.values()), executed  # both workers computed

    with open(scheme / "accounts.csv", newline="", encoding="utf-8") as handle:
        raw_ids = {row["account_id"] for row in csv.DictReader(handle)}
    for path in lake.rglob("*.parquet"):
        frame = read_parquet_file(path)
        for column in frame.select(pl.col(pl.String)).columns:
            assert not raw_ids & set(frame[column].drop_nulls().to_list()), (path, column)
    assert len(list_partitions(lake)) == 4
