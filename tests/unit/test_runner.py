"""The ordered SQL runner: dependency order, bound parameters, comments, assertions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from circulate.errors import ConfigurationError
from circulate.warehouse.runner import (
    REBUILT_NIGHTLY,
    PythonModel,
    default_sql_dir,
    discover_models,
    run_assertions,
    run_models,
)


def _write(root: Path, relative: str, sql: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    _write(
        root, "staging/numbers.sql", "-- Numbers one to three.\nselect range + 1 as n from range(3)"
    )
    # 'a_total' sorts before 'b_doubled' but reads it, so it must run after it.
    _write(root, "marts/a_total.sql", "select sum(n2) as total from marts.b_doubled;\n")
    _write(root, "marts/b_doubled.sql", "select n * $factor as n2 from staging.numbers")
    _write(root, "tests/total_is_twelve.sql", "select total from marts.a_total where total <> 12")
    return root


def _schemas(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema staging; create schema intermediate; create schema marts")


def test_models_run_after_what_they_read(project: Path) -> None:
    order = [m.table for m in discover_models(project)]
    assert order == ["staging.numbers", "marts.b_doubled", "marts.a_total"]


def test_models_build_tables_with_bound_parameters_and_comments(project: Path) -> None:
    con = duckdb.connect()
    _schemas(con)
    built = run_models(con, project, {"factor": 2, "unused": "ignored"})
    assert built == ["staging.numbers", "marts.b_doubled", "marts.a_total"]
    assert con.execute("from marts.a_total").fetchall() == [(12,)]
    comment = con.execute(
        "select comment from duckdb_tables() where table_name = 'numbers'"
    ).fetchone()
    assert comment == ("Numbers one to three.",)
    assert run_assertions(con, project, {}) == []


def test_failing_assertion_returns_offending_rows(project: Path) -> None:
    con = duckdb.connect()
    _schemas(con)
    run_models(con, project, {"factor": 3})
    failures = run_assertions(con, project, {})
    assert [(f.name, f.offending_rows, f.sample) for f in failures] == [
        ("total_is_twelve", 1, [(18,)])
    ]
    assert "total=18" in failures[0].describe()


def test_missing_parameter_names_the_file(project: Path) -> None:
    con = duckdb.connect()
    _schemas(con)
    with pytest.raises(ConfigurationError, match=r"b_doubled\.sql.*\['factor'\]"):
        run_models(con, project, {})


def test_broken_model_names_the_file(project: Path) -> None:
    _write(project, "marts/c_broken.sql", "select no_such_column from staging.numbers")
    con = duckdb.connect()
    _schemas(con)
    with pytest.raises(ConfigurationError, match=r"c_broken\.sql"):
        run_models(con, project, {"factor": 2})


def test_reference_cycle_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, "marts/x.sql", "select * from marts.y")
    _write(tmp_path, "marts/y.sql", "select * from marts.x")
    with pytest.raises(ConfigurationError, match="cycle"):
        discover_models(tmp_path)


def test_project_models_follow_the_conventions() -> None:
    sql_dir = default_sql_dir()
    models = discover_models(sql_dir)
    assert {m.table for m in models} >= {
        "marts.daily_circulation",
        "marts.monthly_circulation",
        "marts.account_balances",
    }
    for model in models:
        assert model.description, f"{model.path} needs a leading comment describing the table"
        assert "{" not in model.sql, f"{model.path}: values come in as $parameters"
    marts = {m.name for m in models if m.layer == "marts"}
    tests = {p.stem for p in (sql_dir / "tests").glob("*.sql")}
    for mart in marts:
        assert any(t.startswith(mart) for t in tests), f"marts.{mart} has no sql/tests assertion"


def test_python_model_runs_between_what_it_reads_and_what_reads_it(project: Path) -> None:
    def build_squares(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
        values = [row[0] for row in con.execute("select n from staging.numbers").fetchall()]
        con.execute("create or replace table intermediate.squares (n2 integer)")
        con.executemany("insert into intermediate.squares values (?)", [[v * v] for v in values])

    squares = PythonModel(
        "intermediate",
        "squares",
        frozenset({"staging.numbers"}),
        build_squares,
        "Squares.",
        REBUILT_NIGHTLY,
    )
    _write(project, "marts/c_sum_of_squares.sql", "select sum(n2) as s from intermediate.squares")
    con = duckdb.connect()
    _schemas(con)
    built = run_models(con, project, {"factor": 2}, python_models=[squares])
    assert built.index("staging.numbers") < built.index("intermediate.squares")
    assert built.index("intermediate.squares") < built.index("marts.c_sum_of_squares")
    assert con.execute("from marts.c_sum_of_squares").fetchall() == [(14,)]


def test_one_python_build_can_make_several_tables(project: Path) -> None:
    def build_pair(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
        con.execute("create or replace table intermediate.odds as select 1 as n union all select 3")
        con.execute("create or replace table intermediate.evens as select 2 as n")

    pair = PythonModel(
        "intermediate",
        "odds",
        frozenset({"staging.numbers"}),
        build_pair,
        "Odd numbers.",
        REBUILT_NIGHTLY,
        also_builds={"intermediate.evens": "Even numbers."},
    )
    # Reads only the table built "on the side": it must still run after the model.
    _write(project, "marts/c_evens.sql", "select count(*) as c from intermediate.evens")
    con = duckdb.connect()
    _schemas(con)
    built = run_models(con, project, {"factor": 2}, python_models=[pair])
    assert built.index("intermediate.evens") < built.index("marts.c_evens")
    assert con.execute("from marts.c_evens").fetchall() == [(1,)]
    comments = dict(
        con.execute(
            "select table_name, comment from duckdb_tables() where schema_name = 'intermediate'"
        ).fetchall()
    )
    assert comments == {"odds": "Odd numbers.", "evens": "Even numbers."}
    with pytest.raises(ConfigurationError, match=r"intermediate\.odds is built both"):
        discover_models(project, [pair, pair])


def test_python_model_states_a_refresh_for_each_table() -> None:
    def build_nothing(con: duckdb.DuckDBPyConnection, parameters: Mapping[str, Any]) -> None:
        """Stands in for a build that makes both tables."""

    pair = PythonModel(
        "intermediate",
        "odds",
        frozenset(),
        build_nothing,
        "Odd numbers.",
        "reused while unchanged",
        also_builds={"intermediate.evens": "Even numbers.", "intermediate.all": "All."},
        refresh_by_table={"intermediate.evens": REBUILT_NIGHTLY},
    )
    assert pair.refreshes == {
        "intermediate.odds": "reused while unchanged",
        "intermediate.evens": REBUILT_NIGHTLY,
        "intermediate.all": "reused while unchanged",
    }
    # A table the model does not build, in either mapping.
    unknown: list[dict[str, Any]] = [
        {"refresh_by_table": {"intermediate.primes": REBUILT_NIGHTLY}},
        {"written_by": {"intermediate.primes": build_nothing}},
    ]
    for mapping in unknown:
        [name] = mapping
        with pytest.raises(ConfigurationError, match=rf"{name} names \['intermediate\.primes'\]"):
            PythonModel(
                "intermediate",
                "odds",
                frozenset(),
                build_nothing,
                "Odd.",
                REBUILT_NIGHTLY,
                **mapping,
            )
    assert pair.paths == dict.fromkeys(pair.tables, Path(__file__))


@pytest.fixture
def appending(tmp_path: Path) -> Path:
    """Loads scaled by $factor, then the loads of a kept kind: both append by batch."""
    root = tmp_path / "sql"
    _write(
        root,
        "staging/loads.sql",
        "-- Loads scaled.\n-- @append-by-batch from raw.loads\n"
        "select batch_id, n * $factor as n from raw.loads\n"
        "where batch_id in (select unnest($new_batches))",
    )
    _write(
        root,
        "intermediate/kept.sql",
        "-- Loads of a kept kind.\n-- @append-by-batch from staging.loads\n"
        "select batch_id, n from staging.loads\n"
        "where batch_id in (select unnest($new_batches))\n"
        "    and n % 2 in (select parity from raw.kept)",
    )
    return root


def _loads(con: duckdb.DuckDBPyConnection, batch: str, *values: int) -> None:
    con.executemany("insert into raw.loads values (?, ?)", [[batch, v] for v in values])


def _held(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select table_name, batch_id from audit.appended_batches order by all"
    ).fetchall()


def test_append_models_add_only_new_batches(appending: Path) -> None:
    def values(table: str) -> list[int]:
        return [n for (n,) in con.execute(f"select n from {table} order by n").fetchall()]

    con = duckdb.connect()
    con.execute("create schema raw; create table raw.loads (batch_id varchar, n integer)")
    con.execute("create table raw.kept as select 0 as parity")
    _schemas(con)
    _loads(con, "A", 1, 2)
    run_models(con, appending, {"factor": 1})
    assert (values("staging.loads"), values("intermediate.kept")) == ([1, 2], [2])
    comment = con.execute(
        "select comment from duckdb_tables() where schema_name = 'staging' and table_name = 'loads'"
    )
    assert comment.fetchall() == [("Loads scaled.",)]

    # Marked rows show which builds append: a rebuild would recompute them.
    con.execute("update staging.loads set n = 10 * n; update intermediate.kept set n = 10 * n")
    _loads(con, "B", 3, 4)
    run_models(con, appending, {"factor": 1})
    assert (values("staging.loads"), values("intermediate.kept")) == ([3, 4, 10, 20], [4, 20])
    assert _held(con) == [
        ("intermediate.kept", "A"),
        ("intermediate.kept", "B"),
        ("staging.loads", "A"),
        ("staging.loads", "B"),
    ]

    # Another table the model reads changes: that model (only) is rebuilt.
    con.execute("update raw.kept set parity = 1")
    run_models(con, appending, {"factor": 1})
    assert (values("staging.loads"), values("intermediate.kept")) == ([3, 4, 10, 20], [3])

    # A parameter changes: both are rebuilt (the second because its source was).
    run_models(con, appending, {"factor": 3})
    assert (values("staging.loads"), values("intermediate.kept")) == ([3, 6, 9, 12], [3, 9])
    assert len(_held(con)) == 4


def test_a_batch_that_changed_rebuilds_the_table(appending: Path) -> None:
    con = duckdb.connect()
    con.execute("create schema raw; create table raw.loads (batch_id varchar, n integer)")
    con.execute("create table raw.kept as select 0 as parity")
    _schemas(con)
    _loads(con, "A", 2)
    run_models(con, appending, {"factor": 1})
    _loads(con, "A", 4)  # a row more in a batch the tables hold
    run_models(con, appending, {"factor": 1})
    assert con.execute("select n from intermediate.kept order by n").fetchall() == [(2,), (4,)]
    con.execute("delete from raw.loads where n = 2")
    run_models(con, appending, {"factor": 1})
    assert con.execute("select n from intermediate.kept order by n").fetchall() == [(4,)]
    con.execute("drop table intermediate.kept")  # a table lost is rebuilt too
    run_models(con, appending, {"factor": 1})
    assert con.execute("select n from intermediate.kept order by n").fetchall() == [(4,)]


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ("-- @append from raw.loads", "select 1", "unknown directive"),
        (
            "-- @append-by-batch from raw.loads\n-- @append-by-batch from raw.loads",
            "select * from raw.loads where batch_id in (select unnest($new_batches))",
            "unknown directive",
        ),
        ("-- @append-by-batch from raw.other", "select * from raw.loads", "does not read it"),
        ("-- @append-by-batch from raw.loads", "select * from raw.loads", "never selects them"),
    ],
)
def test_append_directive_mistakes_name_the_file(
    tmp_path: Path, header: str, body: str, message: str
) -> None:
    _write(tmp_path, "staging/wrong.sql", f"-- Wrong.\n{header}\n{body}")
    con = duckdb.connect()
    _schemas(con)
    with pytest.raises(ConfigurationError, match=rf"wrong\.sql.*{message}"):
        run_models(con, tmp_path, {})
