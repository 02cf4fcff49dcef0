"""``circulate metrics``: the published circulation mart as JSON, read-only.

The warehouse is the ten-row hand ledger of tests/unit/test_circulation_metrics.py (its
docstring works every figure out, FIFO and LIFO): issued 190, transfers 250 in 4,
M = 440 / 190, LM3 = 440 / 190, velocity = 750 / 425, leakage = 90 / 190.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from circulate.settings import Settings
from tests.conftest import write_csv, write_export
from tests.unit.test_circulation_metrics import HAND_EXPORTS, build

pytestmark = pytest.mark.integration


def _circulate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "circulate"), *args]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def warehouse(settings: Settings, tmp_path: Path) -> Path:
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        [("ISSUER", "issuer", "", "", "2024-12-01")],
    )
    for name, rows in HAND_EXPORTS.items():
        write_export(settings, name, rows)
    published = tmp_path / "published.duckdb"
    shutil.copyfile(build(settings), published)
    return published


def test_metrics_json_whole_history_and_by_day(warehouse: Path, tmp_path: Path) -> None:
    done = _circulate("metrics", "--warehouse", str(warehouse), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    whole = json.loads(done.stdout)
    assert (whole["issued"], whole["redeemed"], whole["transfer_volume"]) == (
        "190.00",
        "90.00",
        "250.00",
    )
    assert whole["transfer_count"] == 4
    assert whole["policy"] == "fifo"
    assert whole["full_multiplier"] == pytest.approx(440 / 190)
    assert whole["lm2"] == pytest.approx(360 / 190)
    assert whole["lm3"] == pytest.approx(440 / 190)
    assert whole["mean_trajectory_length"] == pytest.approx(250 / 190)
    assert whole["mean_holding_days"] == pytest.approx(24_534_000 / 355 / 86_400)
    assert whole["velocity"] == pytest.approx(750 / 425)
    assert whole["leakage"] == pytest.approx(90 / 190)
    # No month is complete (6-8 January): the network's whole history is the data so far.
    assert whole["network_as_of_day"] == "2025-01-08"
    # ANN→CAFE (twice), CAFE→SHOP, BEN→SHOP; the reversal is no transfer.
    assert (whole["network_nodes"], whole["network_edges"]) == (4, 3)

    by_day = _circulate(
        "metrics", "--warehouse", str(warehouse), "--json", "--period", "day", cwd=tmp_path
    )
    assert by_day.returncode == 0, by_day.stderr
    days = json.loads(by_day.stdout)
    assert [d["period_start"] for d in days] == ["2025-01-06", "2025-01-07", "2025-01-08"]
    assert [d["issued"] for d in days] == ["140.00", "50.00", "0.00"]


def test_metrics_lifo_replays_the_published_ledger(warehouse: Path, tmp_path: Path) -> None:
    """LIFO by hand in tests/unit/test_circulation_metrics.py: the money issued on d2 makes
    2 transfers LIFO (LM3 = 3) against FIFO's 1.6; the flows are as published."""
    before = warehouse.read_bytes()
    done = _circulate(
        "metrics", "--warehouse", str(warehouse), "--json", "--period", "day",
        "--policy", "lifo", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    days = json.loads(done.stdout)
    assert [d["policy"] for d in days] == ["lifo"] * 3
    assert [d["lm3"] for d in days[:2]] == [pytest.approx(290 / 140), 3.0]
    assert [d["still_held"] for d in days] == ["95.00", "0.00", "0.00"]
    assert [d["issued"] for d in days] == ["140.00", "50.00", "0.00"]
    assert warehouse.read_bytes() == before  # read-only

    text = _circulate("metrics", "--warehouse", str(warehouse), "--policy", "lifo", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split() == ["policy", "lifo"]


def test_metrics_without_a_warehouse_says_what_to_do(tmp_path: Path) -> None:
    done = _circulate("metrics", "--warehouse", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert done.returncode == 2
    assert "circulate run" in done.stderr
