"""The funder report page: one self-contained HTML document built from small sections.

Every section is a function ``(PageContext) -> str`` listed in :data:`SECTIONS`; later
sections (scorecard, network, multiplier) plug in there. Anything that came from data or
from the caller goes through :func:`html.escape`; chart specs are embedded as JSON with
``<``, ``>`` and ``&`` escaped so no value can close the ``<script>`` element.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from circulate import __version__
from circulate.report import fmt
from circulate.report.charts import ReportChart
from circulate.report.data import ReportData
from circulate.report.evidence import Evidence

FAILED_BANNER = "The latest run failed: showing the last published data"
VALIDATION_BANNER = "The latest run failed validation: showing the last published data"
#: Failing expectations listed on the page; the rest are counted.
MAX_VALIDATION_ROWS = 12

# Only inline scripts and styles and data: images are allowed: the page can make no
# network request at all. 'unsafe-eval' because Vega compiles its expressions.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

_EMBED_SCRIPT = """
(function () {
  document.querySelectorAll("[data-spec]").forEach(function (el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute("data-spec")).textContent);
    vegaEmbed(el, spec, {actions: false, renderer: "svg"}).then(function () {
      el.closest("figure").classList.add("live");
    }).catch(function (err) { console.error(err); });
  });
})();
"""


def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute.

    >>> esc('<script>alert("1")</script>')
    '&lt;script&gt;alert(&quot;1&quot;)&lt;/script&gt;'
    """
    return html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """Serialise to JSON that is safe inside a ``<script>`` element.

    >>> script_json({"a": "</script><!--&"})
    '{"a": "\\\\u003c/script\\\\u003e\\\\u003c!--\\\\u0026"}'
    """
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class HeadlineItem:
    """One headline number: stable key, reader label, formatted value, small print."""

    key: str
    label: str
    value: str
    detail: str


@dataclass(frozen=True)
class FigureItem:
    """A chart ready for the page: its spec owner and the static SVG fallback."""

    chart: ReportChart
    svg: str


@dataclass(frozen=True)
class PageContext:
    """Everything a section may read."""

    data: ReportData
    title: str
    symbol: str
    run_status: str
    run_id: str | None
    generated_at: dt.datetime
    k_anonymity: int
    headline: list[HeadlineItem]
    figures: list[FigureItem] = field(default_factory=list)
    evidence: Evidence | None = None


def report_title(scheme_name: str | None, as_of: dt.date) -> str:
    """Plain-text page title (escape before use in HTML).

    >>> report_title(None, dt.date(2024, 3, 31))
    'circulate — Local currency impact report, as of 31 March 2024'
    """
    scheme = scheme_name.strip() if scheme_name and scheme_name.strip() else "Local currency"
    return f"circulate — {scheme} impact report, as of {fmt.day(as_of)}"


def headline_items(data: ReportData, symbol: str, k_anonymity: int) -> list[HeadlineItem]:
    """Format the headline figures, each with its period spelled out."""
    h = data.headline
    since = f"{fmt.day(data.first_day)} to {fmt.day(data.as_of)}"
    window = f"{fmt.day(h.window_start)} to {fmt.day(data.as_of)}"
    if h.window_start > data.as_of - dt.timedelta(days=29):
        window += " (history is shorter than 30 days)"
    if h.active_month is None or h.active_accounts is None:
        active_label, active_value = "Active accounts, latest month", "not available"
    else:
        active_label = f"Active accounts, {fmt.month(h.active_month)}"
        if h.month_to_date:
            active_label += " (month to date)"
        active_value = (
            f"fewer than {k_anonymity}"
            if h.active_accounts < k_anonymity
            else fmt.count(h.active_accounts)
        )
    return [
        HeadlineItem(
            "money_in_circulation",
            "Money in circulation",
            fmt.money(h.money_supply, symbol),
            f"End of {fmt.day(data.as_of)}: issued − redeemed − fees",
        ),
        HeadlineItem("total_issued", "Total issued", fmt.money(h.issued, symbol), since),
        HeadlineItem("total_redeemed", "Total redeemed", fmt.money(h.redeemed, symbol), since),
        HeadlineItem(
            "transfer_volume_30d",
            "Transfer volume, last 30 days",
            fmt.money(h.volume_30d, symbol),
            window,
        ),
        HeadlineItem(
            "transfer_count_30d", "Transfers, last 30 days", fmt.count(h.count_30d), window
        ),
        HeadlineItem(
            "transfer_volume_all",
            "Transfer volume, whole history",
            fmt.money(h.volume_all, symbol),
            since,
        ),
        HeadlineItem(
            "transfer_count_all", "Transfers, whole history", fmt.count(h.count_all), since
        ),
        HeadlineItem(
            "active_accounts",
            active_label,
            active_value,
            "Accounts with at least one transfer in the month",
        ),
    ]


# --- sections -------------------------------------------------------------------------


def header_section(ctx: PageContext) -> str:
    """Title and when the figures are from."""
    d = ctx.data
    return (
        f"<header><h1>{esc(ctx.title)}</h1>"
        f'<p class="meta">Data from {esc(fmt.day(d.first_day))} to {esc(fmt.day(d.as_of))}. '
        f"Generated {esc(ctx.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}.</p></header>"
    )


def status_section(ctx: PageContext) -> str:
    """A visible banner when tonight's run did not succeed."""
    if ctx.run_status == "success":
        return ""
    run = f", run {ctx.run_id}" if ctx.run_id else ""
    banner = VALIDATION_BANNER if ctx.run_status == "failed_validation" else FAILED_BANNER
    return (
        f'<div class="banner" role="alert">{esc(banner)} '
        f"(run status: {esc(ctx.run_status)}{esc(run)}).</div>"
    )


def headline_section(ctx: PageContext) -> str:
    """The headline numbers as a grid of labelled figures."""
    stats = "".join(
        f'<div class="stat" id="stat-{esc(item.key)}"><dt>{esc(item.label)}</dt>'
        f'<dd>{esc(item.value)}</dd><p class="detail">{esc(item.detail)}</p></div>'
        for item in ctx.headline
    )
    fees = fmt.money(ctx.data.headline.fees, ctx.symbol)
    return (
        '<section aria-labelledby="h-headline"><h2 id="h-headline">Headline numbers</h2>'
        f'<p class="note">Amounts are in units of the local currency, shown with the symbol '
        f"“{esc(ctx.symbol)}”. Money in circulation is everything issued minus everything "
        f"redeemed and {esc(fees)} of fees.</p>"
        f'<dl class="headline">{stats}</dl></section>'
    )


def _figure(item: FigureItem) -> str:
    chart = item.chart
    svg_uri = "data:image/svg+xml;base64," + base64.b64encode(item.svg.encode()).decode()
    note = f" {chart.note}" if chart.note else ""
    # The static SVG shows until the live chart has rendered, and in print or without JS.
    return (
        f'<figure id="fig-{esc(chart.name)}">'
        f'<div class="vis" id="vis-{esc(chart.name)}" data-spec="spec-{esc(chart.name)}" '
        f'role="img" aria-label="{esc(chart.description)}"></div>'
        f'<img class="static" src="{esc(svg_uri)}" alt="{esc(chart.description)}">'
        f"<figcaption><strong>{esc(chart.title)}.</strong> {esc(chart.description)}{esc(note)} "
        f"Source: {esc(chart.source)}.</figcaption></figure>"
    )


def figure_named(ctx: PageContext, name: str) -> str:
    """The figure markup of chart ``name``, or ``""`` when it was not drawn."""
    return "".join(_figure(item) for item in ctx.figures if item.chart.name == name)


#: Charts of the circulation section; the impact sections place their own.
CIRCULATION_CHARTS = ("money_supply", "monthly_transfers")


def charts_section(ctx: PageContext) -> str:
    """The circulation charts, each with its caption and alt text."""
    figures = "".join(figure_named(ctx, name) for name in CIRCULATION_CHARTS)
    return (
        '<section aria-labelledby="h-charts"><h2 id="h-charts">Circulation over time</h2>'
        f"{figures}{_monthly_table(ctx)}</section>"
    )


def _monthly_table(ctx: PageContext) -> str:
    hidden = f"hidden (fewer than {ctx.k_anonymity} accounts)"
    rows = []
    for r in ctx.data.monthly.iter_rows(named=True):
        suppressed = bool(r["suppressed"])
        volume = hidden if suppressed else fmt.money(r["transfer_volume"], ctx.symbol)
        transfers = "" if suppressed else fmt.count(r["transfer_count"])
        active = r["active_accounts"]
        accounts = "not available" if active is None else fmt.count(active)
        if suppressed:
            accounts = f"fewer than {ctx.k_anonymity}"
        cells = (
            fmt.month(r["month"]),
            volume,
            transfers,
            accounts,
            fmt.money(r["money_supply_end"], ctx.symbol),
        )
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(
        f'<th scope="col">{esc(h)}</th>'
        for h in (
            "Month",
            f"Transfer volume ({ctx.symbol})",
            "Transfers",
            "Active accounts",
            f"In circulation at month end ({ctx.symbol})",
        )
    )
    return (
        "<details><summary>Monthly figures as a table</summary>"
        '<div class="table-wrap"><table><caption>Source: marts.daily_circulation, '
        "marts.monthly_circulation</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def validation_section(ctx: PageContext) -> str:
    """Offline validation summary: counts by severity, the failing expectations (an
    accepted failure is a warning whose observed value names the decision and its reason)
    and the exports set aside."""
    v = ctx.data.validation
    if v is None:
        return ""
    critical, warnings = v.count("failed", "critical"), v.count("failed", "warning")
    if critical:
        verdict = f"{critical} critical check(s) failed, so this run was not published."
    elif warnings:
        verdict = f"All critical checks passed; {warnings} warning(s) are flagged below."
    else:
        verdict = "Every check passed."
    counts = (
        f"{v.count('passed')} passed, {critical} critical failure(s), {warnings} warning(s), "
        f"{v.count('skipped')} skipped"
    )
    failing = [r for r in v.rows if r.status == "failed"]
    failing.sort(key=lambda r: (r.severity != "critical", r.suite, r.expectation))
    body = "".join(
        f'<tr class="{esc(r.severity)}">'
        + "".join(
            f"<td>{esc(c)}</td>"
            for c in (r.severity, f"{r.suite}.{r.expectation}", r.observed_value)
        )
        + "</tr>"
        for r in failing[:MAX_VALIDATION_ROWS]
    )
    more = (
        f'<p class="note">{len(failing) - MAX_VALIDATION_ROWS} more failing check(s) are in '
        f"{esc(v.source)}.</p>"
        if len(failing) > MAX_VALIDATION_ROWS
        else ""
    )
    skipped = "".join(
        f"<li>{esc(r.suite)}.{esc(r.expectation)}: {esc(r.observed_value)}</li>"
        for r in v.rows
        if r.status == "skipped"
    )
    table = (
        '<div class="table-wrap"><table><caption>Failing checks (source: '
        f"{esc(v.source)})</caption><thead><tr>"
        '<th scope="col">Severity</th><th scope="col">Check</th>'
        f'<th scope="col">Observed</th></tr></thead><tbody>{body}</tbody></table></div>'
        if failing
        else ""
    )
    set_aside = "".join(f"<li>{esc(name)}: {esc(note)}</li>" for name, note in v.set_aside)
    if set_aside:
        set_aside = f"<p>Set aside by an operator and not loaded:</p><ul>{set_aside}</ul>"
    return (
        '<section aria-labelledby="h-validation"><h2 id="h-validation">Data checks</h2>'
        f"<p>Checks of run {esc(v.run_id)}: {esc(counts)}. {esc(verdict)}</p>"
        f"{table}{more}"
        + (f'<ul class="note">{skipped}</ul>' if skipped else "")
        + set_aside
        + "</section>"
    )


def caveats_section(ctx: PageContext) -> str:
    """What the numbers do not show."""
    items = [
        "<strong>Activity is not causal impact.</strong> These figures show how much the "
        "currency was used. They do not show what would have happened without it: some of "
        "this spending might have stayed local in sterling anyway.",
        "<strong>Paper notes are only visible when issued and redeemed.</strong> Payments "
        "made with paper notes between members leave no record, so transfer volumes and "
        "counts cover recorded electronic payments only, while money in circulation "
        "includes notes.",
        "<strong>Figures are from anonymised exports.</strong> Accounts are pseudonymised "
        "before analysis and no names or account numbers appear here; groups with fewer than "
        f"{ctx.k_anonymity} accounts are hidden. Totals are only as complete as the exports "
        "the scheme supplied.",
    ]
    lis = "".join(f"<li>{item}</li>" for item in items)  # fixed text; only k is data
    return (
        '<section aria-labelledby="h-caveats"><h2 id="h-caveats">Caveats</h2>'
        f'<ul class="caveats">{lis}</ul></section>'
    )


def about_section(ctx: PageContext) -> str:
    """Definitions, data span and recent pipeline runs."""
    d = ctx.data
    period = "day" if d.supply_period == "day" else "week (end-of-week balance)"
    parts = [
        '<section aria-labelledby="h-about"><h2 id="h-about">About these figures</h2><ul>',
        "<li><strong>Transfer</strong>: a payment between two members; top-ups (issuance), "
        "cash-outs (redemption) and fees are counted separately.</li>",
        "<li><strong>Active account</strong>: an account with at least one transfer in the "
        "month.</li>",
        f"<li>The money-in-circulation chart shows one point per {esc(period)}.</li>",
        f"<li>The warehouse holds days from {esc(fmt.day(d.first_day))} to "
        f"{esc(fmt.day(d.last_day))}; this report uses days up to "
        f"{esc(fmt.day(d.as_of))}.</li></ul>",
    ]
    if d.runs:
        head = "".join(
            f'<th scope="col">{h}</th>'
            for h in ("Run", "Started", "Finished", "Status", "Stage", "Rows loaded")
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{esc(v)}</td>"
                for v in (r.run_id, r.started_at, r.finished_at, r.status, r.stage, r.rows_loaded)
            )
            + "</tr>"
            for r in d.runs
        )
        parts.append(
            '<div class="table-wrap"><table><caption>Recent pipeline runs '
            f"(audit.runs)</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            "</table></div>"
        )
    parts.append("</section>")
    return "".join(parts)


def footer_section(ctx: PageContext) -> str:
    """Provenance line."""
    run = f", run {ctx.run_id}" if ctx.run_id else ""
    return (
        f"<footer>Made by circulate {esc(__version__)}{esc(run)}; run status: "
        f"{esc(ctx.run_status)}. Works offline: this file contains everything it needs."
        "</footer>"
    )


Section = Callable[[PageContext], str]
SECTIONS: tuple[Section, ...] = (
    header_section,
    status_section,
    headline_section,
    charts_section,
    validation_section,
    caveats_section,
    about_section,
    footer_section,
)


def render_page(ctx: PageContext, js_bundle: str, sections: tuple[Section, ...] = SECTIONS) -> str:
    """Assemble the full HTML document.

    Parameters
    ----------
    ctx
        Page context.
    js_bundle
        Vega + Vega-Lite + vega-embed JavaScript, inlined verbatim.
    sections
        Section renderers, in page order.
    """
    if "</script" in js_bundle.lower():
        raise ValueError("JavaScript bundle contains '</script' and cannot be inlined safely")
    css = files("circulate.report").joinpath("assets/report.css").read_text(encoding="utf-8")
    body = "\n".join(s for s in (section(ctx) for section in sections) if s)
    specs = "\n".join(
        f'<script type="application/json" id="spec-{esc(item.chart.name)}">'
        f"{script_json(item.chart.spec(responsive=True))}</script>"
        for item in ctx.figures
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{esc(ctx.title)}</title><style>{css}</style></head>\n"
        f"<body>\n<main>\n{body}\n</main>\n{specs}\n"
        f"<script>{js_bundle}</script>\n<script>{_EMBED_SCRIPT}</script>\n</body></html>\n"
    )
