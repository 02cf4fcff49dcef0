"""The lake and its month marts on a two-month ledger worked out by hand.

January is the six-row ledger of tests/unit/test_marts.py; February adds three rows:

====  ==========  ==========  =======  ======  ======
txn   occurred    kind        source   target  amount
====  ==========  ==========  =======  ======  ======
T7    Feb 3 10:00 transfer    ANN      BEN      10.00
T8    Feb 3 12:00 issuance    ISSUER   CAFE     40.00
T9    Feb 4 09:00 redemption  CAFE     ISSUER    5.00
====  ==========  ==========  =======  ======  ======

January ends with 123.50 in circulation. February alone: issued 40, redeemed 5, net 35,
so its own running supply is 0, 0, 40, 35 on Feb 1-4 and, carried on from January,
123.50, 123.50, 163.50, 158.50; February ends at 158.50. The day spine runs from Jan 6
(first transaction) to Feb 4 (last export file): 26 + 4 = 30 days.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from circulate.errors import ConfigurationError, InputError
from circulate.ingest.pseudonym import pseudonymise
from circulate.lake import (
    HISTORY_MARTS,
    MONTH_MARTS,
    MonthResult,
    Partition,
    combine,
    compute_month,
    list_partitions,
    opening_supplies,
    parse_month,
    read_mart,
    read_partition,
    read_scheme_table,
    scheme_name,
    write_lake,
    write_marts,
)
from circulate.lake.layout import read_parquet_file, write_parquet_atomically
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import (
    HAND_ACCOUNTS,
    HAND_LEDGER,
    TEST_KEY,
    run_stages,
    write_csv,
    write_export,
)

FEBRUARY = [
    ("T7", "2025-02-03T10:00:00Z", "ANN", "BEN", "10.00", "transfer", "app"),
    ("T8", "2025-02-03T12:00:00Z", "ISSUER", "CAFE", "40.00", "issuance", "app"),
    ("T9", "2025-02-04T09:00:00Z", "CAFE", "ISSUER", "5.00", "redemption", "app"),
]
RAW_IDS = ("ISSUER", "ANN", "BEN", "CAFE")
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The two-month hand ledger, published once for the module."""
    root = tmp_path_factory.mktemp("two-months")
    settings = Settings(
        inbox=root / "inbox",
        warehouse=root / "warehouse" / "circulate.duckdb",
        reports=root / "reports",
        private_dir=root / "private",
        key_file=root / "keys" / "pseudonym.key",
    )
    write_csv(
        settings.inbox / "accounts.csv",
        ("account_id", "account_type", "sector", "area", "joined_at"),
        HAND_ACCOUNTS,
    )
    write_csv(settings.inbox / "areas.csv", ("area", "deprivation_decile"), [("Easton", 2)])
    rows_by_day = {
        date(2025, 1, 6): HAND_LEDGER[:3],
        date(2025, 1, 8): HAND_LEDGER[3:],
        date(2025, 2, 3): FEBRUARY[:2],
        date(2025, 2, 4): FEBRUARY[2:],
    }
    for day in range(30):  # an export file every day, most of them empty
        export_day = date(2025, 1, 6) + timedelta(days=day)
        write_export(settings, f"{export_day}.csv", rows_by_day.get(export_day, []))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        run_stages(settings)
    yield settings.warehouse


def money(text: str) -> Decimal:
    return Decimal(text)


def warehouse_month_rows(warehouse: Path) -> dict[str, pl.DataFrame]:
    """The rows of the warehouse's marts that the month marts reproduce."""
    con = connect(warehouse, read_only=True)
    try:
        frames = {}
        for mart in MONTH_MARTS:
            frame: pl.DataFrame = con.sql(f"select * from marts.{mart.name}").pl()
            if mart.period_kind:
                frame = frame.filter(pl.col("period_kind") == mart.period_kind)
            frames[mart.name] = frame
        return frames
    finally:
        con.close()


def assert_same_rows(got: Mapping[str, pl.DataFrame], warehouse: Path, scheme: str) -> None:
    """Every month mart of ``scheme`` in ``got`` holds exactly the warehouse's rows."""
    for name, want in warehouse_month_rows(warehouse).items():
        rows = got[name].filter(pl.col("scheme") == scheme).drop("scheme")
        assert rows.height == want.height, name
        keys = want.columns
        assert_frame_equal(
            rows.sort(keys, nulls_last=True), want.sort(keys, nulls_last=True), check_exact=True
        )


def lake_files(lake: Path) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file())


def test_lake_layout(warehouse: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    written = write_lake(warehouse, lake, "hand")
    assert written == [Partition("hand", JAN, lake), Partition("hand", FEB, lake)]
    assert lake_files(lake) == [
        "accounts/scheme=hand/data.parquet",
        "day_spine/scheme=hand/data.parquet",
        "issuer_accounts/scheme=hand/data.parquet",
        "transactions/scheme=hand/month=2025-01/data.parquet",
        "transactions/scheme=hand/month=2025-02/data.parquet",
    ]
    assert list_partitions(lake) == written
    assert list_partitions(lake, schemes=["hand"], since=FEB) == written[1:]

    january, february = (read_partition(p) for p in written)
    assert january["txn_id"].to_list() == ["T1", "T2", "T3", "T4", "T5", "T6"]
    assert february["txn_id"].to_list() == ["T7", "T8", "T9"]
    con = connect(warehouse, read_only=True)
    staged = con.sql("select * from staging.transactions order by occurred_at, txn_id").pl()
    con.close()
    assert_frame_equal(pl.concat([january, february]), staged)

    spine = read_scheme_table(lake, "day_spine", "hand")["day"]
    assert (spine.min(), spine.max(), spine.len()) == (date(2025, 1, 6), date(2025, 2, 4), 30)

    # Any engine reads the lake as hive-partitioned Parquet.
    counts = duckdb.sql(
        "select scheme, month, count(*) from read_parquet($glob, hive_partitioning = true) "
        "group by all order by all",
        params={"glob": str(lake / "transactions" / "*" / "*" / "*.parquet")},
    ).fetchall()
    assert counts == [("hand", "2025-01", 6), ("hand", "2025-02", 3)]


def test_rewriting_is_idempotent_and_limited_to_the_months_asked(
    warehouse: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    january, february = write_lake(warehouse, lake, "hand")
    first = {name: (lake / name).read_bytes() for name in lake_files(lake)}
    write_lake(warehouse, lake, "hand")
    assert {name: (lake / name).read_bytes() for name in lake_files(lake)} == first

    january_file, february_file = january.file.stat(), february.file.stat()
    assert write_lake(warehouse, lake, "hand", months=[FEB]) == [february]
    assert january.file.stat().st_ino == january_file.st_ino  # untouched
    assert january.file.stat().st_mtime_ns == january_file.st_mtime_ns
    assert february.file.stat().st_ino != february_file.st_ino  # replaced by a rename
    assert february.file.read_bytes() == first[str(february.file.relative_to(lake))]

    # A month no longer in the history goes at the next full write.
    stale = Partition("hand", date(2024, 12, 1), lake)
    stale.folder.mkdir(parents=True)
    stale.file.write_bytes(january.file.read_bytes())
    assert stale in list_partitions(lake)
    write_lake(warehouse, lake, "hand")
    assert not stale.folder.exists()
    assert lake_files(lake) == sorted(first)

    with pytest.raises(InputError, match="2025-03 not in the history"):
        write_lake(warehouse, lake, "hand", months=[MAR])


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "scheme=a" / "data.parquet"
    write_parquet_atomically(target, pl.DataFrame({"x": [1]}))
    before = target.read_bytes()

    class BreaksHalfway:
        def to_parquet(self, path: str, compression: str) -> None:
            Path(path).write_bytes(b"PAR1 half a file")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomically(target, BreaksHalfway())
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["data.parquet"]


def test_the_lake_holds_pseudonyms_only(warehouse: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    partitions = write_lake(warehouse, lake, "hand")
    write_marts(lake, combine(compute_month(p) for p in partitions))
    texts: set[str] = set()
    for name in lake_files(lake):
        frame = read_parquet_file(lake / name)
        for column in frame.select(pl.col(pl.String)).columns:
            texts |= set(frame[column].drop_nulls().to_list())
    assert not [text for text in texts for raw in RAW_IDS if raw in text]
    accounts = read_scheme_table(lake, "accounts", "hand")["account_id"].to_list()
    assert sorted(accounts) == sorted(pseudonymise(raw, TEST_KEY.encode()) for raw in RAW_IDS)


def test_month_marts_by_hand_equal_the_warehouse(warehouse: Path, tmp_path: Path) -> None:
    january, february = (compute_month(p) for p in write_lake(warehouse, tmp_path, "hand"))
    assert (january.opens_scheme, february.opens_scheme) == (True, False)
    assert (january.supply_change, february.supply_change) == (money("123.50"), money("35.00"))
    own = february.frames["daily_circulation"]["money_supply"].to_list()
    assert own == [money("0"), money("0"), money("40.00"), money("35.00")]

    marts = combine([february, january])
    daily = marts["daily_circulation"].filter(pl.col("day") >= FEB)
    assert daily["money_supply"].to_list() == [
        money("123.50"),
        money("123.50"),
        money("163.50"),
        money("158.50"),
    ]
    monthly = marts["monthly_circulation"]
    assert monthly.select("month", "issued", "redeemed", "money_supply_end").rows() == [
        (JAN, money("150.00"), money("25.00"), money("123.50")),
        (FEB, money("40.00"), money("5.00"), money("158.50")),
    ]
    assert monthly["active_accounts"].to_list() == [3, 2]
    network = marts["network_summary"].filter(pl.col("scope") == "member")
    assert network.select("period_start", "nodes", "edges", "volume").rows() == [
        (JAN, 3, 2, money("50.00")),
        (FEB, 2, 1, money("10.00")),
    ]
    assert_same_rows(marts, warehouse, "hand")


def test_a_later_month_continues_from_the_stored_marts(warehouse: Path, tmp_path: Path) -> None:
    january, february = write_lake(warehouse, tmp_path, "hand")
    with pytest.raises(InputError, match="no month 2025-01"):
        opening_supplies([february])
    write_marts(tmp_path, combine(compute_month(p) for p in (january, february)))
    whole = {m.name: read_mart(tmp_path, m.name) for m in MONTH_MARTS}

    assert opening_supplies([january, february]) == {"hand": money("0")}
    opening = opening_supplies([february])
    assert opening == {"hand": money("123.50")}
    write_marts(tmp_path, combine([compute_month(february)], opening), since=FEB)
    for mart in MONTH_MARTS:
        assert_frame_equal(read_mart(tmp_path, mart.name), whole[mart.name])
    assert_same_rows(whole, warehouse, "hand")


def test_every_published_mart_is_either_a_month_mart_or_needs_history(warehouse: Path) -> None:
    con = connect(warehouse, read_only=True)
    marts = {
        row[0]
        for row in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts'"
        ).fetchall()
    }
    con.close()
    month_marts = {m.name for m in MONTH_MARTS}
    unclassified = marts - month_marts - set(HISTORY_MARTS)
    assert not unclassified, (
        f"add {sorted(unclassified)} to circulate.lake.months: MONTH_MARTS when a month's "
        "rows depend on that month alone, else HISTORY_MARTS with the reason"
    )
    # A month mart either is whole (its rows all month-local) or leaves history rows behind.
    for mart in MONTH_MARTS:
        assert (mart.period_kind is not None) == (mart.name in HISTORY_MARTS), mart.name


def _result(scheme: str, month: date, opens: bool, supply: list[str]) -> MonthResult:
    """A month's result holding a day per supply figure (money from zero in the month)."""
    days = [month.replace(day=d + 1) for d in range(len(supply))]
    money_supply = pl.Series([Decimal(s) for s in supply], dtype=pl.Decimal(18, 2))
    return MonthResult(
        scheme,
        month,
        opens,
        {
            "daily_circulation": pl.DataFrame({"day": days, "money_supply": money_supply}),
            "monthly_circulation": pl.DataFrame(
                {"month": [month], "money_supply_end": money_supply[-1:]}
            ),
            "network_summary": pl.DataFrame({"scope": ["member"], "period_start": [month]}),
            "spend_breakdown": pl.DataFrame({"period_start": [month], "individuals": [7]}),
        },
    )


def test_combine_carries_the_money_in_circulation_by_hand() -> None:
    # Scheme a: January 100 then 80 (net 80); February -10 then +5 of its own, so
    # 70 and 85 after January's 80. Scheme b starts mid-history with 50 in circulation.
    a_jan = _result("a", JAN, True, ["100", "80"])
    a_feb = _result("a", FEB, False, ["-10", "5"])
    b_mar = _result("b", MAR, False, ["7"])
    marts = combine([b_mar, a_feb, a_jan], {"b": Decimal("50")})
    daily = marts["daily_circulation"]
    assert daily.select("scheme", "day").rows() == [
        ("a", date(2025, 1, 1)),
        ("a", date(2025, 1, 2)),
        ("a", date(2025, 2, 1)),
        ("a", date(2025, 2, 2)),
        ("b", date(2025, 3, 1)),
    ]
    assert daily["money_supply"].cast(pl.String).to_list() == [
        "100.00",
        "80.00",
        "70.00",
        "85.00",
        "57.00",
    ]
    monthly = marts["monthly_circulation"]
    assert monthly["money_supply_end"].cast(pl.String).to_list() == ["80.00", "85.00", "57.00"]
    assert monthly.schema["money_supply_end"] == pl.Decimal(18, 2)
    assert marts["spend_breakdown"].rows() == [("a", JAN, 7), ("a", FEB, 7), ("b", MAR, 7)]
    assert combine([]) == {}


def test_combine_refuses_gaps_repeats_and_an_unknown_opening() -> None:
    with pytest.raises(InputError, match="2025-01 → 2025-03 without 2025-02"):
        combine([_result("a", JAN, True, ["1"]), _result("a", MAR, False, ["1"])])
    with pytest.raises(InputError, match="twice"):
        combine([_result("a", JAN, True, ["1"]), _result("a", JAN, True, ["1"])])
    with pytest.raises(InputError, match="starts before 2025-02"):
        combine([_result("a", FEB, False, ["1"])])


def test_names_and_months_are_checked() -> None:
    assert scheme_name("bristol_pound-2") == "bristol_pound-2"
    for bad in ("Bristol Pound", "../x", "", "-a"):
        with pytest.raises(ConfigurationError, match="cannot name a lake folder"):
            scheme_name(bad)
    assert parse_month(" 2025-12 ") == date(2025, 12, 1)
    for bad in ("2025-13", "2025-1", "March"):
        with pytest.raises(InputError, match="YYYY-MM"):
            parse_month(bad)


def test_a_missing_lake_or_scheme_names_the_fix(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no lake"):
        list_partitions(tmp_path / "nowhere")
    write_lake(warehouse, tmp_path, "hand")
    with pytest.raises(InputError, match="No scheme other in the lake"):
        list_partitions(tmp_path, schemes=["other"])
    (tmp_path / "accounts" / "scheme=hand" / "data.parquet").unlink()
    with pytest.raises(InputError, match=r"accounts/scheme=hand/data\.parquet is missing"):
        compute_month(Partition("hand", JAN, tmp_path))
