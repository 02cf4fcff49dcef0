"""The benchmark's naive baseline (bench/naive.py) computes the warehouse's own numbers.

A small generated scheme goes through ingestion and the model build; pandas + networkx
+ a plain FIFO then read the same export files. Money figures must be equal to the cent,
ratios equal to float precision, PageRank equal within networkx's convergence tolerance.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from bench import naive

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.ingest.pseudonym import pseudonymise
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow


def _rows(con: Any, query: str) -> list[dict[str, Any]]:
    cursor = con.execute(query)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """(naive metrics, warehouse marts) for one generated scheme of 4,000 transactions."""
    root = tmp_path_factory.mktemp("naive")
    truth = generate_scheme(
        root / "inbox", seed=17, transactions=4_000, days=70, start=date(2025, 3, 10)
    )
    settings = Settings(
        inbox=root / "inbox",
        warehouse=root / "warehouse" / "w.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "key",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        ctx = pipeline.begin_run(settings)
        pipeline.ingest_new_files(ctx)
        pipeline.build_models(ctx)
    con = connect(ctx.build, read_only=True)
    try:
        marts = {
            "monthly": _rows(con, "from marts.monthly_circulation order by month"),
            "metrics": _rows(
                con,
                "from marts.circulation_metrics where period_kind in ('month', 'all') "
                "order by period_kind, period_start",
            ),
            "network": _rows(
                con,
                "from marts.network_summary where scope = 'business' "
                "order by period_kind, period_start",
            ),
        }
    finally:
        con.close()
    return naive.headline_metrics(root / "inbox", truth.timezone), marts


def test_monthly_flows_supply_and_activity_are_equal(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    computed, marts = both
    months = [row for row in computed["circulation"] if row["month"] is not None]
    assert len(months) == len(marts["monthly"]) == 3  # 10 March to 18 May
    for mine, theirs in zip(months, marts["monthly"], strict=True):
        assert mine["month"] == f"{theirs['month']:%Y-%m}"
        for name in ("issued", "redeemed", "fees", "transfer_volume", "money_supply_end"):
            assert Decimal(f"{mine[name]:.2f}") == theirs[name], (mine["month"], name)
        assert mine["transfer_count"] == theirs["transfer_count"]
        assert mine["active_accounts"] == theirs["active_accounts"]


def test_velocity_multipliers_leakage_and_traced_lm3_are_equal(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    computed, marts = both
    # The mart lists 'all' first, then the months; the naive frame the months, then all.
    ordered = computed["circulation"][-1:] + computed["circulation"][:-1]
    assert len(ordered) == len(marts["metrics"])
    for mine, theirs in zip(ordered, marts["metrics"], strict=True):
        for name in ("velocity", "full_multiplier", "leakage", "lm3"):
            assert mine[name] == pytest.approx(theirs[name], rel=1e-9), (mine["month"], name)
        assert mine["active_accounts"] == theirs["active_accounts"]
        assert Decimal(f"{mine['mean_money_supply']:.2f}") == theirs["mean_money_supply"]
    assert 1 < ordered[0]["lm3"] < ordered[0]["full_multiplier"]


def test_business_network_pagerank_and_receipt_concentration_are_equal(
    both: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    computed, marts = both
    mine = computed["business_network"][-1:] + computed["business_network"][:-1]
    assert len(mine) == len(marts["network"]) == 4
    for row, theirs in zip(mine, marts["network"], strict=True):
        assert row["nodes"] == theirs["nodes"] > 10
        assert pseudonymise(row["top_hub"], TEST_KEY.encode()) == theirs["top_hub_id"]
        assert row["top_hub_pagerank"] == pytest.approx(theirs["top_hub_pagerank"], abs=1e-5)
        assert row["receipts_top5_share"] == pytest.approx(theirs["receipts_top5_share"], rel=1e-9)
