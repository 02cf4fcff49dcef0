"""Analysts' read-only access: queries in three formats, the data dictionary, status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from circulate.analyst import data_dictionary, open_published, query, status
from circulate.errors import InputError
from circulate.pipeline import run_log_path
from circulate.settings import Settings
from circulate.warehouse.provenance import table_provenance
from circulate.warehouse.runner import default_sql_dir, discover_models

REPOSITORY = Path(__file__).parents[2]
# The line under each table heading: its defining file, linked from docs/, and its refresh.
PROVENANCE_LINE = re.compile(
    r"^### (?P<table>\S+)\n\nDefined in \[(?P<path>[^]]+)\]\(\.\./(?P<link>[^)]+)\) · "
    r"Refreshed: (?P<refresh>.+)\.$",
    re.MULTILINE,
)

MONTHLY = "select month, transfer_volume, transfer_count from marts.monthly_circulation"


def test_query_renders_table_csv_and_json(published: Settings) -> None:
    table = query(published.warehouse, MONTHLY)
    assert "2025-01-01" in table and "50.00" in table
    assert query(published.warehouse, MONTHLY, "csv") == (
        "month,transfer_volume,transfer_count\n2025-01-01,50.00,2"
    )
    assert json.loads(query(published.warehouse, MONTHLY, "json")) == {
        "month": "2025-01-01",
        "transfer_volume": "50.00",
        "transfer_count": 2,
    }


def test_query_csv_neutralises_spreadsheet_formulas(published: Settings) -> None:
    text = query(published.warehouse, "select '=HYPERLINK(\"x\")' as cell", "csv")
    assert text.splitlines()[1] == '"\'=HYPERLINK(""x"")"'


def test_query_cannot_write(published: Settings) -> None:
    with pytest.raises(InputError, match="read-only"):
        query(published.warehouse, "drop table marts.daily_circulation")


def test_missing_warehouse_says_what_to_run(settings: Settings) -> None:
    with pytest.raises(InputError, match="circulate run"):
        query(settings.warehouse, "select 1")


def test_data_dictionary_lists_marts_with_descriptions(published: Settings) -> None:
    con = open_published(published.warehouse)
    text = data_dictionary(con)
    assert "### marts.daily_circulation" in text
    assert "Daily circulation in the scheme's timezone" in text
    assert "| money_supply | decimal(18,2) |" in text
    assert text.index("## marts") < text.index("## audit")


def test_every_table_of_a_built_warehouse_has_a_provenance(published: Settings) -> None:
    con = open_published(published.warehouse)
    tables = {
        f"{schema}.{table}"
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name in "
            "('marts', 'intermediate', 'staging', 'audit', 'raw')"
        ).fetchall()
    }
    # Both ways: a rule for a table no build makes would be a misspelt name.
    assert set(table_provenance()) == tables


def test_data_dictionary_says_where_each_table_comes_from(published: Settings) -> None:
    con = open_published(published.warehouse)
    text = data_dictionary(con)
    found = {m["table"]: m for m in PROVENANCE_LINE.finditer(text)}
    assert set(found) == set(re.findall(r"^### (\S+)$", text, re.MULTILINE))
    for table, line in found.items():
        assert line["link"] == line["path"], table
        assert (REPOSITORY / line["path"]).is_file(), f"{table}: {line['path']} is missing"
    appended = [m.table for m in discover_models(default_sql_dir()) if m.appends_from]
    assert appended, "the ledger's staging and intermediate tables append by batch"
    for table in appended:
        assert found[table]["path"] == f"sql/{table.replace('.', '/')}.sql"
        assert found[table]["refresh"].startswith("appended per load batch"), table
    assert found["marts.daily_circulation"]["refresh"] == "rebuilt every night"
    assert found["marts.network_nodes"]["path"] == "src/circulate/metrics/network.py"
    assert "when a month closes" in found["marts.network_nodes"]["refresh"]
    # Built by circulation's build, written (and laid out) by the trace checkpoint module.
    assert found["intermediate.issuance_reach"]["path"] == "src/circulate/metrics/circulation.py"
    for table in ("trace_checkpoint", "trace_checkpoint_lots", "trace_checkpoint_issuances"):
        path = found[f"intermediate.{table}"]["path"]
        assert path == "src/circulate/metrics/trace_checkpoint.py", table
    assert "from decisions.jsonl" in found["audit.decisions"]["refresh"]


def test_data_dictionary_refuses_a_table_it_cannot_place() -> None:
    con = duckdb.connect()
    con.execute("create schema marts; create table marts.left_behind (n integer)")
    with pytest.raises(InputError, match=r"marts\.left_behind"):
        data_dictionary(con)


def test_status_shows_runs_and_row_counts(published: Settings) -> None:
    text = status(published.warehouse, run_log_path(published))
    assert "marts.daily_circulation: 3 rows" in text
    assert "Published snapshot" in text
    assert "success  stage=export" in text
    assert "Open validation warnings" in text


def test_data_dictionary_in_docs_is_current(published: Settings) -> None:
    """docs/data-dictionary.md must match the warehouse the code builds.

    When this fails, regenerate it: `uv run circulate docs` (after `circulate run` or
    `make demo`), and commit the result.
    """
    con = open_published(published.warehouse)
    expected = data_dictionary(con)
    committed = (REPOSITORY / "docs" / "data-dictionary.md").read_text()
    assert committed == expected, "docs/data-dictionary.md is stale: run `circulate docs`"


def test_every_mart_column_is_described(published: Settings) -> None:
    con = open_published(published.warehouse)
    undescribed = con.execute(
        "select table_name || '.' || column_name from duckdb_columns() "
        "where schema_name = 'marts' and comment is null"
    ).fetchall()
    assert undescribed == [], "add these columns to sql/glossary.toml"
