"""Public-value scorecard and value-destruction risk flags (Moore's strategic triangle).

DESIGN.md §4 "public-value scorecard": every indicator has a definition, value, change on
the previous period, threshold, status (creating value / watch / destroying value) and one
plain sentence generated from the numbers. Periods are calendar months in the scheme's
timezone; a month is *complete* when the ledger covers every day of it. Thresholds live in
one settings table (``impact_thresholds.toml`` beside this module, or the file named by
``CIRCULATE_IMPACT_THRESHOLDS``), loaded into ``marts.impact_thresholds``.

The multiplier indicator is the Markov estimate of LM3 from the month's own flows: the
traced LM3 of money issued in a recent month is still growing (its later rounds have not
happened yet), so its month-on-month fall at the end of every history is censoring, not
news. The traced figure, with its interval, is reported beside it on the page.

Risk flags look only at complete months, so a half-finished month never raises one.

This module reads no warehouse: :mod:`circulate.metrics.impact_build` reads each month's
values and writes the tables.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from importlib.resources import files
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from circulate.errors import ConfigurationError

__all__ = [
    "FLAG_KEYS",
    "INDICATORS",
    "PILLARS",
    "Flag",
    "FlagRules",
    "ImpactThresholds",
    "Indicator",
    "Threshold",
    "classify",
    "evaluate_flags",
    "flags_frame",
    "load_thresholds",
    "scorecard_rows",
    "thresholds_frame",
]

Better = Literal["higher", "lower"]
Basis = Literal["value", "change"]
Unit = Literal["ratio", "share", "count", "days", "number"]

CREATING: Final = "creating value"
WATCH: Final = "watch"
DESTROYING: Final = "destroying value"
NO_DATA: Final = "no data"

PILLARS: Final = {
    "proposition": "Public value proposition",
    "authorising": "Authorising environment",
    "operational": "Operational capacity",
}
DEFAULT_THRESHOLDS_FILE = "impact_thresholds.toml"


@dataclass(frozen=True)
class Indicator:
    """One scorecard row's fixed words: what it measures and where it comes from."""

    key: str
    pillar: str
    label: str
    unit: Unit
    definition: str
    source: str
    #: Plain meaning of the value, completing "In <month>, ...": takes ``{value}``.
    meaning: str


INDICATORS: Final[tuple[Indicator, ...]] = (
    Indicator(
        "lm3",
        "proposition",
        "Local multiplier (LM3)",
        "ratio",
        "Markov estimate of LM3 from the month's flows: issued money counted once, plus once "
        "for each of its first two rounds of local spending, divided by money issued.",
        "marts.circulation_metrics.markov_lm3",
        "each unit issued was worth {value} units of local trade over its first three rounds",
    ),
    Indicator(
        "full_multiplier",
        "proposition",
        "Full multiplier (M)",
        "ratio",
        "(money issued + transfers between members) / money issued in the month.",
        "marts.circulation_metrics.full_multiplier",
        "every unit issued was matched by {value} units of issuance plus local trade",
    ),
    Indicator(
        "velocity",
        "proposition",
        "Velocity",
        "ratio",
        "Transfer volume / mean daily money in circulation over the month (not annualised).",
        "marts.circulation_metrics.velocity",
        "the money in circulation changed hands {value} times",
    ),
    Indicator(
        "local_business_share",
        "proposition",
        "Spend at local businesses",
        "share",
        "Share of individuals' transfers that went to local businesses.",
        "marts.spend_breakdown.local_business_share",
        "{value} of residents' spending went to local businesses",
    ),
    Indicator(
        "leakage",
        "proposition",
        "Leakage",
        "ratio",
        "Money redeemed for sterling / money issued in the month (above 1: circulation shrank).",
        "marts.circulation_metrics.leakage",
        "{value} units were redeemed for every unit issued",
    ),
    Indicator(
        "dormancy",
        "proposition",
        "Dormant money",
        "share",
        "Share of the money in circulation at month end held by accounts that made no "
        "transfer for 90 days or more.",
        "marts.circulation_metrics.dormancy",
        "{value} of the money in circulation sat in dormant accounts",
    ),
    Indicator(
        "area_reach",
        "proposition",
        "Areas reached",
        "share",
        "Share of the scheme's areas with at least k active member accounts in the month "
        "(k = the k-anonymity threshold).",
        "staging.accounts, intermediate.member_transfers",
        "{value} of the scheme's areas had enough active members to count",
    ),
    Indicator(
        "sector_mix",
        "proposition",
        "Sector mix",
        "number",
        "Effective number of business sectors by receipts: 1 / Σ (sector share of business "
        "receipts)². Equals the number of sectors when all take the same share.",
        "staging.accounts, intermediate.member_transfers",
        "business receipts were spread as evenly as over {value} equal sectors",
    ),
    Indicator(
        "public_body_flows",
        "authorising",
        "Public-body flows",
        "share",
        "Transfers paid to public bodies (e.g. business rates) and by them (e.g. salaries, "
        "suppliers), as a share of all transfers.",
        "marts.spend_breakdown",
        "public bodies took part in {value} of the money moving between members",
    ),
    Indicator(
        "anchor_institutions",
        "authorising",
        "Anchor institutions transacting",
        "count",
        "Public-body accounts that paid or received at least one transfer in the month.",
        "staging.accounts, intermediate.member_transfers",
        "{value} public bodies paid or were paid in the currency",
    ),
    Indicator(
        "validation_pass_rate",
        "authorising",
        "Data checks passed",
        "share",
        "Share of the latest run's data-validation expectations that passed.",
        "audit.validation_results",
        "{value} of the latest run's data checks passed",
    ),
    Indicator(
        "data_freshness",
        "authorising",
        "Data freshness",
        "days",
        "Days between the last day in the ledger and the day of the nightly run.",
        "marts.daily_circulation, audit.runs",
        "the newest data was {value} old when the run started",
    ),
    Indicator(
        "active_members",
        "operational",
        "Active members",
        "count",
        "Member accounts that paid or received at least one transfer in the month; judged on "
        "the change from the previous month.",
        "marts.circulation_metrics.active_accounts",
        "{value} members paid or were paid",
    ),
    Indicator(
        "new_members",
        "operational",
        "New members",
        "share",
        "Accounts trading for the first time, as a share of the month's active members.",
        "marts.circulation_metrics.new_accounts",
        "{value} of active members were trading for the first time",
    ),
    Indicator(
        "churn_rate",
        "operational",
        "Churn",
        "share",
        "Members active in the previous month but not in this one, as a share of the "
        "previous month's active members.",
        "marts.circulation_metrics.churned_accounts",
        "{value} of the previous month's active members stopped trading",
    ),
    Indicator(
        "frequent_traders",
        "operational",
        "Frequent traders",
        "share",
        "Active members with at least four transfers in the month, as a share of active members.",
        "marts.circulation_metrics.frequent_traders",
        "{value} of active members traded at least four times",
    ),
    Indicator(
        "reversal_rate",
        "operational",
        "Reversals",
        "share",
        "Reversed payments / transfers in the month.",
        "staging.transactions",
        "{value} of transfers were reversed",
    ),
    Indicator(
        "run_success",
        "operational",
        "Nightly runs succeeding",
        "share",
        "Share of the last 30 recorded nightly runs (before this one) that succeeded.",
        "audit.runs",
        "{value} of recent nightly runs succeeded",
    ),
)
INDICATOR_KEYS: Final = tuple(i.key for i in INDICATORS)
#: Indicators describing the run rather than a month: attached to the latest month only.
CURRENT_STATE: Final = frozenset({"validation_pass_rate", "data_freshness", "run_success"})


@dataclass(frozen=True)
class Threshold:
    """Where an indicator's status changes.

    >>> Threshold("lm3", "higher", 1.5, 1.2).describe("ratio")
    'watch below 1.50, destroying value below 1.20'
    """

    indicator: str
    better: Better
    watch: float
    destroying: float
    basis: Basis = "value"

    def describe(self, unit: Unit) -> str:
        """The threshold in words, in the indicator's unit."""
        side = "below" if self.better == "higher" else "above"
        if self.basis == "change":
            return (
                f"watch at {_percent(self.watch)} on the previous month, "
                f"destroying value at {_percent(self.destroying)}"
            )
        return (
            f"watch {side} {format_value(self.watch, unit)}, "
            f"destroying value {side} {format_value(self.destroying, unit)}"
        )


@dataclass(frozen=True)
class FlagRules:
    """Settings of the risk flags (``[flags]`` in the thresholds file)."""

    trend_periods: int = 3
    warmup_months: int = 3
    multiplier_min_fall: float = 0.05
    velocity_min_fall: float = 0.10
    leakage_min_rise: float = 0.10
    leakage_level: float = 1.0
    dormancy_level: float = 0.10
    active_members_drop: float = 0.20
    top5_receipts_share: float = 0.50
    top5_min_rise: float = 0.10
    public_flows_lookback: int = 3
    gap_days: int = 1


@dataclass(frozen=True)
class ImpactThresholds:
    """The partnership's settings table: one threshold per indicator plus the flag rules."""

    indicators: Mapping[str, Threshold]
    flags: FlagRules
    source: str


def classify(value: float | None, threshold: Threshold) -> str:
    """Status of a value (or of a relative change, for ``basis = "change"``).

    >>> t = Threshold("lm3", "higher", watch=1.5, destroying=1.2)
    >>> [classify(v, t) for v in (1.8, 1.5, 1.3, 1.19, None)]
    ['creating value', 'creating value', 'watch', 'destroying value', 'no data']
    >>> churn = Threshold("churn_rate", "lower", watch=0.05, destroying=0.10)
    >>> [classify(v, churn) for v in (0.01, 0.07, 0.2)]
    ['creating value', 'watch', 'destroying value']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_DATA
    if threshold.better == "higher":
        if value < threshold.destroying:
            return DESTROYING
        return WATCH if value < threshold.watch else CREATING
    if value > threshold.destroying:
        return DESTROYING
    return WATCH if value > threshold.watch else CREATING


def format_value(value: float | None, unit: Unit) -> str:
    """A value in words for a sentence.

    >>> format_value(0.4235, "share"), format_value(1.6, "ratio"), format_value(1234, "count")
    ('42.4 %', '1.60', '1,234')
    >>> format_value(1, "days"), format_value(3.5, "number"), format_value(None, "ratio")
    ('1 day', '3.5', 'not available')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not available"
    if unit == "share":
        return f"{value * 100:.1f} %"
    if unit == "ratio":
        return f"{value:.2f}"
    if unit == "count":
        return f"{round(value):,}"
    if unit == "days":
        days = round(value)
        return f"{days:,} day" + ("" if days == 1 else "s")
    return f"{value:.1f}"


def format_change(change: float | None, unit: Unit) -> str:
    """A change in words: points for shares, signed units otherwise.

    >>> format_change(0.021, "share"), format_change(-0.1, "ratio"), format_change(12, "count")
    ('+2.1 points', '−0.10', '+12')
    >>> format_change(None, "share")
    'no previous month'
    """
    if change is None or (isinstance(change, float) and math.isnan(change)):
        return "no previous month"
    sign = "+" if change >= 0 else "−"
    size = abs(change)
    if unit == "share":
        return f"{sign}{size * 100:.1f} points"
    if unit == "ratio":
        return f"{sign}{size:.2f}"
    if unit in ("count", "days"):
        return f"{sign}{round(size):,}"
    return f"{sign}{size:.1f}"


def _percent(fraction: float) -> str:
    """A signed relative change.

    >>> _percent(-0.2), _percent(0.034)
    ('−20.0 %', '+3.4 %')
    """
    sign = "+" if fraction >= 0 else "−"
    return f"{sign}{abs(fraction) * 100:.1f} %"


def _month_name(month: dt.date) -> str:
    return month.strftime("%B %Y")


def explain(
    indicator: Indicator,
    threshold: Threshold,
    month: dt.date,
    value: float | None,
    previous: float | None,
    status: str,
) -> str:
    """One plain sentence from the numbers.

    >>> ind = next(i for i in INDICATORS if i.key == "lm3")
    >>> t = Threshold("lm3", "higher", 1.5, 1.2)
    >>> explain(ind, t, dt.date(2026, 10, 1), 1.64, 1.58, "creating value")
    'In October 2026 each unit issued was worth 1.64 units of local trade over its first three rounds (+0.06 on the month before); at or above 1.50, that counts as creating value.'
    """  # noqa: E501
    if status == NO_DATA:
        return f"{indicator.label}: no data for {_month_name(month)}."
    shown = format_value(value, indicator.unit)
    text = f"In {_month_name(month)} {indicator.meaning.format(value=shown)}"
    if indicator.key not in CURRENT_STATE:
        if previous is None or value is None:
            text += " (no earlier month to compare)"
        elif threshold.basis == "change" and previous:
            text += f" ({_percent((value - previous) / previous)} on the month before)"
        else:
            text += f" ({format_change(value - previous, indicator.unit)} on the month before)"
    if threshold.basis == "change":
        rule = {
            CREATING: "a change that counts as creating value",
            WATCH: f"past {_percent(threshold.watch)}, so the partnership should watch it",
            DESTROYING: f"past {_percent(threshold.destroying)}, which counts as destroying value",
        }[status]
        return f"{text}: {rule}."
    good, bad = (
        ("at or above", "below") if threshold.better == "higher" else ("at or below", "above")
    )
    watch = format_value(threshold.watch, indicator.unit)
    destroying = format_value(threshold.destroying, indicator.unit)
    rule = {
        CREATING: f"{good} {watch}, that counts as creating value",
        WATCH: f"{bad} the watch level of {watch}, so the partnership should watch it",
        DESTROYING: f"{bad} {destroying}, that counts as destroying value",
    }[status]
    return f"{text}; {rule}."


# --- Settings table -----------------------------------------------------------------------


def _default_thresholds_text() -> str:
    return files("circulate.metrics").joinpath(DEFAULT_THRESHOLDS_FILE).read_text("utf-8")


def _parse_indicator(name: str, raw: Any, base: Threshold | None, where: str) -> Threshold:
    if name not in INDICATOR_KEYS:
        raise ConfigurationError(
            f"{where}: [indicators.{name}] is not an indicator; use one of "
            f"{', '.join(INDICATOR_KEYS)}."
        )
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: [indicators.{name}] must be a table of settings.")
    unknown = set(raw) - {"better", "watch", "destroying", "basis"}
    if unknown:
        raise ConfigurationError(
            f"{where}: [indicators.{name}] has unknown key(s) {sorted(unknown)}; use better, "
            "watch, destroying, basis."
        )
    merged: dict[str, Any] = (
        {}
        if base is None
        else {
            "better": base.better,
            "watch": base.watch,
            "destroying": base.destroying,
            "basis": base.basis,
        }
    )
    merged.update(raw)
    missing = {"better", "watch", "destroying"} - merged.keys()
    if missing:
        raise ConfigurationError(f"{where}: [indicators.{name}] needs {sorted(missing)}.")
    if merged["better"] not in ("higher", "lower"):
        raise ConfigurationError(
            f'{where}: [indicators.{name}] better = {merged["better"]!r}; use "higher" or "lower".'
        )
    if merged.get("basis", "value") not in ("value", "change"):
        raise ConfigurationError(
            f'{where}: [indicators.{name}] basis = {merged["basis"]!r}; use "value" or "change".'
        )
    for key in ("watch", "destroying"):
        if isinstance(merged[key], bool) or not isinstance(merged[key], int | float):
            raise ConfigurationError(
                f"{where}: [indicators.{name}] {key} = {merged[key]!r} is not a number."
            )
    watch, destroying = float(merged["watch"]), float(merged["destroying"])
    ordered = destroying <= watch if merged["better"] == "higher" else destroying >= watch
    if not ordered:
        side = "at or below" if merged["better"] == "higher" else "at or above"
        raise ConfigurationError(
            f"{where}: [indicators.{name}] destroying = {destroying} must lie {side} watch = "
            f"{watch} when better = {merged['better']!r}."
        )
    return Threshold(name, merged["better"], watch, destroying, merged.get("basis", "value"))


def _parse(text: str, where: str, base: ImpactThresholds | None) -> ImpactThresholds:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(
            f"{where}: not valid TOML ({error}); fix the line named."
        ) from error
    unknown = set(raw) - {"indicators", "flags"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown section(s) {sorted(unknown)}; use [indicators.<name>] and [flags]."
        )
    indicators = dict(base.indicators) if base else {}
    for name, table in raw.get("indicators", {}).items():
        indicators[name] = _parse_indicator(name, table, indicators.get(name), where)
    missing = set(INDICATOR_KEYS) - indicators.keys()
    if missing:
        raise ConfigurationError(f"{where}: no thresholds for {sorted(missing)}.")
    rules = base.flags if base else FlagRules()
    flag_names = {f.name: f.type for f in fields(FlagRules)}
    for key, value in raw.get("flags", {}).items():
        if key not in flag_names:
            raise ConfigurationError(
                f"{where}: [flags] {key} is not a flag setting; use one of {sorted(flag_names)}."
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigurationError(
                f"{where}: [flags] {key} = {value!r} must be a number of 0 or more."
            )
        whole = flag_names[key] == "int"
        if whole and int(value) != value:
            raise ConfigurationError(f"{where}: [flags] {key} = {value!r} must be a whole number.")
        update: dict[str, Any] = {key: int(value) if whole else float(value)}
        rules = replace(rules, **update)
    if rules.trend_periods < 1 or rules.public_flows_lookback < 1:
        raise ConfigurationError(
            f"{where}: [flags] trend_periods and public_flows_lookback must be at least 1."
        )
    return ImpactThresholds(indicators, rules, where)


def load_thresholds(path: Path | str | None = None) -> ImpactThresholds:
    """The thresholds table: the shipped defaults, overridden key by key by ``path``.

    >>> load_thresholds().indicators["lm3"]
    Threshold(indicator='lm3', better='higher', watch=1.5, destroying=1.2, basis='value')

    Raises
    ------
    ConfigurationError
        Naming the file and the setting, when the file is missing or a value is invalid.
    """
    defaults = _parse(
        _default_thresholds_text(), f"circulate/metrics/{DEFAULT_THRESHOLDS_FILE}", None
    )
    if path is None or str(path) == "":
        return defaults
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(
            f"thresholds file {file} not found: fix CIRCULATE_IMPACT_THRESHOLDS or copy "
            f"circulate/metrics/{DEFAULT_THRESHOLDS_FILE} there."
        )
    return _parse(file.read_text("utf-8"), str(file), defaults)


#: Column of :func:`circulate.metrics.impact_build.monthly_values` holding each indicator.
VALUE_COLUMN: Final = {key: key for key in INDICATOR_KEYS} | {
    "frequent_traders": "frequent_traders_share"
}


def scorecard_rows(values: pl.DataFrame, thresholds: ImpactThresholds) -> pl.DataFrame:
    """The scorecard: one row per month and indicator, with status and sentence."""
    rows: list[dict[str, Any]] = []
    records = values.to_dicts()
    for index, record in enumerate(records):
        before = records[index - 1] if index else None
        for indicator in INDICATORS:
            threshold = thresholds.indicators[indicator.key]
            column = VALUE_COLUMN[indicator.key]
            value = _number(record.get(column))
            previous = None if before is None else _number(before.get(column))
            change = None if value is None or previous is None else value - previous
            if threshold.basis == "change":
                judged = None if change is None or not previous else change / previous
            else:
                judged = value
            status = classify(judged, threshold)
            rows.append(
                {
                    "period_start": record["month"],
                    "period_end": record["period_end"],
                    "period_complete": record["period_complete"],
                    "pillar": indicator.pillar,
                    "indicator": indicator.key,
                    "label": indicator.label,
                    "definition": indicator.definition,
                    "unit": indicator.unit,
                    "value": value,
                    "previous_value": previous,
                    "change": change,
                    "better": threshold.better,
                    "basis": threshold.basis,
                    "watch_threshold": threshold.watch,
                    "destroying_threshold": threshold.destroying,
                    "status": status,
                    "explanation": explain(
                        indicator, threshold, record["month"], value, previous, status
                    ),
                    "source": indicator.source,
                }
            )
    return pl.DataFrame(rows, schema=SCORECARD_SCHEMA)


SCORECARD_SCHEMA: Final = {
    "period_start": pl.Date,
    "period_end": pl.Date,
    "period_complete": pl.Boolean,
    "pillar": pl.String,
    "indicator": pl.String,
    "label": pl.String,
    "definition": pl.String,
    "unit": pl.String,
    "value": pl.Float64,
    "previous_value": pl.Float64,
    "change": pl.Float64,
    "better": pl.String,
    "basis": pl.String,
    "watch_threshold": pl.Float64,
    "destroying_threshold": pl.Float64,
    "status": pl.String,
    "explanation": pl.String,
    "source": pl.String,
}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


# --- Risk flags ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One risk check for one month: raised or not, and the evidence either way."""

    month: dt.date
    key: str
    pillar: str
    title: str
    raised: bool
    evidence: str
    chart: str
    source: str


FLAG_KEYS: Final = (
    "multiplier_falling",
    "velocity_falling",
    "leakage_rising",
    "dormancy_rising",
    "active_members_down",
    "receipts_concentrated",
    "public_flows_stopped",
    "data_gaps",
    "validation_failed",
)


def _series_text(months: Sequence[dt.date], values: Sequence[float], unit: Unit) -> str:
    steps = " → ".join(format_value(v, unit) for v in values)
    return f"{steps} ({months[0].strftime('%b %Y')} to {months[-1].strftime('%b %Y')})"


def _monotone(values: Sequence[float | None], falling: bool) -> bool:
    if any(v is None for v in values):
        return False
    pairs = itertools.pairwise(values)
    return all((b < a) if falling else (b > a) for a, b in pairs)  # type: ignore[operator]


def _trend_flag(
    months: Sequence[dt.date],
    values: Sequence[float | None],
    *,
    periods: int,
    falling: bool,
    min_change: float,
    relative: bool,
    unit: Unit,
) -> tuple[bool, str]:
    """Whether the last ``periods`` moves all went the bad way by ``min_change`` in total.

    >>> months = [dt.date(2026, m, 1) for m in range(1, 5)]
    >>> _trend_flag(months, [2.0, 1.9, 1.8, 1.7], periods=3, falling=True, min_change=0.1,
    ...             relative=True, unit="ratio")[0]
    True
    >>> _trend_flag(months, [2.0, 1.99, 1.98, 1.97], periods=3, falling=True, min_change=0.1,
    ...             relative=True, unit="ratio")[0]
    False
    """
    if len(values) < periods + 1:
        return False, f"needs {periods + 1} complete months after the launch; {len(values)} so far"
    window = list(values[-(periods + 1) :])
    shown = [v for v in window if v is not None]
    if len(shown) < len(window):
        return False, "not every month of the window has a value"
    first, last = window[0], window[-1]
    assert first is not None and last is not None
    change = (last - first) / first if relative and first else last - first
    moved = _monotone(window, falling)
    big = (-change if falling else change) >= min_change
    text = _series_text(months[-(periods + 1) :], shown, unit)
    size = _percent(change) if relative else format_change(change, unit)
    return moved and big, f"{text}, {size} in total"


def evaluate_flags(values: pl.DataFrame, rules: FlagRules) -> list[Flag]:
    """Every risk check for every complete month (and the latest month if none is)."""
    complete = values.filter(pl.col("period_complete"))
    frame = complete if len(complete) else values.tail(1)
    flags: list[Flag] = []
    months: list[dt.date] = frame["month"].to_list()
    for end in range(len(frame)):
        flags.extend(_flags_for(frame.head(end + 1), months[: end + 1], rules))
    return flags


def _col(frame: pl.DataFrame, name: str) -> list[float | None]:
    return [_number(v) for v in frame[name].to_list()]


def _flags_for(frame: pl.DataFrame, months: list[dt.date], rules: FlagRules) -> list[Flag]:
    month = months[-1]
    n = rules.trend_periods
    row = frame.row(len(frame) - 1, named=True)
    out: list[Flag] = []

    def add(
        key: str, pillar: str, title: str, raised: bool, evidence: str, chart: str, src: str
    ) -> None:
        out.append(Flag(month, key, pillar, title, raised, evidence, chart, src))

    # A launch is not a decline: while supply builds up from nothing, ratios against it
    # swing for reasons of their own, so trends are judged after the first months only.
    warmup = rules.warmup_months
    settled = months[warmup:]

    def after_warmup(name: str) -> list[float | None]:
        return _col(frame, name)[warmup:]

    raised, text = _trend_flag(
        settled,
        after_warmup("lm3"),
        periods=n,
        falling=True,
        min_change=rules.multiplier_min_fall,
        relative=True,
        unit="ratio",
    )
    add(
        "multiplier_falling",
        "proposition",
        f"Local multiplier falling {n} months in a row",
        raised,
        f"LM3 (Markov, monthly): {text}; flag at a fall in each month and "
        f"{rules.multiplier_min_fall * 100:.0f} % or more in total.",
        "multiplier",
        "marts.circulation_metrics.markov_lm3",
    )
    raised, text = _trend_flag(
        settled,
        after_warmup("velocity"),
        periods=n,
        falling=True,
        min_change=rules.velocity_min_fall,
        relative=True,
        unit="ratio",
    )
    add(
        "velocity_falling",
        "proposition",
        f"Velocity falling {n} months in a row",
        raised,
        f"Velocity: {text}; flag at a fall in each month and "
        f"{rules.velocity_min_fall * 100:.0f} % or more in total.",
        "circulation_trends",
        "marts.circulation_metrics.velocity",
    )
    # A maturing scheme's leakage climbs towards 1 (redemptions catching up with top-ups);
    # only past the level is the supply shrinking while the rise goes on.
    leakage = after_warmup("leakage_3m")
    raised, text = _trend_flag(
        settled,
        leakage,
        periods=n,
        falling=False,
        min_change=rules.leakage_min_rise,
        relative=False,
        unit="ratio",
    )
    add(
        "leakage_rising",
        "proposition",
        f"Leakage rising {n} months in a row",
        raised and bool(leakage) and (leakage[-1] or 0.0) >= rules.leakage_level,
        f"Redeemed per unit issued, trailing three months: {text}; flag at a rise in "
        f"each month, {rules.leakage_min_rise:.2f} or more in total, to "
        f"{rules.leakage_level:.2f} or more.",
        "circulation_trends",
        "marts.circulation_metrics.leakage",
    )
    dormancy = after_warmup("dormancy")
    raised, text = _trend_flag(
        settled,
        dormancy,
        periods=n,
        falling=False,
        min_change=0.0,
        relative=False,
        unit="share",
    )
    high = bool(dormancy) and dormancy[-1] is not None and dormancy[-1] >= rules.dormancy_level
    add(
        "dormancy_rising",
        "proposition",
        "Dormant money rising",
        raised and high,
        f"Share of supply in dormant accounts: {text}; flag when it rises in each of {n} "
        f"months and reaches {rules.dormancy_level * 100:.0f} %.",
        "circulation_trends",
        "marts.circulation_metrics.dormancy",
    )

    active = _col(frame, "active_accounts")
    if len(active) >= 2 and active[-2] and active[-1] is not None:
        change = (active[-1] - active[-2]) / active[-2]
        evidence = (
            f"Active members {format_value(active[-2], 'count')} → "
            f"{format_value(active[-1], 'count')} ({change * 100:+.1f} %)"
        )
        raised = change < -rules.active_members_drop
    else:
        evidence, raised = "needs two complete months", False
    add(
        "active_members_down",
        "operational",
        f"Active members down more than {rules.active_members_drop * 100:.0f} %",
        raised,
        f"{evidence}; flag below −{rules.active_members_drop * 100:.0f} % on the month before.",
        "participation",
        "marts.circulation_metrics.active_accounts",
    )

    # Some schemes are concentrated from the start (a few anchor traders); the flag is for
    # a shift: above the level and well above the scheme's usual share in earlier months.
    top5 = _number(row.get("receipts_top5_share"))
    earlier_top5 = [v for v in _col(frame, "receipts_top5_share")[:-1] if v is not None]
    usual = statistics.median(earlier_top5) if len(earlier_top5) >= n else None
    concentrated = (
        top5 is not None
        and usual is not None
        and top5 > rules.top5_receipts_share
        and top5 - usual >= rules.top5_min_rise
    )
    usual_text = (
        f"its median over the {len(earlier_top5)} months before was {format_value(usual, 'share')}"
        if usual is not None
        else f"needs {n} earlier complete months for a usual level"
    )
    add(
        "receipts_concentrated",
        "proposition",
        "Spending concentrating on the top five businesses",
        concentrated,
        f"The five largest business receivers took {format_value(top5, 'share')} of business "
        f"receipts in {_month_name(month)}; {usual_text}. Flag above "
        f"{rules.top5_receipts_share * 100:.0f} % and {rules.top5_min_rise * 100:.0f} points "
        "or more over that median. Fragility: the top hub touches "
        f"{format_value(_number(row.get('fragility_top1')), 'share')} of the month's volume.",
        "concentration",
        "marts.network_summary.receipts_top5_share",
    )

    public = _col(frame, "public_flows")
    earlier = [v for v in public[-1 - rules.public_flows_lookback : -1] if v is not None]
    now = public[-1]
    stopped = now is not None and now == 0 and any(v > 0 for v in earlier)
    before_text = ", ".join(format_value(v, "count") for v in earlier) or "none"
    add(
        "public_flows_stopped",
        "authorising",
        "Council and public-body flows stopped",
        stopped,
        f"Transfers to and from public bodies: {format_value(now, 'count')} in "
        f"{_month_name(month)}, after {before_text} in the {rules.public_flows_lookback} "
        "months before.",
        "public_flows",
        "marts.spend_breakdown",
    )

    gaps = int(row.get("gap_days") or 0)
    add(
        "data_gaps",
        "authorising",
        "Days with no data",
        gaps >= rules.gap_days,
        f"{gaps} day(s) in {_month_name(month)} with no transaction of any kind (a missing "
        f"daily export looks like this); flag at {rules.gap_days} or more.",
        "money_supply",
        "marts.daily_circulation",
    )

    pass_rate = _number(row.get("validation_pass_rate"))
    add(
        "validation_failed",
        "authorising",
        "Data checks failed or warned",
        pass_rate is not None and pass_rate < 1.0,
        "Latest run: "
        + (
            "no validation results recorded"
            if pass_rate is None
            else f"{format_value(pass_rate, 'share')} of data checks passed"
        )
        + ".",
        "validation",
        "audit.validation_results",
    )
    return out


FLAG_SCHEMA: Final = {
    "period_start": pl.Date,
    "flag": pl.String,
    "pillar": pl.String,
    "title": pl.String,
    "raised": pl.Boolean,
    "evidence": pl.String,
    "chart": pl.String,
    "source": pl.String,
}


def flags_frame(flags: Sequence[Flag]) -> pl.DataFrame:
    """Flags as rows of ``marts.risk_flags``."""
    return pl.DataFrame(
        [
            {
                "period_start": f.month,
                "flag": f.key,
                "pillar": f.pillar,
                "title": f.title,
                "raised": f.raised,
                "evidence": f.evidence,
                "chart": f.chart,
                "source": f.source,
            }
            for f in flags
        ],
        schema=FLAG_SCHEMA,
    )


def thresholds_frame(thresholds: ImpactThresholds) -> pl.DataFrame:
    """The effective settings table, one row per indicator and per flag setting."""
    by_key = {i.key: i for i in INDICATORS}
    rows: list[dict[str, Any]] = []
    for key in INDICATOR_KEYS:
        t = thresholds.indicators[key]
        rows.append(
            {
                "setting": key,
                "kind": "indicator",
                "pillar": by_key[key].pillar,
                "label": by_key[key].label,
                "better": t.better,
                "basis": t.basis,
                "watch": t.watch,
                "destroying": t.destroying,
                "value": None,
                "rule": t.describe(by_key[key].unit),
                "source_file": thresholds.source,
            }
        )
    for f in fields(FlagRules):
        rows.append(
            {
                "setting": f.name,
                "kind": "flag",
                "pillar": None,
                "label": f.name.replace("_", " "),
                "better": None,
                "basis": None,
                "watch": None,
                "destroying": None,
                "value": float(getattr(thresholds.flags, f.name)),
                "rule": None,
                "source_file": thresholds.source,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "setting": pl.String,
            "kind": pl.String,
            "pillar": pl.String,
            "label": pl.String,
            "better": pl.String,
            "basis": pl.String,
            "watch": pl.Float64,
            "destroying": pl.Float64,
            "value": pl.Float64,
            "rule": pl.String,
            "source_file": pl.String,
        },
    )
