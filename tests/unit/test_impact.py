"""Public-value scorecard, thresholds table and risk flags (circulate.metrics.impact)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl
import pytest

from circulate.errors import ConfigurationError
from circulate.metrics import impact
from circulate.metrics.impact import FlagRules, evaluate_flags, load_thresholds
from circulate.settings import Settings
from tests.conftest import run_stages, write_csv, write_export

MONTHS = [dt.date(2026, m, 1) for m in range(1, 7)]


def monthly(**columns: list[float | None]) -> pl.DataFrame:
    """A :func:`impact_build.monthly_values`-shaped frame of complete months, healthy by default."""
    n = len(MONTHS)
    base: dict[str, list[object]] = {
        "month": list(MONTHS),
        "period_complete": [True] * n,
        "lm3": [1.8] * n,
        "velocity": [0.9] * n,
        "leakage": [0.6] * n,
        "leakage_3m": [0.6] * n,
        "dormancy": [0.02] * n,
        "active_accounts": [100.0] * n,
        "receipts_top5_share": [0.3] * n,
        "fragility_top1": [0.1] * n,
        "public_flows": [500.0] * n,
        "gap_days": [0] * n,
        "validation_pass_rate": [None] * (n - 1) + [1.0],
    }
    base.update(columns)
    return pl.DataFrame(base)


# The six-month fixtures judge trends from the first month on (no launch period).
NO_WARMUP = FlagRules(warmup_months=0)


def raised(frame: pl.DataFrame, rules: FlagRules = NO_WARMUP) -> dict[dt.date, set[str]]:
    out: dict[dt.date, set[str]] = {}
    for flag in evaluate_flags(frame, rules):
        out.setdefault(flag.month, set())
        if flag.raised:
            out[flag.month].add(flag.key)
    return out


def test_healthy_months_raise_no_flag() -> None:
    assert all(not keys for keys in raised(monthly()).values())


def test_each_destruction_pattern_raises_its_flag_in_the_right_month() -> None:
    frame = monthly(
        leakage_3m=[0.9, 0.9, 1.0, 1.1, 1.2, 1.2],  # rises Feb→Mar→Apr→May by 0.3 to 1.2
        receipts_top5_share=[0.3, 0.3, 0.3, 0.3, 0.3, 0.55],
        active_accounts=[100.0, 100.0, 100.0, 100.0, 100.0, 79.0],
        public_flows=[500.0, 500.0, 500.0, 500.0, 500.0, 0.0],
        lm3=[2.0, 1.9, 1.8, 1.7, 1.8, 1.8],
        gap_days=[0, 0, 2, 0, 0, 0],
        validation_pass_rate=[None, None, None, None, None, 0.95],
    )
    flags = raised(frame)
    assert flags[MONTHS[2]] == {"data_gaps"}
    assert flags[MONTHS[3]] == {"multiplier_falling"}
    assert flags[MONTHS[4]] == {"leakage_rising"}
    assert flags[MONTHS[5]] == {
        "receipts_concentrated",
        "active_members_down",
        "public_flows_stopped",
        "validation_failed",
    }


def test_small_moves_and_incomplete_months_do_not_raise() -> None:
    # Leakage rises three months running but by only 0.03 in total; the last month is
    # incomplete, so its collapse in active members is not judged.
    frame = monthly(
        leakage_3m=[0.6, 0.6, 0.6, 0.61, 0.62, 0.63],
        active_accounts=[100.0, 100.0, 100.0, 100.0, 100.0, 10.0],
        period_complete=[True] * 5 + [False],
    )
    flags = raised(frame)
    assert MONTHS[5] not in flags
    assert all(not keys for keys in flags.values())


def test_dormancy_flag_needs_a_rise_and_a_level() -> None:
    rising_low = monthly(dormancy=[0.01, 0.01, 0.02, 0.03, 0.04, 0.05])
    rising_high = monthly(dormancy=[0.01, 0.01, 0.05, 0.08, 0.11, 0.14])
    assert "dormancy_rising" not in raised(rising_low)[MONTHS[5]]
    assert "dormancy_rising" in raised(rising_high)[MONTHS[5]]


def test_flag_evidence_names_numbers_and_chart() -> None:
    frame = monthly(receipts_top5_share=[0.3] * 5 + [0.62])
    flag = next(
        f
        for f in evaluate_flags(frame, FlagRules())
        if f.month == MONTHS[5] and f.key == "receipts_concentrated"
    )
    assert flag.raised and flag.chart == "concentration"
    assert "62.0 %" in flag.evidence and "30.0 %" in flag.evidence


def test_launch_months_do_not_judge_trends() -> None:
    # Leakage climbs as a new scheme's first redemptions arrive, then settles; the launch
    # rise is not a decline. The same climb after the launch is one.
    launch = monthly(leakage_3m=[0.4, 0.7, 1.0, 1.3, 1.3, 1.3])
    assert all(not keys for keys in raised(launch, FlagRules()).values())
    assert "leakage_rising" in raised(launch)[MONTHS[3]]
    later = monthly(leakage_3m=[0.9, 0.9, 0.9, 1.0, 1.1, 1.2])
    assert "leakage_rising" not in raised(later, FlagRules())[MONTHS[5]]  # window starts in Apr
    assert "leakage_rising" in raised(later, FlagRules(warmup_months=2))[MONTHS[5]]


def test_maturing_leakage_below_the_level_is_not_a_flag() -> None:
    # Redemptions catching up with top-ups: leakage climbs but stays under 1.
    maturing = monthly(leakage_3m=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    assert all(not keys for keys in raised(maturing).values())
    lower_level = FlagRules(warmup_months=0, leakage_level=0.75)
    assert "leakage_rising" in raised(maturing, lower_level)[MONTHS[3]]


def test_concentration_flag_needs_a_shift_not_only_a_level() -> None:
    always_high = monthly(receipts_top5_share=[0.7, 0.72, 0.69, 0.71, 0.7, 0.74])
    assert all(not keys for keys in raised(always_high).values())
    too_early = monthly(receipts_top5_share=[0.3, 0.3, 0.62, 0.3, 0.3, 0.3])
    assert "receipts_concentrated" not in raised(too_early)[MONTHS[2]]  # two months before
    takeover = monthly(receipts_top5_share=[0.4, 0.42, 0.41, 0.45, 0.51, 0.6])
    flags = raised(takeover)
    assert "receipts_concentrated" not in flags[MONTHS[4]]  # above 50 % but 0.095 over median
    assert "receipts_concentrated" in flags[MONTHS[5]]


def test_thresholds_file_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    edited = tmp_path / "thresholds.toml"
    edited.write_text("[indicators.lm3]\nwatch = 1.7\n\n[flags]\ntrend_periods = 2\n")
    table = load_thresholds(edited)
    assert table.indicators["lm3"].watch == 1.7
    assert table.indicators["lm3"].destroying == 1.2  # kept from the shipped table
    assert table.flags.trend_periods == 2
    assert table.source == str(edited)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[indicators.lm4]\nwatch = 1\n", "not an indicator"),
        ("[indicators.lm3]\nwatch = 'high'\n", "is not a number"),
        ("[indicators.lm3]\nwatch = 1.0\ndestroying = 1.4\n", "must lie at or below watch"),
        ("[indicators.leakage]\nbetter = 'more'\n", 'use "higher" or'),
        ("[flags]\ntrend_periods = 1.5\n", "whole number"),
        ("[flags]\nsurprise = 1\n", "not a flag setting"),
        ("[indicators.lm3\n", "not valid TOML"),
    ],
)
def test_bad_thresholds_name_the_file_and_setting(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_thresholds(path)
    assert str(path) in str(caught.value)


def test_missing_thresholds_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CIRCULATE_IMPACT_THRESHOLDS"):
        load_thresholds(tmp_path / "absent.toml")


def test_scorecard_change_basis_judges_relative_change() -> None:
    values = monthly(active_accounts=[100.0, 100.0, 100.0, 100.0, 85.0, 70.0]).with_columns(
        pl.col("active_accounts").alias("active_members")
    )
    for name in impact.VALUE_COLUMN.values():
        if name not in values.columns:
            values = values.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    values = values.with_columns(pl.col("month").dt.month_end().alias("period_end"))
    rows = impact.scorecard_rows(values, load_thresholds()).filter(
        pl.col("indicator") == "active_members"
    )
    assert rows["status"].to_list() == [
        "no data", "creating value", "creating value", "creating value", "watch",
        "watch",  # 85 → 70 is −17.6 %: past −10 %, not yet −20 %
    ]  # fmt: skip
    assert "−15.0 % on the month before" in rows["explanation"][4]


def test_scorecard_on_the_hand_ledger(published: Settings) -> None:
    """January 2025 of the six-row ledger, by hand (tests/unit/test_marts.py)."""
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        card = con.sql("select * from marts.impact_scorecard").pl()
        flags = con.sql("select * from marts.risk_flags").pl()
        table = con.sql("select * from marts.impact_thresholds").pl()
    assert card["indicator"].to_list() == list(impact.INDICATOR_KEYS)
    value = dict(zip(card["indicator"], card["value"], strict=True))
    # Issued 150, redeemed 25, transfers 30 + 20.
    assert value["full_multiplier"] == pytest.approx(200 / 150)
    assert value["leakage"] == pytest.approx(25 / 150)
    # Two individuals pay: fewer than k = 5, so marts.spend_breakdown hides their share.
    assert value["local_business_share"] is None
    # One business sector takes every receipt; no public body trades; nothing reversed.
    assert value["sector_mix"] == pytest.approx(1.0)
    assert value["anchor_institutions"] == 0
    assert value["reversal_rate"] == 0
    # Three active accounts in two areas: fewer than k = 5 in each, so no area counts.
    assert value["area_reach"] == 0
    assert value["validation_pass_rate"] == 1.0
    # The month is not complete (6–8 January only): the card still shows it, flags do not judge.
    assert card["period_complete"].to_list() == [False] * len(card)
    assert set(flags["flag"]) == set(impact.FLAG_KEYS)
    assert len(table.filter(pl.col("kind") == "indicator")) == len(impact.INDICATORS)


def test_area_reach_and_anchors_count_each_account_once_a_month(settings: Settings) -> None:
    """k = 3. In January ANN pays SHOP twice, BEN and CAT once; SHOP pays the COUNCIL,
    which pays DAN twice. Easton has 4 active accounts (ANN, BEN, CAT, SHOP), Bedminster 2
    (COUNCIL, DAN): one of the two areas reaches k, area_reach = 0.5. Counting transfer
    legs instead of accounts would give Bedminster 5 and a reach of 1. One public body
    traded: anchor_institutions = 1, not its 3 legs."""
    settings = replace(settings, k_anonymity=3)
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        [
            ("ISSUER", "issuer", "", "", "2024-12-01"),
            ("ANN", "individual", "", "Easton", "2024-12-01"),
            ("BEN", "individual", "", "Easton", "2024-12-01"),
            ("CAT", "individual", "", "Easton", "2024-12-01"),
            ("SHOP", "business", "retail", "Easton", "2024-12-01"),
            ("COUNCIL", "public_body", "", "Bedminster", "2024-12-01"),
            ("DAN", "individual", "", "Bedminster", "2024-12-01"),
        ],
    )
    write_export(
        settings,
        "2025-01-06.csv",
        [
            ("A1", "2025-01-06T09:00:00Z", "ISSUER", "ANN", "10.00", "issuance", "app"),
            ("A2", "2025-01-06T09:01:00Z", "ISSUER", "BEN", "10.00", "issuance", "app"),
            ("A3", "2025-01-06T09:02:00Z", "ISSUER", "CAT", "10.00", "issuance", "app"),
            ("A4", "2025-01-06T10:00:00Z", "ANN", "SHOP", "1.00", "transfer", "card"),
            ("A5", "2025-01-06T10:01:00Z", "ANN", "SHOP", "1.00", "transfer", "card"),
            ("A6", "2025-01-06T10:02:00Z", "BEN", "SHOP", "1.00", "transfer", "card"),
            ("A7", "2025-01-06T10:03:00Z", "CAT", "SHOP", "1.00", "transfer", "card"),
            ("A8", "2025-01-06T11:00:00Z", "SHOP", "COUNCIL", "2.00", "transfer", "app"),
            ("A9", "2025-01-06T12:00:00Z", "COUNCIL", "DAN", "0.50", "transfer", "app"),
            ("A10", "2025-01-06T12:01:00Z", "COUNCIL", "DAN", "0.50", "transfer", "app"),
        ],
    )
    run_stages(settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        value = dict(
            con.execute(
                "select indicator, value from marts.impact_scorecard "
                "where indicator in ('area_reach', 'anchor_institutions')"
            ).fetchall()
        )
    assert value == {"area_reach": 0.5, "anchor_institutions": 1.0}
