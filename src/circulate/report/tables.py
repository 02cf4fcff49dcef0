"""The report's tables as CSV files in ``reports/<as-of>/tables/``.

Every table arrives already suppressed (no cell describes fewer than k accounts) and
without account ids. Text cells are neutralised against spreadsheet formula injection
(DESIGN.md §5): a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading apostrophe, so a spreadsheet shows it as text instead of running it.
Numbers are written as numbers (a negative number is data, not a formula).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from circulate.report.archive import write_atomic

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: Columns never published, whatever frame they arrive in.
PRIVATE_COLUMNS = frozenset({"account_id", "top_hub_id", "source_id", "target_id", "txn_id"})


def csv_cell(value: Any) -> str | int | float:
    """One CSV cell: numbers as they are, text neutralised, empty for null.

    >>> csv_cell('=HYPERLINK("http://x")'), csv_cell("-2+3"), csv_cell("@SUM(A1)")
    ('\\'=HYPERLINK("http://x")', "'-2+3", "'@SUM(A1)")
    >>> csv_cell(-12.5), csv_cell(None), csv_cell("retail"), csv_cell(True)
    (-12.5, '', 'retail', 'true')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def to_csv(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    """CSV text with a header row; every cell through :func:`csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue()


def write_table(tables_dir: Path, name: str, frame: pl.DataFrame) -> Path:
    """Write ``frame`` to ``tables_dir/<name>.csv`` (private columns dropped)."""
    public = frame.drop([c for c in frame.columns if c in PRIVATE_COLUMNS])
    path = tables_dir / f"{name}.csv"
    write_atomic(path, to_csv(public.columns, public.iter_rows()))
    return path
