"""``render_report``: warehouse in, ``reports/<as-of>/`` out."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import duckdb
import polars as pl

from circulate.report import archive, charts, impact_charts, impact_page, page, tables
from circulate.report.charts import ReportChart
from circulate.report.data import ReportData, load_report_data, validation_from_results
from circulate.report.evidence import Evidence, load_evidence
from circulate.validate.store import read_results_file, results_path

#: DESIGN §5: k is configurable but never below 3.
MIN_K_ANONYMITY = 3


@dataclass(frozen=True)
class ReportResult:
    """What one render produced.

    Attributes
    ----------
    index_html
        ``reports_dir/<as-of>/index.html``.
    report_dir
        ``reports_dir/<as-of>``.
    charts
        PNG and SVG files under ``report_dir/charts``.
    tables
        CSV files under ``report_dir/tables`` (suppressed, formula-safe).
    headline
        Formatted headline figures by stable key (also in ``summary.json``).
    reports_index
        ``reports_dir/index.html``, listing every report folder.
    """

    index_html: Path
    report_dir: Path
    charts: list[Path]
    headline: dict[str, str]
    reports_index: Path | None = field(default=None)
    tables: list[Path] = field(default_factory=list)


@functools.cache
def _js_bundle() -> str:
    # Read from the cache folder once per process; identical for every render.
    return charts.javascript_bundle()


def render_report(
    warehouse: Path,
    reports_dir: Path,
    *,
    run_status: str = "success",
    run_id: str | None = None,
    as_of: dt.date | None = None,
    scheme_name: str | None = None,
    currency_symbol: str = "£",
    k_anonymity: int = 5,
    generated_at: dt.datetime | None = None,
) -> ReportResult:
    """Render the funder report for one date from the published warehouse.

    Parameters
    ----------
    warehouse
        The published DuckDB file; opened read-only, so it may be read during a run.
    reports_dir
        Root of the reports tree; the report goes to ``reports_dir/<as-of>/``.
    run_status
        Status of tonight's run; anything but ``"success"`` shows a banner saying the
        page shows the last published data.
    run_id
        Pipeline run id, recorded on the page and in ``summary.json``.
    as_of
        Report date; defaults to the last day in ``marts.daily_circulation``.
    scheme_name
        Shown in the title; ``None`` gives "Local currency".
    currency_symbol
        Label for local-currency units, e.g. ``"B£"`` for Bristol Pounds.
    k_anonymity
        Months with fewer active accounts have their transfer figures hidden (≥ 3).
    generated_at
        Timestamp to record; defaults to now (UTC).

    Returns
    -------
    ReportResult

    Raises
    ------
    FileNotFoundError
        If the warehouse file does not exist.
    ValueError
        If the marts are empty, ``as_of`` is outside them, or ``k_anonymity`` < 3.
    """
    if k_anonymity < MIN_K_ANONYMITY:
        raise ValueError(f"k_anonymity={k_anonymity} is below the minimum of {MIN_K_ANONYMITY}")
    if not warehouse.is_file():
        raise FileNotFoundError(
            f"warehouse {warehouse} not found: build and publish it before rendering the report"
        )
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    generated_at = generated_at.astimezone(dt.UTC)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        data = load_report_data(con, as_of, k_anonymity=k_anonymity)
        evidence = load_evidence(con, data.as_of, k_anonymity)
    if run_status == "failed_validation" and run_id:
        # A blocked run's results never reach the warehouse: read them from beside it.
        blocked = results_path(warehouse, run_id)
        if blocked.is_file():
            report = read_results_file(blocked)
            data = replace(
                data,
                validation=validation_from_results(
                    report.run_id,
                    f"{blocked.parent.name}/{blocked.name} beside the warehouse",
                    [asdict(r) for r in report.results],
                ),
            )

    report_dir = reports_dir / data.as_of.isoformat()
    charts_dir = report_dir / "charts"
    figures: list[page.FigureItem] = []
    chart_files: list[Path] = []
    for chart in _charts(data, evidence, currency_symbol, k_anonymity):
        png, svg_path, svg = charts.write_images(chart, charts_dir)
        chart_files += [png, svg_path]
        figures.append(page.FigureItem(chart, svg))

    items = page.headline_items(data, currency_symbol, k_anonymity)
    title = page.report_title(scheme_name, data.as_of)
    ctx = page.PageContext(
        data=data,
        title=title,
        symbol=currency_symbol,
        run_status=run_status,
        run_id=run_id,
        generated_at=generated_at,
        k_anonymity=k_anonymity,
        headline=items,
        figures=figures,
        evidence=evidence,
    )
    index_html = report_dir / "index.html"
    archive.write_atomic(
        index_html, page.render_page(ctx, _js_bundle(), impact_page.REPORT_SECTIONS)
    )
    table_files = _write_tables(report_dir / "tables", data.monthly, evidence)

    headline = {item.key: item.value for item in items}
    archive.write_summary(
        report_dir,
        {
            "as_of": data.as_of.isoformat(),
            "title": title,
            "scheme_name": scheme_name,
            "currency_symbol": currency_symbol,
            "run_status": run_status,
            "run_id": run_id,
            "generated_at": generated_at.isoformat(timespec="seconds"),
            "headline": headline,
            "headline_labels": {item.key: item.label for item in items},
            "charts": [p.relative_to(report_dir).as_posix() for p in chart_files],
            "tables": [p.relative_to(report_dir).as_posix() for p in table_files],
            "scorecard_month": None
            if evidence.report_month is None
            else evidence.report_month.isoformat(),
            "status_counts": _status_counts(evidence),
            "flags_raised": (
                evidence.flags.filter(pl.col("raised"))["flag"].to_list()
                if len(evidence.flags)
                else []
            ),
        },
    )
    reports_index = archive.render_index(reports_dir)
    return ReportResult(index_html, report_dir, chart_files, headline, reports_index, table_files)


def _charts(
    data: ReportData, evidence: Evidence, symbol: str, k_anonymity: int
) -> list[ReportChart]:
    top5 = None
    if len(evidence.thresholds):
        row = evidence.thresholds.filter(pl.col("setting") == "top5_receipts_share")
        top5 = row["value"][0] if len(row) else None
    candidates = [
        charts.money_supply_chart(data, symbol),
        charts.monthly_transfers_chart(data, symbol, k_anonymity),
        impact_charts.circulation_trends_chart(evidence),
        impact_charts.multiplier_chart(evidence),
        impact_charts.concentration_chart(evidence, top5),
        impact_charts.sector_heatmap_chart(evidence, symbol, k_anonymity),
        impact_charts.deprivation_chart(evidence),
        impact_charts.participation_chart(evidence, k_anonymity),
        impact_charts.public_flows_chart(evidence, symbol),
    ]
    return [c for c in candidates if c is not None]


def _status_counts(evidence: Evidence) -> dict[str, int]:
    if evidence.scorecard.is_empty():
        return {}
    counts = evidence.scorecard.group_by("status").len()
    return {row[0]: int(row[1]) for row in counts.iter_rows()}


def _write_tables(tables_dir: Path, monthly: pl.DataFrame, ev: Evidence) -> list[Path]:
    """Every table on the page as CSV; each frame is already suppressed."""
    frames: dict[str, pl.DataFrame] = {
        "monthly_circulation": monthly,
        "monthly_trends": ev.trends,
        "sector_flows": ev.sector_flows,
        "deprivation_deciles": ev.deciles,
        "network": pl.DataFrame(
            [
                {"measure": column, "label": label, "all_members": a, "businesses_only": b}
                for column, label, a, b in impact_page.network_values(ev.network)
            ],
            schema={
                "measure": pl.String,
                "label": pl.String,
                "all_members": pl.String,
                "businesses_only": pl.String,
            },
        ),
        "multiplier": pl.DataFrame([ev.multiplier]) if ev.multiplier else pl.DataFrame(),
        "data_coverage": pl.DataFrame([ev.coverage]) if ev.coverage else pl.DataFrame(),
    }
    if len(ev.scorecard):
        frames["scorecard"] = ev.scorecard
    if len(ev.flags):
        frames["risk_flags"] = ev.flags
    if len(ev.thresholds):
        frames["thresholds"] = ev.thresholds
    return [
        tables.write_table(tables_dir, name, frame)
        for name, frame in frames.items()
        if not frame.is_empty()
    ]
