"""Analysts' read-only access: queries in three formats, the data dictionary, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circulate.analyst import data_dictionary, open_published, query, status
from circulate.errors import InputError
from circulate.pipeline import run_log_path
from circulate.settings import Settings

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
    committed = (Path(__file__).parents[2] / "docs" / "data-dictionary.md").read_text()
    assert committed == expected, "docs/data-dictionary.md is stale: run `circulate docs`"


def test_every_mart_column_is_described(published: Settings) -> None:
    con = open_published(published.warehouse)
    undescribed = con.execute(
        "select table_name || '.' || column_name from duckdb_columns() "
        "where schema_name = 'marts' and comment is null"
    ).fetchall()
    assert undescribed == [], "add these columns to sql/glossary.toml"
