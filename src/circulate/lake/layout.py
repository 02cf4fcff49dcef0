"""The lake: a scheme's staging tables as hive-partitioned Parquet, one folder per month.

::

    <lake>/transactions/scheme=<scheme>/month=YYYY-MM/data.parquet   staging.transactions
    <lake>/accounts/scheme=<scheme>/data.parquet                     staging.accounts
    <lake>/issuer_accounts/scheme=<scheme>/data.parquet              intermediate.issuer_accounts
    <lake>/day_spine/scheme=<scheme>/data.parquet                    intermediate.day_spine
    <lake>/marts/<mart>/scheme=<scheme>/data.parquet                 month marts (lake.months)

A month is a calendar month of the scheme's local day (``local_day``), the same month the
warehouse's marts use. Every month the day spine covers gets a partition, an empty one
for a month without transactions, so a scheme's months are contiguous. The scheme-wide
tables hold what a month cannot know alone: every account's attributes, which accounts
issue the currency, and which days the history covers. Ids are the warehouse's
pseudonyms; raw ids never reach the warehouse, so they never reach the lake.

Each file is written under a hidden temporary name in its own folder and renamed over
the previous one (atomic on one filesystem): a reader finds the old file or the new one,
never a half-written one, and writing the same warehouse twice gives the same files.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from circulate.errors import ConfigurationError, InputError
from circulate.warehouse.connection import connect

__all__ = [
    "DATA_FILE",
    "SCHEME_TABLES",
    "Partition",
    "add_months",
    "list_partitions",
    "list_schemes",
    "month_key",
    "parse_month",
    "read_parquet_file",
    "read_partition",
    "read_scheme_table",
    "scheme_file",
    "scheme_name",
    "write_lake",
    "write_parquet_atomically",
]

DATA_FILE = "data.parquet"
TRANSACTIONS = "transactions"
#: Scheme-wide lake tables and the warehouse table each one copies. Constants, never data.
SCHEME_TABLES: Mapping[str, str] = {
    "accounts": "staging.accounts",
    "issuer_accounts": "intermediate.issuer_accounts",
    "day_spine": "intermediate.day_spine",
}
_SCHEME_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_MONTH_ROWS_SQL = """
select * from staging.transactions
where local_day >= $first_day and local_day < $next_month
order by occurred_at, txn_id
"""


def scheme_name(text: str) -> str:
    """Return ``text`` if it can name a scheme's folders, else raise ``ConfigurationError``.

    Lower-case letters, digits, ``-`` and ``_``, starting with a letter or digit.

    >>> scheme_name("bristol-pound")
    'bristol-pound'
    """
    if not _SCHEME_NAME.fullmatch(text):
        raise ConfigurationError(
            f"Scheme name {text!r} cannot name a lake folder: use lower-case letters, digits, "
            "'-' and '_' (up to 63), starting with a letter or digit, e.g. 'bristol-pound'."
        )
    return text


def month_key(month: date) -> str:
    """The partition value of a month: ``YYYY-MM``.

    >>> month_key(date(2025, 3, 1))
    '2025-03'
    """
    return f"{month:%Y-%m}"


def parse_month(text: str) -> date:
    """The first day of month ``YYYY-MM``; ``InputError`` naming the fix otherwise.

    >>> parse_month("2025-03")
    datetime.date(2025, 3, 1)
    """
    match = _MONTH.fullmatch(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise InputError(f"{text!r} is not a month: write it as YYYY-MM, e.g. 2025-03.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def add_months(month: date, count: int) -> date:
    """The first day of the month ``count`` months after ``month`` (negative: before).

    >>> add_months(date(2025, 12, 1), 1), add_months(date(2025, 1, 1), -1)
    (datetime.date(2026, 1, 1), datetime.date(2024, 12, 1))
    """
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Partition:
    """One scheme's transactions of one calendar month in the lake."""

    scheme: str
    month: date
    lake: Path

    @property
    def folder(self) -> Path:
        """``<lake>/transactions/scheme=<scheme>/month=YYYY-MM``."""
        return _transactions_dir(self.lake, self.scheme) / f"month={month_key(self.month)}"

    @property
    def file(self) -> Path:
        """The partition's one Parquet file."""
        return self.folder / DATA_FILE

    def __str__(self) -> str:
        return f"{self.scheme}/{month_key(self.month)}"


def _transactions_dir(lake: Path, scheme: str) -> Path:
    return lake / TRANSACTIONS / f"scheme={scheme}"


def scheme_file(lake: Path, table: str, scheme: str) -> Path:
    """Where a scheme-wide table lives: ``<lake>/<table>/scheme=<scheme>/data.parquet``."""
    return lake / table / f"scheme={scheme}" / DATA_FILE


def write_parquet_atomically(
    target: Path, write: Any, *, parameters: Mapping[str, Any] | None = None
) -> Path:
    """Write ``target`` through a hidden temporary file in its folder, then rename it.

    ``write`` is a DuckDB relation or a Polars frame. The rename replaces the previous
    file in one step, so readers never see a partial file; the temporary file is removed
    if writing fails.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        if isinstance(write, pl.DataFrame):
            write.write_parquet(temporary, compression="zstd")
        else:
            write.to_parquet(str(temporary), compression="zstd")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _spine_months(con: duckdb.DuckDBPyConnection, warehouse: Path) -> list[date]:
    present = {
        row[0]
        for row in con.execute(
            "select schema_name || '.' || table_name from duckdb_tables()"
        ).fetchall()
    }
    missing = sorted({"staging.transactions", *SCHEME_TABLES.values()} - present)
    if missing:
        raise InputError(
            f"{warehouse} has no {', '.join(missing)}: run `circulate run` (or `circulate "
            "ingest`) to build the warehouse before writing the lake from it."
        )
    rows = con.execute(
        "select distinct cast(date_trunc('month', day) as date) as month "
        "from intermediate.day_spine order by month"
    ).fetchall()
    return [row[0] for row in rows]


def write_lake(
    warehouse: Path,
    lake: Path,
    scheme: str,
    *,
    months: Iterable[date] | None = None,
    since: date | None = None,
) -> list[Partition]:
    """Write one scheme of a built warehouse into the lake; return the partitions written.

    Parameters
    ----------
    warehouse
        A published (or built) DuckDB file; opened read-only.
    lake
        The lake's root folder (created when missing).
    scheme
        The scheme's name in the lake (see :func:`scheme_name`).
    months
        First days of the months to rewrite (each must lie in the history).
    since
        Rewrite only months from this one on (a nightly run changes the latest month).

    With neither, every month is rewritten and partitions of months no longer in the
    history are removed. The scheme-wide tables are rewritten either way.
    """
    scheme = scheme_name(scheme)
    con = connect(warehouse, read_only=True)
    try:
        history = _spine_months(con, warehouse)
        chosen = history if months is None else sorted(set(months))
        chosen = [m for m in chosen if since is None or m >= since]
        outside = [m for m in chosen if m not in history]
        if outside:
            raise InputError(
                f"{', '.join(month_key(m) for m in outside)} not in the history of {warehouse} "
                f"({month_key(history[0]) if history else 'empty'} to "
                f"{month_key(history[-1]) if history else 'empty'}): pick months inside it."
            )
        for table, source in SCHEME_TABLES.items():
            # Table names are this module's constants, never data.
            relation = con.sql(f"select * from {source} order by all")  # noqa: S608
            write_parquet_atomically(scheme_file(lake, table, scheme), relation)
        written = []
        for month in chosen:
            partition = Partition(scheme, month, lake)
            window = {"first_day": month, "next_month": add_months(month, 1)}
            relation = con.sql(_MONTH_ROWS_SQL, params=window)
            write_parquet_atomically(partition.file, relation)
            written.append(partition)
    finally:
        con.close()
    if months is None and since is None:
        for stale in list_partitions(lake, schemes=[scheme]):
            if stale.month not in history:
                shutil.rmtree(stale.folder)
    return written


def list_schemes(lake: Path) -> list[str]:
    """Schemes with transactions in the lake, by name."""
    root = lake / TRANSACTIONS
    if not root.is_dir():
        raise InputError(
            f"{lake} holds no lake ({root} is missing): write one with `circulate fanout "
            "--lake DIR --scheme NAME` or circulate.lake.write_lake."
        )
    return sorted(
        path.name.removeprefix("scheme=")
        for path in root.glob("scheme=*")
        if path.is_dir() and _SCHEME_NAME.fullmatch(path.name.removeprefix("scheme="))
    )


def list_partitions(
    lake: Path, *, schemes: Iterable[str] | None = None, since: date | None = None
) -> list[Partition]:
    """The month partitions of ``schemes`` (default: all) from ``since`` on, in order."""
    known = list_schemes(lake)
    wanted = known if schemes is None else [scheme_name(s) for s in schemes]
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise InputError(
            f"No scheme {', '.join(unknown)} in the lake {lake} (it holds "
            f"{', '.join(known) or 'none'}): write it first or fix the name."
        )
    partitions = []
    for scheme in wanted:
        for folder in _transactions_dir(lake, scheme).glob("month=*"):
            if not (folder / DATA_FILE).is_file():
                continue
            month = parse_month(folder.name.removeprefix("month="))
            if since is None or month >= since:
                partitions.append(Partition(scheme, month, lake))
    return sorted(partitions)


def read_partition(partition: Partition) -> pl.DataFrame:
    """A partition's transactions (the columns of ``staging.transactions``)."""
    return read_parquet_file(partition.file)


def read_scheme_table(lake: Path, table: str, scheme: str) -> pl.DataFrame:
    """A scheme-wide table (``accounts``, ``issuer_accounts`` or ``day_spine``)."""
    if table not in SCHEME_TABLES:
        raise ConfigurationError(f"{table!r} is not a lake table: use one of {list(SCHEME_TABLES)}")
    return read_parquet_file(scheme_file(lake, table, scheme))


def read_parquet_file(path: Path) -> pl.DataFrame:
    """One Parquet file of the lake as a Polars frame (timestamps in UTC)."""
    if not path.is_file():
        raise InputError(f"{path} is missing from the lake: write the lake again to restore it.")
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        query = "select * from read_parquet($path, hive_partitioning = false)"
        frame: pl.DataFrame = con.sql(query, params={"path": str(path)}).pl()
        return frame
    finally:
        con.close()
