"""DuckDB connections with the settings every circulate session needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

# duckdb-cli on PyPI (what analysts get with `uv run duckdb`) is 1.5.x and cannot read
# DuckDB 2.0's default storage format, so every file circulate writes uses this one.
STORAGE_VERSION = "v1.2.0"


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open ``path`` with UTC as the session timezone and an analyst-readable format.

    Parameters
    ----------
    path
        DuckDB database file; created (in the analyst-readable format) when missing
        unless ``read_only``.
    read_only
        Open without taking the write lock, so it works while a run writes elsewhere.
    """
    config: dict[str, str | bool | int | float | list[str]] = {}
    if not read_only:
        config["storage_compatibility_version"] = STORAGE_VERSION
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    con.execute("set TimeZone = 'UTC'")
    return con


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` (``schema.name``) exists on ``con``, as a table or a view."""
    schema, name = table.split(".")
    rows = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return bool(rows[0][0])


def table_content(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[Any, ...]]:
    """Row count and summed row hashes of ``table``: a figure of its content that ignores
    row order but not duplicates (``table`` must be the caller's constant, never data)."""
    return con.execute(
        f"select count(*), sum(hash(t)::hugeint) from {table} as t"  # noqa: S608
    ).fetchall()
