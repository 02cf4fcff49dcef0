"""The latest complete month, and whether work stored at its end still holds.

Work that cannot be updated from a day's rows is done when a month closes and stored with
the cut it describes (a one-row table): the cut day (the month's last day), the ledger's
first day, the load batches of the ledger tables it covered as ``audit.appended_batches``
recorded their appending (rows, model digest, append time), their digest, and the version
of the code that made it. A later night reuses the work only while the cut still
describes a prefix of today's ledger: the same cut and first day and code, the covered
batches unchanged (a rebuilt table has new append times), and no row of a later batch
on or before the cut day (a late or corrected entry). Otherwise the work is done again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from circulate.warehouse.connection import table_exists

__all__ = ["Cut", "closed_history_end", "current_cut", "cut_description", "version_of"]

_BATCHES_SQL = """
select table_name, batch_id, source_rows, model_digest, appended_at
from audit.appended_batches
where table_name in (select unnest($tables))
order by table_name, batch_id
"""
_SPINE_SQL = "select min(day), max(day) from intermediate.day_spine"
_CUT_TABLE_SQL = """
create or replace table {table} as
select
    cast($cut_day as date) as cut_day,
    cast($first_day as date) as first_day,
    cast($batches as varchar[]) as batches,
    cast($batches_digest as varchar) as batches_digest,
    cast($version as varchar) as version
"""


def closed_history_end(first_day: date | None, last_day: date | None) -> date | None:
    """Last day of the latest complete month of a ledger covering ``first_day..last_day``.

    A month is complete when the ledger covers every day of it (``period_complete`` of the
    impact indicators): it starts on or after the first covered day and ends on or before
    the last. ``None`` when no month is complete yet.

    >>> closed_history_end(date(2025, 1, 3), date(2025, 3, 31))
    datetime.date(2025, 3, 31)
    >>> closed_history_end(date(2025, 1, 3), date(2025, 3, 30))
    datetime.date(2025, 2, 28)
    >>> closed_history_end(date(2025, 1, 1), date(2025, 1, 31))
    datetime.date(2025, 1, 31)
    >>> closed_history_end(date(2025, 1, 3), date(2025, 2, 27)) is None
    True
    """
    if first_day is None or last_day is None:
        return None
    if (last_day + timedelta(days=1)).day == 1:
        end = last_day
    else:
        end = last_day.replace(day=1) - timedelta(days=1)
    return end if end.replace(day=1) >= first_day else None


@cache
def version_of(module_file: str) -> str:
    """Digest of the module that stores some work at a cut, and of this one (its test): a
    change to either may change what a stored row means."""
    digest = hashlib.blake2b(digest_size=16)
    for source in (Path(module_file), Path(__file__)):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cut_description(work: str, ledgers: tuple[str, ...]) -> str:
    """The table description of the cut of ``work``, stored over ``ledgers``."""
    return (
        f"The cut of {work} (one row): its day (null before any month is complete), the "
        f"ledger's first day, the load batches of {' and '.join(ledgers)} it covered, their "
        "digest as appended and the version of the code that made it (see "
        "circulate.metrics.month_close)."
    )


def _digest(batches: list[tuple[Any, ...]]) -> str:
    # Append times in UTC: the session's TimeZone would otherwise change their repr.
    canonical = [
        tuple(v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in batch)
        for batch in batches
    ]
    return hashlib.blake2b(repr(canonical).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Cut:
    """Today's cut of the ledger tables: what stored work must describe to be reused.

    Attributes
    ----------
    day
        End of the latest complete month of ``intermediate.day_spine`` (``None`` before
        any month is complete).
    first_day
        First day of the spine.
    ledgers
        The append-by-batch tables (with ``local_day``) whose rows the work covers.
    batches
        Their load batches as ``audit.appended_batches`` lists them now (table, batch,
        rows, model digest, append time).
    version
        :func:`version_of` the code that makes the work.
    """

    day: date | None
    first_day: date | None
    ledgers: tuple[str, ...]
    batches: list[tuple[Any, ...]]
    version: str

    def holds_for(self, con: duckdb.DuckDBPyConnection, cut_table: str) -> bool:
        """Whether the cut stored in ``cut_table`` is this one on a prefix of the ledger."""
        if not table_exists(con, cut_table):
            return False
        stored = con.execute(
            f"select cut_day, first_day, batches, batches_digest, version from {cut_table}"  # noqa: S608
        ).fetchall()
        if len(stored) != 1:
            return False
        day, first_day, stored_batches, stored_digest, version = stored[0]
        if (day, first_day, version) != (self.day, self.first_day, self.version):
            return False
        # The batches it covered, as appended then: a batch gone, changed or appended
        # again (a rebuilt table) changes the digest.
        covered = [b for b in self.batches if b[1] in set(stored_batches)]
        if _digest(covered) != stored_digest:
            return False
        if self.day is None:
            return True
        for ledger in self.ledgers:
            [(late,)] = con.execute(
                f"select count(*) from {ledger} "  # noqa: S608 (the caller's constant)
                "where local_day <= $day and batch_id not in (select unnest($batches))",
                {"day": self.day, "batches": stored_batches},
            ).fetchall()
            if late:
                return False
        return True

    def store(self, con: duckdb.DuckDBPyConnection, cut_table: str) -> None:
        """Write this cut as the one row of ``cut_table``."""
        con.execute(
            _CUT_TABLE_SQL.format(table=cut_table),
            {
                "cut_day": self.day,
                "first_day": self.first_day,
                "batches": sorted({str(b[1]) for b in self.batches}),
                "batches_digest": _digest(self.batches),
                "version": self.version,
            },
        )


def current_cut(con: duckdb.DuckDBPyConnection, ledgers: tuple[str, ...], version: str) -> Cut:
    """Today's cut of ``ledgers`` (append-by-batch tables with ``local_day``)."""
    [(first_day, last_day)] = con.execute(_SPINE_SQL).fetchall()
    batches = (
        con.execute(_BATCHES_SQL, {"tables": list(ledgers)}).fetchall()
        if table_exists(con, "audit.appended_batches")
        else []
    )
    return Cut(closed_history_end(first_day, last_day), first_day, ledgers, batches, version)
