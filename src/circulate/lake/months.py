"""Month marts from the lake: computed per scheme and month, then combined.

A *month mart* is a published mart (or the ``period_kind = 'month'`` rows of one) whose
rows for a calendar month depend only on that month's transactions and the scheme-wide
tables of the lake. :func:`compute_month` builds them for one partition by running the
warehouse's own models (the same SQL files, the same Python function) on an in-memory
DuckDB whose ``staging`` tables hold just that month; :func:`combine` puts the months
back together. The one figure that carries from month to month, the money in
circulation, is a running sum: each month computes it from zero and the combine step
adds the supply at the month's start (the sum of every earlier month's net issuance).

Every other mart needs history and is built by the single-process warehouse only; the
reasons are in :data:`HISTORY_MARTS`.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from circulate.errors import ConfigurationError, InputError
from circulate.lake.layout import (
    DATA_FILE,
    SCHEME_TABLES,
    Partition,
    add_months,
    month_key,
    read_parquet_file,
    scheme_file,
    scheme_name,
    write_parquet_atomically,
)
from circulate.metrics import network
from circulate.metrics.network_flows import DEFAULT_K_ANONYMITY
from circulate.warehouse.runner import Model, default_sql_dir, discover_models, run_models
from circulate.warehouse.schema import LAYERS

__all__ = [
    "HISTORY_MARTS",
    "MONTH_MARTS",
    "MonthMart",
    "MonthResult",
    "combine",
    "compute_month",
    "opening_supplies",
    "read_mart",
    "write_marts",
]

MARTS = "marts"
SUPPLY_TYPE = pl.Decimal(18, 2)


@dataclass(frozen=True)
class MonthMart:
    """A mart whose rows of one month come from that month alone.

    Attributes
    ----------
    name
        The table ``marts.<name>``.
    month_column
        The date column placing each row in its month.
    order_by
        The columns the combined mart is sorted by.
    period_kind
        Keep only the rows of this ``period_kind`` (the whole-history row needs history).
    supply_column
        Money in circulation: computed from zero within the month; the combine step adds
        the money in circulation at the month's start.
    """

    name: str
    month_column: str
    order_by: tuple[str, ...]
    period_kind: str | None = None
    supply_column: str | None = None


MONTH_MARTS: tuple[MonthMart, ...] = (
    MonthMart("daily_circulation", "day", ("day",), supply_column="money_supply"),
    MonthMart("monthly_circulation", "month", ("month",), supply_column="money_supply_end"),
    MonthMart("network_summary", "period_start", ("scope", "period_start"), period_kind="month"),
    MonthMart("spend_breakdown", "period_start", ("period_start",), period_kind="month"),
)

_FLOWS_NEED_HISTORY = (
    "complementary suppression ties each month's cell to the same pair's cells in other "
    "months and to its whole-history cell, whose distinct payers and payees do not add "
    "up across months"
)
#: Marts (and rows) only the single-process warehouse builds, and why.
HISTORY_MARTS: Mapping[str, str] = {
    "account_balances": "balances and first / last activity accumulate over the whole history",
    "area_flows": _FLOWS_NEED_HISTORY,
    "circulation_metrics": (
        "FIFO tracing follows money across months (lots carry over); week rows straddle "
        "months; dormancy looks back 90 days; new and churned accounts need earlier months"
    ),
    "impact_scorecard": (
        "each indicator's change on the previous month, and inputs such as traced "
        "multipliers and new / churned members, need earlier months"
    ),
    "impact_thresholds": "the partnership's settings table, not computed from transactions",
    "multiplier_by_entry_point": "FIFO tracing carries every account's lots across months",
    "network_nodes": "PageRank, communities and k-core of the whole-history graph",
    "network_summary": "its whole-history rows (period_kind 'all') need the whole graph",
    "participation": (
        "new and churned accounts need earlier months, and the group sizes behind its "
        "suppression count every account that ever traded"
    ),
    "risk_flags": "each flag compares complete months with the months before them",
    "sector_flows": _FLOWS_NEED_HISTORY,
    "spend_breakdown": "its whole-history row counts distinct individuals over all months",
}

#: Tables a month reads from the lake instead of building them.
LAKE_PROVIDES = frozenset({"staging.transactions", *SCHEME_TABLES.values()})


@dataclass(frozen=True)
class MonthResult:
    """The month marts' rows of one scheme and month, money in circulation from zero."""

    scheme: str
    month: date
    #: The scheme's first month: the money in circulation at its start is zero.
    opens_scheme: bool
    frames: Mapping[str, pl.DataFrame] = field(repr=False)

    @property
    def supply_change(self) -> Decimal:
        """Net issuance of the month (issued − redeemed − fees): its end-of-month supply."""
        monthly = self.frames["monthly_circulation"]["money_supply_end"]
        return Decimal(monthly[-1]) if len(monthly) else Decimal(0)


@cache
def _month_models(sql_dir: Path) -> tuple[Model, ...]:
    """The SQL models the month marts need (in build order), beyond what the lake holds."""
    models = {m.table: m for m in discover_models(sql_dir) if isinstance(m, Model)}
    wanted = {f"{MARTS}.{m.name}" for m in MONTH_MARTS if f"{MARTS}.{m.name}" in models}
    pending = [*wanted, *network.LEDGER_READS]
    needed: set[str] = set()
    while pending:
        table = pending.pop()
        if table in needed or table in LAKE_PROVIDES:
            continue
        if table not in models:
            raise ConfigurationError(
                f"A month mart reads {table}, which is neither a lake table nor a SQL model "
                f"under {sql_dir}: add it to circulate.lake.layout.SCHEME_TABLES or move the "
                "mart to HISTORY_MARTS."
            )
        needed.add(table)
        pending.extend(models[table].depends_on)
    return tuple(m for m in models.values() if m.table in needed)


def _load_month(con: duckdb.DuckDBPyConnection, partition: Partition) -> bool:
    """Fill the month's ``staging`` and lake tables; return whether it opens the scheme."""
    files = {"staging.transactions": partition.file} | {
        target: scheme_file(partition.lake, table, partition.scheme)
        for table, target in SCHEME_TABLES.items()
    }
    for path in files.values():
        if not path.is_file():
            raise InputError(
                f"{path} is missing from the lake: write the scheme {partition.scheme!r} "
                "into the lake again (circulate.lake.write_lake)."
            )
    for schema in LAYERS:
        con.execute(f"create schema if not exists {schema}")
    window = {"first": partition.month, "next": add_months(partition.month, 1)}
    for target, path in files.items():
        # Table names come from this package's constants; the path is a parameter.
        con.execute(
            f"create table {target} as "  # noqa: S608
            "select * from read_parquet($path, hive_partitioning = false)",
            {"path": str(path)},
        )
    opens = con.execute(
        "select min(day) >= $first from intermediate.day_spine", {"first": partition.month}
    ).fetchall()[0][0]
    con.execute("delete from intermediate.day_spine where day < $first or day >= $next", window)
    return bool(opens)


def _build_month_marts(
    con: duckdb.DuckDBPyConnection, parameters: Mapping[str, object], sql_dir: Path
) -> None:
    # The runner builds a folder's models; give it a folder holding just the ones needed,
    # so they run with its usual order, parameter binding and error messages.
    with tempfile.TemporaryDirectory(prefix="circulate-month-models-") as folder:
        for model in _month_models(sql_dir):
            target = Path(folder) / model.layer / f"{model.name}.sql"
            target.parent.mkdir(exist_ok=True)
            target.write_text(model.sql, encoding="utf-8")
        run_models(con, Path(folder), parameters)
    # The network model's month rows (the month graph is exactly the warehouse's month
    # graph: same accounts, numbered in the same order); the whole-history rows need history.
    network.write_network_summary(con, network.load_ledger(con), months_only=True)


def compute_month(
    partition: Partition,
    *,
    k_anonymity: int = DEFAULT_K_ANONYMITY,
    sql_dir: Path | None = None,
) -> MonthResult:
    """Build the month marts of one partition with the warehouse's own models.

    Parameters
    ----------
    partition
        The scheme and month to compute (see :func:`circulate.lake.list_partitions`).
    k_anonymity
        The warehouse's k: month rows are suppressed exactly as there.
    sql_dir
        The SQL models (default: the package's ``sql/``).
    """
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        opens = _load_month(con, partition)
        _build_month_marts(con, {"k_anonymity": k_anonymity}, sql_dir or default_sql_dir())
        frames = {mart.name: _month_rows(con, mart, partition) for mart in MONTH_MARTS}
    finally:
        con.close()
    return MonthResult(partition.scheme, partition.month, opens, frames)


def _month_of(column: str) -> pl.Expr:
    return pl.col(column).dt.truncate("1mo")


def _month_rows(
    con: duckdb.DuckDBPyConnection, mart: MonthMart, partition: Partition
) -> pl.DataFrame:
    # Mart names are this module's constants, never data.
    frame: pl.DataFrame = con.sql(f"select * from {MARTS}.{mart.name}").pl()  # noqa: S608
    if mart.period_kind is not None:
        frame = frame.filter(pl.col("period_kind") == mart.period_kind)
    strays = frame.filter(_month_of(mart.month_column) != partition.month)
    if strays.height:
        raise ConfigurationError(
            f"marts.{mart.name} has rows dated {strays[mart.month_column][0]} while building "
            f"month {partition}: it is not month-local; move it to HISTORY_MARTS."
        )
    return frame


def combine(
    results: Iterable[MonthResult], opening_supply: Mapping[str, Decimal] | None = None
) -> dict[str, pl.DataFrame]:
    """Assemble the month marts of every scheme from its months' results.

    Each scheme's months must be consecutive. The money in circulation at a month's
    start is ``opening_supply[scheme]`` (zero when the first month opens the scheme)
    plus the net issuance of every earlier month in ``results``. Returns one frame per
    month mart, with the scheme in a first column ``scheme``.
    """
    by_scheme: dict[str, list[MonthResult]] = {}
    for result in results:
        by_scheme.setdefault(result.scheme, []).append(result)
    parts: dict[str, list[pl.DataFrame]] = {mart.name: [] for mart in MONTH_MARTS}
    for scheme, months in sorted(by_scheme.items()):
        months.sort(key=lambda r: r.month)
        _require_consecutive(scheme, [r.month for r in months])
        supply = _opening(scheme, months[0], opening_supply or {})
        for result in months:
            for mart in MONTH_MARTS:
                frame = result.frames[mart.name]
                if mart.supply_column:
                    frame = frame.with_columns(
                        (pl.col(mart.supply_column) + pl.lit(supply)).cast(SUPPLY_TYPE)
                    )
                parts[mart.name].append(frame.select(pl.lit(scheme).alias("scheme"), pl.all()))
            supply += result.supply_change
    if not by_scheme:
        return {}
    return {
        mart.name: pl.concat(parts[mart.name]).sort("scheme", *mart.order_by, maintain_order=True)
        for mart in MONTH_MARTS
    }


def _require_consecutive(scheme: str, months: Sequence[date]) -> None:
    for before, after in itertools.pairwise(months):
        if after != add_months(before, 1):
            problem = "twice" if after == before else f"without {month_key(add_months(before, 1))}"
            raise InputError(
                f"Scheme {scheme!r}: month results run {month_key(before)} → "
                f"{month_key(after)} {problem}; compute every month once, in one run, from "
                "the first month whose marts you rebuild."
            )


def _opening(scheme: str, first: MonthResult, opening_supply: Mapping[str, Decimal]) -> Decimal:
    if first.opens_scheme:
        return Decimal(0)
    if scheme not in opening_supply:
        raise InputError(
            f"Scheme {scheme!r} starts before {month_key(first.month)}: give the money in "
            "circulation at that month's start (opening_supplies reads it from the stored "
            "marts), or compute from the scheme's first month."
        )
    return opening_supply[scheme]


def _mart_file(lake: Path, mart: str, scheme: str) -> Path:
    return lake / MARTS / mart / f"scheme={scheme}" / DATA_FILE


def write_marts(
    lake: Path, frames: Mapping[str, pl.DataFrame], *, since: date | None = None
) -> list[Path]:
    """Write combined month marts to ``<lake>/marts/<mart>/scheme=<scheme>/data.parquet``.

    Without ``since`` each scheme's file is replaced by the new rows; with it, stored rows
    of earlier months are kept and those of ``since`` and later replaced.
    """
    written = []
    for mart in MONTH_MARTS:
        if mart.name not in frames:
            continue
        frame = frames[mart.name]
        for scheme in frame["scheme"].unique().sort().to_list():
            rows = frame.filter(pl.col("scheme") == scheme).drop("scheme")
            target = _mart_file(lake, mart.name, scheme)
            if since is not None and target.is_file():
                kept = read_parquet_file(target).filter(_month_of(mart.month_column) < since)
                try:
                    rows = pl.concat([kept, rows]).sort(*mart.order_by, maintain_order=True)
                except pl.exceptions.SchemaError as error:
                    raise InputError(
                        f"{target} was written with other columns than marts.{mart.name} has "
                        f"now ({error}): run the fan-out without `since` to rewrite it."
                    ) from error
            written.append(write_parquet_atomically(target, rows))
    return written


def read_mart(lake: Path, mart: str, schemes: Iterable[str] | None = None) -> pl.DataFrame:
    """A month mart from the lake, every scheme (or ``schemes``), ``scheme`` first."""
    known = {m.name: m for m in MONTH_MARTS}
    if mart not in known:
        raise InputError(f"{mart!r} is not a month mart: use one of {sorted(known)}.")
    files = sorted((lake / MARTS / mart).glob(f"scheme=*/{DATA_FILE}"))
    wanted = None if schemes is None else {scheme_name(s) for s in schemes}
    frames = []
    for path in files:
        scheme = path.parent.name.removeprefix("scheme=")
        if wanted is None or scheme in wanted:
            frames.append(read_parquet_file(path).select(pl.lit(scheme).alias("scheme"), pl.all()))
    if not frames:
        raise InputError(
            f"No {mart} in the lake {lake} for {sorted(wanted) if wanted else 'any scheme'}: "
            "run the fan-out flow (`circulate fanout`) first."
        )
    return pl.concat(frames)


def opening_supplies(partitions: Iterable[Partition]) -> dict[str, Decimal]:
    """Money in circulation at the start of each scheme's first partition in ``partitions``.

    Zero when that is the scheme's first month; otherwise the stored
    ``monthly_circulation`` mart's ``money_supply_end`` of the month before.
    """
    firsts: dict[str, Partition] = {}
    for partition in sorted(partitions):
        firsts.setdefault(partition.scheme, partition)
    opening = {}
    for scheme, first in firsts.items():
        spine = scheme_file(first.lake, "day_spine", scheme)
        starts = read_parquet_file(spine)["day"].min()
        if not isinstance(starts, date) or first.month <= starts:
            opening[scheme] = Decimal(0)
            continue
        before = add_months(first.month, -1)
        stored = _mart_file(first.lake, "monthly_circulation", scheme)
        rows = (
            read_parquet_file(stored).filter(pl.col("month") == before)
            if stored.is_file()
            else pl.DataFrame()
        )
        if rows.height != 1:
            raise InputError(
                f"{stored} has no month {month_key(before)}, which the money in circulation "
                f"from {month_key(first.month)} on starts from: run the fan-out once for "
                f"scheme {scheme!r} from its first month (without `since`)."
            )
        opening[scheme] = Decimal(rows["money_supply_end"][0])
    return opening
