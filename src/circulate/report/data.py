"""Read what the funder report needs from the published warehouse.

All aggregation happens here, in DuckDB, so the charts receive at most a few thousand
rows (Altair refuses more than 5,000) and every number on the page comes from one query
over ``marts.daily_circulation`` (plus ``marts.monthly_circulation`` for active accounts,
which cannot be summed from days).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

#: Above this many days the money-supply line is drawn weekly (end-of-week balance).
MAX_DAILY_POINTS = 4000


@dataclass(frozen=True)
class Headline:
    """Raw headline figures at the as-of date (money as exact decimals).

    Attributes
    ----------
    money_supply
        End-of-day money in circulation on the as-of date (``None`` if the day is missing).
    issued, redeemed, fees
        Whole-history totals up to and including the as-of date.
    volume_30d, count_30d
        Transfers in the 30 days ending on the as-of date (``window_start`` .. as-of).
    volume_all, count_all
        Transfers over the whole history up to the as-of date.
    active_month, active_accounts, month_to_date
        Calendar month used for active accounts, its count (``None`` if unknown) and
        whether that month is still running at the as-of date.
    """

    money_supply: Decimal | None
    issued: Decimal
    redeemed: Decimal
    fees: Decimal
    window_start: dt.date
    volume_30d: Decimal
    count_30d: int
    volume_all: Decimal
    count_all: int
    active_month: dt.date | None
    active_accounts: int | None
    month_to_date: bool


@dataclass(frozen=True)
class RunRecord:
    """One row of ``audit.runs``, already rendered as text (times in UTC)."""

    run_id: str
    started_at: str
    finished_at: str
    status: str
    stage: str
    rows_loaded: str


@dataclass(frozen=True)
class ValidationRow:
    """One expectation's outcome as the report shows it."""

    suite: str
    expectation: str
    severity: str
    status: str
    observed_value: str


@dataclass(frozen=True)
class ValidationSummary:
    """Validation results of one run and where they were read from.

    Attributes
    ----------
    run_id
        The run that validated.
    source
        ``audit.validation_results`` for a published run, the JSON file for a blocked one.
    rows
        Every expectation's outcome.
    set_aside
        (file name, who set it aside, when and why) of each export an operator set aside
        that the run listed instead of loading (``circulate set-aside``).
    """

    run_id: str
    source: str
    rows: list[ValidationRow]
    set_aside: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str, severity: str | None = None) -> int:
        """Expectations with ``status`` (and ``severity`` when given).

        >>> s = ValidationSummary("r", "x", [ValidationRow("a", "b", "warning", "failed", "")])
        >>> s.count("failed", "warning"), s.count("failed", "critical"), s.count("passed")
        (1, 0, 0)
        """
        return sum(
            r.status == status and (severity is None or r.severity == severity) for r in self.rows
        )


def validation_from_results(
    run_id: str, source: str, results: list[dict[str, Any]]
) -> ValidationSummary:
    """Build a summary from stored result records (dicts with the result columns)."""
    return ValidationSummary(
        run_id,
        source,
        [
            ValidationRow(
                str(r["suite"]),
                str(r["expectation"]),
                str(r["severity"]),
                str(r["status"]),
                str(r["observed_value"] or ""),
            )
            for r in results
        ],
    )


@dataclass(frozen=True)
class ReportData:
    """Everything the page and charts read, fetched in one read-only session.

    Attributes
    ----------
    as_of, first_day, last_day
        Report date and the span of ``marts.daily_circulation`` in the warehouse.
    headline
        Headline figures, see :class:`Headline`.
    supply
        Columns ``period_start`` (Date) and ``money_supply`` (Float64), one row per day
        (or per ISO week when ``supply_period == "week"``), up to the as-of date.
    supply_period
        ``"day"`` or ``"week"``.
    monthly
        Columns ``month``, ``transfer_volume``, ``transfer_count``, ``active_accounts``,
        ``money_supply_end`` and ``suppressed`` (fewer than k active accounts: volume
        and count are nulled).
    runs
        Latest rows of ``audit.runs`` (newest first), empty when the table is missing.
    """

    as_of: dt.date
    first_day: dt.date
    last_day: dt.date
    headline: Headline
    supply: pl.DataFrame
    supply_period: str
    monthly: pl.DataFrame
    runs: list[RunRecord] = field(default_factory=list)
    validation: ValidationSummary | None = None


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _mart_covers_only_to(month: dt.date, as_of: dt.date, last_day: dt.date) -> bool:
    """Whether the monthly mart's figure for ``month`` uses no data after ``as_of``.

    >>> _mart_covers_only_to(dt.date(2024, 3, 1), dt.date(2024, 3, 31), dt.date(2024, 4, 9))
    True
    >>> _mart_covers_only_to(dt.date(2024, 4, 1), dt.date(2024, 4, 5), dt.date(2024, 4, 9))
    False
    >>> _mart_covers_only_to(dt.date(2024, 4, 1), dt.date(2024, 4, 9), dt.date(2024, 4, 9))
    True
    """
    return _next_month(month) - dt.timedelta(days=1) <= as_of or last_day <= as_of


def load_report_data(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date | None = None,
    *,
    k_anonymity: int = 5,
    max_runs: int = 5,
) -> ReportData:
    """Query the marts for one report.

    Parameters
    ----------
    con
        A (read-only) connection to the published warehouse.
    as_of
        Report date; defaults to the last day in ``marts.daily_circulation``.
    k_anonymity
        Months with fewer active accounts than this have their transfer figures hidden.
    max_runs
        How many ``audit.runs`` rows to return.

    Returns
    -------
    ReportData

    Raises
    ------
    ValueError
        If the daily mart is empty or ``as_of`` lies outside its span.
    """
    span = _rows(con, "select min(day), max(day) from marts.daily_circulation")[0]
    if span[0] is None:
        raise ValueError(
            "marts.daily_circulation is empty: run the warehouse build before the report"
        )
    first_day, last_day = span[0], span[1]
    as_of = last_day if as_of is None else as_of
    if not first_day <= as_of <= last_day:
        raise ValueError(
            f"as_of {as_of} is outside marts.daily_circulation ({first_day} .. {last_day}); "
            "pass a date inside that span or omit as_of"
        )

    headline = _headline(con, as_of, first_day, last_day)
    n_days = (as_of - first_day).days + 1
    supply_period = "day" if n_days <= MAX_DAILY_POINTS else "week"
    return ReportData(
        as_of=as_of,
        first_day=first_day,
        last_day=last_day,
        headline=headline,
        supply=_supply(con, as_of, supply_period),
        supply_period=supply_period,
        monthly=_monthly(con, as_of, last_day, k_anonymity),
        runs=_runs(con, max_runs),
        validation=latest_validation(con),
    )


def _headline(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    first_day: dt.date,
    last_day: dt.date,
) -> Headline:
    window_start = max(first_day, as_of - dt.timedelta(days=29))
    row = _rows(
        con,
        """
        select
            max(money_supply) filter (where day = $as_of),
            coalesce(sum(issued), 0),
            coalesce(sum(redeemed), 0),
            coalesce(sum(fees), 0),
            coalesce(sum(transfer_volume) filter (where day >= $window_start), 0),
            coalesce(sum(transfer_count) filter (where day >= $window_start), 0),
            coalesce(sum(transfer_volume), 0),
            coalesce(sum(transfer_count), 0)
        from marts.daily_circulation
        where day <= $as_of
        """,
        {"as_of": as_of, "window_start": window_start},
    )[0]  # an aggregate without group by always returns one row

    # Active accounts are distinct counts, so they come from the monthly mart; if the
    # as-of month's figure would include days after as_of, fall back to the month before.
    month: dt.date | None = _month_start(as_of)
    if not _mart_covers_only_to(_month_start(as_of), as_of, last_day):
        previous = _month_start(_month_start(as_of) - dt.timedelta(days=1))
        month = previous if previous >= _month_start(first_day) else None
    active: int | None = None
    if month is not None:
        found = _rows(
            con,
            "select active_accounts from marts.monthly_circulation where month = $m",
            {"m": month},
        )
        active = None if not found or found[0][0] is None else int(found[0][0])
    month_to_date = month is not None and _next_month(month) - dt.timedelta(days=1) > as_of
    return Headline(
        money_supply=row[0],
        issued=row[1],
        redeemed=row[2],
        fees=row[3],
        window_start=window_start,
        volume_30d=row[4],
        count_30d=int(row[5]),
        volume_all=row[6],
        count_all=int(row[7]),
        active_month=month,
        active_accounts=active,
        month_to_date=month_to_date,
    )


def _rows(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    # fetchall consumes the result: DuckDB 2.0 refuses new work while one is pending.
    rows: list[tuple[Any, ...]] = con.execute(query, params or {}).fetchall()
    return rows


def query_frame(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None = None
) -> pl.DataFrame:
    """Run a select with bound parameters and return it as a Polars frame."""
    relation = con.sql(query, params=params or {})
    assert relation is not None  # a select always yields a relation
    frame: pl.DataFrame = relation.pl()
    return frame


def _supply(con: duckdb.DuckDBPyConnection, as_of: dt.date, period: str) -> pl.DataFrame:
    if period == "day":
        query = """
            select day as period_start, money_supply::double as money_supply
            from marts.daily_circulation
            where day <= $as_of
            order by day
        """
    else:
        query = """
            select date_trunc('week', day)::date as period_start,
                   arg_max(money_supply, day)::double as money_supply
            from marts.daily_circulation
            where day <= $as_of
            group by 1
            order by 1
        """
    return query_frame(con, query, {"as_of": as_of})


def _monthly(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, last_day: dt.date, k_anonymity: int
) -> pl.DataFrame:
    # Volumes are summed from the daily mart up to as_of so chart, table and headline
    # agree even when as_of is mid-month; active accounts come from the monthly mart.
    frame = query_frame(
        con,
        """
        with daily as (
            select date_trunc('month', day)::date as month,
                   sum(transfer_volume) as transfer_volume,
                   sum(transfer_count) as transfer_count,
                   arg_max(money_supply, day) as money_supply_end,
                   max(day) as last_day_in_month
            from marts.daily_circulation
            where day <= $as_of
            group by 1
        )
        select daily.month,
               daily.transfer_volume::double as transfer_volume,
               daily.transfer_count::bigint as transfer_count,
               monthly.active_accounts::bigint as active_accounts,
               daily.money_supply_end::double as money_supply_end
        from daily
        left join marts.monthly_circulation as monthly using (month)
        order by daily.month
        """,
        {"as_of": as_of},
    )
    # A month whose mart figure includes days after as_of has no honest active count.
    clean = pl.Series(
        [_mart_covers_only_to(m, as_of, last_day) for m in frame["month"].to_list()],
        dtype=pl.Boolean,
    )
    active = pl.when(clean).then(pl.col("active_accounts")).otherwise(None)
    frame = frame.with_columns(active.alias("active_accounts"))
    suppressed = pl.col("active_accounts").is_not_null() & (pl.col("active_accounts") < k_anonymity)
    return frame.with_columns(suppressed.alias("suppressed")).with_columns(
        pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("transfer_volume", "transfer_count")
    )


def _runs(con: duckdb.DuckDBPyConnection, limit: int) -> list[RunRecord]:
    exists = _rows(
        con,
        """
        select count(*) from information_schema.tables
        where table_schema = 'audit' and table_name = 'runs'
        """,
    )[0][0]
    if not exists:
        return []
    # Render times in UTC whatever the analyst's machine says.
    _rows(con, "set TimeZone = 'UTC'")
    rows = _rows(
        con,
        """
        select run_id::varchar,
               coalesce(strftime(started_at, '%Y-%m-%d %H:%M UTC'), ''),
               coalesce(strftime(finished_at, '%Y-%m-%d %H:%M UTC'), ''),
               coalesce(status::varchar, ''),
               coalesce(stage::varchar, ''),
               coalesce(rows_loaded::varchar, '')
        from audit.runs
        order by started_at desc nulls last
        limit $limit
        """,
        {"limit": limit},
    )
    return [RunRecord(*(str(v) if v is not None else "" for v in r)) for r in rows]


def latest_validation(con: duckdb.DuckDBPyConnection) -> ValidationSummary | None:
    """Results of the latest published run in ``audit.validation_results`` (or ``None``)."""
    exists = _rows(
        con,
        """
        select count(*) from information_schema.tables
        where table_schema = 'audit' and table_name = 'validation_results'
        """,
    )[0][0]
    if not exists:
        return None
    latest = _rows(
        con,
        "select run_id from audit.validation_results order by validated_at desc, run_id desc "
        "limit 1",
    )
    if not latest:
        return None
    rows = _rows(
        con,
        """
        select suite, expectation, severity, status, observed_value
        from audit.validation_results
        where run_id = $run_id
        order by suite, expectation
        """,
        {"run_id": latest[0][0]},
    )
    columns = ("suite", "expectation", "severity", "status", "observed_value")
    summary = validation_from_results(
        str(latest[0][0]),
        "audit.validation_results",
        [dict(zip(columns, r, strict=True)) for r in rows],
    )
    set_aside = _rows(
        con,
        "select file_name, coalesce(message, '') from audit.files "
        "where run_id = $run_id and status = 'set_aside' order by file_name",
        {"run_id": latest[0][0]},
    )
    return replace(summary, set_aside=[(str(name), str(note)) for name, note in set_aside])
