"""``render_statement``: published warehouse in, ``reports/statements/<from>_<to>/`` out.

A statement folder holds ``index.html`` (self-contained, with its print stylesheet),
``statement.pdf`` (A4, printed by headless Chromium), ``charts/`` (PNG and SVG),
``tables/*.csv``, ``figures.json`` (every published figure by key) and ``manifest.json``
(circulate version, run id and sha256 of the warehouse snapshot, thresholds, files).

Stable: when the figures equal those of the latest version, nothing is written and that
version stands. When they differ (data inside the period changed), the statement is
written as a new version beside the old one, ``<from>_<to>-v2/`` and so on, with the list
of figures that moved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from circulate import __version__
from circulate.report import archive, charts, impact_charts, tables
from circulate.report import page as report_page
from circulate.report.data import load_report_data
from circulate.report.evidence import load_evidence
from circulate.report.render import MIN_K_ANONYMITY, _js_bundle
from circulate.statement import page
from circulate.statement.figures import (
    StatementFigures,
    figures_that_moved,
    flat_figures,
    load_statement_figures,
)
from circulate.statement.period import Period

log = logging.getLogger(__name__)

STATEMENTS_DIR = "statements"
MANIFEST = "manifest.json"
FIGURES = "figures.json"
PDF_NAME = "statement.pdf"


@dataclass(frozen=True)
class StatementResult:
    """What one call produced.

    Attributes
    ----------
    folder
        The version's folder (``reports/statements/<from>_<to>[-vN]``).
    index_html, pdf
        Its page and PDF (``pdf`` is ``None`` when printing was skipped).
    version
        Version number (1 for the first).
    written
        ``False`` when the figures were unchanged and the existing version stands.
    moved
        Figures that differ from the previous version: ``(key, old, new, change)``.
    """

    folder: Path
    index_html: Path
    pdf: Path | None
    version: int
    written: bool
    moved: list[tuple[str, Any, Any, float | None]]


def version_folder(statements: Path, period: Period, version: int) -> Path:
    """``<from>_<to>`` for version 1, ``<from>_<to>-v<N>`` after."""
    return statements / (period.slug if version == 1 else f"{period.slug}-v{version}")


def latest_version(statements: Path, period: Period) -> tuple[int, Path] | None:
    """The highest version with a manifest, or ``None``."""
    version, found = 1, None
    while (version_folder(statements, period, version) / MANIFEST).is_file():
        found = (version, version_folder(statements, period, version))
        version += 1
    return found


def fingerprint(figures: dict[str, Any]) -> str:
    """sha256 of the figures' canonical JSON."""
    text = json.dumps(figures, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _latest_run(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        rows = con.execute(
            "select run_id from audit.runs where status = 'success' "
            "order by started_at desc limit 1"
        ).fetchall()
    except duckdb.Error:
        return None
    return str(rows[0][0]) if rows else None


def render_statement(
    warehouse: Path,
    reports_dir: Path,
    period: Period,
    *,
    title: str | None = None,
    scheme_name: str | None = None,
    currency_symbol: str = "£",
    k_anonymity: int = 5,
    generated_at: dt.datetime | None = None,
    print_pdf: bool = True,
    whatif_html: str = "",
    whatif_table: pl.DataFrame | None = None,
    replicates: int = 400,
) -> StatementResult:
    """Render (or confirm) the statement of ``period``.

    Parameters
    ----------
    warehouse
        The published DuckDB file, opened read-only.
    reports_dir
        Root of the reports tree; statements go to ``reports_dir/statements/``.
    period
        The days the statement covers.
    title
        Page title; default "<scheme> statement, <from> to <to>".
    scheme_name, currency_symbol, k_anonymity
        As for the nightly report.
    generated_at
        Recorded in ``manifest.json`` only; defaults to now (UTC).
    print_pdf
        Print ``statement.pdf`` with headless Chromium.
    whatif_html, whatif_table
        The what-if section's markup (already escaped) and its table, or nothing.
    replicates
        Bootstrap replicates of the LM3 interval.
    """
    if k_anonymity < MIN_K_ANONYMITY:
        raise ValueError(f"k_anonymity={k_anonymity} is below the minimum of {MIN_K_ANONYMITY}")
    if not warehouse.is_file():
        raise FileNotFoundError(
            f"warehouse {warehouse} not found: run `circulate run` to publish one first"
        )
    generated_at = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        figures = load_statement_figures(con, period, k_anonymity, replicates=replicates)
        # The what-if is left out of the fingerprint: its back-test compares with traced
        # outcomes that keep growing after the period; a version keeps the one it was made with.
        flat = flat_figures(figures)
        digest = fingerprint(flat)
        statements = reports_dir / STATEMENTS_DIR
        latest = latest_version(statements, period)
        moved: list[tuple[str, Any, Any, float | None]] = []
        if latest is not None:
            number, folder = latest
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            if manifest.get("figures_sha256") == digest:
                kept = folder / PDF_NAME
                return StatementResult(
                    folder,
                    folder / "index.html",
                    kept if kept.is_file() else None,
                    number,
                    False,
                    [],
                )
            old = json.loads((folder / FIGURES).read_text(encoding="utf-8"))
            moved = figures_that_moved(old, flat)
            version, previous_folder = number + 1, folder.name
        else:
            version, previous_folder = 1, None
        folder = version_folder(statements, period, version)
        ctx = _page_context(con, figures, title, scheme_name, currency_symbol, k_anonymity)
        run_id = _latest_run(con)
    st = page.StatementContext(figures, version, digest, moved, previous_folder, whatif_html)
    figure_items, chart_files = _draw(ctx, figures, folder / "charts")
    ctx = dataclasses.replace(ctx, figures=figure_items)
    index_html = folder / "index.html"
    archive.write_atomic(
        index_html, report_page.render_page(ctx, _js_bundle(), page.bound_sections(st))
    )
    table_files = _write_tables(folder / "tables", figures, currency_symbol, moved)
    if whatif_table is not None and not whatif_table.is_empty():
        table_files.append(tables.write_table(folder / "tables", "whatif", whatif_table))
    archive.write_atomic(folder / FIGURES, json.dumps(flat, indent=2, sort_keys=True) + "\n")
    pdf: Path | None = None
    if print_pdf:
        from circulate.statement.pdf import print_pdf as print_to_pdf

        pdf = print_to_pdf(index_html, folder / PDF_NAME)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {
        "kind": "circulate period statement",
        "title": ctx.title,
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "previous_period": {
            "from": figures.previous.start.isoformat(),
            "to": figures.previous.end.isoformat(),
        },
        "version": version,
        "replaces": previous_folder,
        "figures_moved": len(moved),
        "figures_sha256": digest,
        "circulate_version": __version__,
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "warehouse": {
            "file": warehouse.name,
            "sha256": file_sha256(warehouse),
            "run_id": run_id,
            "first_day": figures.warehouse_first_day.isoformat(),
            "last_day": figures.warehouse_last_day.isoformat(),
        },
        "k_anonymity": k_anonymity,
        "thresholds": _thresholds(figures.thresholds),
        "files": {p.relative_to(folder).as_posix(): file_sha256(p) for p in files},
        "tables": [p.relative_to(folder).as_posix() for p in table_files],
        "charts": [p.relative_to(folder).as_posix() for p in chart_files],
    }
    archive.write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    archive.render_index(reports_dir)
    return StatementResult(folder, index_html, pdf, version, True, moved)


def _thresholds(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v)) for k, v in r}
        for r in (row.items() for row in frame.iter_rows(named=True))
    ]


def _page_context(
    con: duckdb.DuckDBPyConnection,
    figures: StatementFigures,
    title: str | None,
    scheme_name: str | None,
    symbol: str,
    k: int,
) -> report_page.PageContext:
    """The nightly page context, narrowed to the period, so its charts and sections apply."""
    period = figures.period
    as_of = min(period.end, figures.warehouse_last_day)
    data = load_report_data(con, as_of, k_anonymity=k)
    start = pl.lit(period.start, dtype=pl.Date)
    data = dataclasses.replace(
        data,
        supply=data.supply.filter(pl.col("period_start") >= start),
        monthly=data.monthly.filter(pl.col("month") >= pl.lit(period.start.replace(day=1))),
        runs=[],
        validation=None,
    )
    ev = dataclasses.replace(
        load_evidence(con, as_of, k), trends=figures.months, deciles=figures.deciles
    )
    return report_page.PageContext(
        data=data,
        title=page.statement_title(title, scheme_name, figures),
        symbol=symbol,
        run_status="success",
        run_id=None,
        generated_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),  # never shown on a statement
        k_anonymity=k,
        headline=page.headline_items(figures, symbol),
        evidence=ev,
    )


def _draw(
    ctx: report_page.PageContext, figures: StatementFigures, charts_dir: Path
) -> tuple[list[report_page.FigureItem], list[Path]]:
    assert ctx.evidence is not None
    candidates = [
        charts.money_supply_chart(ctx.data, ctx.symbol) if len(ctx.data.supply) else None,
        charts.monthly_transfers_chart(ctx.data, ctx.symbol, ctx.k_anonymity)
        if len(ctx.data.monthly)
        else None,
        impact_charts.circulation_trends_chart(ctx.evidence),
        impact_charts.deprivation_chart(ctx.evidence),
    ]
    items, files = [], []
    for chart in candidates:
        if chart is None:
            continue
        png, svg_path, svg = charts.write_images(chart, charts_dir)
        files += [png, svg_path]
        items.append(report_page.FigureItem(chart, svg))
    return items, files


def _write_tables(
    tables_dir: Path,
    f: StatementFigures,
    symbol: str,
    moved: list[tuple[str, Any, Any, float | None]],
) -> list[Path]:
    # Numbers as numbers (the page shows them formatted): key, label, this, previous, change.
    flat = flat_figures(f)
    rows = []
    for key, label, *_ in page.headline_rows(f, symbol):
        now, before = flat.get(f"period.{key}"), flat.get(f"previous.{key}")
        now_n = None if now is None else float(now)
        before_n = None if before is None else float(before)
        change = None if now_n is None or before_n is None else float(f"{now_n - before_n:.10g}")
        rows.append((key, label, now_n, before_n, change))
    headline = pl.DataFrame(
        rows,
        schema=["key", "figure", "this_period", "previous_period", "change"],
        orient="row",
    )
    multiplier = pl.DataFrame(
        [
            {"period": label, **{f"markov_lm{k}": m.lm.get(k) for k in (2, 3, 4, 5)},
             "markov_lm3_low": m.lm3_low, "markov_lm3_high": m.lm3_high,
             "full_multiplier": t.full_multiplier}
            for label, m, t in (
                ("this", f.multiplier, f.totals),
                ("previous", f.previous_multiplier, f.previous_totals),
            )
        ]
    )  # fmt: skip
    frames: dict[str, pl.DataFrame] = {
        "headline": headline,
        "multiplier": multiplier,
        "scorecard": f.scorecard,
        "months": f.months,
        "network": f.network,
        "deprivation_deciles": f.deciles,
        "thresholds": f.thresholds,
    }
    if moved:
        frames["moved"] = pl.DataFrame(
            [(k, str(o) if o is not None else None, str(n) if n is not None else None, d)
             for k, o, n, d in moved],
            schema=["figure", "previous_version", "this_version", "change"],
            orient="row",
        )  # fmt: skip
    return [
        tables.write_table(tables_dir, name, frame)
        for name, frame in frames.items()
        if not frame.is_empty()
    ]
