"""What analysts and operators use by day: read-only queries, the data dictionary, status.

Everything here opens the published snapshot read-only, so it works while a nightly run
builds the next one.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from circulate.errors import InputError
from circulate.warehouse.connection import connect

PUBLISHED_SCHEMAS = ("marts", "intermediate", "staging", "audit", "raw")


def open_published(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the published snapshot, with a clear error when missing."""
    if not warehouse.is_file():
        raise InputError(
            f"No published warehouse at {warehouse}: run `circulate run` (or `circulate demo`) "
            "first, or pass --warehouse with the right file."
        )
    return connect(warehouse, read_only=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def query(warehouse: Path, sql: str, output: str = "table") -> str:
    """Run one read-only query and render the result as a table, CSV or JSON lines.

    CSV cells starting with ``= + - @`` are prefixed with a quote so a spreadsheet does
    not run them as formulas.
    """
    con = open_published(warehouse)
    try:
        try:
            relation = con.sql(sql)
        except duckdb.Error as error:
            raise InputError(f"The query failed: {error}") from error
        if relation is None:
            return ""
        if output == "table":
            return str(relation)
        columns = relation.columns
        rows = relation.fetchall()
    finally:
        con.close()
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv_safe(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    return "\n".join(
        json.dumps({c: _jsonable(v) for c, v in zip(columns, row, strict=True)}) for row in rows
    )


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells.

    >>> _csv_safe("=HYPERLINK(1)"), _csv_safe("-3"), _csv_safe(-3), _csv_safe("shop")
    ("'=HYPERLINK(1)", "'-3", -3, 'shop')
    """
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


#: Whole-history member-network figures ``circulate metrics`` shows beside circulation's.
NETWORK_HEADLINE = (
    "as_of_day",
    "nodes",
    "edges",
    "weighted_reciprocity",
    "giant_scc_volume_share",
    "communities",
    "modularity",
    "fragility_top1",
    "fragility_top5",
)


def whole_history_network(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The member network's whole-history figures, keys prefixed ``network_``, JSON-ready.

    They are as of ``network_as_of_day``, the end of the latest complete month, not the
    last loaded day. Empty when the warehouse has no whole-history network row.
    """
    try:
        rows = con.execute(
            f"select {', '.join(NETWORK_HEADLINE)} from marts.network_summary "  # noqa: S608
            "where scope = 'member' and period_kind = 'all'"
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    if not rows:
        return {}
    return {
        f"network_{name}": _jsonable(value)
        for name, value in zip(NETWORK_HEADLINE, rows[0], strict=True)
    }


def data_dictionary(con: duckdb.DuckDBPyConnection) -> str:
    """Markdown describing every published table and column (from DuckDB's catalogue).

    Each table also names the file that defines it, linked relative to ``docs/``, and how
    the nightly run refreshes it (:func:`~circulate.warehouse.provenance.table_provenance`).

    Raises
    ------
    InputError
        When the warehouse holds a table circulate does not define.
    """
    from circulate.warehouse.provenance import table_provenance

    provenance = table_provenance()
    tables = con.execute(
        """
        select schema_name, table_name, coalesce(comment, '') as comment
        from duckdb_tables()
        where schema_name in ('marts', 'intermediate', 'staging', 'audit', 'raw')
          and not temporary
        order by array_position($schemas, schema_name), table_name
        """,
        {"schemas": list(PUBLISHED_SCHEMAS)},
    ).fetchall()
    lines = [
        "# circulate data dictionary",
        "",
        "Generated from the warehouse by `circulate docs`; do not edit by hand.",
        "Schemas are layers: `marts` for analysis, `intermediate` and `staging` for the",
        "steps in between, `audit` for runs, files and quarantine, `raw` for loaded rows.",
        "Account ids everywhere are keyed pseudonyms. Money is in units of the local",
        "currency; days are calendar days in the scheme's timezone.",
        "Under each table: the file that defines it and, as Refreshed, what a nightly run",
        "does to it (a night without new exports publishes nothing). Whole-history network",
        "figures are as of the end of the last complete month (`as_of_day`);",
        "`circulate run --full` recomputes every built table from the loaded rows.",
    ]
    current_schema = ""
    for schema, table, comment in tables:
        if schema != current_schema:
            lines += ["", f"## {schema}"]
            current_schema = schema
        known = provenance.get(f"{schema}.{table}")
        if known is None:
            raise InputError(
                f"The warehouse holds {schema}.{table}, which this version of circulate does "
                "not define, so the data dictionary cannot say where it comes from. A "
                "staging, intermediate or marts table left by an earlier version goes with "
                "`circulate run --full`; a table new in the code needs a refresh rule "
                "(PythonModel.refresh, or PERSISTENT_REFRESH in circulate/warehouse/schema.py)."
            )
        lines += ["", f"### {schema}.{table}", ""]
        lines += [
            f"Defined in [{known.defined_in}](../{known.defined_in}) · Refreshed: {known.refresh}.",
            "",
        ]
        if comment:
            lines += [comment, ""]
        lines += ["| column | type | description |", "|---|---|---|"]
        columns = con.execute(
            """
            select column_name, data_type, coalesce(comment, '')
            from duckdb_columns()
            where schema_name = $schema and table_name = $table
            order by column_index
            """,
            {"schema": schema, "table": table},
        ).fetchall()
        for name, data_type, column_comment in columns:
            lines.append(f"| {name} | {data_type.lower()} | {column_comment} |")
    return "\n".join(lines) + "\n"


def status(warehouse: Path, run_log: Path, *, last: int = 5) -> str:
    """Recent runs, the published snapshot's age and row counts."""
    out = []
    entries = []
    if run_log.exists():
        entries = [json.loads(line) for line in run_log.read_text().splitlines() if line]
    out.append(f"Last {min(last, len(entries))} of {len(entries)} run(s) ({run_log}):")
    for entry in entries[-last:]:
        out.append(
            f"  {entry['run_id']}  {entry['status']:<8} stage={entry['stage']:<9} "
            f"files={entry['files_new']} rows={entry['rows_loaded']}"
            + (f"  {entry['message'].splitlines()[0][:100]}" if entry.get("message") else "")
        )
    if not warehouse.is_file():
        out.append(f"No published snapshot at {warehouse}.")
        return "\n".join(out)
    modified = datetime.fromtimestamp(warehouse.stat().st_mtime, UTC)
    age_hours = (datetime.now(UTC) - modified).total_seconds() / 3600
    out.append(
        f"Published snapshot {warehouse}: written {modified:%Y-%m-%d %H:%M} UTC "
        f"({age_hours:.1f} h ago)"
    )
    con = open_published(warehouse)
    try:
        marts = con.execute(
            "select table_name, estimated_size from duckdb_tables() "
            "where schema_name = 'marts' order by table_name"
        ).fetchall()
        for name, _estimate in marts:
            count = con.execute(f'select count(*) from marts."{name}"').fetchone()  # noqa: S608
            out.append(f"  marts.{name}: {count[0] if count else 0:,} rows")
        out += _open_warnings(con)
    finally:
        con.close()
    return "\n".join(out)


def _open_warnings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Failed warning-level checks of the latest published batch (they did not block it)."""
    has_results = con.execute(
        "select count(*) from duckdb_tables() "
        "where schema_name = 'audit' and table_name = 'validation_results'"
    ).fetchone()
    if not has_results or not has_results[0]:
        return []
    warnings = con.execute(
        """
        select suite || '.' || expectation, observed_value
        from audit.validation_results
        where severity = 'warning' and status = 'failed'
          and run_id = (select max(run_id) from audit.runs where stage = 'published')
        order by 1
        """
    ).fetchall()
    if not warnings:
        return ["Open validation warnings: none"]
    return [f"Open validation warnings ({len(warnings)}):"] + [
        f"  {name}: {observed}" for name, observed in warnings
    ]
