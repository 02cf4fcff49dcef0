"""Charts of the public-value sections: trends, multiplier, network, inclusion, operations.

Each chart receives frames already aggregated (and suppressed) by
:mod:`circulate.report.evidence`: at most a few hundred rows. Nulls are hidden values and
are left out of marks, never drawn as zero.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from circulate.report import fmt
from circulate.report.charts import CHART_HEIGHT, IMAGE_WIDTH, OKABE_ITO, ReportChart, _styled
from circulate.report.evidence import Evidence

X_MONTH = alt.X("month:T", timeUnit="utcyearmonth", title="Month", axis=alt.Axis(format="%b %Y"))


def _long(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """Melt ``columns`` (name → label) of a monthly frame into month, measure, value."""
    if frame.is_empty():
        return frame
    return (
        frame.select("month", *columns)
        .unpivot(index="month", variable_name="measure", value_name="value")
        .with_columns(pl.col("measure").replace_strict(columns))
        .drop_nulls("value")
    )


def _last(frame: pl.DataFrame, column: str) -> Any:
    values = frame[column].drop_nulls()
    return values[-1] if len(values) else None


def circulation_trends_chart(ev: Evidence) -> ReportChart | None:
    """Velocity, leakage and dormancy by month, one panel each."""
    measures = {
        "velocity": "Velocity (times per month)",
        "leakage": "Leakage (redeemed per unit issued)",
        "dormancy": "Dormant share of supply",
    }
    data = _long(ev.trends, measures)
    if data.is_empty():
        return None
    description = (
        "Three small line charts by month: velocity (transfer volume over mean money in "
        f"circulation), leakage (money redeemed per unit issued) and the share of money in "
        f"dormant accounts. Latest values: velocity {fmt.ratio(_last(ev.trends, 'velocity'))}, "
        f"leakage {fmt.ratio(_last(ev.trends, 'leakage'))}, dormant share "
        f"{fmt.share(_last(ev.trends, 'dormancy'))}."
    )
    chart = (
        alt.Chart(data, description=description, width=IMAGE_WIDTH, height=90)
        .mark_line(point=True, color=OKABE_ITO[0])
        .encode(
            x=X_MONTH,
            y=alt.Y("value:Q", title=None),
            tooltip=[
                alt.Tooltip("month:T", timeUnit="utcyearmonth", title="Month", format="%b %Y"),
                alt.Tooltip("measure:N", title="Measure"),
                alt.Tooltip("value:Q", title="Value", format=",.3f"),
            ],
        )
        .facet(
            row=alt.Row(
                "measure:N",
                title=None,
                sort=list(measures.values()),
                header=alt.Header(
                    labelAngle=0, labelOrient="top", labelAlign="left", labelFontSize=12
                ),
            ),
            title=alt.TitleParams(
                "Velocity, leakage and dormant money",
                subtitle="Calendar months; source: marts.circulation_metrics",
            ),
        )
        .resolve_scale(y="independent")
    )
    return ReportChart(
        "circulation_trends",
        "Velocity, leakage and dormant money",
        description,
        "marts.circulation_metrics",
        "The last month may be incomplete.",
        _styled(chart),  # type: ignore[arg-type]
        fits_container=False,
    )


def multiplier_chart(ev: Evidence) -> ReportChart | None:
    """Traced LM3 (by month of issuance) against the Markov estimate, with the interval."""
    measures = {
        "lm3": "Traced LM3 (money issued that month)",
        "markov_lm3": "Markov estimate (that month's flows)",
    }
    data = _long(ev.trends, measures)
    if data.is_empty():
        return None
    m = ev.multiplier
    whole = (
        f" Over the whole history the traced LM3 is {fmt.ratio(m.get('lm3'))} (95 % interval "
        f"{fmt.ratio(m.get('lm3_low'))} to {fmt.ratio(m.get('lm3_high'))}) and the Markov "
        f"estimate {fmt.ratio(m.get('markov_lm3'))}."
        if m
        else ""
    )
    description = (
        "Two lines by month: LM3 traced through the ledger for money issued in each month, "
        "and the Markov-chain estimate from each month's flows." + whole
    )
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=X_MONTH,
            y=alt.Y("value:Q", title="LM3", scale=alt.Scale(zero=False)),
            color=alt.Color(
                "measure:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=320)
            ),
            strokeDash=alt.StrokeDash("measure:N", legend=None),
            tooltip=[
                alt.Tooltip("month:T", timeUnit="utcyearmonth", title="Month", format="%b %Y"),
                alt.Tooltip("measure:N", title="Estimate"),
                alt.Tooltip("value:Q", title="LM3", format=".2f"),
            ],
        )
    )
    layers: list[Any] = [lines]
    if m.get("lm3_low") is not None and m.get("lm3_high") is not None:
        band = pl.DataFrame(
            {
                "low": [float(m["lm3_low"])],
                "high": [float(m["lm3_high"])],
                "label": ["Whole history, traced (95 % interval)"],
            }
        )
        layers.insert(
            0,
            alt.Chart(band)
            .mark_rect(opacity=0.18, color=OKABE_ITO[2])
            .encode(y="low:Q", y2="high:Q", tooltip=["label:N", "low:Q", "high:Q"]),
        )
    chart = alt.layer(
        *layers,
        title=alt.TitleParams(
            "Local multiplier (LM3) by month",
            subtitle=[
                "Green band: whole-history traced LM3, 95 % bootstrap interval",
                "Source: marts.circulation_metrics",
            ],
        ),
        description=description,
        width=IMAGE_WIDTH,
        height=CHART_HEIGHT,
    )
    return ReportChart(
        "multiplier",
        "Local multiplier (LM3) by month",
        description,
        "marts.circulation_metrics",
        "Traced LM3 for recent months is still growing: their money has not finished its "
        "rounds, so its fall at the right-hand end is not a finding.",
        _styled(chart),  # type: ignore[arg-type]
    )


def concentration_chart(ev: Evidence, top5_limit: float | None) -> ReportChart | None:
    """Share of business receipts taken by the top five, and volume touching the top five hubs."""
    measures = {
        "receipts_top5_share": "Top five businesses' share of business receipts",
        "fragility_top5": "Volume touching the five most central accounts",
    }
    data = _long(ev.trends, measures)
    if data.is_empty():
        return None
    description = (
        "Two lines by month: the share of business receipts taken by the five largest "
        "business receivers, and the share of transfer volume on payments touching the five "
        f"most central accounts (weighted PageRank). Latest: "
        f"{fmt.share(_last(ev.trends, 'receipts_top5_share'))} and "
        f"{fmt.share(_last(ev.trends, 'fragility_top5'))}."
    )
    layers: list[Any] = [
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=X_MONTH,
            y=alt.Y(
                "value:Q", title="Share", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color(
                "measure:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=360)
            ),
            tooltip=[
                alt.Tooltip("month:T", timeUnit="utcyearmonth", title="Month", format="%b %Y"),
                alt.Tooltip("measure:N", title="Measure"),
                alt.Tooltip("value:Q", title="Share", format=".1%"),
            ],
        )
    ]
    if top5_limit is not None:
        rule = pl.DataFrame({"limit": [top5_limit], "label": ["risk flag level"]})
        layers.append(
            alt.Chart(rule)
            .mark_rule(strokeDash=[4, 4], color=OKABE_ITO[3])
            .encode(y="limit:Q", tooltip=["label:N", alt.Tooltip("limit:Q", format=".0%")])
        )
    chart = alt.layer(
        *layers,
        title=alt.TitleParams(
            "Concentration: how much depends on a few businesses",
            subtitle=["Dashed line: risk-flag level", "Source: marts.network_summary (members)"],
        ),
        description=description,
        width=IMAGE_WIDTH,
        height=CHART_HEIGHT,
    )
    return ReportChart(
        "concentration",
        "Concentration of business receipts",
        description,
        "marts.network_summary",
        "",
        _styled(chart),  # type: ignore[arg-type]
    )


def sector_heatmap_chart(ev: Evidence, symbol: str, k: int) -> ReportChart | None:
    """Payer sector × payee sector, whole history; hidden cells are marked, not coloured."""
    cells = ev.sector_flows
    if cells.is_empty():
        return None
    data = cells.with_columns(
        pl.when(pl.col("suppressed"))
        .then(pl.lit(f"hidden (< {k} accounts)"))
        .otherwise(
            pl.col("volume").map_elements(lambda v: fmt.money(v, symbol), return_dtype=pl.String)
        )
        .alias("shown")
    ).select("source_sector", "target_sector", "volume", "shown", "suppressed")
    shown = data.filter(~pl.col("suppressed"))
    top = shown.sort("volume", descending=True).head(1)
    largest = (
        f" The largest flow is from {top['source_sector'][0]} to {top['target_sector'][0]} "
        f"({top['shown'][0]})."
        if len(top)
        else ""
    )
    description = (
        f"Heat map of money paid between groups over the whole history: payer sector (rows) "
        f"by payee sector (columns); darker means more money. "
        f"{int(data['suppressed'].sum())} of {len(data)} cells are hidden because they "
        f"describe fewer than {k} accounts.{largest}"
    )
    base = alt.Chart(data).encode(
        x=alt.X(
            "target_sector:N", title="Payee sector", axis=alt.Axis(labelAngle=-40, labelLimit=140)
        ),
        y=alt.Y("source_sector:N", title="Payer sector", axis=alt.Axis(labelLimit=140)),
        tooltip=[
            alt.Tooltip("source_sector:N", title="From"),
            alt.Tooltip("target_sector:N", title="To"),
            alt.Tooltip("shown:N", title="Volume"),
        ],
    )
    rects = base.mark_rect().encode(
        color=alt.condition(
            "datum.volume === null",
            alt.value("#f2f2f2"),
            alt.Color("volume:Q", title=f"Volume ({symbol})", scale=alt.Scale(scheme="blues")),
        )
    )
    marks = base.mark_text(fontSize=10, color="#555").encode(
        text=alt.condition("datum.volume === null", alt.value("×"), alt.value(""))
    )
    side = max(18, min(36, 480 // max(data["source_sector"].n_unique(), 1)))
    chart = alt.layer(
        rects,
        marks,
        title=alt.TitleParams(
            "Where the money goes: flows between sectors",
            subtitle=[f"Whole history; × = hidden (< {k} accounts)", "Source: marts.sector_flows"],
        ),
        description=description,
        width=alt.Step(side),  # type: ignore[arg-type]
        height=alt.Step(side),  # type: ignore[arg-type]
    )
    return ReportChart(
        "sector_flows",
        "Flows between sectors",
        description,
        "marts.sector_flows",
        "Non-business members appear under their account type (individual, public_body).",
        _styled(chart),  # type: ignore[arg-type]
        fits_container=False,
    )


def deprivation_chart(ev: Evidence) -> ReportChart | None:
    """Residents' spend and business receipts by the deprivation decile of the area."""
    if ev.deciles.is_empty():
        return None
    measures = {
        "residents_spend_share": "Spend by residents of these areas",
        "business_receipts_share": "Receipts of businesses in these areas",
    }
    data = (
        ev.deciles.select("decile", *measures)
        .unpivot(index="decile", variable_name="measure", value_name="share")
        .with_columns(pl.col("measure").replace_strict(measures))
        .drop_nulls("share")
    )
    if data.is_empty():
        return None  # every decile's cell hidden (k-anonymity): nothing to draw
    poorest = ev.deciles.filter(pl.col("decile") <= 3)
    spend = float(poorest["residents_spend_share"].sum()) if len(poorest) else None
    receipts = float(poorest["business_receipts_share"].sum()) if len(poorest) else None
    description = (
        "Grouped bars by deprivation decile of the area (1 = most deprived tenth): the share "
        "of all residents' spending made by residents of those areas, and the share of all "
        "business receipts taken by businesses there. The three most deprived deciles "
        f"account for {fmt.share(spend)} of residents' spend and {fmt.share(receipts)} of "
        "business receipts (hidden cells excluded)."
    )
    chart = (
        alt.Chart(
            data,
            title=alt.TitleParams(
                "Inclusion: money by deprivation decile of the area",
                subtitle=["1 = most deprived tenth", "Source: staging.accounts, member transfers"],
            ),
            description=description,
            width=IMAGE_WIDTH,
            height=CHART_HEIGHT,
        )
        .mark_bar()
        .encode(
            x=alt.X(
                "decile:O", title="Deprivation decile of the area", axis=alt.Axis(labelAngle=0)
            ),
            xOffset="measure:N",
            y=alt.Y("share:Q", title="Share of the total", axis=alt.Axis(format="%")),
            color=alt.Color(
                "measure:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=320)
            ),
            tooltip=[
                alt.Tooltip("decile:O", title="Decile"),
                alt.Tooltip("measure:N", title="Measure"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
    )
    return ReportChart(
        "deprivation",
        "Money by deprivation decile",
        description,
        "staging.accounts, intermediate.member_transfers",
        "",
        _styled(chart),
    )


def participation_chart(ev: Evidence, k: int) -> ReportChart | None:
    """Active, new and churned members by month."""
    measures = {
        "active_accounts": "Active members",
        "new_accounts": "New members",
        "churned_accounts": "Churned members",
    }
    data = _long(ev.trends, measures)
    if data.is_empty():
        return None
    description = (
        "Lines by month: members who paid or were paid at least once, members trading for "
        "the first time, and members active the month before but not this month. Latest "
        f"active members: {fmt.count(_last(ev.trends, 'active_accounts'))}. Counts between 1 "
        f"and {k - 1} are hidden."
    )
    chart = (
        alt.Chart(
            data,
            title=alt.TitleParams(
                "Members taking part", subtitle="Source: marts.circulation_metrics"
            ),
            description=description,
            width=IMAGE_WIDTH,
            height=CHART_HEIGHT,
        )
        .mark_line(point=True)
        .encode(
            x=X_MONTH,
            y=alt.Y("value:Q", title="Members"),
            color=alt.Color("measure:N", title=None, legend=alt.Legend(orient="bottom")),
            strokeDash=alt.StrokeDash("measure:N", legend=None),
            tooltip=[
                alt.Tooltip("month:T", timeUnit="utcyearmonth", title="Month", format="%b %Y"),
                alt.Tooltip("measure:N", title="Measure"),
                alt.Tooltip("value:Q", title="Members", format=","),
            ],
        )
    )
    return ReportChart(
        "participation",
        "Members taking part",
        description,
        "marts.circulation_metrics",
        "",
        _styled(chart),
    )


def public_flows_chart(ev: Evidence, symbol: str) -> ReportChart | None:
    """Money paid to and by public bodies each month."""
    measures = {
        "paid_to_public_bodies": "Paid to public bodies (e.g. business rates)",
        "paid_by_public_bodies": "Paid by public bodies (e.g. salaries, suppliers)",
    }
    data = _long(ev.trends, measures)
    if data.is_empty():
        return None
    description = (
        "Bars by month: transfers paid to public bodies by members, and paid by public bodies "
        f"to members, in {symbol}. Latest month: "
        f"{fmt.money(_last(ev.trends, 'paid_to_public_bodies'), symbol)} paid to and "
        f"{fmt.money(_last(ev.trends, 'paid_by_public_bodies'), symbol)} paid by them."
    )
    chart = (
        alt.Chart(
            data,
            title=alt.TitleParams(
                "Council and public-body flows", subtitle="Source: marts.spend_breakdown"
            ),
            description=description,
            width=IMAGE_WIDTH,
            height=CHART_HEIGHT,
        )
        .mark_bar()
        .encode(
            x=X_MONTH,
            xOffset="measure:N",
            y=alt.Y("value:Q", title=f"Money ({symbol})", axis=alt.Axis(format=",.0f")),
            color=alt.Color(
                "measure:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=360)
            ),
            tooltip=[
                alt.Tooltip("month:T", timeUnit="utcyearmonth", title="Month", format="%b %Y"),
                alt.Tooltip("measure:N", title="Flow"),
                alt.Tooltip("value:Q", title=symbol, format=",.2f"),
            ],
        )
    )
    return ReportChart(
        "public_flows",
        "Council and public-body flows",
        description,
        "marts.spend_breakdown",
        "",
        _styled(chart),
    )
