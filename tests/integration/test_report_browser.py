"""The funder report in headless Chromium: every chart live, offline, escaped, phone-sized.

Each test generates a scheme, runs the nightly stages in process, renders the report and
opens it with :mod:`tests.integration.browser`. Without Chromium the tests skip, saying
how to install it; with ``CIRCULATE_REQUIRE_BROWSER=1`` (CI) they fail instead.
"""

from __future__ import annotations

import csv
import html
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.report import ReportResult, render_report
from circulate.settings import Settings
from tests.conftest import TEST_KEY, settings_under
from tests.integration.browser import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    ReportInspection,
    chromium_available,
    inspect_report,
    is_inline_url,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUIRE_BROWSER = os.environ.get("CIRCULATE_REQUIRE_BROWSER") == "1"

#: Sector names built to break out of HTML text, attributes, ``<script>`` and spreadsheets.
HOSTILE_SECTORS = (
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    '=HYPERLINK("http://evil","x")',
    "+SUM(1)",
    "@cmd",
    "-2+3|cmd",
)
#: Kept as they are, to tell whether the page shows sector names at all.
PLAIN_SECTORS = ("food & drink", "retail")
#: Two wards renamed, in accounts.csv and areas.csv alike; the others stay as they are.
HOSTILE_AREAS = {
    "Ashley": '"><svg onload="window.__pwned=1">',
    "Lawrence Hill": "=1+cmd|' /C calc'!A0",
}
PLAIN_AREAS = ("Bedminster", "Bishopston & Ashley Down", "Clifton", "Easton", "Knowle")
#: Spreadsheets read a cell starting with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: A number may start with '-' (e.g. ``-12.50``); any other cell starting with a trigger
#: must have been written with a leading single quote.
PLAIN_NUMBER = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
#: Characters of a long name a truncated chart label must still show.
MIN_LABEL_PREFIX = 10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    """Skip (or, in CI, fail) before anything is built when Chromium is missing."""
    if chromium_available():
        return
    reason = (
        f"Chromium not found at {CHROMIUM}: run `make browser` (as root on Debian) or set "
        "CIRCULATE_CHROMIUM"
    )
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}; CIRCULATE_REQUIRE_BROWSER=1 makes this an error")
    pytest.skip(reason)


@dataclass(frozen=True)
class Rendered:
    """A published scheme and its rendered report."""

    settings: Settings
    report: ReportResult


def _publish_and_render(settings: Settings) -> ReportResult:
    """The nightly stages in process, then the report as the nightly flow renders it."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        pipeline.run_in_process(settings)
    return render_report(
        settings.warehouse,
        settings.reports,
        scheme_name=settings.scheme_name,
        currency_symbol=settings.currency_symbol,
        k_anonymity=settings.k_anonymity,
    )


@pytest.fixture(scope="module")
def scheme_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """Half a year of a generated scheme (20,000 transactions), published and rendered."""
    settings = settings_under(tmp_path_factory.mktemp("browser-scheme"))
    generate_scheme(settings.inbox, seed=23, transactions=20_000, days=182, start=date(2025, 1, 1))
    yield Rendered(settings, _publish_and_render(settings))


def _plant_hostile_names(inbox: Path, k: int) -> None:
    """Relabel every business with a hostile or plain sector, round robin, and rename wards.

    Every relabelled sector and area must keep at least ``k`` accounts, or suppression
    would hide it and the test would prove nothing.
    """
    accounts = pl.read_csv(inbox / "accounts.csv", infer_schema=False)
    labels = HOSTILE_SECTORS + PLAIN_SECTORS
    businesses = accounts.with_row_index("row").filter(pl.col("account_type") == "business")
    relabel = dict(
        zip(
            businesses["row"].to_list(),
            (labels[i % len(labels)] for i in range(businesses.height)),
            strict=True,
        )
    )
    accounts = accounts.with_row_index("row").with_columns(
        sector=pl.col("row").replace_strict(relabel, default=pl.col("sector")),
        area=pl.col("area").replace(HOSTILE_AREAS),
    )
    accounts.drop("row").write_csv(inbox / "accounts.csv")
    areas = pl.read_csv(inbox / "areas.csv", infer_schema=False)
    areas.with_columns(area=pl.col("area").replace(HOSTILE_AREAS)).write_csv(inbox / "areas.csv")
    counts = {
        **dict(accounts.group_by("sector").len().iter_rows()),
        **dict(accounts.group_by("area").len().iter_rows()),
    }
    for name in (*HOSTILE_SECTORS, *HOSTILE_AREAS.values()):
        assert counts.get(name, 0) >= 2 * k, f"{name!r} has {counts.get(name, 0)} accounts"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    """A two-month scheme whose sector and area names are attacks, published and rendered."""
    settings = settings_under(tmp_path_factory.mktemp("browser-hostile"))
    generate_scheme(settings.inbox, seed=29, transactions=8_000, days=60, start=date(2025, 3, 1))
    _plant_hostile_names(settings.inbox, settings.k_anonymity)
    yield Rendered(settings, _publish_and_render(settings))


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _network_requests(inspection: ReportInspection) -> list[str]:
    return [url for url in inspection.requests if not is_inline_url(url)]


def _assert_every_chart_live(inspection: ReportInspection, page_source: str) -> None:
    charts = inspection.charts
    # Every chart placeholder in the HTML is a figure the browser found and rendered.
    assert len(charts) == page_source.count('class="vis"') > 0
    assert inspection.not_rendered == []
    assert all(f.static_loaded for f in inspection.figures if f.static_loaded is not None)
    assert inspection.render_ms is not None


def test_every_chart_renders_offline_without_errors(
    scheme_report: Rendered, capsys: pytest.CaptureFixture[str]
) -> None:
    report = scheme_report.report
    page_source = report.index_html.read_text(encoding="utf-8")
    screenshot = report.report_dir / "screenshot.png"

    desktop = inspect_report(report.index_html, screenshot, viewport=DESKTOP)

    _assert_every_chart_live(desktop, page_source)
    assert desktop.console_errors == []
    assert desktop.page_errors == []
    assert desktop.dialogs == []
    # The page itself is the only request: no script, font, image or beacon is fetched.
    # data: URIs (the static chart images) carry their content inline and use no network;
    # Chromium reports none, and any it did report would be allowed.
    assert _network_requests(desktop) == [desktop.report_url]
    assert desktop.foreign_requests == desktop.blocked == []
    assert "Circulation over time" in desktop.visible_text
    width, height = _png_size(screenshot)
    assert width == DESKTOP[0]
    assert height > DESKTOP[1]  # the full page, not just the viewport
    assert screenshot.stat().st_size > 50_000

    phone = inspect_report(
        report.index_html, report.report_dir / "screenshot-phone.png", viewport=PHONE
    )
    _assert_every_chart_live(phone, page_source)
    assert phone.horizontal_overflow_px == 0, phone.summary()
    assert phone.problems == []
    assert _png_size(phone.screenshot)[0] == PHONE[0]

    with capsys.disabled():
        print(
            f"\nreport in Chromium: {len(desktop.charts)} charts live in "
            f"{desktop.render_ms:,.0f} ms (desktop), {phone.render_ms:,.0f} ms (phone); "
            f"screenshot {screenshot.stat().st_size:,} bytes"
        )


def _shown(name: str, text: str) -> bool:
    """Whether ``text`` shows ``name`` literally, or cut short as a chart axis does.

    Vega ends an axis label longer than its limit with "…", so a long name may show as
    its first characters; at least :data:`MIN_LABEL_PREFIX` of them must be there.

    >>> _shown("<b>x</b>", "sector <b>x</b> here"), _shown("<script>alert(1)", "<script>al…")
    (True, True)
    >>> _shown("<script>alert(1)", "<scr…"), _shown("<b>x</b>", "x")
    (False, False)
    """
    if name in text:
        return True
    shortest = min(MIN_LABEL_PREFIX, len(name))
    return any(f"{name[:cut]}…" in text for cut in range(shortest, len(name)))


def _csv_cells(report_dir: Path) -> Iterator[tuple[Path, int, str]]:
    for path in sorted(report_dir.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                for cell in row:
                    yield path, line, cell


def test_hostile_sector_and_area_names_stay_text(hostile_report: Rendered) -> None:
    report = hostile_report.report
    _assert_hostile_names_stay_text(report.index_html, report.report_dir)


def test_a_statement_keeps_hostile_names_and_its_title_as_text(hostile_report: Rendered) -> None:
    """The period statement of the hostile scheme, under a hostile title: the same checks."""
    from circulate.statement.period import Period
    from circulate.statement.render import render_statement

    settings = hostile_report.settings
    title = '</title><script>window.__pwned="title"</script> "March" & April'
    statement = render_statement(
        settings.warehouse,
        settings.reports,
        Period(date(2025, 3, 1), date(2025, 4, 29)),
        title=title,
        k_anonymity=settings.k_anonymity,
        print_pdf=False,
        replicates=50,
    )
    page_source = statement.index_html.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in page_source
    # A statement has no sector or area tables yet: what bites here is the title, and
    # that nothing runs and no SVG or CSV of its folder carries a planted name unsafely.
    assert html.escape(title) in page_source
    _assert_hostile_names_stay_text(statement.index_html, statement.folder)


def _assert_hostile_names_stay_text(index_html: Path, folder: Path) -> None:
    """Open ``index_html`` in Chromium: no planted name runs, reaches the source as markup,
    or opens a CSV of ``folder`` as a formula, and each reads as its literal text."""
    hostile = (*HOSTILE_SECTORS, *HOSTILE_AREAS.values())
    page_source = index_html.read_text(encoding="utf-8")
    inspection = inspect_report(
        index_html,
        folder / "screenshot.png",
        probes={
            "pwned": "typeof window.__pwned",
            # Elements carrying a planted event handler, whether or not it fired.
            "planted_handlers": "Array.from(document.querySelectorAll('*')).filter((el) => "
            "Array.from(el.attributes).some((a) => a.name.startsWith('on') "
            "&& a.value.includes('__pwned'))).length",
        },
    )

    # Nothing ran, nothing was fetched, nothing popped up, and the page still works.
    assert inspection.probes == {"pwned": "undefined", "planted_handlers": 0}
    assert inspection.dialogs == []
    assert _network_requests(inspection) == [inspection.report_url]
    assert inspection.console_errors == inspection.page_errors == []
    _assert_every_chart_live(inspection, page_source)
    # Markup in a name never reaches the HTML source unescaped (text, attribute or JSON).
    for name in hostile:
        if "<" in name:
            assert name not in page_source

    # Where the page names sectors or areas, a hostile name reads as its literal text.
    text = inspection.expanded_text
    if any(_shown(name, text) for name in (*PLAIN_SECTORS, *HOSTILE_SECTORS)):
        assert [n for n in HOSTILE_SECTORS if not _shown(n, text)] == []
    if any(_shown(name, text) for name in (*PLAIN_AREAS, *HOSTILE_AREAS.values())):
        assert [n for n in HOSTILE_AREAS.values() if not _shown(n, text)] == []

    # Chart files are opened on their own for slides: no script or handler in any SVG.
    for svg in sorted(folder.rglob("*.svg")):
        for element in ET.parse(svg).iter():
            assert not element.tag.endswith(("script", "foreignObject")), svg
            assert not [a for a in element.attrib if a.lower().startswith("on")], svg

    # CSV exports: a text cell starting with = + - @ tab or CR is written with a leading
    # single quote; only a plain number (such as -12.50) may start with '-'.
    cells = list(_csv_cells(folder))
    unsafe = [
        f"{path.relative_to(folder)} line {line}: {cell!r}"
        for path, line, cell in cells
        if cell.startswith(FORMULA_TRIGGERS) and not PLAIN_NUMBER.fullmatch(cell)
    ]
    assert unsafe == []
    values = {cell for _path, _line, cell in cells}
    if values & {*PLAIN_SECTORS, *HOSTILE_SECTORS, *(f"'{n}" for n in HOSTILE_SECTORS)}:
        expected = {f"'{n}" if n.startswith(FORMULA_TRIGGERS) else n for n in HOSTILE_SECTORS}
        assert expected - values == set()
