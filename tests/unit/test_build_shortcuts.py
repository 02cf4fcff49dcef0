"""The build's shortcuts give exactly what the plain computations give.

Dormancy without the account × day grid, the bootstrap summing drawn integers, one split
of the network edges into periods, the cycle search restricted to strongly connected
components and DuckDB's memory cap during the build.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from circulate.errors import ConfigurationError
from circulate.metrics.circulation import BOOTSTRAP_SEED, bootstrap_ratio_interval
from circulate.metrics.network import (
    EdgeList,
    Ledger,
    edges_on_short_cycles,
    strong_components,
    to_igraph,
)
from circulate.settings import Settings
from circulate.warehouse.runner import run_models
from tests.unit.test_circulation_metrics import built_warehouse, row

# ANN and BEN get money on 1 January; BEN pays ANN on 2 January; nobody else pays until
# ANN pays CAFE on 15 April. ANN is dormant from 1 April (90 days after joining), BEN from
# 2 April (90 days after paying); ANN wakes up on 15 April.
DORMANCY_EXPORTS = {
    "2025-01-01.csv": [
        ("D1", "2025-01-01T09:00:00Z", "ISSUER", "ANN", "100.00", "issuance", "app"),
        ("D2", "2025-01-01T10:00:00Z", "ISSUER", "BEN", "50.00", "issuance", "app"),
    ],
    "2025-01-02.csv": [("D3", "2025-01-02T09:00:00Z", "BEN", "ANN", "10.00", "transfer", "app")],
    "2025-04-15.csv": [("D4", "2025-04-15T09:00:00Z", "ANN", "CAFE", "20.00", "transfer", "app")],
}


@pytest.fixture
def dormancy_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    yield from built_warehouse(settings, DORMANCY_EXPORTS)


def test_dormancy_by_hand(dormancy_warehouse: duckdb.DuckDBPyConnection) -> None:
    expected = [
        ("day", date(2025, 3, 31), 0.0),  # ANN idle 89 days
        ("day", date(2025, 4, 1), 110 / 150),  # ANN (110) idle 90 days
        ("day", date(2025, 4, 2), 1.0),  # and BEN (40), 90 days after paying
        ("day", date(2025, 4, 14), 1.0),
        ("day", date(2025, 4, 15), 40 / 150),  # ANN paid CAFE: only BEN's 40
        ("month", date(2025, 3, 1), 0.0),  # at the month's last day
        ("month", date(2025, 4, 1), 40 / 150),
        ("all", date(2025, 1, 1), 40 / 150),
    ]
    for kind, start, share in expected:
        got = row(dormancy_warehouse, kind, start)["dormancy"]
        assert got == pytest.approx(share), (kind, start)


def _bootstrap_by_weights(
    num: npt.NDArray[np.float64], den: npt.NDArray[np.float64], replicates: int
) -> tuple[float, float]:
    # The plain method: a float weight (times drawn) per unit and two dot products.
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    stats = np.empty(replicates)
    for r in range(replicates):
        weights = np.bincount(rng.integers(0, num.size, num.size), minlength=num.size)
        weights = weights.astype(np.float64)
        stats[r] = 1.0 * (weights @ num) / (weights @ den)
    tail = (1.0 - 0.95) / 2.0 * 100.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    return float(low), float(high)


def test_bootstrap_of_whole_numbers_is_bit_identical_to_weighted_sums() -> None:
    rng = np.random.default_rng(3)
    den = rng.integers(1, 10**9, 501).astype(np.float64)  # pence, odd count
    num = den * rng.integers(1, 4, 501)
    assert bootstrap_ratio_interval(num, den, replicates=50) == _bootstrap_by_weights(num, den, 50)
    # Fractions take the weighted path: same draws, so still the same interval.
    assert bootstrap_ratio_interval(num / 3, den, replicates=50) == _bootstrap_by_weights(
        num / 3, den, 50
    )


def test_periods_split_from_unsorted_edges_match_a_filter() -> None:
    edges = pl.DataFrame(
        {
            "period_start": [date(2025, 2, 1), None, date(2025, 1, 1), None, date(2025, 1, 1)],
            "source": [1, 0, 2, 2, 0],
            "target": [2, 1, 0, 0, 1],
            "cents": [5, 7, 3, 3, 7],
            "transfers": [1, 1, 1, 1, 1],
        },
        schema_overrides={"period_start": pl.Date},
    )
    nodes = pl.DataFrame(
        {"idx": [0, 1, 2], "account_id": ["a", "b", "c"], "is_business": [True, False, True]}
    )
    ledger = Ledger(edges, nodes)
    for period in (date(2025, 1, 1), date(2025, 2, 1), None, date(2025, 3, 1)):
        wanted = edges.filter(
            pl.col("period_start").is_null() if period is None else pl.col("period_start") == period
        )
        graph, old = ledger.graph(period, "member")
        assert old.tolist() == sorted(set(wanted["source"]) | set(wanted["target"]))
        assert old[graph.source].tolist() == wanted["source"].to_list()
        assert old[graph.target].tolist() == wanted["target"].to_list()
        assert graph.cents.tolist() == wanted["cents"].to_list()
    business, old = ledger.graph(date(2025, 1, 1), "business")
    assert (old.tolist(), old[business.source].tolist()) == ([0, 2], [2])


def _marks(edges: EdgeList, components: npt.NDArray[np.int64] | None = None) -> list[bool]:
    marks = edges_on_short_cycles(edges, components=components)
    assert marks is not None
    return [bool(mark) for mark in marks]


def test_short_cycles_only_inside_strong_components() -> None:
    # Two triangles 0→1→2→0 and 3→4→5→3 joined one way by 2→3 (on no cycle), plus a
    # tail 5→6. Given or computed, the components lead to the same marks.
    edges = EdgeList.from_arrays(7, [0, 1, 2, 2, 3, 4, 5, 5], [1, 2, 0, 3, 4, 5, 3, 6], [1] * 8)
    expected = [True, True, True, False, True, True, True, False]
    components = strong_components(to_igraph(edges))
    assert _marks(edges, components) == expected
    assert _marks(edges) == expected
    # A 6-cycle is longer than 5: nothing marked, though it is one component.
    ring = EdgeList.from_arrays(6, range(6), [1, 2, 3, 4, 5, 0], [1] * 6)
    assert _marks(ring) == [False] * 6


def test_build_caps_duckdb_memory(tmp_path: Path) -> None:
    con = duckdb.connect()
    for layer in ("staging", "intermediate", "marts"):
        (tmp_path / layer).mkdir()
    run_models(con, tmp_path, {}, memory_limit="1GiB")
    assert con.execute("select current_setting('memory_limit')").fetchone() == ("1.0 GiB",)
    with pytest.raises(ConfigurationError, match="not a size DuckDB reads"):
        run_models(con, tmp_path, {}, memory_limit="1 GB'; drop table x; --")
