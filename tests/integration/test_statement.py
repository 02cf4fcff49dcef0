"""Period statements from a published warehouse: figures, files, stability, versions.

One small generated scheme (6,000 transactions over 200 days from 1 January 2025) is
published once for the module; tests that change data work on a copy of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.settings import Settings
from circulate.statement.figures import load_statement_figures, period_totals
from circulate.statement.period import Period
from tests.conftest import TEST_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECOND_QUARTER = Period(dt.date(2025, 4, 1), dt.date(2025, 6, 30))


@dataclass(frozen=True)
class Published:
    settings: Settings


def settings_under(root: Path) -> Settings:
    return Settings(
        inbox=root / "inbox",
        warehouse=root / "warehouse" / "circulate.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "keys" / "pseudonym.key",
    )


def publish(settings: Settings) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        pipeline.run_in_process(settings)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    settings = settings_under(tmp_path_factory.mktemp("statement-scheme"))
    generate_scheme(
        settings.inbox, seed=23, transactions=6_000, days=200, start=dt.date(2025, 1, 1)
    )
    publish(settings)
    yield Published(settings)


def test_period_sums_equal_the_daily_mart_summed_day_by_day(published: Published) -> None:
    with duckdb.connect(str(published.settings.warehouse), read_only=True) as con:
        totals = period_totals(con, SECOND_QUARTER, 5)
        days = con.execute(
            "select day, issued, redeemed, fees, transfer_volume, transfer_count, money_supply "
            "from marts.daily_circulation order by day"
        ).fetchall()
    inside = [d for d in days if SECOND_QUARTER.start <= d[0] <= SECOND_QUARTER.end]
    assert len(inside) == totals.days_with_data == 91
    assert totals.issued == sum((d[1] for d in inside), Decimal(0))
    assert totals.redeemed == sum((d[2] for d in inside), Decimal(0))
    assert totals.fees == sum((d[3] for d in inside), Decimal(0))
    assert totals.transfer_volume == sum((d[4] for d in inside), Decimal(0))
    assert totals.transfer_count == sum(d[5] for d in inside)
    before = [d for d in days if d[0] < SECOND_QUARTER.start]
    assert totals.supply_start == before[-1][6]
    assert totals.supply_end == inside[-1][6]
    # Conservation over the period: what came in minus what left is the change in supply.
    assert totals.supply_end - totals.supply_start == (
        totals.issued - totals.redeemed - totals.fees
    )
    mean = sum(float(d[6]) for d in inside) / len(inside)
    assert totals.velocity == pytest.approx(float(totals.transfer_volume) / mean)


def test_previous_period_is_the_same_length_just_before(published: Published) -> None:
    with duckdb.connect(str(published.settings.warehouse), read_only=True) as con:
        figures = load_statement_figures(con, SECOND_QUARTER, 5, replicates=50)
    assert figures.previous == Period(dt.date(2024, 12, 31), dt.date(2025, 3, 31))
    # The warehouse starts on 1 January: the previous period has one day without data.
    assert figures.previous_totals.days_with_data == 90
    assert figures.complete
    assert [m.isoformat() for m in figures.months["month"].to_list()] == [
        "2025-04-01",
        "2025-05-01",
        "2025-06-01",
    ]
    assert figures.scorecard["period_start"].n_unique() == 3
    lm = figures.multiplier
    assert 1.0 < lm.lm[2] <= lm.lm[3] <= lm.lm[4] <= lm.lm[5]
    assert lm.lm3_low is not None and lm.lm3_high is not None
    assert lm.lm3_low <= lm.lm[3] <= lm.lm3_high


def test_a_period_outside_the_warehouse_names_its_span(published: Published) -> None:
    with (
        duckdb.connect(str(published.settings.warehouse), read_only=True) as con,
        pytest.raises(ValueError, match=r"holds 2025-01-01 \.\. 2025-07-19"),
    ):
        load_statement_figures(con, Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), 5)
