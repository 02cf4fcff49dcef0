"""The plain counts that let a clean night pass without importing Great Expectations.

Each check's expectation is also counted plainly (``Expected.unexpected_count``); a night
runs Great Expectations only when a count is not zero. These tests hold the plain counts to
Great Expectations' own on values chosen to sit on every edge (bounds, nulls, NaN,
infinities, repeats), and show a clean night stores the same results either way.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate import pipeline
from circulate.settings import Settings, ValidationThresholds
from circulate.validate.frames import BatchFrames, load_frames
from circulate.validate.run import run_checks
from circulate.validate.suites import Expected, batch_checks
from circulate.warehouse.connection import connect
from tests.conftest import HAND_ACCOUNTS, HAND_LEDGER, TEST_KEY, write_csv, write_export

THRESHOLDS = ValidationThresholds()
CHECKS = batch_checks(THRESHOLDS)
NAN, INF = math.nan, math.inf
CEILING = THRESHOLDS.amount_ceiling
TOLERANCE = THRESHOLDS.day_tolerance_hours
BAND = THRESHOLDS.band_factor

#: Every column a check reads, with values on each side of its rule: 14 rows.
TRANSACTIONS = pd.DataFrame(
    {
        "txn_id": ["a", "b", "b", None, "c", "d", "e", "f", "g", "h", "i", "j", "k", "a"],
        "occurred_at": pd.to_datetime(["2025-01-06T09:00:00Z"] * 13 + [None]),
        "source_id": ["p", None, *["p"] * 12],
        "target_id": [*["q"] * 13, None],
        "amount": [0.0, -1.0, 0.01, CEILING, CEILING + 0.01, NAN, INF, 5, 5, 5, 5, 5, 5, -INF],
        "kind": ["transfer", "gift", None, *["transfer"] * 10, "Transfer"],
        "hours_outside_export_day": [
            0.0,
            -0.0,
            -1e-9,
            TOLERANCE,
            TOLERANCE + 1e-9,
            NAN,
            INF,
            *[1.0] * 7,
        ],
        "source_account_type": ["individual", None, *["business"] * 12],
        "target_account_type": [None, None, *["business"] * 12],
        "issuance_from_issuer": [True, False, None, *[True] * 11],
        "outflow_to_issuer": [True, True, False, False, None, *[True] * 9],
        "issuer_role_problem": [None, "a transfer to an issuer", *[None] * 12],
        "payer_lowest_balance": [0.0, -0.01, NAN, 3.0, -INF, *[1.0] * 9],
        "source_file": ["exports/2025-01-06.csv"] * 14,
        "source_line": list(range(2, 16)),
        "export_day": ["2025-01-06"] * 14,
    }
)
FRAMES = {
    "schema": pd.DataFrame(
        {
            "column_name": ["txn_id", "amount", "kind"],
            "expected_type": ["VARCHAR", "DECIMAL(18,2)", "VARCHAR"],
            "actual_type": ["VARCHAR", "DOUBLE", None],
        }
    ),
    "transactions": TRANSACTIONS,
    "files": pd.DataFrame(
        {
            "files": [3],
            "files_unusable": [1],
            "unusable_files": ["a.csv"],
            "rows_in": [100],
            "rows_quarantined": [4],
            "quarantine_share": [THRESHOLDS.quarantine_warning],
            "top_reasons": ["[]"],
            "conflicts": [0],
            "conflict_files": ["[]"],
            "rows_duplicate": [9],
            "duplicate_share": [THRESHOLDS.duplicate_warning + 1e-9],
        }
    ),
    "days": pd.DataFrame(
        {
            "export_day": ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09"],
            "row_count": [10, 20, 30, 0],
            "median_rows": [10, 10, 10, 10],
            "row_ratio": [1 / BAND, BAND, BAND * 1.0001, NAN],
            "volume": [1.0, 2.0, 3.0, 0.0],
            "median_volume": [1.0, 1.0, 0.0, 0.0],
            "volume_ratio": [0.0, 1.0, INF, NAN],
        }
    ),
    "export_days": pd.DataFrame({"day": ["2025-01-06", "2025-01-07"], "files": [1, 0]}),
}


def _great_expectations_counts(frames: dict[str, pd.DataFrame]) -> dict[str, int | None]:
    """Each check's unexpected count, as Great Expectations reports it."""
    results = run_checks(
        BatchFrames(frames=frames, skip_reasons={}),
        CHECKS,
        run_id="r",
        batch_id="b",
        great_expectations=True,
    )
    return {r.expectation: r.unexpected_count for r in results}


def test_every_check_counts_edge_values_as_great_expectations_does() -> None:
    # run_checks itself stops on a plain count that differs from Great Expectations'.
    counts = _great_expectations_counts(FRAMES)
    plain = {c.name: c.expected.unexpected_count(FRAMES[c.frame]) for c in CHECKS}
    assert plain == counts
    # Hand counts: the edges fall where the expectations' rules put them.
    assert counts["contract_column_types"] == 2  # DOUBLE, and a missing column (None)
    assert counts["txn_id_unique"] == 4  # a, b twice each; None is not a repeat
    assert counts["amount_positive"] == 3  # 0.0, -1.0 and -inf; NaN is left out
    assert counts["amount_below_ceiling"] == 2  # ceiling + 0.01 and inf
    assert counts["kind_allowed"] == 2  # gift, Transfer (None is left out)
    assert counts["occurred_within_export_day"] == 3  # -1e-9, tolerance + 1e-9, inf
    assert counts["issuance_from_issuer"] == 1
    assert counts["outflow_to_issuer"] == 2
    assert counts["issuer_kind_consistent"] == 1
    assert counts["payer_never_overdrawn"] == 2  # -0.01 and -inf; NaN is left out
    assert counts["files_readable"] == 1
    assert counts["quarantine_share_warning"] == 0  # at the threshold is allowed
    assert counts["duplicate_share"] == 1
    assert counts["row_count_within_band"] == 1
    assert counts["volume_within_band"] == 2  # 0 and inf; NaN is left out
    assert counts["export_day_present"] == 1


finite_or_not = st.one_of(
    st.floats(min_value=-3, max_value=3, allow_nan=False),
    st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1.0]),
)


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(finite_or_not, min_size=1, max_size=12),
    labels=st.lists(
        st.one_of(st.none(), st.sampled_from(["x", "y", "z"])), min_size=12, max_size=12
    ),
)
def test_random_columns_count_as_in_great_expectations(
    values: list[float], labels: list[str | None]
) -> None:
    """Between (inclusive, strict, one-sided), in-set, unique and null on random columns."""
    rows = len(values)
    frame = pd.DataFrame({"value": values, "label": labels[:rows]})
    expectations = [
        Expected("ExpectColumnValuesToBeBetween", column="value", min_value=0),
        Expected("ExpectColumnValuesToBeBetween", column="value", min_value=0, strict_min=True),
        Expected("ExpectColumnValuesToBeBetween", column="value", min_value=-1, max_value=1),
        Expected("ExpectColumnValuesToBeBetween", column="value", max_value=1, strict_max=True),
        Expected("ExpectColumnValuesToBeInSet", column="label", value_set=["x", "y"]),
        Expected("ExpectColumnValuesToBeUnique", column="label"),
        Expected("ExpectColumnValuesToBeNull", column="label"),
        Expected("ExpectColumnValuesToNotBeNull", column="value"),
    ]
    import great_expectations as gx

    from circulate.validate.run import _context

    context = _context()
    suite = context.suites.add(gx.ExpectationSuite(name="random"))
    for number, expected in enumerate(expectations):
        expectation = expected.build()
        expectation.meta = {"number": number}
        suite.add_expectation(expectation)
    batch = (
        context.data_sources.add_pandas("random")
        .add_dataframe_asset("random")
        .add_batch_definition_whole_dataframe("random")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    outcomes = batch.validate(suite, result_format={"result_format": "SUMMARY"}).results
    theirs = {
        int(o.expectation_config.meta["number"]): o.result["unexpected_count"]
        for o in outcomes
        if o.expectation_config is not None and o.expectation_config.meta
    }
    mine = {n: e.unexpected_count(frame) for n, e in enumerate(expectations)}
    assert mine == theirs


def _hand_night(settings: Settings) -> None:
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        HAND_ACCOUNTS,
    )
    write_export(settings, "2025-01-06.csv", HAND_LEDGER[:3])
    write_export(settings, "2025-01-07.csv", [])
    write_export(settings, "2025-01-08.csv", HAND_LEDGER[3:])


def test_a_clean_night_stores_the_same_results_without_great_expectations(
    settings: Settings,
) -> None:
    _hand_night(settings)
    ctx = pipeline.begin_run(settings)
    try:
        pipeline.ingest_new_files(ctx)
        pipeline.build_models(ctx)
        with connect(ctx.build) as con:
            frames = load_frames(
                con, ctx.run_id, timezone=settings.timezone, history_days=28, checks=CHECKS
            )
        now = datetime.now(UTC)
        plain, great = (
            run_checks(
                frames, CHECKS, run_id="r", batch_id=ctx.run_id, now=now, great_expectations=gx
            )
            for gx in (False, True)
        )
    finally:
        pipeline.skip_publish(ctx)
    assert plain == great
    assert {r.status for r in plain} == {"passed", "skipped"}


NIGHT = """
import sys
from pathlib import Path
from circulate import pipeline
from circulate.settings import Settings

root = Path(sys.argv[1])
settings = Settings(inbox=root / "inbox", warehouse=root / "warehouse" / "circulate.duckdb",
                    reports=root / "reports", private_dir=root / "private",
                    key_file=root / "keys" / "pseudonym.key")
summary = pipeline.run_in_process(settings)
print(summary.rows_loaded, "great_expectations" in sys.modules)
"""


# A payment to an account missing from accounts.csv: a warning, the night still publishes.
TO_UNLISTED = ("T9", "2025-01-08T18:00:00Z", "ANN", "ZED", "5.00", "transfer", "app")


@pytest.mark.parametrize(("extra", "imported"), [([], False), ([TO_UNLISTED], True)])
def test_great_expectations_is_imported_only_for_a_night_with_an_unexpected_row(
    settings: Settings, tmp_path: Path, extra: list[tuple[str, ...]], imported: bool
) -> None:
    _hand_night(settings)
    write_export(settings, "2025-01-08.csv", [*HAND_LEDGER[3:], *extra])
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NIGHT), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CIRCULATE_PSEUDONYM_KEY": TEST_KEY},
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [str(6 + len(extra)), str(imported)]
