"""Altair charts for the funder report, and their offline PNG/SVG export.

Each chart is built once with a fixed width (for slide-deck images) and re-specified
with ``width="container"`` for the responsive HTML page. Data arrive pre-aggregated from
:mod:`circulate.report.data`, so no chart comes near Altair's 5,000-row limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import altair as alt
import polars as pl
import vl_convert as vlc

from circulate.report import fmt
from circulate.report.data import ReportData

#: Okabe–Ito palette: distinguishable with the common colour-vision deficiencies.
OKABE_ITO = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",
)
IMAGE_WIDTH = 720
CHART_HEIGHT = 280
#: Vega-Lite version of this Altair in vl-convert's spelling, e.g. "v6_4".
VL_VERSION = "_".join(alt.SCHEMA_VERSION.split(".")[:2])
SHORT_HISTORY_DAYS: Final = 120


@dataclass(frozen=True)
class ReportChart:
    """A chart plus the words that travel with it.

    Attributes
    ----------
    name
        File stem (``charts/<name>.png``) and HTML element id; ASCII, no spaces.
    title
        Short title, also used in the figure caption.
    description
        Alt text: what the chart shows and its key values, in one or two sentences.
    source
        Where the numbers come from, e.g. ``"marts.daily_circulation"``.
    note
        Extra caption text (e.g. suppressed months); may be empty.
    chart
        The Altair chart at :data:`IMAGE_WIDTH`.
    fits_container
        Whether the page may stretch it to the width of its container.
    """

    name: str
    title: str
    description: str
    source: str
    note: str
    chart: alt.Chart
    #: False for faceted or step-sized charts, which keep their own width on the page.
    fits_container: bool = True

    def spec(self, *, responsive: bool) -> dict[str, Any]:
        """Return the Vega-Lite spec, sized to its container or to :data:`IMAGE_WIDTH`."""
        fit = responsive and self.fits_container
        chart = self.chart.properties(width="container") if fit else self.chart
        spec: dict[str, Any] = chart.to_dict()
        return spec


def _styled(chart: alt.Chart) -> alt.Chart:
    styled: alt.Chart = (
        chart.configure_range(category=list(OKABE_ITO))
        .configure_title(anchor="start", fontSize=15, subtitleFontSize=12, subtitleColor="#444")
        .configure_axis(labelFontSize=11, titleFontSize=12, gridColor="#e6e6e6")
        .configure_view(stroke=None)
    )
    return styled


def money_supply_chart(data: ReportData, symbol: str) -> ReportChart:
    """Line chart of money in circulation at the end of each day (or week).

    Parameters
    ----------
    data
        Report data; uses ``data.supply``.
    symbol
        Label for local-currency units.
    """
    frame = data.supply
    period = data.supply_period
    source = "marts.daily_circulation"
    title = "Money in circulation"
    unit = f"{symbol}, local-currency units"
    peak = frame.row(int(frame["money_supply"].arg_max() or 0), named=True)
    first, last = frame.row(0, named=True), frame.row(-1, named=True)
    description = (
        f"Line chart of money in circulation at the end of each {period}, "
        f"from {fmt.day(first['period_start'])} to {fmt.day(last['period_start'])}, "
        f"in {unit}. It starts at {fmt.money(first['money_supply'], symbol)} and ends at "
        f"{fmt.money(last['money_supply'], symbol)}"
    )
    if peak["period_start"] == last["period_start"]:
        description += ", its highest level."
    else:
        description += (
            f"; the highest level was {fmt.money(peak['money_supply'], symbol)} "
            f"on {fmt.day(peak['period_start'])}."
        )
    subtitle = [
        f"End-of-{period} balance: issued − redeemed − fees ({unit})",
        f"Source: {source}, as of {fmt.day(data.as_of)}",
    ]
    # utc time units: dates are calendar days, so no viewer time zone may shift them.
    x_unit: Final = "utcyearmonthdate"
    chart = (
        alt.Chart(
            frame,
            title=alt.TitleParams(title, subtitle=subtitle),
            description=description,
            width=IMAGE_WIDTH,
            height=CHART_HEIGHT,
        )
        .mark_line(color=OKABE_ITO[0], strokeWidth=2, interpolate="step-after")
        .encode(
            x=alt.X(
                "period_start:T",
                timeUnit=x_unit,
                title="Date",
                # Short histories need day labels; "%b %Y" would repeat the same month.
                axis=alt.Axis(format="%d %b" if len(frame) <= SHORT_HISTORY_DAYS else "%b %Y"),
            ),
            y=alt.Y(
                "money_supply:Q",
                title=f"Money in circulation ({symbol})",
                axis=alt.Axis(format=",.0f"),
            ),
            tooltip=[
                alt.Tooltip(
                    "period_start:T",
                    timeUnit=x_unit,
                    title="Week starting" if period == "week" else "Day",
                    format="%d %b %Y",
                ),
                alt.Tooltip("money_supply:Q", title=f"In circulation ({symbol})", format=",.2f"),
            ],
        )
    )
    return ReportChart("money_supply", title, description, source, "", _styled(chart))


def monthly_transfers_chart(data: ReportData, symbol: str, k_anonymity: int) -> ReportChart:
    """Bar chart of transfer volume per calendar month, transfer count in the tooltip.

    Parameters
    ----------
    data
        Report data; uses ``data.monthly``.
    symbol
        Label for local-currency units.
    k_anonymity
        Threshold named in the note about suppressed months.
    """
    # Pre-formatted so a missing count reads "not available" rather than Vega's "0".
    frame = data.monthly.with_columns(
        pl.col("active_accounts")
        .map_elements(fmt.count, return_dtype=pl.String)
        .fill_null("not available")
        .alias("active_label")
    )
    source = "marts.daily_circulation (volume, count), marts.monthly_circulation (accounts)"
    title = "Transfers between members each month"
    unit = f"{symbol}, local-currency units"
    shown = frame.filter(~pl.col("suppressed"))
    hidden = frame.height - shown.height
    description = (
        f"Bar chart of the value of transfers between members in each calendar month, "
        f"{fmt.month(frame['month'][0])} to {fmt.month(frame['month'][-1])}, in {unit}."
    )
    if shown.height:
        top = shown.row(int(shown["transfer_volume"].arg_max() or 0), named=True)
        description += (
            f" The busiest month is {fmt.month(top['month'])} with "
            f"{fmt.money(top['transfer_volume'], symbol)} in "
            f"{fmt.count(top['transfer_count'])} transfers."
        )
    note = ""
    if hidden:
        note = (
            f"{hidden} month(s) not shown: fewer than {k_anonymity} active accounts, "
            "hidden to protect members' privacy."
        )
        description += " " + note
    if not _is_month_end(data.as_of):
        note = (note + " " if note else "") + (
            f"The last bar covers {fmt.month(data.as_of)} up to {fmt.day(data.as_of)} only."
        )
    subtitle = [
        f"Value of member-to-member transfers ({unit}); hover for counts",
        f"Source: {source}, as of {fmt.day(data.as_of)}",
    ]
    x_unit: Final = "utcyearmonth"
    chart = (
        alt.Chart(
            frame,
            title=alt.TitleParams(title, subtitle=subtitle),
            description=description,
            width=IMAGE_WIDTH,
            height=CHART_HEIGHT,
        )
        .mark_bar(color=OKABE_ITO[1])
        .encode(
            # Ordinal months: one labelled bar per month, however short the history.
            x=alt.X("month:O", timeUnit=x_unit, title="Month", axis=alt.Axis(format="%b %Y")),
            y=alt.Y(
                "transfer_volume:Q",
                title=f"Transfer volume ({symbol})",
                axis=alt.Axis(format=",.0f"),
            ),
            tooltip=[
                alt.Tooltip("month:T", timeUnit=x_unit, title="Month", format="%B %Y"),
                alt.Tooltip("transfer_volume:Q", title=f"Volume ({symbol})", format=",.2f"),
                alt.Tooltip("transfer_count:Q", title="Transfers", format=","),
                alt.Tooltip("active_label:N", title="Active accounts"),
            ],
        )
    )
    return ReportChart("monthly_transfers", title, description, source, note, _styled(chart))


def _is_month_end(value: dt.date) -> bool:
    return (value + dt.timedelta(days=1)).day == 1


def write_images(chart: ReportChart, charts_dir: Path) -> tuple[Path, Path, str]:
    """Write ``<name>.png`` (2x scale) and ``<name>.svg`` with vl-convert, offline.

    Drawing takes about a third of a second a chart. Most charts show months, so most
    nights draw what the night before drew: images are kept in :func:`cache_dir` under
    a digest of the chart's full specification (data included) and the versions, and a
    chart whose digest is there is copied instead of drawn.

    Returns
    -------
    tuple
        PNG path, SVG path and the SVG text (reused as the page's print/no-JS fallback).
    """
    charts_dir.mkdir(parents=True, exist_ok=True)
    spec = chart.spec(responsive=False)
    drawn = _cached_drawing(spec)
    if drawn is None:
        svg: str = vlc.vegalite_to_svg(spec, vl_version=VL_VERSION)
        png: bytes = vlc.vegalite_to_png(spec, vl_version=VL_VERSION, scale=2)
        _keep_drawing(spec, svg, png)
    else:
        svg, png = drawn
    png_path, svg_path = charts_dir / f"{chart.name}.png", charts_dir / f"{chart.name}.svg"
    png_path.write_bytes(png)
    svg_path.write_text(svg, encoding="utf-8")
    return png_path, svg_path, svg


#: Drawings not used for this long are removed from the cache when another is added.
_DRAWING_LIFETIME_S = 30 * 24 * 3600


def _drawing_key(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, default=str)
    versions = f"{importlib.metadata.version('vl-convert-python')}|{VL_VERSION}"
    return hashlib.sha256(f"{versions}|{text}".encode()).hexdigest()


def _cached_drawing(spec: dict[str, Any]) -> tuple[str, bytes] | None:
    stem = cache_dir() / "charts" / _drawing_key(spec)
    try:
        svg = stem.with_suffix(".svg").read_text(encoding="utf-8")
        png = stem.with_suffix(".png").read_bytes()
        stem.with_suffix(".png").touch()  # recently used: kept by the pruning below
    except OSError:
        return None
    return svg, png


def _keep_drawing(spec: dict[str, Any], svg: str, png: bytes) -> None:
    folder = cache_dir() / "charts"
    stem = folder / _drawing_key(spec)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The SVG last: a drawing counts as cached only when both files are whole.
        for path, content in ((stem.with_suffix(".png"), png), (stem.with_suffix(".svg"), svg)):
            partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
            if isinstance(content, bytes):
                partial.write_bytes(content)
            else:
                partial.write_text(content, encoding="utf-8")
            partial.replace(path)
        cutoff = time.time() - _DRAWING_LIFETIME_S
        for old in folder.glob("*.png"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
                old.with_suffix(".svg").unlink(missing_ok=True)
    except OSError:
        pass  # an unwritable cache only costs the time


def cache_dir() -> Path:
    """Where derived files that depend only on versions are kept between runs.

    ``CIRCULATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/circulate`` (``~/.cache/circulate``).
    """
    if os.environ.get("CIRCULATE_CACHE_DIR"):
        return Path(os.environ["CIRCULATE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "circulate"


def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script, for inlining (no CDN).

    Building it takes about two seconds a report and its text depends only on the
    versions, so it is built once and then read from :func:`cache_dir`.
    """
    snippet = "window.vegaEmbed = vegaEmbed;"
    version = importlib.metadata.version("vl-convert-python")
    key = hashlib.sha256(f"{version}|{VL_VERSION}|{snippet}".encode()).hexdigest()
    cached = cache_dir() / f"vega-bundle-{key[:16]}.js"
    try:
        return cached.read_text(encoding="utf-8")
    except OSError:
        pass
    bundle: str = vlc.javascript_bundle(snippet, vl_version=VL_VERSION)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.partial")
        partial.write_text(bundle, encoding="utf-8")
        partial.replace(cached)  # whole or not at all, also with two renders at once
    except OSError:
        pass  # an unwritable cache only costs the time
    return bundle
