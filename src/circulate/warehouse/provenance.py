"""Where each warehouse table is defined and how the nightly run refreshes it.

Read from the code that builds the tables, so the data dictionary cannot drift from it:
the SQL models and Python models the runner discovers (each states its ``refresh``),
and the raw and audit tables of the persistent DDL with their rules in
:data:`circulate.warehouse.schema.PERSISTENT_REFRESH`. Paths are given from the root of
a circulate checkout (``sql/…``, ``src/circulate/…``), also when the package runs from
an installed wheel, whose SQL models lie under ``circulate/_sql``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import circulate
from circulate.errors import ConfigurationError
from circulate.warehouse import runner, schema
from circulate.warehouse.runner import PythonModel, default_sql_dir, discover_models

__all__ = ["Provenance", "table_provenance"]

_PACKAGE_DIR = Path(circulate.__file__).resolve().parent
#: The DDL that creates the tables which accumulate across runs, by the module holding it.
_PERSISTENT_DDL = {
    Path(schema.__file__): schema.PERSISTENT_DDL,
    Path(runner.__file__): runner.APPENDED_BATCHES_DDL,
}


@dataclass(frozen=True)
class Provenance:
    """Where a table is defined and how it is refreshed.

    Attributes
    ----------
    defined_in
        The file that defines the table, from the root of a checkout, with ``/``.
    refresh
        How the nightly run refreshes the table, in plain words (no final full stop).
    """

    defined_in: str
    refresh: str


def _module_path(path: Path) -> str:
    """``src/circulate/…`` for a module file of the package, wherever it is installed."""
    return f"src/circulate/{path.resolve().relative_to(_PACKAGE_DIR).as_posix()}"


def _created_in(table: str) -> Path:
    """The module whose persistent DDL creates ``table``."""
    statement = re.compile(rf"create table if not exists {re.escape(table)} \(")
    for module, ddl in _PERSISTENT_DDL.items():
        if statement.search(ddl):
            return module
    raise ConfigurationError(
        f"{table} has a refresh rule in PERSISTENT_REFRESH but no persistent DDL creates it."
    )


def table_provenance() -> dict[str, Provenance]:
    """Every table a circulate warehouse holds: its defining file and refresh rule.

    Built tables come first, in build order, then the raw and audit tables.
    """
    # Imported here: the Python models load igraph and numba.
    from circulate.metrics import python_models

    provenance: dict[str, Provenance] = {}
    for model in discover_models(default_sql_dir(), python_models()):
        if isinstance(model, PythonModel):
            paths = model.paths
            for table, refresh in model.refreshes.items():
                provenance[table] = Provenance(_module_path(paths[table]), refresh)
        else:
            # The same name in a checkout (sql/) and in the wheel (circulate/_sql/).
            sql_file = f"sql/{model.layer}/{model.path.name}"
            provenance[model.table] = Provenance(sql_file, model.refresh)
    for table, refresh in schema.PERSISTENT_REFRESH.items():
        provenance[table] = Provenance(_module_path(_created_in(table)), refresh)
    return provenance
