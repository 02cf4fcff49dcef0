"""Sections of a period statement's page, built on the nightly report's page pieces.

The page is assembled by :func:`circulate.report.page.render_page` with the sections
below; figures, formatting, escaping (:func:`~circulate.report.page.esc`) and tables are
the nightly report's. Nothing on the page depends on when it was rendered, so the same
data give the same bytes (the render time is in ``manifest.json``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from circulate import __version__
from circulate.metrics.impact import PILLARS, format_value
from circulate.report import fmt, impact_page, page
from circulate.report.page import PageContext, esc, figure_named
from circulate.statement.figures import PeriodTotals, StatementFigures

#: A4 pages with numbers; the live charts give way to their static (vector) SVG.
PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm;
  @bottom-right { content: "Page " counter(page) " of " counter(pages); font-size: 9pt; }
  @bottom-left { content: "circulate period statement"; font-size: 9pt; color: #555; } }
@media print {
  .statement-nav { display: none; }
  table { font-size: 9pt; }
  th, td { padding: 0.15rem 0.35rem; }
  section { break-inside: auto; }
  tr { break-inside: avoid; }
}
.scorecard-grid td.good { color: #00664b; }
.scorecard-grid td.bad { color: #a33d00; font-weight: 700; }
.scorecard-grid td.watch { color: #8a5a00; }
"""


@dataclass(frozen=True)
class StatementContext:
    """What the statement sections read besides the nightly page context."""

    figures: StatementFigures
    version: int
    fingerprint: str
    moved: list[tuple[str, Any, Any, float | None]] = field(default_factory=list)
    previous_version_folder: str | None = None
    whatif_html: str = ""


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def statement_title(custom: str | None, scheme_name: str | None, figures: StatementFigures) -> str:
    """Plain-text title (escape before use)."""
    if custom and custom.strip():
        return custom.strip()
    scheme = scheme_name.strip() if scheme_name and scheme_name.strip() else "Local currency"
    p = figures.period
    return f"{scheme} statement, {fmt.day(p.start)} to {fmt.day(p.end)}"


def _active(t: PeriodTotals, k: int) -> str:
    if t.days_with_data == 0:
        return "not available"
    return fmt.count(t.active_accounts) if t.active_accounts is not None else f"fewer than {k}"


def headline_rows(f: StatementFigures, symbol: str) -> list[tuple[str, str, str, str, str]]:
    """(key, figure, this period, previous period, change) for the comparison table."""
    k = f.k_anonymity

    def money_change(a: Any, b: Any) -> str:
        if a is None or b is None:
            return "not available"
        diff = a - b
        pct = f" ({fmt.share(float(diff / b))})" if b else ""
        return ("+" if diff > 0 else "") + fmt.money(diff, symbol) + pct

    def ratio_change(a: float | None, b: float | None) -> str:
        if a is None or b is None:
            return "not available"
        return f"{a - b:+.2f}".replace("-", fmt.MINUS)

    def share_change(a: float | None, b: float | None) -> str:
        if a is None or b is None:
            return "not available"
        return f"{(a - b) * 100:+.1f} percentage points".replace("-", fmt.MINUS)

    t, p = f.totals, f.previous_totals
    lm, plm = f.multiplier.lm, f.previous_multiplier.lm
    return [
        ("issued", "Issued", fmt.money(t.issued, symbol), fmt.money(p.issued, symbol),
         money_change(t.issued, p.issued)),
        ("redeemed", "Redeemed", fmt.money(t.redeemed, symbol),
         fmt.money(p.redeemed, symbol), money_change(t.redeemed, p.redeemed)),
        ("fees", "Fees", fmt.money(t.fees, symbol), fmt.money(p.fees, symbol),
         money_change(t.fees, p.fees)),
        ("transfer_volume", "Transfers between members (value)",
         fmt.money(t.transfer_volume, symbol), fmt.money(p.transfer_volume, symbol),
         money_change(t.transfer_volume, p.transfer_volume)),
        ("transfer_count", "Transfers between members (number)", fmt.count(t.transfer_count),
         fmt.count(p.transfer_count), f"{t.transfer_count - p.transfer_count:+,}"),
        ("money_in_circulation_end", "Money in circulation at the end",
         fmt.money(t.supply_end, symbol), fmt.money(p.supply_end, symbol),
         money_change(t.supply_end, p.supply_end)),
        ("active_accounts", "Accounts trading", _active(t, k), _active(p, k), ""),
        ("velocity", "Velocity over the period", fmt.ratio(t.velocity),
         fmt.ratio(p.velocity), ratio_change(t.velocity, p.velocity)),
        ("full_multiplier", "Full multiplier", fmt.ratio(t.full_multiplier),
         fmt.ratio(p.full_multiplier), ratio_change(t.full_multiplier, p.full_multiplier)),
        ("markov_lm3", "LM3 (Markov estimate)", fmt.ratio(lm.get(3)), fmt.ratio(plm.get(3)),
         ratio_change(lm.get(3), plm.get(3))),
        ("leakage", "Leakage (redeemed / issued)", fmt.share(t.leakage), fmt.share(p.leakage),
         share_change(t.leakage, p.leakage)),
    ]  # fmt: skip


def headline_items(f: StatementFigures, symbol: str) -> list[page.HeadlineItem]:
    """The statement's headline grid (the nightly report's item type)."""
    t, p = f.totals, f.period
    span = f"{fmt.day(p.start)} to {fmt.day(p.end)}"
    lm3 = f.multiplier.lm.get(3)
    interval = (
        f"95 % interval {fmt.ratio(f.multiplier.lm3_low)} to {fmt.ratio(f.multiplier.lm3_high)}"
        if f.multiplier.lm3_low is not None
        else "no interval"
    )
    return [
        page.HeadlineItem("issued", "Issued", fmt.money(t.issued, symbol), span),
        page.HeadlineItem(
            "transfer_volume",
            "Transfers between members",
            fmt.money(t.transfer_volume, symbol),
            f"{fmt.count(t.transfer_count)} transfers, {span}",
        ),
        page.HeadlineItem(
            "money_in_circulation",
            "Money in circulation at the end",
            fmt.money(t.supply_end, symbol),
            f"{fmt.money(t.supply_start, symbol)} at the start",
        ),
        page.HeadlineItem(
            "full_multiplier",
            "Full multiplier",
            fmt.ratio(t.full_multiplier),
            "(issued + transfers) / issued over the period",
        ),
        page.HeadlineItem("markov_lm3", "LM3 (Markov estimate)", fmt.ratio(lm3), interval),
        page.HeadlineItem(
            "active_accounts",
            "Accounts trading",
            _active(t, f.k_anonymity),
            "At least one transfer in the period",
        ),
    ]


Section = Callable[[PageContext, StatementContext], str]


def header_section(ctx: PageContext, st: StatementContext) -> str:
    f = st.figures
    partial = ""
    if not f.complete:
        partial = (
            f'<div class="banner" role="alert">The warehouse holds {f.totals.days_with_data} '
            f"of the period's {f.period.days} days (data from "
            f"{esc(fmt.day(f.warehouse_first_day))} to {esc(fmt.day(f.warehouse_last_day))}): "
            "the figures cover those days only.</div>"
        )
    earlier = (
        f' It replaces <a href="../{esc(st.previous_version_folder)}/index.html">the '
        "previous version</a>; the figures that moved are listed below."
        if st.previous_version_folder
        else ""
    )
    return (
        f"<header><h1>{esc(ctx.title)}</h1>"
        f'<p class="meta">Period statement for {esc(fmt.day(f.period.start))} to '
        f"{esc(fmt.day(f.period.end))} ({f.period.days} days), version {st.version}; "
        f"compared with {esc(fmt.day(f.previous.start))} to {esc(fmt.day(f.previous.end))}. "
        f"Figures fingerprint {esc(st.fingerprint[:16])} (manifest.json).{earlier}</p>"
        f"{partial}</header>"
        f"<style>{PRINT_CSS}</style>"
    )


def headline_section(ctx: PageContext, st: StatementContext) -> str:
    stats = "".join(
        f'<div class="stat" id="stat-{esc(item.key)}"><dt>{esc(item.label)}</dt>'
        f'<dd>{esc(item.value)}</dd><p class="detail">{esc(item.detail)}</p></div>'
        for item in ctx.headline
    )
    return (
        '<section aria-labelledby="h-headline"><h2 id="h-headline">The period in figures</h2>'
        f'<p class="note">Amounts are in units of the local currency, shown with the symbol '
        f"“{esc(ctx.symbol)}”.</p>"
        f'<dl class="headline">{stats}</dl></section>'
    )


def comparison_section(ctx: PageContext, st: StatementContext) -> str:
    f = st.figures
    rows = [row[1:] for row in headline_rows(f, ctx.symbol)]
    return (
        '<section aria-labelledby="h-compare"><h2 id="h-compare">Against the previous '
        "period</h2>"
        + impact_page._table(
            f"{fmt.day(f.period.start)} to {fmt.day(f.period.end)} against the "
            f"{f.period.days} days before (source: marts.daily_circulation, "
            "staging.transactions)",
            ("Figure", "This period", "Previous period", "Change"),
            rows,
            "headline",
        )
        + "</section>"
    )


def scorecard_section(ctx: PageContext, st: StatementContext) -> str:
    card = st.figures.scorecard
    head = '<section aria-labelledby="h-scorecard"><h2 id="h-scorecard">Public-value scorecard'
    if card.is_empty():
        return (
            f"{head}</h2><p>No complete calendar month lies inside the period, so there is no "
            "monthly scorecard.</p></section>"
        )
    months = sorted(card["period_start"].unique().to_list())
    cells: dict[str, dict[Any, dict[str, Any]]] = {}
    for r in card.iter_rows(named=True):
        cells.setdefault(r["indicator"], {})[r["period_start"]] = r
    body = []
    for pillar, title in PILLARS.items():
        body.append(f'<tr><th scope="rowgroup" colspan="{len(months) + 1}">{esc(title)}</th></tr>')
        for by_month in cells.values():
            first = next(iter(by_month.values()))
            if first["pillar"] != pillar:
                continue
            tds = []
            for m in months:
                cell = by_month.get(m)
                if cell is None:
                    tds.append("<td>–</td>")
                    continue
                r = cell
                status = r["status"]
                mark = impact_page.STATUS_MARK.get(status, "–")
                value = format_value(_num(r["value"]), r["unit"])
                tds.append(
                    f'<td class="{impact_page.STATUS_CLASS.get(status, "none")}" '
                    f'title="{esc(r["explanation"])}">{esc(value)} {esc(mark)}</td>'
                )
            body.append(f"<tr><td>{esc(first['label'])}</td>{''.join(tds)}</tr>")
    counts = card.group_by("status").len().sort("status")
    verdict = "; ".join(f"{n} {s}" for s, n in counts.iter_rows())
    th = "".join(f'<th scope="col">{esc(fmt.month(m))}</th>' for m in months)
    return (
        f"{head} over the period's months</h2>"
        f"<p>{len(months)} complete month(s), {len(cells)} indicators each: {esc(verdict)}. "
        "✔ creating value, ! watch, ✖ destroying value, – no data; thresholds are the "
        "partnership's own (see Method). Each month is compared with the month before, as in "
        "the nightly report.</p>"
        '<div class="table-wrap"><table class="scorecard-grid"><caption>Moore\'s strategic '
        "triangle, month by month (source: marts.impact_scorecard) "
        '<a href="tables/scorecard.csv">CSV</a></caption>'
        f'<thead><tr><th scope="col">Indicator</th>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
    )


def multiplier_section(ctx: PageContext, st: StatementContext) -> str:
    f = st.figures
    m, pm = f.multiplier, f.previous_multiplier
    rows = [(f"LM{k}", fmt.ratio(m.lm.get(k)), fmt.ratio(pm.lm.get(k))) for k in (2, 3, 4, 5)]
    rows.append(
        (
            "LM3, 95 % interval (resampled days)",
            f"{fmt.ratio(m.lm3_low)} to {fmt.ratio(m.lm3_high)}",
            f"{fmt.ratio(pm.lm3_low)} to {fmt.ratio(pm.lm3_high)}",
        )
    )
    rows.append(
        (
            "Full multiplier",
            fmt.ratio(f.totals.full_multiplier),
            fmt.ratio(f.previous_totals.full_multiplier),
        )
    )
    text = (
        f"Each unit that entered circulation in the period supported an estimated "
        f"{fmt.ratio(m.lm.get(3))} units of local trade over its first three rounds "
        f"(Markov LM3 from the period's own flows, 95 % interval {fmt.ratio(m.lm3_low)} to "
        f"{fmt.ratio(m.lm3_high)}). The traced LM3 of money issued in the period is not "
        "stated here: it keeps growing as that money is spent after the period ends; the "
        "nightly report shows it."
    )
    return (
        '<section aria-labelledby="h-multiplier"><h2 id="h-multiplier">Local multiplier</h2>'
        f"<p>{esc(text)}</p>"
        + impact_page._table(
            "Local multipliers of the period and the previous one (source: "
            "staging.transactions, circulate.metrics.markov)",
            ("Measure", "This period", "Previous period"),
            rows,
            "multiplier",
        )
        + "</section>"
    )


def charts_section(ctx: PageContext, st: StatementContext) -> str:
    figures = "".join(
        figure_named(ctx, name)
        for name in ("money_supply", "monthly_transfers", "circulation_trends")
    )
    if not figures:
        return ""
    return (
        '<section aria-labelledby="h-charts"><h2 id="h-charts">Circulation in the period</h2>'
        f'{figures}<p class="note">Download: <a href="tables/months.csv">months.csv</a>.</p>'
        "</section>"
    )


_NETWORK_COLUMNS = (
    ("nodes", "Accounts trading", "count"),
    ("edges", "Payer → payee pairs", "count"),
    ("reciprocity", "Pairs paying both ways", "share"),
    ("cycle_volume_share", "Volume on short cycles", "share"),
    ("receipts_top5_share", "Top five businesses' share of receipts", "share"),
    ("fragility_top5", "Volume touching the five most central accounts", "share"),
)


def network_section(ctx: PageContext, st: StatementContext) -> str:
    net = st.figures.network
    if net.is_empty():
        return ""
    rows = []
    for r in net.iter_rows(named=True):
        cells: list[str] = [fmt.month(r["month"])]
        for column, _, unit in _NETWORK_COLUMNS:
            value = r[column]
            if value is None:
                cells.append("hidden")
            elif unit == "count":
                cells.append(fmt.count(int(value)))
            else:
                cells.append(fmt.share(_num(value)))
        rows.append(cells)
    return (
        '<section aria-labelledby="h-network"><h2 id="h-network">Business network</h2>'
        "<p>Concentration and short cycles of the member network, month by month. A month "
        f"with fewer than {st.figures.k_anonymity} active members shows no figure.</p>"
        + impact_page._table(
            "The member network by month (source: marts.network_summary)",
            ("Month", *(label for _, label, _ in _NETWORK_COLUMNS)),
            rows,
            "network",
        )
        + "</section>"
    )


def inclusion_section(ctx: PageContext, st: StatementContext) -> str:
    # The nightly section reads ctx.evidence.deciles, which the render set to the period's.
    html = impact_page.inclusion_section(ctx)
    return html.replace("whole history", "the period") if html else ""


def whatif_section(ctx: PageContext, st: StatementContext) -> str:
    return st.whatif_html


def moved_section(ctx: PageContext, st: StatementContext) -> str:
    if not st.previous_version_folder:
        return ""
    rows = [
        (key, "" if old is None else old, "" if new is None else new, "" if d is None else d)
        for key, old, new, d in st.moved
    ]
    return (
        '<section aria-labelledby="h-moved"><h2 id="h-moved">What moved since the previous '
        "version</h2>"
        f"<p>Data inside the period (or the period before) changed after version "
        f"{st.version - 1} was made, for example a late export: {len(rows)} figure(s) moved.</p>"
        + impact_page._table(
            "Figures that differ from the previous version",
            ("Figure", "Previous version", "This version", "Change"),
            rows,
            "moved",
        )
        + "</section>"
    )


def coverage_section(ctx: PageContext, st: StatementContext) -> str:
    t = st.figures.totals
    items = [
        f"Days of the period in the data: {fmt.count(t.days_with_data)} of "
        f"{fmt.count(st.figures.period.days)}; days with no transaction at all: "
        f"{fmt.count(t.quiet_days)}.",
        f"Paper notes: {fmt.share(t.paper_share)} of the money issued in the period went out "
        "as paper notes; payments made with notes leave no record until they are redeemed.",
        f"The warehouse used held days from {fmt.day(st.figures.warehouse_first_day)} to "
        f"{fmt.day(st.figures.warehouse_last_day)}; manifest.json names its snapshot "
        "(sha256) and run.",
    ]
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return (
        '<section aria-labelledby="h-coverage"><h2 id="h-coverage">Data coverage</h2>'
        f"<ul>{lis}</ul></section>"
    )


def caveats_section(ctx: PageContext, st: StatementContext) -> str:
    return page.caveats_section(ctx)


def method_section(ctx: PageContext, st: StatementContext) -> str:
    notes = [
        "Days are calendar days in the scheme's time zone; the period's totals are sums of "
        "the daily figures, money in circulation is the end-of-day balance.",
        "Velocity is transfer volume over mean daily money in circulation in the period (not "
        "annualised). Leakage is money redeemed over money issued in the period.",
        "LM_k (Markov) follows the period's flows: where issuance landed, then each "
        "account's share of its money paid on to other members; money redeemed, paid as "
        "fees or still held at the period's end leaves the chain. The interval resamples "
        "the period's days.",
        "Every figure uses only data up to the period's last day, so the statement stays the "
        "same while later days arrive; if data inside the period change (a late export), "
        "a new version is written beside this one, listing what moved.",
        f"Privacy: no account is named and every figure that describes accounts covers at "
        f"least {ctx.k_anonymity} of them.",
    ]
    ev = st.figures.thresholds
    thresholds = ""
    if not ev.is_empty():
        ind = ev.filter(pl.col("kind") == "indicator")
        thresholds = impact_page._table(
            f"Thresholds in force (from {ev['source_file'][0]})",
            ("Indicator", "Better when", "Rule"),
            [(r["label"], r["better"], r["rule"]) for r in ind.iter_rows(named=True)],
            "thresholds",
        )
    lis = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (
        '<section aria-labelledby="h-method"><h2 id="h-method">Method</h2>'
        f"<ul>{lis}</ul>{thresholds}</section>"
    )


def footer_section(ctx: PageContext, st: StatementContext) -> str:
    return (
        f"<footer>Made by circulate {esc(__version__)}: period statement version "
        f"{st.version}. Works offline: this file contains everything it needs; the PDF, the "
        "CSV tables and manifest.json are beside it.</footer>"
    )


STATEMENT_SECTIONS: Sequence[Section] = (
    header_section,
    headline_section,
    comparison_section,
    scorecard_section,
    multiplier_section,
    whatif_section,
    charts_section,
    network_section,
    inclusion_section,
    moved_section,
    coverage_section,
    caveats_section,
    method_section,
    footer_section,
)


def bound_sections(st: StatementContext) -> tuple[page.Section, ...]:
    """The statement sections as nightly-style ``(PageContext) -> str`` sections."""

    def bind(section: Section) -> page.Section:
        return lambda ctx: section(ctx, st)

    return tuple(bind(s) for s in STATEMENT_SECTIONS)
