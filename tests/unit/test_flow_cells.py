"""The flow matrices' cells: the kept closed months plus the open ones are every cell."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import polars as pl
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from circulate.metrics.flow_cells import GROUPINGS, count_cells, keep_closed_months

ACCOUNTS = [
    # account_id, account_type, sector, area
    ("ANN", "individual", "", "Easton"),
    ("BEN", "individual", "", "Bedminster"),
    ("CAFE", "business", "food & drink", "Easton"),
    ("DELI", "business", "food & drink", ""),
    ("SHOP", "business", "retail", "Bedminster"),
    ("GHOST", "individual", "", ""),  # listed nowhere below: never trades
]
# MYSTERY trades but is not in the accounts file: its groups are "unknown".
TRADERS = ["ANN", "BEN", "CAFE", "DELI", "SHOP", "MYSTERY"]


def _ledger(transfers: list[tuple[date, str, str, str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema staging; create schema intermediate")
    con.execute(
        "create table staging.accounts (account_id varchar, account_type varchar, "
        "sector varchar, area varchar)"
    )
    con.executemany("insert into staging.accounts values (?, ?, ?, ?)", ACCOUNTS)
    con.execute(
        "create table intermediate.member_transfers (local_day date, source_id varchar, "
        "target_id varchar, amount decimal(18, 2))"
    )
    if transfers:
        con.executemany("insert into intermediate.member_transfers values (?, ?, ?, ?)", transfers)
    return con


def _sorted(cells: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(cells.rows(), key=repr)


def test_whole_history_counts_an_account_of_both_parts_once() -> None:
    """ANN pays CAFE in January (closed) and again in February (open), BEN pays CAFE in
    February: the whole history's individual → food & drink cell has 3 transfers, 2 payers
    (not 3) and 1 payee."""
    con = _ledger(
        [
            (date(2025, 1, 5), "ANN", "CAFE", "10.00"),
            (date(2025, 2, 3), "ANN", "CAFE", "2.50"),
            (date(2025, 2, 4), "BEN", "CAFE", "1.00"),
        ]
    )
    keep_closed_months(con, date(2025, 1, 31))
    cells = count_cells(con, "sector", date(2025, 1, 31))
    assert _sorted(cells) == _sorted(
        pl.DataFrame(
            [
                (date(2025, 1, 1), "individual", "food & drink", 1000, 1, 1, 1),
                (date(2025, 2, 1), "individual", "food & drink", 350, 2, 2, 1),
                (None, "individual", "food & drink", 1350, 3, 2, 1),
            ],
            schema=cells.schema,
            orient="row",
        )
    )


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    transfers=st.lists(
        st.tuples(
            st.integers(0, 89),  # days from 1 January 2025: January to March
            st.sampled_from(TRADERS),
            st.sampled_from(TRADERS),
            st.integers(1, 5000),
        ),
        max_size=30,
    ),
    cut=st.sampled_from([date(2025, 1, 31), date(2025, 2, 28)]),
)
def test_kept_months_and_open_months_are_every_cell(
    transfers: list[tuple[int, str, str, int]], cut: date
) -> None:
    """Counting the months after the cut on top of the kept closed months gives exactly
    the cells counted from every transfer, in both groupings."""
    con = _ledger(
        [
            (date(2025, 1, 1) + timedelta(days=day), payer, payee, f"{pence / 100:.2f}")
            for day, payer, payee, pence in transfers
            if payer != payee
        ]
    )
    keep_closed_months(con, cut)
    for grouping in GROUPINGS:
        assert _sorted(count_cells(con, grouping, cut)) == _sorted(count_cells(con, grouping, None))
