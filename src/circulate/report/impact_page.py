"""Sections of the funder report about public value: scorecard, risks, multiplier, network,
inclusion, operations, coverage and method. Each is ``(PageContext) -> str``; every value
from data goes through :func:`circulate.report.page.esc`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

import polars as pl

from circulate.metrics.impact import (
    CREATING,
    DESTROYING,
    NO_DATA,
    PILLARS,
    WATCH,
    format_change,
    format_value,
)
from circulate.report import fmt, page
from circulate.report.page import PageContext, Section, esc, figure_named

STATUS_MARK = {CREATING: "✔", WATCH: "!", DESTROYING: "✖", NO_DATA: "–"}
STATUS_CLASS = {CREATING: "good", WATCH: "watch", DESTROYING: "bad", NO_DATA: "none"}


def _table(
    caption: str, head: Sequence[str], rows: Iterable[Sequence[Any]], csv: str | None = None
) -> str:
    th = "".join(f'<th scope="col">{esc(h)}</th>' for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    link = f' <a href="tables/{esc(csv)}.csv">CSV</a>' if csv else ""
    return (
        f'<div class="table-wrap"><table><caption>{esc(caption)}{link}</caption>'
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _triangle_svg(counts: dict[str, dict[str, int]]) -> str:
    """Moore's strategic triangle with each corner's status counts (numbers only)."""

    def label(pillar: str) -> str:
        c = counts.get(pillar, {})
        return f"{c.get(CREATING, 0)} ✔ · {c.get(WATCH, 0)} ! · {c.get(DESTROYING, 0)} ✖"

    return (
        '<svg class="triangle" viewBox="0 0 360 250" role="img" aria-labelledby="triangle-t">'
        '<title id="triangle-t">Moore\'s strategic triangle: public value proposition at the '
        "top, authorising environment bottom left, operational capacity bottom right, each "
        "with its count of indicators creating value, to watch and destroying value.</title>"
        '<polygon points="180,40 40,200 320,200" fill="#f5f7fa" stroke="#0072b2" '
        'stroke-width="2"/>'
        '<text x="180" y="20" text-anchor="middle" font-weight="700">'
        "Public value proposition</text>"
        '<text x="180" y="34" text-anchor="middle" font-size="12">'
        f"{esc(label('proposition'))}</text>"
        '<text x="40" y="222" text-anchor="start" font-weight="700">Authorising</text>'
        '<text x="40" y="236" text-anchor="start" font-size="12">'
        f"{esc(label('authorising'))}</text>"
        '<text x="320" y="222" text-anchor="end" font-weight="700">Operational capacity</text>'
        '<text x="320" y="236" text-anchor="end" font-size="12">'
        f"{esc(label('operational'))}</text>"
        "</svg>"
    )


def scorecard_section(ctx: PageContext) -> str:
    """The triangle scorecard: every indicator with value, change, threshold and status."""
    ev = ctx.evidence
    if ev is None or ev.scorecard.is_empty() or ev.report_month is None:
        return (
            '<section aria-labelledby="h-scorecard"><h2 id="h-scorecard">Public-value '
            "scorecard</h2><p>No scorecard yet: the warehouse holds no month of data.</p>"
            "</section>"
        )
    month = fmt.month(ev.report_month)
    partial = "" if ev.report_month_complete else " (not yet a complete month)"
    statuses = ev.scorecard["status"].to_list()
    counts: dict[str, dict[str, int]] = {}
    for row in ev.scorecard.iter_rows(named=True):
        counts.setdefault(row["pillar"], {}).setdefault(row["status"], 0)
        counts[row["pillar"]][row["status"]] += 1
    verdict = (
        f"{statuses.count(CREATING)} of {len(statuses)} indicators are creating value, "
        f"{statuses.count(WATCH)} need watching and {statuses.count(DESTROYING)} show value "
        f"being destroyed ({statuses.count(NO_DATA)} without data)."
    )
    columns = []
    for pillar, title in PILLARS.items():
        rows = ev.scorecard.filter(pl.col("pillar") == pillar)
        items = []
        for r in rows.iter_rows(named=True):
            unit = r["unit"]
            value = format_value(_num(r["value"]), unit)
            change = (
                ""
                if r["change"] is None
                else f'<span class="change">{esc(format_change(_num(r["change"]), unit))}</span>'
            )
            status = r["status"]
            items.append(
                f'<li class="indicator {STATUS_CLASS.get(status, "none")}" '
                f'id="ind-{esc(r["indicator"])}">'
                f'<span class="status" aria-hidden="true">{esc(STATUS_MARK.get(status, "–"))}'
                f"</span><div><strong>{esc(r['label'])}</strong>: "
                f'<span class="value">{esc(value)}</span> {change} '
                f'<em class="badge">{esc(status)}</em>'
                f'<p class="explain">{esc(r["explanation"])}</p>'
                f'<p class="definition">{esc(r["definition"])} Source: {esc(r["source"])}.</p>'
                "</div></li>"
            )
        columns.append(
            f'<div class="pillar"><h3>{esc(title)}</h3><ul class="indicators">'
            f"{''.join(items)}</ul></div>"
        )
    return (
        '<section aria-labelledby="h-scorecard"><h2 id="h-scorecard">Is the currency creating '
        "public value?</h2>"
        f'<p class="lead">Scorecard for {esc(month)}{esc(partial)}: {esc(verdict)}</p>'
        f"{_triangle_svg(counts)}"
        '<p class="note">Framed by Moore\'s strategic triangle: the value the currency '
        "creates (proposition), the support and trust it earns (authorising environment) and "
        "the scheme's ability to deliver (operational capacity). ✔ creating value, ! watch, "
        "✖ destroying value; thresholds are the partnership's own (see Method notes). "
        'Download: <a href="tables/scorecard.csv">scorecard.csv</a>.</p>'
        f'<div class="pillars">{"".join(columns)}</div></section>'
    )


def flags_section(ctx: PageContext) -> str:
    """Raised risk flags with their evidence; the checks that passed, folded away."""
    ev = ctx.evidence
    if ev is None or ev.flags.is_empty():
        return ""
    raised = ev.flags.filter(pl.col("raised"))
    quiet = ev.flags.filter(~pl.col("raised"))
    extra = []
    if ctx.run_status != "success":
        extra.append(
            '<li class="flag"><strong>Tonight\'s run did not publish</strong>: run status '
            f"{esc(ctx.run_status)}; the figures are the last published ones. "
            '<a href="#h-validation">See the data checks</a>.</li>'
        )

    def item(r: dict[str, Any]) -> str:
        chart = r["chart"]
        target = "h-validation" if chart == "validation" else f"fig-{chart}"
        return (
            f'<li class="flag" id="flag-{esc(r["flag"])}"><strong>{esc(r["title"])}</strong>: '
            f'{esc(r["evidence"])} <a href="#{esc(target)}">See the evidence</a> '
            f'<span class="note">(source: {esc(r["source"])})</span></li>'
        )

    if len(raised) or extra:
        head = (
            f'<p class="lead warn">{len(raised) + len(extra)} risk flag(s) raised for '
            f"{esc(fmt.month(ev.flags['period_start'][0]))}.</p>"
        )
        listed = "".join(item(r) for r in raised.iter_rows(named=True))
        body = f'<ul class="flags">{"".join(extra)}{listed}</ul>'
    else:
        head = (
            '<p class="lead">No risk flag raised for '
            f"{esc(fmt.month(ev.flags['period_start'][0]))}: "
            f"all {len(quiet)} checks passed.</p>"
        )
        body = ""
    checks = "".join(
        f"<li><strong>{esc(r['title'])}</strong>: {esc(r['evidence'])}</li>"
        for r in quiet.iter_rows(named=True)
    )
    return (
        '<section aria-labelledby="h-risks"><h2 id="h-risks">Risks of destroying value</h2>'
        f"{head}{body}"
        f"<details><summary>Checks not raised ({len(quiet)})</summary><ul>{checks}</ul>"
        '</details><p class="note">Download: <a href="tables/risk_flags.csv">risk_flags.csv'
        "</a>.</p></section>"
    )


def trends_section(ctx: PageContext) -> str:
    """Velocity, leakage and dormancy by month."""
    fig = figure_named(ctx, "circulation_trends")
    if not fig:
        return ""
    return (
        '<section aria-labelledby="h-trends"><h2 id="h-trends">Is money kept moving?</h2>'
        f"{fig}"
        '<p class="note">Download: <a href="tables/monthly_trends.csv">monthly_trends.csv</a>.'
        "</p></section>"
    )


def multiplier_section(ctx: PageContext) -> str:
    """Traced against Markov multipliers, with the whole-history interval."""
    ev = ctx.evidence
    if ev is None or not ev.multiplier:
        return ""
    m = ev.multiplier
    rows = [
        (f"LM{k}", fmt.ratio(_num(m.get(f"lm{k}"))), fmt.ratio(_num(m.get(f"markov_lm{k}"))))
        for k in (2, 3, 4, 5)
    ]
    traced, markov = _num(m.get("lm3")), _num(m.get("markov_lm3"))
    gap = ""
    if traced and markov:
        diff = (markov - traced) / traced
        gap = (
            f" The Markov estimate is {fmt.share(abs(diff))} {'above' if diff > 0 else 'below'} "
            "the traced figure: "
            + (
                "close enough that flows look memoryless."
                if abs(diff) < 0.05
                else "a gap this size says money does not move like a memoryless chain "
                "(for example, the same payers keep re-spending), itself a finding."
            )
        )
    text = (
        f"Over the whole history each unit issued supported {fmt.ratio(traced)} units of "
        f"local trade over its first three rounds (traced LM3, 95 % interval "
        f"{fmt.ratio(_num(m.get('lm3_low')))} to {fmt.ratio(_num(m.get('lm3_high')))}); the "
        f"full multiplier is {fmt.ratio(_num(m.get('full_multiplier')))}.{gap}"
    )
    return (
        '<section aria-labelledby="h-multiplier"><h2 id="h-multiplier">Local multiplier</h2>'
        f"<p>{esc(text)}</p>{figure_named(ctx, 'multiplier')}"
        + _table(
            "Whole-history multipliers: traced through the ledger (FIFO) and Markov estimate "
            "(source: marts.circulation_metrics)",
            ("Measure", "Traced", "Markov estimate"),
            rows,
            "multiplier",
        )
        + "</section>"
    )


_NETWORK_ROWS = (
    ("nodes", "Accounts trading", "count"),
    ("edges", "Payer → payee pairs", "count"),
    ("density", "Density", "ratio"),
    ("reciprocity", "Reciprocity (pairs paying both ways)", "share"),
    ("giant_scc_volume_share", "Volume inside the largest loop of mutual reach", "share"),
    ("cycles_2", "Cycles of 2", "count"),
    ("cycles_3", "Cycles of 3", "count"),
    ("cycles_4", "Cycles of 4", "count"),
    ("cycles_5", "Cycles of 5", "count"),
    ("cycle_volume_share", "Volume on short cycles (2–5)", "share"),
    ("communities", "Communities", "count"),
    ("modularity", "Modularity", "ratio"),
    ("receipts_top5_share", "Top five businesses' share of receipts", "share"),
    ("receipts_gini", "Gini of business receipts", "ratio"),
    ("fragility_top5", "Volume touching the five most central accounts", "share"),
)


def network_values(ev_network: pl.DataFrame) -> list[tuple[str, str, str, str]]:
    """Rows of the network table: measure and its member / business-only values."""
    by_scope = {r["scope"]: r for r in ev_network.iter_rows(named=True)}
    out = []
    for column, label, unit in _NETWORK_ROWS:
        cells = []
        for scope in ("member", "business"):
            value = by_scope.get(scope, {}).get(column)
            if unit == "count":
                cells.append(fmt.count(None if value is None else int(value)))
            elif unit == "share":
                cells.append(fmt.share(_num(value)))
            else:
                cells.append(fmt.ratio(_num(value), 3))
        out.append((column, label, cells[0], cells[1]))
    return out


def network_as_of(ev_network: pl.DataFrame) -> str:
    """When the whole-history network figures end, in words ('' without figures).

    They end with the latest complete month; before any month is complete they are the
    data so far.

    >>> network_as_of(pl.DataFrame({"as_of_day": [dt.date(2025, 2, 28)] * 2}))
    ' as of the end of February 2025'
    >>> network_as_of(pl.DataFrame({"as_of_day": [dt.date(2025, 1, 20)]}))
    ' up to 20 January 2025 (no month complete yet)'
    """
    days = ev_network["as_of_day"].drop_nulls() if "as_of_day" in ev_network.columns else None
    if days is None or days.is_empty():
        return ""
    last = cast(dt.date, days.max())
    if (last + dt.timedelta(days=1)).day == 1:
        return f" as of the end of {fmt.month(last)}"
    return f" up to {fmt.day(last)} (no month complete yet)"


def network_section(ctx: PageContext) -> str:
    """Hubs and concentration, cycles, and sector flows as a heat map."""
    ev = ctx.evidence
    if ev is None:
        return ""
    table = _table(
        f"The business network over the whole history{network_as_of(ev.network)}: all "
        "members, and transfers between businesses only (source: marts.network_summary; "
        "refreshed when a month closes)",
        ("Measure", "All members", "Businesses only"),
        [(label, a, b) for _, label, a, b in network_values(ev.network)],
        "network",
    )
    return (
        '<section aria-labelledby="h-network"><h2 id="h-network">Business network</h2>'
        "<p>Hubs make a network efficient and fragile at once: if a few businesses take most "
        "receipts, losing one hurts everyone. Short cycles (A pays B pays C pays A) are money "
        "circulating locally rather than leaking out.</p>"
        f"{figure_named(ctx, 'concentration')}{figure_named(ctx, 'sector_flows')}{table}"
        '<p class="note">Download: <a href="tables/sector_flows.csv">sector_flows.csv</a>. '
        "No account is named: hubs are described only as a group of five.</p></section>"
    )


def inclusion_section(ctx: PageContext) -> str:
    """Who benefits: money by the deprivation decile of the area."""
    ev = ctx.evidence
    if ev is None or ev.deciles.is_empty():
        return ""
    rows = [
        (
            r["decile"],
            fmt.count(r["residents"])
            if r["residents"] is not None
            else f"fewer than {ctx.k_anonymity}",
            fmt.share(_num(r["residents_spend_share"]))
            if r["residents_spend_share"] is not None
            else "hidden",
            fmt.count(r["businesses"])
            if r["businesses"] is not None
            else f"fewer than {ctx.k_anonymity}",
            fmt.share(_num(r["business_receipts_share"]))
            if r["business_receipts_share"] is not None
            else "hidden",
        )
        for r in ev.deciles.iter_rows(named=True)
    ]
    reach = ev.scorecard.filter(pl.col("indicator") == "area_reach") if len(ev.scorecard) else None
    reach_text = (
        f"<p>{esc(reach['explanation'][0])}</p>" if reach is not None and len(reach) else ""
    )
    return (
        '<section aria-labelledby="h-inclusion"><h2 id="h-inclusion">Inclusion</h2>'
        f"{reach_text}{figure_named(ctx, 'deprivation')}"
        + _table(
            "Residents' spend and business receipts by deprivation decile of the area, whole "
            "history (1 = most deprived tenth)",
            (
                "Decile",
                "Residents paying",
                "Share of residents' spend",
                "Businesses paid",
                "Share of business receipts",
            ),
            rows,
            "deprivation_deciles",
        )
        + "</section>"
    )


def operations_section(ctx: PageContext) -> str:
    """Members taking part, and the council and public bodies' flows."""
    figs = figure_named(ctx, "participation") + figure_named(ctx, "public_flows")
    if not figs:
        return ""
    return (
        '<section aria-labelledby="h-operations"><h2 id="h-operations">Members and public '
        f"bodies</h2>{figs}</section>"
    )


def coverage_section(ctx: PageContext) -> str:
    """What the data covers and what it cannot see."""
    ev = ctx.evidence
    if ev is None or not ev.coverage:
        return ""
    c = ev.coverage
    paper = _num(c.get("paper_share"))
    items = [
        f"Days covered: {fmt.count(c['days'])} ({fmt.day(c['first_day'])} to "
        f"{fmt.day(c['last_day'])}); days with no transaction at all: "
        f"{fmt.count(c['quiet_days'])}.",
        f"Files loaded: {fmt.count(c['files'])}; rows received {fmt.count(c['rows_in'])}, "
        f"loaded {fmt.count(c['rows_loaded'])}, duplicates {fmt.count(c['rows_duplicate'])}, "
        f"quarantined with a reason {fmt.count(c['rows_quarantined'])}; personal details "
        f"redacted from free text: {fmt.count(c['redactions'])}.",
        f"Paper notes: {fmt.share(paper)} of the money issued went out as paper notes. Payments "
        "made with notes leave no record until the notes are redeemed, so the transfer "
        "figures, multipliers and network above cover electronic payments only.",
    ]
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return (
        '<section aria-labelledby="h-coverage"><h2 id="h-coverage">Data coverage</h2>'
        f'<ul>{lis}</ul><p class="note">Download: <a href="tables/data_coverage.csv">'
        "data_coverage.csv</a>.</p></section>"
    )


def method_section(ctx: PageContext) -> str:
    """How the indicators are computed, and the thresholds table in force."""
    ev = ctx.evidence
    notes = [
        "Months are calendar months in the scheme's time zone; the scorecard uses the latest "
        "complete month, compared with the month before.",
        "LM3 on the scorecard is the Markov estimate from the month's own flows; the traced "
        "LM3 follows each unit of money first-in first-out through the ledger and is shown "
        "in the multiplier section with a bootstrap interval.",
        "Velocity is transfer volume over mean daily money in circulation for the month (not "
        "annualised). Leakage is money redeemed over money issued in the month.",
        f"Privacy: no account is named and every figure that describes accounts covers at "
        f"least {ctx.k_anonymity} of them; smaller groups are hidden, along with a second "
        "cell wherever a shown total would reveal the first. Public bodies' own payments are "
        "shown as institutions; the members they pay are protected.",
    ]
    thresholds = ""
    if ev is not None and not ev.thresholds.is_empty():
        ind = ev.thresholds.filter(pl.col("kind") == "indicator")
        flags = ev.thresholds.filter(pl.col("kind") == "flag")
        source = ev.thresholds["source_file"][0]
        thresholds = _table(
            f"Thresholds in force (from {source})",
            ("Indicator", "Better when", "Rule"),
            [(r["label"], r["better"], r["rule"]) for r in ind.iter_rows(named=True)],
            "thresholds",
        ) + _table(
            "Risk-flag settings",
            ("Setting", "Value"),
            [(r["label"], f"{r['value']:g}") for r in flags.iter_rows(named=True)],
        )
    lis = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (
        '<section aria-labelledby="h-method"><h2 id="h-method">Method notes</h2>'
        f"<ul>{lis}</ul>{thresholds}</section>"
    )


#: The funder report, top to bottom.
REPORT_SECTIONS: tuple[Section, ...] = (
    page.header_section,
    page.status_section,
    page.headline_section,
    scorecard_section,
    flags_section,
    page.charts_section,
    trends_section,
    multiplier_section,
    network_section,
    inclusion_section,
    operations_section,
    page.validation_section,
    coverage_section,
    page.caveats_section,
    method_section,
    page.about_section,
    page.footer_section,
)
