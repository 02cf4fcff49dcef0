"""Tests of the synthetic scheme generator: file contract, ledger rules, exact truth.

Every check recomputes from the written files with Polars, independently of the
generator's own arrays.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circulate.generate import GroundTruth, generate_scheme

HEADER = "txn_id,occurred_at,source_id,target_id,amount,kind,channel"
KINDS = {"issuance", "transfer", "redemption", "fee", "reversal"}
CHANNELS = {"app", "card", "sms", "paper"}
MONEY = re.compile(r"^\d+\.\d{2}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _read(out: Path) -> pl.DataFrame:
    """All export rows as text, plus the file's date, pence and parsed UTC time."""
    files = sorted((out / "exports").glob("*.csv"))
    frames = [
        pl.read_csv(f, schema=dict.fromkeys(HEADER.split(","), pl.String)).with_columns(
            pl.lit(f.stem).alias("file_date")
        )
        for f in files
    ]
    rows = pl.concat(frames)
    return rows.with_columns(
        pl.col("amount").str.replace(".", "", literal=True).cast(pl.Int64).alias("pence"),
        pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC").alias("at"),
    )


def running_balances(rows: pl.DataFrame) -> pl.DataFrame:
    """Running balance per account after every row, replayed in (occurred_at, txn_id)."""
    ordered = rows.sort("occurred_at", "txn_id")
    legs = pl.concat(
        [
            ordered.select(
                "occurred_at",
                "txn_id",
                pl.col("source_id").alias("account_id"),
                (-pl.col("pence")).alias("delta"),
                pl.lit(0).alias("leg"),
            ),
            ordered.select(
                "occurred_at",
                "txn_id",
                pl.col("target_id").alias("account_id"),
                pl.col("pence").alias("delta"),
                pl.lit(1).alias("leg"),
            ),
        ]
    ).sort("occurred_at", "txn_id", "leg")
    return legs.with_columns(pl.col("delta").cum_sum().over("account_id").alias("balance"))


def _money(pence: int) -> Decimal:
    return Decimal(pence) / 100


@pytest.fixture(scope="module")
def scheme(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    out = tmp_path_factory.mktemp("scheme")
    truth = generate_scheme(out, seed=7, transactions=4000, days=45, start=date(2025, 1, 20))
    return out, truth


@pytest.fixture(scope="module")
def rows(scheme: tuple[Path, GroundTruth]) -> pl.DataFrame:
    return _read(scheme[0])


@pytest.fixture(scope="module")
def accounts(scheme: tuple[Path, GroundTruth]) -> pl.DataFrame:
    return pl.read_csv(scheme[0] / "accounts.csv", infer_schema=False)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    kwargs = {"transactions": 600, "days": 12, "start": date(2025, 6, 1)}
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_scheme(a, seed=11, **kwargs)  # type: ignore[arg-type]
    generate_scheme(b, seed=11, **kwargs)  # type: ignore[arg-type]
    generate_scheme(c, seed=12, **kwargs)  # type: ignore[arg-type]
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(names) == 12 + 3
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    differs = [
        n for n in names if n.parts[0] == "exports" and (a / n).read_bytes() != (c / n).read_bytes()
    ]
    assert differs


def test_one_file_per_local_day_with_exact_header(scheme: tuple[Path, GroundTruth]) -> None:
    out, truth = scheme
    expected = [f"{date(2025, 1, 20) + timedelta(days=d)}.csv" for d in range(45)]
    assert sorted(p.name for p in (out / "exports").iterdir()) == expected
    for name in expected:
        assert (out / "exports" / name).read_text().split("\n", 1)[0] == HEADER
    assert truth.files == 45


def test_empty_days_still_get_a_header_only_file(tmp_path: Path) -> None:
    truth = generate_scheme(tmp_path, seed=3, transactions=0, days=3)
    files = sorted((tmp_path / "exports").iterdir())
    assert [f.read_text() for f in files] == [HEADER + "\n"] * 3
    assert truth.rows == 0
    assert truth.totals.money_supply_end == Decimal("0.00")


def test_row_count_is_exact_and_ids_unique_and_time_ordered(
    scheme: tuple[Path, GroundTruth], rows: pl.DataFrame
) -> None:
    _, truth = scheme
    assert rows.height == 4000 == truth.rows
    assert rows["txn_id"].n_unique() == rows.height
    assert rows["txn_id"].str.contains(r"^T\d{8}$").all()
    # Sorting by txn_id is sorting by time: ids are assigned in (occurred_at, id) order.
    by_id = rows.sort("txn_id")
    assert by_id["occurred_at"].is_sorted()
    # Within each file rows are sorted by occurred_at, then txn_id.
    for _, part in rows.group_by("file_date", maintain_order=True):
        assert part.equals(part.sort("occurred_at", "txn_id"))


def test_formats_of_amount_time_kind_and_channel(rows: pl.DataFrame) -> None:
    assert rows["amount"].str.contains(MONEY.pattern).all()
    assert (rows["pence"] > 0).all()
    assert rows["occurred_at"].str.contains(STAMP.pattern).all()
    assert set(rows["kind"].unique()) == KINDS
    assert set(rows["channel"].unique()) <= CHANNELS


def test_roles_of_issuer_and_members(
    scheme: tuple[Path, GroundTruth], rows: pl.DataFrame, accounts: pl.DataFrame
) -> None:
    _, truth = scheme
    issuer = truth.roles["issuer"]
    assert accounts.filter(pl.col("account_type") == "issuer")["account_id"].to_list() == [issuer]
    assert (
        truth.roles["council"]
        in accounts.filter(pl.col("account_type") == "public_body")["account_id"].to_list()
    )
    assert (rows["source_id"] != rows["target_id"]).all()
    issuance = rows.filter(pl.col("kind") == "issuance")
    assert (issuance["source_id"] == issuer).all()
    outflow = rows.filter(pl.col("kind").is_in(["redemption", "fee"]))
    assert (outflow["target_id"] == issuer).all()
    between = rows.filter(pl.col("kind").is_in(["transfer", "reversal"]))
    assert not between["source_id"].is_in([issuer]).any()
    assert not between["target_id"].is_in([issuer]).any()
    assert not outflow["source_id"].is_in([issuer]).any()
    # Every id in the exports is described in accounts.csv.
    ids = set(accounts["account_id"])
    assert set(rows["source_id"]) | set(rows["target_id"]) <= ids


def test_accounts_and_areas_files(scheme: tuple[Path, GroundTruth], accounts: pl.DataFrame) -> None:
    out, truth = scheme
    assert (out / "accounts.csv").read_text().split("\n", 1)[0] == (
        "account_id,account_type,sector,area,joined_at"
    )
    areas = pl.read_csv(out / "areas.csv")
    assert areas.columns == ["area", "deprivation_decile"]
    assert 10 <= areas.height <= 15
    assert set(areas["deprivation_decile"]) == set(range(1, 11))
    assert set(accounts["area"]) <= set(areas["area"])
    counts = accounts["account_type"].value_counts()
    assert dict(counts.iter_rows()) == truth.account_counts
    assert truth.account_counts["issuer"] == 1
    assert accounts.filter(pl.col("account_id").str.starts_with("COUNCIL")).height == 1
    business = accounts["account_type"] == "business"
    assert accounts.filter(business)["sector"].is_not_null().all()
    assert accounts.filter(~business)["sector"].is_null().all()
    assert accounts["account_id"].n_unique() == accounts.height
    accounts["joined_at"].str.to_date("%Y-%m-%d")  # parses as ISO dates


def test_accounts_transact_only_from_their_joining_date(
    rows: pl.DataFrame, accounts: pl.DataFrame
) -> None:
    joined = accounts.select("account_id", pl.col("joined_at").str.to_date())
    for side in ("source_id", "target_id"):
        early = rows.join(joined, left_on=side, right_on="account_id").filter(
            pl.col("file_date").str.to_date() < pl.col("joined_at")
        )
        assert early.is_empty(), early.head()
    # Onboarding happens during the period too.
    assert (joined["joined_at"] > date(2025, 1, 20)).any()


def test_no_member_balance_is_ever_negative(
    scheme: tuple[Path, GroundTruth], rows: pl.DataFrame
) -> None:
    _, truth = scheme
    running = running_balances(rows).filter(pl.col("account_id") != truth.roles["issuer"])
    assert running["balance"].min() >= 0  # type: ignore[operator]


def test_ground_truth_matches_the_files(
    scheme: tuple[Path, GroundTruth], rows: pl.DataFrame
) -> None:
    out, truth = scheme
    assert GroundTruth.from_json(out / "ground_truth.json") == truth
    monthly = (
        rows.with_columns(pl.col("file_date").str.slice(0, 7).alias("month"))
        .group_by("month", "kind")
        .agg(pl.col("pence").sum().alias("pence"), pl.len().alias("n"))
    )
    assert list(truth.monthly) == ["2025-01", "2025-02", "2025-03"]

    def total(frame: pl.DataFrame, kind: str) -> tuple[Decimal, int]:
        hit = frame.filter(pl.col("kind") == kind)
        return _money(int(hit["pence"].sum())), int(hit["n"].sum())

    supply = Decimal("0.00")
    for key, got in truth.monthly.items():
        month = monthly.filter(pl.col("month") == key)
        supply += total(month, "issuance")[0] - total(month, "redemption")[0]
        supply -= total(month, "fee")[0]
        assert got.issued == total(month, "issuance")[0]
        assert got.redeemed == total(month, "redemption")[0]
        assert got.fees == total(month, "fee")[0]
        assert (got.transfer_volume, got.transfer_count) == total(month, "transfer")
        assert (got.reversal_volume, got.reversal_count) == total(month, "reversal")
        assert got.rows == int(month["n"].sum())
        assert got.money_supply_end == supply

    whole = monthly.group_by("kind").agg(pl.col("pence").sum(), pl.col("n").sum())
    assert truth.totals.issued == total(whole, "issuance")[0]
    assert truth.totals.redeemed == total(whole, "redemption")[0]
    assert truth.totals.fees == total(whole, "fee")[0]
    assert (truth.totals.transfer_volume, truth.totals.transfer_count) == total(whole, "transfer")
    assert (truth.totals.reversal_volume, truth.totals.reversal_count) == total(whole, "reversal")
    assert truth.money_supply == supply
    assert truth.rows_by_kind == {k: total(whole, k)[1] for k in sorted(KINDS)}

    final = running_balances(rows).group_by("account_id").agg(pl.col("balance").last())
    computed = {a: _money(b) for a, b in final.iter_rows() if a != truth.roles["issuer"]}
    assert {k: v for k, v in truth.final_balances.items() if v != 0} == {
        k: v for k, v in computed.items() if v != 0
    }
    assert sum(truth.final_balances.values()) == truth.money_supply
    assert truth.totals.reversal_count > 0


def test_reversals_undo_part_of_an_earlier_opposite_transfer(rows: pl.DataFrame) -> None:
    transfers = rows.filter(pl.col("kind") == "transfer").select(
        pl.col("source_id").alias("target_id"),
        pl.col("target_id").alias("source_id"),
        pl.col("pence").alias("original"),
        pl.col("at").alias("original_at"),
    )
    reversals = rows.filter(pl.col("kind") == "reversal").with_row_index("r")
    matched = reversals.join(transfers, on=["source_id", "target_id"]).filter(
        (pl.col("original_at") < pl.col("at")) & (pl.col("original") >= pl.col("pence"))
    )
    assert matched["r"].n_unique() == reversals.height > 0


@pytest.mark.parametrize("start", [date(2025, 3, 28), date(2025, 10, 24)])
def test_local_day_files_across_a_dst_change(tmp_path: Path, start: date) -> None:
    generate_scheme(tmp_path, seed=5, transactions=500, days=5, start=start)
    got = _read(tmp_path).with_columns(pl.col("at").dt.convert_time_zone("Europe/London"))
    assert sorted(got["file_date"].unique()) == [
        (start + timedelta(days=d)).isoformat() for d in range(5)
    ]
    local_date = got["at"].dt.date().cast(pl.String)
    assert (local_date == got["file_date"]).all()
    hour = got["at"].dt.hour()
    assert hour.min() >= 7  # type: ignore[operator]
    assert hour.max() < 22  # type: ignore[operator]
    # Both UTC offsets occur: the change really is inside the period.
    offsets = (
        (
            got["at"].dt.replace_time_zone(None)
            - got["at"].dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        )
        .dt.total_hours()
        .unique()
    )
    assert sorted(offsets.to_list()) == [0, 1]


def test_generator_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transactions"):
        generate_scheme(tmp_path, seed=1, transactions=-1)
    with pytest.raises(ValueError, match="days"):
        generate_scheme(tmp_path, seed=1, transactions=10, days=0)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    transactions=st.integers(0, 300),
    days=st.integers(1, 40),
)
def test_conservation_property(tmp_path: Path, seed: int, transactions: int, days: int) -> None:
    out = tmp_path / f"{seed}-{transactions}-{days}"
    truth = generate_scheme(out, seed=seed, transactions=transactions, days=days)
    rows = _read(out)
    assert rows.height == transactions == truth.rows
    final = (
        running_balances(rows)
        .group_by("account_id")
        .agg(pl.col("balance").last(), pl.col("balance").min().alias("low"))
    )
    members = final.filter(pl.col("account_id") != truth.roles["issuer"])
    t = truth.totals
    assert _money(int(members["balance"].sum())) == t.issued - t.redeemed - t.fees
    assert sum(truth.final_balances.values()) == t.money_supply_end
    if members.height:
        assert members["low"].min() >= 0  # type: ignore[operator]
