"""Parquet copies of the marts for Polars, pandas or any engine (``data/marts/*.parquet``).

The files are written into a fresh folder which then replaces the previous one, so a
reader finds either the old set or the new set, never a mix of the two nights.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from circulate.warehouse.connection import connect


def export_marts(warehouse: Path, out_dir: Path) -> list[Path]:
    """Write every ``marts.*`` table of ``warehouse`` to ``out_dir/<table>.parquet``."""
    staging = out_dir.with_name(out_dir.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    con = connect(warehouse, read_only=True)
    try:
        tables = [
            row[0]
            for row in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' "
                "order by table_name"
            ).fetchall()
        ]
        for table in tables:
            target = (staging / f"{table}.parquet").as_posix().replace("'", "''")
            # COPY takes neither the table nor the path as a parameter; the table name comes
            # from the catalogue and the path from our own folder.
            con.execute(f"copy marts.\"{table}\" to '{target}' (format parquet)")
    finally:
        con.close()
    previous = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, previous)
    os.replace(staging, out_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return [out_dir / f"{table}.parquet" for table in tables]
