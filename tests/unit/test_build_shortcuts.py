"""The build's shortcuts give exactly what the plain computations give.

Dormancy without the account × day grid, the bootstrap summing drawn integers, one split
of the network edges into periods, the cycle search restricted to strongly connected
components, month network rows reused from the previous snapshot and whole-history ones
until a month closes, ledger tables extended by each night's batch and DuckDB's memory cap
in every stage of a run.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from circulate import pipeline
from circulate.errors import ConfigurationError
from circulate.metrics import flow_cells, network, period_activity
from circulate.metrics.circulation import BOOTSTRAP_SEED, bootstrap_ratio_interval
from circulate.metrics.network import Ledger
from circulate.metrics.network_graph import (
    EdgeList,
    edges_on_short_cycles,
    strong_components,
    to_igraph,
)
from circulate.settings import Settings
from circulate.warehouse.runner import run_models
from tests.conftest import run_stages, settings_in, write_csv, write_export
from tests.unit.test_circulation_metrics import built_warehouse, row

ACCOUNT_HEADER = ("account_id", "account_type", "sector", "area", "joined_at")

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
    # Small whole numbers are summed as 32-bit pairs: still the same interval.
    small = rng.integers(1, 10_000, 501).astype(np.float64)
    varied = small * rng.integers(1, 4, 501)
    low, high = bootstrap_ratio_interval(varied, small, replicates=50) or (0.0, 0.0)
    assert (low, high) == _bootstrap_by_weights(varied, small, 50) and low < high
    # Fractions take the weighted path: same draws, so still the same interval.
    assert bootstrap_ratio_interval(num / 3, den, replicates=50) == _bootstrap_by_weights(
        num / 3, den, 50
    )


def test_periods_split_from_unsorted_edges_match_a_filter() -> None:
    jan, feb = date(2025, 1, 1), date(2025, 2, 1)
    edges = pl.DataFrame(
        {
            "period_start": [feb, jan, feb, jan],
            "source": [1, 2, 2, 0],
            "target": [2, 0, 0, 1],
            "cents": [5, 3, 4, 7],
            "transfers": [1, 1, 2, 1],
        },
        schema_overrides={"period_start": pl.Date},
    )
    nodes = pl.DataFrame(
        {"idx": [0, 1, 2], "account_id": ["a", "b", "c"], "is_business": [True, False, True]}
    )
    ledger = Ledger(edges, nodes)
    # The whole history is summed from the months: the same as a group-by of all rows.
    whole = (
        edges.group_by("source", "target")
        .agg(pl.col("cents").sum(), pl.col("transfers").sum())
        .sort("source", "target")
    )
    for period in (jan, feb, None, date(2025, 3, 1)):
        wanted = whole if period is None else edges.filter(pl.col("period_start") == period)
        graph, old = ledger.graph(period, "member")
        assert old.tolist() == sorted(set(wanted["source"]) | set(wanted["target"]))
        assert old[graph.source].tolist() == wanted["source"].to_list()
        assert old[graph.target].tolist() == wanted["target"].to_list()
        assert graph.cents.tolist() == wanted["cents"].to_list()
        assert graph.count.tolist() == wanted["transfers"].to_list()
    business, old = ledger.graph(jan, "business")
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


# Three months of trade between two people and two businesses. The second night adds a
# March day on which a newcomer, AAA, whose id sorts before everyone's, pays CAFE.
MONTHS_EXPORTS = {
    "2025-01-03.csv": [
        ("M1", "2025-01-03T09:00:00Z", "ISSUER", "ANN", "100.00", "issuance", "app"),
        ("M2", "2025-01-03T10:00:00Z", "ISSUER", "BEN", "100.00", "issuance", "app"),
        ("M3", "2025-01-03T11:00:00Z", "ANN", "CAFE", "20.00", "transfer", "app"),
        ("M4", "2025-01-03T12:00:00Z", "CAFE", "DELI", "10.00", "transfer", "app"),
        ("M5", "2025-01-03T13:00:00Z", "DELI", "CAFE", "5.00", "transfer", "app"),
    ],
    "2025-02-04.csv": [
        ("M6", "2025-02-04T09:00:00Z", "BEN", "DELI", "30.00", "transfer", "app"),
        ("M7", "2025-02-04T10:00:00Z", "DELI", "BEN", "4.00", "transfer", "app"),
        ("M8", "2025-02-04T11:00:00Z", "CAFE", "DELI", "6.00", "transfer", "app"),
    ],
    "2025-03-05.csv": [
        ("M9", "2025-03-05T09:00:00Z", "ANN", "BEN", "7.00", "transfer", "app"),
        ("M10", "2025-03-05T10:00:00Z", "DELI", "CAFE", "8.00", "transfer", "app"),
    ],
}
NEXT_DAY = {
    "2025-03-20.csv": [
        ("M11", "2025-03-20T09:00:00Z", "ISSUER", "AAA", "50.00", "issuance", "app"),
        ("M12", "2025-03-20T10:00:00Z", "AAA", "CAFE", "12.00", "transfer", "app"),
        ("M13", "2025-03-20T11:00:00Z", "CAFE", "AAA", "2.00", "transfer", "app"),
    ]
}
MONTHS_ACCOUNTS = [
    ("ISSUER", "issuer", "", "", "2024-12-01"),
    ("AAA", "individual", "", "", "2025-03-01"),
    ("ANN", "individual", "", "", "2024-12-01"),
    ("BEN", "individual", "", "", "2024-12-01"),
    ("CAFE", "business", "food & drink", "", "2024-12-01"),
    ("DELI", "business", "food & drink", "", "2024-12-01"),
]


def _rows(settings: Settings, query: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return con.execute(query).fetchall()


def _network_summary(settings: Settings) -> list[tuple[object, ...]]:
    return _rows(settings, "from marts.network_summary order by scope, period_kind, period_start")


#: Tables a night extends with its own batch instead of rebuilding (ids and batch ids
#: aside, which differ between two warehouses that loaded the same rows in other runs).
APPENDED = {
    "staging.transactions": "txn_id, occurred_at, local_day, source_id, target_id, amount, kind",
    "intermediate.account_movements": "txn_id, local_day, kind, account_id, delta",
    "intermediate.member_transfers": "txn_id, local_day, source_id, target_id, amount",
}
# What the money tracer writes, resumed or replayed from the first entry.
TRACED = {
    "intermediate.issuance_reach": "*",
    "intermediate.money_trajectories": "*",
    "intermediate.holding_spells": "*",
    "intermediate.trace_checkpoint_lots": "*",
    "intermediate.trace_checkpoint_issuances": "*",
    "intermediate.trace_checkpoint": (
        "* exclude (resumed_from_rows, staging_batches, staging_batches_digest)"
    ),
}
RESUMED = "select resumed_from_rows, rows_replayed from intermediate.trace_checkpoint"


def _same_tables(one: Settings, other: Settings, tables: dict[str, str]) -> None:
    for table, columns in tables.items():
        query = f"select {columns} from {table} order by all"
        mine, theirs = _rows(one, query), _rows(other, query)
        if mine != theirs:
            with duckdb.connect(str(one.warehouse), read_only=True) as con:
                names = [d[0] for d in con.execute(query).description or []]
            differ = [
                name
                for i, name in enumerate(names)
                if [r[i] for r in mine] != [r[i] for r in theirs]
            ]
            pytest.fail(f"{table}: {len(mine)} rows against {len(theirs)}; columns {differ}")


def test_a_night_recomputes_only_what_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def settings_with_accounts(root: Path) -> Settings:
        settings = settings_in(root)
        write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
        return settings

    analysed: list[int] = []  # edges of each graph analysed for network_summary
    summary_row = network._summary_row

    def counting(ledger: Ledger, edges: EdgeList, *args: Any, **kwargs: Any) -> dict[str, Any]:
        analysed.append(edges.m)
        return summary_row(ledger, edges, *args, **kwargs)

    monkeypatch.setattr(network, "_summary_row", counting)

    # An export every day (a missing day blocks the batch), most of them empty.
    first_night = {f"{date(2025, 1, 1) + timedelta(days=d)}.csv": [] for d in range(78)}
    first_night.update(MONTHS_EXPORTS)
    nightly = settings_with_accounts(tmp_path / "nightly")
    scratch = settings_with_accounts(tmp_path / "scratch")
    for name, rows in first_night.items():
        write_export(nightly, name, rows)
    run_stages(nightly)
    assert len(analysed) == 2 * 4  # member and business: three months and the whole history
    for name, rows in NEXT_DAY.items():
        write_export(nightly, name, rows)
    analysed.clear()
    run_stages(nightly)
    # March of the member scope only. January and February are reused, March of the
    # business scope too (AAA is no business), and both whole histories: they end with
    # February, the latest complete month, on both nights.
    assert analysed == [4]

    for name, rows in {**first_night, **NEXT_DAY}.items():
        write_export(scratch, name, rows)
    run_stages(scratch)
    assert _network_summary(nightly) == _network_summary(scratch)
    _same_tables(nightly, scratch, APPENDED)
    # The tracer resumed from the first night's 10 entries and replayed the 3 new ones.
    assert _rows(nightly, RESUMED) == [(10, 13)]
    assert _rows(scratch, RESUMED) == [(0, 13)]
    _same_tables(nightly, scratch, TRACED)
    # Each night's batch was appended once and kept: a rebuild would stamp both anew.
    stamps = "select count(distinct appended_at) from audit.appended_batches group by table_name"
    assert _rows(nightly, stamps) == [(2,)] * len(APPENDED)
    # March's member graph: ANN→BEN, DELI→CAFE, AAA⇄CAFE.
    march = _rows(
        nightly,
        "select nodes, edges from marts.network_summary "
        "where (scope, period_kind, period_start) = ('member', 'month', date '2025-03-01')",
    )
    assert march == [(5, 4)]


def test_every_stage_of_a_run_caps_duckdb_memory(settings: Settings) -> None:
    # Uncapped, validating a 10 M-row first batch took the run to 3.9 GiB before the build.
    ctx = pipeline.begin_run(settings)
    try:
        with pipeline._open_build(ctx) as con:
            limit = con.execute("select current_setting('memory_limit')").fetchall()
        assert limit == [("2.0 GiB",)]
    finally:
        pipeline.skip_publish(ctx)


def test_the_tracer_replays_everything_when_a_night_is_no_continuation(tmp_path: Path) -> None:
    """A late entry, or changed issuer accounts, make the stored state a state of another
    ledger: the build replays from the first entry and still equals a build from scratch."""
    late = ("L1", "2025-03-04T12:00:00Z", "BEN", "DELI", "1.00", "transfer", "app")
    nights = [
        {f"{date(2025, 1, 1) + timedelta(days=d)}.csv": [] for d in range(78)} | MONTHS_EXPORTS,
        {"2025-03-20.csv": [*NEXT_DAY["2025-03-20.csv"], late]},  # sorts before M9
        {
            "2025-03-21.csv": [
                ("L2", "2025-03-21T09:00:00Z", "AAA", "ANN", "1.00", "transfer", "app")
            ]
        },
    ]
    # On the third night of "issuers" a second issuer account is listed: the issuer
    # accounts decide what circulates, so the tracer replays from the first entry.
    vault = [*MONTHS_ACCOUNTS, ("VAULT", "issuer", "", "", "2025-03-01")]
    resumed: dict[str, list[tuple[object, ...]]] = {}
    built: dict[str, Settings] = {}
    for folder in ("nightly", "issuers", "scratch", "scratch-issuers"):
        settings = built[folder] = settings_in(tmp_path / folder)
        write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
        for number, night in enumerate(nights):
            if folder.endswith("issuers") and number == 2:
                write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, vault)
            for name, rows in night.items():
                write_export(settings, name, rows)
            if not folder.startswith("scratch") or number == 2:
                run_stages(settings)
                resumed.setdefault(folder, []).append(_rows(settings, RESUMED)[0])
    # Night 2 holds a late entry; night 3 continues night 2 and resumes from it.
    assert resumed["nightly"] == [(0, 10), (0, 14), (14, 15)]
    assert resumed["issuers"] == [(0, 10), (0, 14), (0, 15)]
    _same_tables(built["nightly"], built["scratch"], TRACED)
    _same_tables(built["issuers"], built["scratch-issuers"], TRACED)


def test_a_full_rebuild_reuses_nothing_and_gives_the_same_tables(tmp_path: Path) -> None:
    """Two nights, then `circulate run --full` with no new export: every built table is
    computed again from the loaded rows (the tracer replays from the first entry, the
    appended tables are rebuilt) and equals what the nights built."""
    nightly = settings_in(tmp_path / "nightly")
    write_csv(nightly.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    first_night = {f"{date(2025, 1, 1) + timedelta(days=d)}.csv": [] for d in range(78)}
    first_night.update(MONTHS_EXPORTS)
    for name, rows in first_night.items():
        write_export(nightly, name, rows)
    run_stages(nightly)
    for name, rows in NEXT_DAY.items():
        write_export(nightly, name, rows)
    run_stages(nightly)
    before = tmp_path / "before.duckdb"
    shutil.copy(nightly.warehouse, before)
    stamps = "select min(appended_at) from audit.appended_batches"
    [(appended_before,)] = _rows(nightly, stamps)

    summary = pipeline.run_in_process(nightly, full=True)

    assert summary.files_new == 0
    assert _rows(nightly, RESUMED) == [(0, 13)], "the tracer replayed from the first entry"
    [(appended_after,)] = _rows(nightly, stamps)
    assert appended_after > appended_before, "the appended tables were rebuilt"
    kept = dataclasses.replace(nightly, warehouse=before)
    _same_tables(nightly, kept, {**APPENDED, **TRACED})
    assert _network_summary(nightly) == _network_summary(kept)
    with duckdb.connect(str(nightly.warehouse), read_only=True) as con:
        marts = [
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        ]
    _same_tables(nightly, kept, {f"marts.{name}": "*" for name in marts})


# Five nights over three months, from the scheme's first day (1 January, so January can be
# complete). Night 3 adds a February day between individuals, night 5 a March day and an
# entry dated 20 January, a month already closed.
CLOSES_NIGHTS: list[tuple[date, list[tuple[str, ...]]]] = [
    (
        date(2025, 1, 20),
        [
            ("N1", "2025-01-01T09:00:00Z", "ISSUER", "ANN", "100.00", "issuance", "app"),
            ("N2", "2025-01-01T10:00:00Z", "ISSUER", "BEN", "100.00", "issuance", "app"),
            ("N3", "2025-01-01T11:00:00Z", "ANN", "CAFE", "20.00", "transfer", "app"),
            ("N4", "2025-01-10T09:00:00Z", "CAFE", "DELI", "10.00", "transfer", "app"),
            ("N5", "2025-01-10T10:00:00Z", "DELI", "CAFE", "5.00", "transfer", "app"),
        ],
    ),
    (
        date(2025, 2, 10),
        [
            ("N6", "2025-02-04T09:00:00Z", "BEN", "DELI", "30.00", "transfer", "app"),
            ("N7", "2025-02-04T10:00:00Z", "DELI", "BEN", "4.00", "transfer", "app"),
        ],
    ),
    (date(2025, 2, 20), [("N8", "2025-02-15T09:00:00Z", "ANN", "BEN", "3.00", "transfer", "app")]),
    (date(2025, 3, 2), [("N9", "2025-02-25T09:00:00Z", "CAFE", "DELI", "6.00", "transfer", "app")]),
    (
        date(2025, 3, 10),
        [
            ("N10", "2025-03-05T09:00:00Z", "DELI", "CAFE", "8.00", "transfer", "app"),
            ("N11", "2025-01-20T12:00:00Z", "BEN", "CAFE", "2.00", "transfer", "app"),
        ],
    ),
]


def closes_nights(settings: Settings, nights: int = len(CLOSES_NIGHTS)) -> Iterator[int]:
    """Write the first ``nights`` of CLOSES_NIGHTS into the inbox, one night at a time (an
    export every day, each entry in its night's last one); yield each night's number
    before the caller runs it."""
    day = date(2025, 1, 1)
    for number, (last_day, rows) in enumerate(CLOSES_NIGHTS[:nights]):
        while day <= last_day:
            write_export(settings, f"{day}.csv", rows if day == last_day else [])
            day += timedelta(days=1)
        yield number


def count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[bool]:
    """A list that gains an entry each time ``module.name`` is called."""
    calls: list[bool] = []
    function = getattr(module, name)

    def counting(*args: Any) -> Any:
        calls.append(True)
        return function(*args)

    monkeypatch.setattr(module, name, counting)
    return calls


def count_kept_periods(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that gains an entry each time a build keeps the closed periods' activity."""
    return count_calls(monkeypatch, period_activity, "compute_open_periods")


FLOW_TABLES = {
    "marts.sector_flows": "*",
    "marts.area_flows": "*",
    flow_cells.CELLS: "*",
    flow_cells.PAIR_ACCOUNTS: "*",
}
NETWORK_TABLES = {
    "marts.network_nodes": "*",
    "marts.network_summary": "*",
    network.FINGERPRINTS: "*",
}


def test_whole_history_network_is_recomputed_at_month_close_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole-history network rows are those of the latest complete month: a night
    analyses the whole-history graph only when a month closes or an entry lands in a
    closed month. Five nights across two month closes and a late entry into a closed
    month leave every built table equal to `circulate run --full` on the same files."""
    whole_history_graphs: list[str] = []  # scopes of each whole-history graph built
    graph = Ledger.graph

    def counting(ledger: Ledger, period: date | None, scope: str) -> tuple[EdgeList, Any]:
        if period is None:
            whole_history_graphs.append(scope)
        return graph(ledger, period, scope)

    monkeypatch.setattr(Ledger, "graph", counting)
    nightly = settings_in(tmp_path / "nightly")
    write_csv(nightly.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    as_of_query = (
        "select distinct as_of_day from marts.network_summary where period_kind = 'all' "
        "union select distinct as_of_day from marts.network_nodes"
    )
    built, as_of = [], []
    for _night in closes_nights(nightly):
        whole_history_graphs.clear()
        run_stages(nightly)
        built.append(bool(whole_history_graphs))
        as_of.append(_rows(nightly, as_of_query))
    # Night 1: no month complete, the data so far; 2: January closes; 3: mid-February;
    # 4: February closes; 5: a late entry into January.
    assert built == [True, True, False, True, True]
    assert as_of == [
        [(date(2025, 1, 20),)],
        [(date(2025, 1, 31),)],
        [(date(2025, 1, 31),)],
        [(date(2025, 2, 28),)],
        [(date(2025, 2, 28),)],
    ]
    # The whole history holds January and February (N11 included), not March's N10.
    whole = "select volume, transfer_count from marts.network_summary where period_kind = 'all'"
    assert _rows(nightly, whole + " and scope = 'member'") == [(Decimal("80.00"), 8)]
    kept = dataclasses.replace(nightly, warehouse=tmp_path / "nights.duckdb")
    shutil.copy(nightly.warehouse, kept.warehouse)

    whole_history_graphs.clear()
    pipeline.run_in_process(nightly, full=True)

    assert set(whole_history_graphs) == {"member", "business"}, "nothing was reused"
    _same_tables(nightly, kept, NETWORK_TABLES)
    # Every built table, not only the network's: the nights equal the rebuild.
    _same_tables(nightly, kept, _every_built_table(nightly))


#: Columns that say how a table was built rather than what it holds.
HOW_BUILT = {
    "intermediate.trace_checkpoint": TRACED["intermediate.trace_checkpoint"],
    # The batches a cut covered (the night it was made) and their append times.
    "intermediate.balance_checkpoint_cut": "* exclude (batches, batches_digest)",
    "intermediate.period_activity_cut": "* exclude (batches, batches_digest)",
    "intermediate.network_cut": "* exclude (batches, batches_digest)",
    "intermediate.flow_cells_cut": "* exclude (batches, batches_digest)",
}
#: Rows that follow the run history (audit.runs), which a rebuild extends by its own run.
OF_THE_RUNS = {"marts.impact_scorecard": "indicator <> 'run_success'"}


def test_every_night_equals_a_full_rebuild_of_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each of the five nights (two month closes, mid-month nights reusing closed
    periods, a late entry), a copy of the warehouse rebuilt with `--full` holds the same
    tables: what a night reuses is what it would compute."""
    kept = count_kept_periods(monkeypatch)
    open_months = count_calls(monkeypatch, network, "build_open_months")
    flow_cells_made = count_calls(monkeypatch, flow_cells, "keep_closed_months")
    nightly = settings_in(tmp_path / "nightly")
    write_csv(nightly.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    reused, network_reused, flows_reused = [], [], []
    for number in closes_nights(nightly):
        kept.clear()
        open_months.clear()
        flow_cells_made.clear()
        run_stages(nightly)
        reused.append(bool(kept))
        network_reused.append(bool(open_months))
        flows_reused.append(not flow_cells_made)
        rebuilt = dataclasses.replace(nightly, warehouse=tmp_path / f"full-{number}" / "w.duckdb")
        rebuilt.warehouse.parent.mkdir()
        shutil.copy(nightly.warehouse, rebuilt.warehouse)
        pipeline.run_in_process(rebuilt, full=True)
        _same_tables(nightly, rebuilt, _every_built_table(nightly))
    # Night 3 (20 February) is the mid-month night: January's periods were kept, the
    # network read only February's transfers and the flows counted only February's.
    assert reused == [False, False, True, False, False]
    assert network_reused == reused
    assert flows_reused == reused


def test_an_account_turning_business_makes_the_night_read_every_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ANN paid CAFE in January, a closed month. Listed as a food business on the
    mid-February night, it adds that payment to January's business graph and moves it from
    the individual to the food & drink row of the sector flows: the network reads every
    month instead of the open one, the flows count January again, and the night equals a
    full rebuild."""
    open_months = count_calls(monkeypatch, network, "build_open_months")
    flow_cells_made = count_calls(monkeypatch, flow_cells, "keep_closed_months")
    nightly = settings_in(tmp_path / "nightly")
    write_csv(nightly.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    for number in closes_nights(nightly, nights=3):
        if number == 2:
            ann = ("ANN", "business", "food & drink", "", "2024-12-01")
            accounts = [ann if row[0] == "ANN" else row for row in MONTHS_ACCOUNTS]
            write_csv(nightly.inbox / "accounts.csv", ACCOUNT_HEADER, accounts)
        run_stages(nightly)
    assert open_months == []
    assert len(flow_cells_made) == 3
    january = (
        "select nodes, volume from marts.network_summary where (scope, period_kind, "
        "period_start) = ('business', 'month', date '2025-01-01')"
    )
    assert _rows(nightly, january) == [(3, Decimal("35.00"))]  # ANN→CAFE, CAFE⇄DELI
    rebuilt = dataclasses.replace(nightly, warehouse=tmp_path / "full" / "w.duckdb")
    rebuilt.warehouse.parent.mkdir()
    shutil.copy(nightly.warehouse, rebuilt.warehouse)
    pipeline.run_in_process(rebuilt, full=True)
    _same_tables(nightly, rebuilt, NETWORK_TABLES | FLOW_TABLES)


def _every_built_table(settings: Settings) -> dict[str, str]:
    """Every table of the built layers (staging, intermediate, marts), all columns but
    those of ``HOW_BUILT``, all rows but those of ``OF_THE_RUNS``."""
    tables = _rows(
        settings,
        "select schema_name || '.' || table_name from duckdb_tables() "
        "where schema_name in ('staging', 'intermediate', 'marts') order by 1",
    )
    names = {str(table) for (table,) in tables}
    assert {"marts.circulation_metrics", "intermediate.issuance_reach"} <= names
    return {
        f"(from {table} where {OF_THE_RUNS[table]})" if table in OF_THE_RUNS else table: (
            HOW_BUILT.get(table, "*")
        )
        for table in names
    }


def test_a_closed_month_without_transfers_gives_an_empty_whole_history(tmp_path: Path) -> None:
    """January, complete, holds only issuance: the whole history (as of 31 January) has no
    transfer, while February's do count in its month rows (run_stages runs the network
    assertions, which compare both with the ledger up to the as-of day)."""
    settings = settings_in(tmp_path / "launch")
    write_csv(settings.inbox / "accounts.csv", ACCOUNT_HEADER, MONTHS_ACCOUNTS)
    for offset in range(41):  # 1 January .. 10 February
        write_export(settings, f"{date(2025, 1, 1) + timedelta(days=offset)}.csv", [])
    write_export(settings, "2025-01-01.csv", CLOSES_NIGHTS[0][1][:2])
    write_export(settings, "2025-02-10.csv", CLOSES_NIGHTS[1][1])
    run_stages(settings)
    assert _rows(
        settings,
        "select period_kind, as_of_day, nodes, volume from marts.network_summary "
        "where scope = 'member' order by period_kind",
    ) == [
        ("all", date(2025, 1, 31), 0, Decimal("0.00")),
        ("month", None, 2, Decimal("34.00")),
    ]
    assert _rows(settings, "select count(*) from marts.network_nodes") == [(0,)]
