"""What ``circulate statement`` and ``circulate whatif`` do, without argument parsing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import duckdb
import polars as pl

from circulate.errors import ConfigurationError
from circulate.report import fmt
from circulate.report.impact_page import _table
from circulate.report.page import esc
from circulate.settings import Settings
from circulate.statement.period import Period
from circulate.statement.render import StatementResult, render_statement
from circulate.statement.whatif import ENTRY_POINTS, WhatIf, whatif

ENTRY_LABELS = {
    "council": "the council",
    "anchor": "an anchor institution (hospital trust, university)",
    "business": "a business",
    "resident": "a resident",
}
PROJECTION_WORDING = (
    "A projection from past flows, not a promise: it assumes money entering there is spent "
    "and re-spent as money has been over the months it learnt from. It says nothing about "
    "what would have happened without the currency."
)


def _open(settings: Settings) -> duckdb.DuckDBPyConnection:
    if not settings.warehouse.is_file():
        raise ConfigurationError(
            f"warehouse {settings.warehouse} not found: run `circulate run` (or `circulate "
            "demo`) to publish one, or pass --warehouse"
        )
    return duckdb.connect(str(settings.warehouse), read_only=True)


def projections(
    con: duckdb.DuckDBPyConnection, amount: float, months: int, k: int, last_day: dt.date
) -> list[WhatIf]:
    """The what-if of every entry point from the complete months up to ``last_day``; empty
    when there is no such month."""
    try:
        return [
            whatif(con, entry, amount, months=months, k_anonymity=k, last_day=last_day)
            for entry in ENTRY_POINTS
        ]
    except ValueError:
        return []


def whatif_frame(items: list[WhatIf]) -> pl.DataFrame:
    """The what-if table as CSV rows: one per entry point."""
    rows = []
    for w in items:
        p = w.projection
        rows.append(
            {
                "entry": w.entry,
                "amount": w.amount,
                "learnt_from": w.window[0],
                "learnt_to": w.window[1],
                "lm2": p.lm[1],
                "lm2_low": w.low["lm2"],
                "lm2_high": w.high["lm2"],
                "lm3": p.lm[2],
                "lm3_low": w.low["lm3"],
                "lm3_high": w.high["lm3"],
                "full_multiplier": p.full,
                "full_low": w.low["full"],
                "full_high": w.high["full"],
                "backtest_months": len(w.backtest),
                "backtest_error_lm3": w.backtest_error.get("lm3"),
                "backtest_error_full": w.backtest_error.get("full"),
                "local_trade_two_rounds": w.trade(p.lm[2]),
                "local_trade_all_rounds": w.trade(p.full),
            }
        )
    return pl.DataFrame(rows)


def _row(w: WhatIf, symbol: str) -> tuple[str, ...]:
    p, err = w.projection, w.backtest_error
    lm3_err = "no back-test" if err.get("lm3") is None else f"±{fmt.ratio(err['lm3'])}"
    full_err = "no back-test" if err.get("full") is None else f"±{fmt.ratio(err['full'])}"
    return (
        ENTRY_LABELS[w.entry],
        f"{fmt.ratio(p.lm[1])} ({fmt.ratio(w.low['lm2'])}–{fmt.ratio(w.high['lm2'])})",
        f"{fmt.ratio(p.lm[2])} ({fmt.ratio(w.low['lm3'])}–{fmt.ratio(w.high['lm3'])})",
        lm3_err,
        f"{fmt.ratio(p.full)} ({fmt.ratio(w.low['full'])}–{fmt.ratio(w.high['full'])})",
        full_err,
        fmt.money(w.trade(p.lm[2]), symbol, places=0),
        fmt.money(w.trade(p.full), symbol, places=0),
    )


def whatif_section_html(items: list[WhatIf], symbol: str) -> str:
    """The statement's what-if section (every value escaped)."""
    if not items:
        return ""
    first = items[0]
    amount = fmt.money(first.amount, symbol, places=0)
    start, end = first.window
    rows = [_row(w, symbol) for w in items]
    months = len({r["month"] for w in items for r in w.backtest})
    return (
        '<section aria-labelledby="h-whatif"><h2 id="h-whatif">What would '
        f"{esc(amount)} in the currency do?</h2>"
        f"<p>If {esc(amount)} entered the currency at each of these points — for example the "
        "council, a hospital trust or a university paying part of its spending in it — the "
        "flows of "
        f"{esc(fmt.day(start))} to {esc(fmt.day(end))} project this much local trade: "
        "LM2 counts the first round of re-spending, LM3 the first two, the full multiplier "
        "every round until the money leaves the currency. Intervals are 95 % (resampled "
        "days); the back-test error is how far such projections were, on average, from the "
        f"traced outcome of money that entered in {months} past month(s), each projected "
        "from the months before it.</p>"
        f"<p><strong>{esc(PROJECTION_WORDING)}</strong></p>"
        + _table(
            f"Projected multipliers of {amount} by entry point (source: staging.transactions, "
            "intermediate.issuance_reach; circulate.statement.whatif)",
            (
                "Entering at",
                "LM2 (interval)",
                "LM3 (interval)",
                "LM3 back-test error",
                "Full multiplier (interval)",
                "Full back-test error",
                "Local trade, two rounds",
                "Local trade, all rounds",
            ),
            rows,
            "whatif",
        )
        + '<p class="note">The full multiplier projects rounds beyond the months observed; its '
        "traced outcome is still growing for recent months, so its back-test error is wider. "
        "The council is the public body named council in the accounts file (else the public "
        "body paying the most); it and the anchors are institutions, shown as such.</p>"
        "</section>"
    )


def make_statement(
    settings: Settings,
    period: Period,
    *,
    title: str | None = None,
    print_pdf: bool = True,
    whatif_amount: float = 10_000,
    whatif_months: int = 12,
    progress: Callable[[str], None] = lambda _: None,
) -> StatementResult:
    """Render the statement of ``period`` with its what-if section."""
    with _open(settings) as con:
        items = projections(con, whatif_amount, whatif_months, settings.k_anonymity, period.end)
    try:
        result = render_statement(
            settings.warehouse,
            settings.reports,
            period,
            title=title,
            scheme_name=settings.scheme_name,
            currency_symbol=settings.currency_symbol,
            k_anonymity=settings.k_anonymity,
            print_pdf=print_pdf,
            whatif_html=whatif_section_html(items, settings.currency_symbol),
            whatif_table=whatif_frame(items),
        )
    except ValueError as error:
        raise ConfigurationError(f"circulate statement: {error}") from None
    if result.written:
        moved = f", {len(result.moved)} figure(s) moved" if result.moved else ""
        progress(f"statement version {result.version} written to {result.folder}{moved}")
    else:
        progress(f"statement unchanged: version {result.version} in {result.folder} stands")
    return result


def whatif_text(
    settings: Settings, entry: str, amount: float, months: int, *, as_json: bool = False
) -> str:
    """The ``circulate whatif`` answer, as text or JSON."""
    with _open(settings) as con:
        try:
            w = whatif(con, entry, amount, months=months, k_anonymity=settings.k_anonymity)
        except ValueError as error:
            raise ConfigurationError(f"circulate whatif: {error}") from None
    if as_json:
        payload: dict[str, Any] = {
            "entry": w.entry,
            "amount": w.amount,
            "window": [w.window[0].isoformat(), w.window[1].isoformat()],
            "lm2": w.projection.lm[1],
            "lm3": w.projection.lm[2],
            "full_multiplier": w.projection.full,
            "low": w.low,
            "high": w.high,
            "local_trade_two_rounds": w.trade(w.projection.lm[2]),
            "local_trade_all_rounds": w.trade(w.projection.full),
            "backtest_error": w.backtest_error,
            "backtest": [r | {"month": r["month"].isoformat()} for r in w.backtest],
            "wording": PROJECTION_WORDING,
        }
        return json.dumps(payload, indent=2)
    symbol = settings.currency_symbol
    p, err = w.projection, w.backtest_error
    back = (
        "no month old enough to back-test yet"
        if err.get("lm3") is None
        else f"±{fmt.ratio(err['lm3'])} on LM3 and ±{fmt.ratio(err['full'])} on the full "
        f"multiplier over {len(w.backtest)} past month(s)"
    )
    return "\n".join(
        [
            f"{fmt.money(float(amount), symbol, places=0)} entering at {ENTRY_LABELS[entry]}, "
            f"projected from the flows of {fmt.day(w.window[0])} to {fmt.day(w.window[1])}:",
            f"  LM2              {fmt.ratio(p.lm[1])}  (95 % {fmt.ratio(w.low['lm2'])} to "
            f"{fmt.ratio(w.high['lm2'])})",
            f"  LM3              {fmt.ratio(p.lm[2])}  (95 % {fmt.ratio(w.low['lm3'])} to "
            f"{fmt.ratio(w.high['lm3'])})  local trade {fmt.money(w.trade(p.lm[2]), symbol)}",
            f"  full multiplier  {fmt.ratio(p.full)}  (95 % {fmt.ratio(w.low['full'])} to "
            f"{fmt.ratio(w.high['full'])})  local trade {fmt.money(w.trade(p.full), symbol)}",
            f"  back-test error  {back}",
            PROJECTION_WORDING,
        ]
    )


def demo_statement(
    settings: Settings, progress: Callable[[str], None] = lambda _: None
) -> StatementResult:
    """The statement of the last complete calendar quarter in the published warehouse; its PDF
    only when Chromium is installed (``make browser``)."""
    from circulate.statement.figures import warehouse_span
    from circulate.statement.pdf import chromium_path
    from circulate.statement.period import last_complete_quarter

    with _open(settings) as con:
        _, last_day = warehouse_span(con)
    binary = chromium_path()
    printable = binary.is_file()
    if not printable:
        progress(f"no Chromium at {binary}: the statement has no PDF (`make browser` adds it)")
    return make_statement(
        settings, last_complete_quarter(last_day), print_pdf=printable, progress=progress
    )
