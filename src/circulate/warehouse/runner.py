"""Run the SQL models in dependency order and the assertion queries that guard them.

A file ``sql/<layer>/<name>.sql`` holds one ``select`` and builds table ``<layer>.<name>``.
Values reach a model only as named parameters (``$timezone``), never by formatting text.
The leading ``--`` comment block of a model becomes the table's DuckDB comment, except
lines starting with ``@``, which are directives to the runner:

``-- @append-by-batch from <layer>.<table>``
    The model maps each row of ``<layer>.<table>`` to rows of its own, independently of
    the other rows, and keeps that table's ``batch_id`` (the run that loaded the row).
    It selects only rows of the batches listed in ``$new_batches``. A build then adds
    just the batches the table does not hold yet instead of rebuilding it, as long as
    the rows of the batches it holds are unchanged (counted per batch) and nothing else
    it depends on changed (its SQL, parameters and the other tables it reads, digested).
    Otherwise it is rebuilt from every batch. ``audit.appended_batches`` records which
    batches each such table holds.

Every other model is rebuilt whole at every build. Each model states how its tables are
refreshed (``refresh``), in words the data dictionary prints.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from circulate.errors import ConfigurationError
from circulate.warehouse.connection import table_content, table_exists
from circulate.warehouse.schema import LAYERS

_REFERENCE = re.compile(r"\b(" + "|".join(LAYERS) + r")\.([a-z_][a-z0-9_]*)\b")
#: Any table a model can read, loaded (raw), bookkeeping (audit) or built.
_REFERENCE_ANY = re.compile(r"\b(?:raw|audit|" + "|".join(LAYERS) + r")\.[a-z_][a-z0-9_]*\b")
_PARAMETER = re.compile(r"\$([a-z_][a-z0-9_]*)\b")
_APPEND_DIRECTIVE = re.compile(
    r"^@append-by-batch\s+from\s+(" + "|".join(LAYERS) + r"|raw)\.([a-z_][a-z0-9_]*)$"
)
#: The parameter through which an append-by-batch model receives the batches to select.
NEW_BATCHES = "new_batches"
SAMPLE_ROWS = 5
#: DuckDB's memory ceiling during a nightly run (every stage, not only the build). Its
#: default is 80 % of the machine's RAM, which it fills with cached blocks and join and
#: window state beside the Python models' arrays; capped, it evicts and spills to disk
#: (``<warehouse>.tmp``) instead.
BUILD_MEMORY_LIMIT = "2GiB"
_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|bytes)$")
#: The refresh of a table the build creates anew from its inputs every night.
REBUILT_NIGHTLY = "rebuilt every night"


def default_sql_dir() -> Path:
    """The ``sql/`` folder of a checkout, or the copy packaged inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sql", here.parents[1] / "_sql"):
        if (candidate / "marts").is_dir():
            return candidate
    raise ConfigurationError(
        "Cannot find the SQL models: run from a circulate checkout or reinstall the package."
    )


@dataclass(frozen=True)
class Model:
    """One SQL model file."""

    layer: str
    name: str
    path: Path
    sql: str

    @property
    def table(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def depends_on(self) -> set[str]:
        return {f"{layer}.{name}" for layer, name in _REFERENCE.findall(self.sql)} - {self.table}

    @property
    def _header(self) -> list[str]:
        lines = []
        for line in self.sql.lstrip().splitlines():
            if not line.startswith("--"):
                break
            lines.append(line.removeprefix("--").strip())
        return lines

    @property
    def description(self) -> str:
        return " ".join(part for part in self._header if part and not part.startswith("@"))

    @property
    def reads_any(self) -> set[str]:
        """Every table the model's SQL (comments aside) reads, ``raw`` and ``audit`` too."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return set(_REFERENCE_ANY.findall(body)) - {self.table}

    @property
    def appends_from(self) -> str | None:
        """The table whose new load batches this model appends, if it declares one."""
        directives = [line for line in self._header if line.startswith("@")]
        if not directives:
            return None
        match = _APPEND_DIRECTIVE.match(directives[0])
        if len(directives) > 1 or not match:
            raise ConfigurationError(
                f"{self.path}: unknown directive(s) {directives}; the runner knows one, "
                "'-- @append-by-batch from <layer>.<table>'."
            )
        source = f"{match[1]}.{match[2]}"
        if source not in self.reads_any:
            raise ConfigurationError(
                f"{self.path}: appends batches from {source} but does not read it."
            )
        if NEW_BATCHES not in _PARAMETER.findall(self.sql):
            raise ConfigurationError(
                f"{self.path}: appends batches from {source} but never selects them: "
                f"filter its rows with 'batch_id in (select unnest(${NEW_BATCHES}))'."
            )
        return source

    @property
    def refresh(self) -> str:
        """How a build refreshes the table (see the module docstring), in plain words."""
        source = self.appends_from
        if source is None:
            return REBUILT_NIGHTLY
        # What _model_digest covers: a change to any of it rebuilds the table whole.
        other_tables = sorted(self.reads_any - {source})
        *others, last = ["its SQL", "its parameters", "DuckDB's version", *other_tables]
        return (
            f"appended per load batch of {source} (rebuilt whole when a batch it holds "
            f"changes its row count, when {', '.join(others)} or {last} change, and on "
            "`circulate run --full`)"
        )


@dataclass(frozen=True)
class PythonModel:
    """A table built by a Python function, for work SQL does badly (tracing money, graphs).

    ``build`` must create (or replace) ``<layer>.<name>`` from the tables listed in
    ``reads``; the runner places it after them and before every model that reads it.
    """

    layer: str
    name: str
    reads: frozenset[str]
    build: Callable[[duckdb.DuckDBPyConnection, Mapping[str, Any]], None]
    description: str
    #: How a nightly build refreshes the tables, in plain words for the data dictionary:
    #: :data:`REBUILT_NIGHTLY`, or what ``build`` reuses from the previous snapshot and
    #: when it recomputes. Required, because only the build function knows.
    refresh: str
    #: Further tables the same ``build`` creates (table -> description), for work that
    #: feeds several tables from one expensive computation, such as one trace of money.
    also_builds: Mapping[str, str] = field(default_factory=dict)
    #: The refresh of those of ``also_builds`` that are refreshed otherwise than ``refresh``.
    refresh_by_table: Mapping[str, str] = field(default_factory=dict)
    #: The function that writes one of ``also_builds`` when it lies in another module than
    #: ``build`` (that module defines the table's layout, and the data dictionary names it).
    written_by: Mapping[str, Callable[..., object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, tables in (
            ("refresh_by_table", self.refresh_by_table),
            ("written_by", self.written_by),
        ):
            unknown = sorted(tables.keys() - self.also_builds.keys())
            if unknown:
                raise ConfigurationError(
                    f"{self.table}: {name} names {unknown}, which are not among the "
                    f"tables it also builds ({sorted(self.also_builds)})."
                )

    @property
    def table(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def tables(self) -> dict[str, str]:
        """Every table this model builds, with its description."""
        return {self.table: self.description, **self.also_builds}

    @property
    def refreshes(self) -> dict[str, str]:
        """Every table this model builds, with how a build refreshes it."""
        return {table: self.refresh_by_table.get(table, self.refresh) for table in self.tables}

    @property
    def depends_on(self) -> set[str]:
        return set(self.reads)

    @property
    def path(self) -> Path:
        return _source_file(self.build)

    @property
    def paths(self) -> dict[str, Path]:
        """Every table this model builds, with the module that writes it."""
        return {
            table: _source_file(self.written_by.get(table, self.build)) for table in self.tables
        }


def _source_file(function: Callable[..., object]) -> Path:
    return Path(inspect.getsourcefile(function) or function.__module__)


AnyModel = Model | PythonModel


def discover_models(sql_dir: Path, python_models: Sequence[PythonModel] = ()) -> list[AnyModel]:
    """All models under ``sql_dir`` plus ``python_models``, each after what it reads.

    Layers run in order (staging, intermediate, marts); inside a layer, references
    between models decide the order and ties go alphabetically.
    """
    models: dict[str, AnyModel] = {}
    for layer in LAYERS:
        for path in sorted((sql_dir / layer).glob("*.sql")):
            model = Model(layer, path.stem, path, path.read_text(encoding="utf-8"))
            models[model.table] = model
    built_by = {table: table for table in models}  # table -> key of the model building it
    for python_model in python_models:
        for table in python_model.tables:
            if table in built_by:
                raise ConfigurationError(
                    f"{table} is built both by {models[built_by[table]].path} "
                    f"and by {python_model.path}: keep one."
                )
            built_by[table] = python_model.table
        models[python_model.table] = python_model
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for key in sorted(models):
        candidate = models[key]
        layer_rank = LAYERS.index(candidate.layer)
        earlier_layers = {
            other for other, m in models.items() if LAYERS.index(m.layer) < layer_rank
        }
        reads = {built_by[t] for t in candidate.depends_on if t in built_by} - {key}
        sorter.add(key, *(reads | earlier_layers))
    try:
        order = list(sorter.static_order())
    except CycleError as error:
        raise ConfigurationError(
            f"SQL models reference each other in a cycle: {error.args[1]}"
        ) from error
    return [models[table] for table in order]


def _bind(sql: str, parameters: Mapping[str, Any], source: Path) -> dict[str, Any]:
    wanted = set(_PARAMETER.findall(sql))
    missing = wanted - parameters.keys()
    if missing:
        raise ConfigurationError(
            f"{source}: uses parameter(s) {sorted(missing)} that the run does not provide; "
            f"available: {sorted(parameters)}."
        )
    return {name: parameters[name] for name in wanted}


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def cap_memory(con: duckdb.DuckDBPyConnection, memory_limit: str = BUILD_MEMORY_LIMIT) -> None:
    """Cap DuckDB's memory on ``con`` (DuckDB's syntax, such as ``"2GiB"``)."""
    if not _MEMORY_SIZE.match(memory_limit):
        raise ConfigurationError(
            f"memory_limit={memory_limit!r} is not a size DuckDB reads: use e.g. '2GiB'."
        )
    # SET takes no parameters; the value was checked against _MEMORY_SIZE above.
    con.execute(f"set memory_limit = '{memory_limit}'")


def run_models(
    con: duckdb.DuckDBPyConnection,
    sql_dir: Path,
    parameters: Mapping[str, Any],
    *,
    python_models: Sequence[PythonModel] = (),
    progress: Callable[[str], None] | None = None,
    memory_limit: str | None = BUILD_MEMORY_LIMIT,
    full: bool = False,
) -> list[str]:
    """Build every model as a table and return the table names in build order.

    ``memory_limit`` (DuckDB's syntax, such as ``"2GiB"``) caps DuckDB's memory on
    ``con`` from here on; ``None`` leaves the connection's setting alone. ``full`` first
    drops every table the models build (see :func:`drop_built_tables`), so nothing a
    previous build stored is reused.
    """
    if memory_limit is not None:
        cap_memory(con, memory_limit)
    if full:
        drop_built_tables(con)
    built = []
    appended: dict[str, str] = {}  # append-by-batch table -> its digest in this build
    for model in discover_models(sql_dir, python_models):
        if progress:
            progress(f"building {model.table}")
        if isinstance(model, PythonModel):
            model.build(con, parameters)
            for table, description in model.tables.items():
                _comment(con, table, description)
                built.append(table)
            continue
        source = model.appends_from
        try:
            if source is None:
                _create(con, model, _bind(model.sql, parameters, model.path))
            else:
                appended[model.table] = _append_or_create(con, model, source, parameters, appended)
        except duckdb.Error as error:
            raise ConfigurationError(f"{model.path}: {error}") from error
        _comment(con, model.table, model.description)
        built.append(model.table)
    return built


def drop_built_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop every table of the built layers and forget which batches were appended.

    What a build reuses from the snapshot it starts from — appended batches, the money
    tracer's stored state, the network's month rows — lives in these tables, so the next
    build computes everything from the loaded rows (``raw``) again. ``audit`` keeps its
    history. Returns the dropped tables.
    """
    tables = [
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database() and schema_name in ?",
            [list(LAYERS)],
        ).fetchall()
    ]
    for table in tables:
        # Names come from DuckDB's own catalogue of the project's layers, never from data.
        con.execute(f"drop table {table}")
    if table_exists(con, "audit.appended_batches"):
        con.execute("delete from audit.appended_batches")
    return tables


def _create(con: duckdb.DuckDBPyConnection, model: Model, bound: Mapping[str, Any]) -> None:
    # Model text and table name come from the project's own files, never from data.
    con.execute(f"create or replace table {model.table} as (\n{_strip(model.sql)}\n)", bound)


#: The batches each append-by-batch table holds (how it is refreshed: see
#: :data:`circulate.warehouse.schema.PERSISTENT_REFRESH`).
APPENDED_BATCHES_DDL = """
create schema if not exists audit;
create table if not exists audit.appended_batches (
    table_name varchar not null,
    batch_id varchar not null,
    source_rows bigint not null,
    model_digest varchar not null,
    appended_at timestamp with time zone not null default current_timestamp
);
comment on table audit.appended_batches is 'Load batches each append-by-batch model holds, \
with the digest of what its rows depend on (a build appends only new batches while the \
digest and the held batches'' row counts are unchanged)';
"""


def _append_or_create(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    source: str,
    parameters: Mapping[str, Any],
    digests: Mapping[str, str],
) -> str:
    """Build an append-by-batch model: add the new batches, or rebuild; return its digest."""
    con.execute(APPENDED_BATCHES_DDL)
    bound = _bind(model.sql, {**parameters, NEW_BATCHES: []}, model.path)
    digest = _model_digest(con, model, source, bound, digests)
    # Table names come from the project's own model files, never from data.
    in_source = dict(
        con.execute(f"select batch_id, count(*) from {source} group by all").fetchall()  # noqa: S608
    )
    held = dict(
        con.execute(
            "select batch_id, source_rows from audit.appended_batches "
            "where table_name = $table and model_digest = $digest",
            {"table": model.table, "digest": digest},
        ).fetchall()
    )
    unchanged = bool(held) and all(in_source.get(batch) == rows for batch, rows in held.items())
    if unchanged and table_exists(con, model.table):
        new = sorted(set(in_source) - held.keys())
        if new:
            con.execute(
                f"insert into {model.table} by name (\n{_strip(model.sql)}\n)",
                {**bound, NEW_BATCHES: new},
            )
    else:
        new = sorted(in_source)
        _create(con, model, {**bound, NEW_BATCHES: new})
        con.execute(
            "delete from audit.appended_batches where table_name = $table", {"table": model.table}
        )
    con.execute(
        "insert into audit.appended_batches (table_name, batch_id, source_rows, model_digest) "
        "select $table, unnest($batches), unnest($rows), $digest",
        {
            "table": model.table,
            "batches": new,
            "rows": [in_source[batch] for batch in new],
            "digest": digest,
        },
    )
    return digest


def _model_digest(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    source: str,
    bound: Mapping[str, Any],
    digests: Mapping[str, str],
) -> str:
    """What an append-by-batch table's rows depend on besides its source's batches.

    The model's SQL, its parameters, DuckDB's version, the digest of its source when
    that is itself appended, and the content of every other table it reads.
    """
    hasher = hashlib.blake2b(digest_size=16)
    for part in (model.sql, repr(sorted(bound.items())), duckdb.__version__, digests.get(source)):
        hasher.update(repr(part).encode())
    for table in sorted(model.reads_any - {source}):
        hasher.update(repr((table, table_content(con, table))).encode())
    return hasher.hexdigest()


def _comment(con: duckdb.DuckDBPyConnection, table: str, description: str) -> None:
    if description:
        # COMMENT ON takes no parameters; the text is the model's own description.
        literal = "'" + description.replace("'", "''") + "'"
        con.execute(f"comment on table {table} is {literal}")


@dataclass(frozen=True)
class AssertionFailure:
    """An assertion query that returned rows: each row is an offending record."""

    name: str
    path: Path
    offending_rows: int
    columns: list[str]
    sample: list[tuple[Any, ...]]

    def describe(self) -> str:
        head = f"{self.name}: {self.offending_rows} offending row(s) ({self.path})"
        rows = "\n".join(
            "    " + ", ".join(f"{c}={v}" for c, v in zip(self.columns, row, strict=True))
            for row in self.sample
        )
        return f"{head}\n{rows}" if rows else head


def run_assertions(
    con: duckdb.DuckDBPyConnection, sql_dir: Path, parameters: Mapping[str, Any]
) -> list[AssertionFailure]:
    """Run every ``sql/tests/*.sql``; an empty result passes, rows are offending records."""
    failures = []
    for path in sorted((sql_dir / "tests").glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        query = f"select * from (\n{_strip(sql)}\n)"  # noqa: S608 (the project's own file)
        relation = con.execute(query, _bind(sql, parameters, path))
        columns = [d[0] for d in relation.description or []]
        rows = relation.fetchall()
        if rows:
            failures.append(
                AssertionFailure(path.stem, path, len(rows), columns, rows[:SAMPLE_ROWS])
            )
    return failures


def apply_glossary(con: duckdb.DuckDBPyConnection, glossary_file: Path) -> int:
    """Comment every column named in ``glossary_file`` (``sql/glossary.toml``).

    ``[columns]`` maps a column name to its meaning wherever it appears; ``[tables]``
    entries (``schema.table.column``) win for the one column they name. Returns the
    number of columns commented (none when the SQL folder has no glossary).
    """
    if not glossary_file.is_file():
        return 0
    glossary = tomllib.loads(glossary_file.read_text(encoding="utf-8"))
    by_name: dict[str, str] = glossary.get("columns", {})
    by_table: dict[str, str] = glossary.get("tables", {})
    columns = con.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where schema_name in ('raw', 'audit', 'staging', 'intermediate', 'marts') "
        "and not internal"
    ).fetchall()
    commented = 0
    for schema, table, column in columns:
        text = by_table.get(f"{schema}.{table}.{column}", by_name.get(column))
        if text:
            literal = "'" + text.replace("'", "''") + "'"
            # Names come from DuckDB's own catalogue; COMMENT ON takes no parameters.
            con.execute(f'comment on column {schema}."{table}"."{column}" is {literal}')
            commented += 1
    return commented


def write_frame(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, table: str, select: str = "*"
) -> None:
    """Create (or replace) ``table`` from a Polars frame, with ``select`` over its columns.

    ``table`` and ``select`` must be the calling module's constants, never data: DuckDB
    takes neither as a parameter.
    """
    view = "_frame_to_write"
    con.register(view, frame)
    try:
        con.execute(f"create or replace table {table} as select {select} from {view}")  # noqa: S608
    finally:
        con.unregister(view)
