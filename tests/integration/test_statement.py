"""Period statements from a published warehouse: figures, files, stability, versions.

One small generated scheme (6,000 transactions over 200 days from 1 January 2025) is
published once for the module; tests that change data work on a copy of it.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pypdf
import pytest

from circulate import pipeline
from circulate.generate import generate_scheme
from circulate.report import fmt
from circulate.settings import Settings
from circulate.statement.cli import make_statement
from circulate.statement.figures import load_statement_figures, period_totals
from circulate.statement.period import Period
from circulate.statement.render import render_statement
from circulate.statement.whatif import whatif
from tests.conftest import TEST_KEY, settings_under
from tests.integration.browser import CHROMIUM, DESKTOP, PHONE, chromium_available, inspect_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECOND_QUARTER = Period(dt.date(2025, 4, 1), dt.date(2025, 6, 30))


@dataclass(frozen=True)
class Published:
    settings: Settings


def publish(settings: Settings) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CIRCULATE_PSEUDONYM_KEY", TEST_KEY)
        pipeline.run_in_process(settings)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    settings = settings_under(tmp_path_factory.mktemp("statement-scheme"))
    generate_scheme(
        settings.inbox, seed=23, transactions=6_000, days=200, start=dt.date(2025, 1, 1)
    )
    publish(settings)
    yield Published(settings)


def test_period_sums_equal_the_daily_mart_summed_day_by_day(published: Published) -> None:
    with duckdb.connect(str(published.settings.warehouse), read_only=True) as con:
        totals = period_totals(con, SECOND_QUARTER, 5)
        days = con.execute(
            "select day, issued, redeemed, fees, transfer_volume, transfer_count, money_supply "
            "from marts.daily_circulation order by day"
        ).fetchall()
    inside = [d for d in days if SECOND_QUARTER.start <= d[0] <= SECOND_QUARTER.end]
    assert len(inside) == totals.days_with_data == 91
    assert totals.issued == sum((d[1] for d in inside), Decimal(0))
    assert totals.redeemed == sum((d[2] for d in inside), Decimal(0))
    assert totals.fees == sum((d[3] for d in inside), Decimal(0))
    assert totals.transfer_volume == sum((d[4] for d in inside), Decimal(0))
    assert totals.transfer_count == sum(d[5] for d in inside)
    before = [d for d in days if d[0] < SECOND_QUARTER.start]
    assert totals.supply_start == before[-1][6]
    assert totals.supply_end == inside[-1][6]
    # Conservation over the period: what came in minus what left is the change in supply.
    assert totals.supply_end - totals.supply_start == (
        totals.issued - totals.redeemed - totals.fees
    )
    mean = sum(float(d[6]) for d in inside) / len(inside)
    assert totals.velocity == pytest.approx(float(totals.transfer_volume) / mean)


def test_previous_period_is_the_same_length_just_before(published: Published) -> None:
    with duckdb.connect(str(published.settings.warehouse), read_only=True) as con:
        figures = load_statement_figures(con, SECOND_QUARTER, 5, replicates=50)
    assert figures.previous == Period(dt.date(2024, 12, 31), dt.date(2025, 3, 31))
    # The warehouse starts on 1 January: the previous period has one day without data.
    assert figures.previous_totals.days_with_data == 90
    assert figures.complete
    assert [m.isoformat() for m in figures.months["month"].to_list()] == [
        "2025-04-01",
        "2025-05-01",
        "2025-06-01",
    ]
    assert figures.scorecard["period_start"].n_unique() == 3
    lm = figures.multiplier
    assert 1.0 < lm.lm[2] <= lm.lm[3] <= lm.lm[4] <= lm.lm[5]
    assert lm.lm3_low is not None and lm.lm3_high is not None
    assert lm.lm3_low <= lm.lm[3] <= lm.lm3_high


def test_a_period_outside_the_warehouse_names_its_span(published: Published) -> None:
    with (
        duckdb.connect(str(published.settings.warehouse), read_only=True) as con,
        pytest.raises(ValueError, match=r"holds 2025-01-01 \.\. 2025-07-19"),
    ):
        load_statement_figures(con, Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31)), 5)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_rendering_again_with_unchanged_data_gives_the_same_files(
    published: Published, tmp_path: Path
) -> None:
    settings = published.settings
    first = render_statement(
        settings.warehouse,
        tmp_path / "a",
        SECOND_QUARTER,
        print_pdf=False,
        replicates=50,
        generated_at=dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC),
    )
    assert first.written and first.version == 1
    assert first.folder == tmp_path / "a" / "statements" / "2025-04-01_2025-06-30"
    before = _files(first.folder)
    assert {"index.html", "manifest.json", "figures.json", "tables/headline.csv"} <= set(before)
    again = render_statement(settings.warehouse, tmp_path / "a", SECOND_QUARTER, print_pdf=False,
                             replicates=50)  # fmt: skip
    assert not again.written and again.version == 1 and again.folder == first.folder
    assert _files(first.folder) == before
    # A fresh render elsewhere, at another time: the same bytes but the generation time.
    elsewhere = render_statement(
        settings.warehouse,
        tmp_path / "b",
        SECOND_QUARTER,
        print_pdf=False,
        replicates=50,
        generated_at=dt.datetime(2026, 2, 2, 10, 30, tzinfo=dt.UTC),
    )
    other = _files(elsewhere.folder)
    assert other.keys() == before.keys()
    assert [name for name in before if before[name] != other[name]] == ["manifest.json"]
    old, new = (json.loads(files["manifest.json"]) for files in (before, other))
    assert old.pop("generated_at") == "2026-01-01T09:00:00+00:00"
    assert new.pop("generated_at") == "2026-02-02T10:30:00+00:00"
    assert old == new
    assert old["warehouse"]["sha256"] == hashlib.sha256(settings.warehouse.read_bytes()).hexdigest()
    assert old["files"]["index.html"] == hashlib.sha256(before["index.html"]).hexdigest()
    assert old["k_anonymity"] == 5 and old["thresholds"]
    index = (tmp_path / "a" / "index.html").read_text(encoding="utf-8")
    assert 'href="statements/2025-04-01_2025-06-30/index.html"' in index


def test_a_late_entry_inside_the_period_makes_a_new_version_listing_what_moved(
    published: Published, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    source_root = published.settings.warehouse.parent.parent
    shutil.copytree(source_root, root, ignore=shutil.ignore_patterns("reports"))
    settings = settings_under(root)
    first = render_statement(settings.warehouse, settings.reports, SECOND_QUARTER,
                             print_pdf=False, replicates=50)  # fmt: skip
    export = settings.inbox / "exports" / "2025-05-10.csv"
    with open(export, "a", encoding="utf-8") as handle:
        handle.write("LATE-1,2025-05-10T12:00:00Z,ISSUER-1,IND-000036,123.45,issuance,app\n")
    publish(settings)
    second = render_statement(settings.warehouse, settings.reports, SECOND_QUARTER,
                              print_pdf=False, replicates=50)  # fmt: skip
    assert second.written and second.version == 2
    assert second.folder.name == "2025-04-01_2025-06-30-v2"
    assert (first.folder / "index.html").is_file()  # the old version stays beside it
    moved = {key: (old, new, change) for key, old, new, change in second.moved}
    old_issued, new_issued, change = moved["period.issued"]
    assert Decimal(new_issued) - Decimal(old_issued) == Decimal("123.45")
    assert change == pytest.approx(123.45)
    assert "previous.issued" not in moved  # nothing changed before the period
    page = (second.folder / "index.html").read_text(encoding="utf-8")
    assert "What moved since the previous version" in page and "period.issued" in page
    moved_csv = (second.folder / "tables" / "moved.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(moved_csv.splitlines()))
    assert {"figure": "period.issued", "change": "123.45"}.items() <= next(
        r for r in rows if r["figure"] == "period.issued"
    ).items()
    manifest = json.loads((second.folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == 2 and manifest["replaces"] == first.folder.name
    index = (settings.reports / "index.html").read_text(encoding="utf-8")
    assert "2025-04-01_2025-06-30-v2/index.html" in index


def test_whatif_backtest_error_on_the_steady_scheme_is_within_the_error_it_states(
    published: Published,
) -> None:
    """The generator's healthy scenario plants steady behaviour: projecting the latest
    back-tested month from the months before it must land within the back-test error the
    earlier months state."""
    with duckdb.connect(str(published.settings.warehouse), read_only=True) as con:
        result = whatif(con, "resident", 10_000, months=12, replicates=50)
    months = [r["month"] for r in result.backtest]
    # Data run to 19 July; months ending 60 days before that are settled: February (learnt
    # from January) to April.
    assert months == [dt.date(2025, 2, 1), dt.date(2025, 3, 1), dt.date(2025, 4, 1)]
    *earlier, latest = result.backtest
    stated = sum(abs(r["projected_lm3"] - r["traced_lm3"]) for r in earlier) / len(earlier)
    assert abs(latest["projected_lm3"] - latest["traced_lm3"]) <= stated
    assert result.window == (dt.date(2025, 1, 1), dt.date(2025, 6, 30))
    p = result.projection
    assert result.low["lm3"] <= p.lm[2] <= result.high["lm3"]
    assert 1.0 < p.lm[1] <= p.lm[2] < p.full
    assert result.trade(p.lm[2]) == pytest.approx(10_000 * (p.lm[2] - 1))


def test_whatif_command_and_statement_section(published: Published, tmp_path: Path) -> None:
    from circulate.cli import main

    warehouse = str(published.settings.warehouse)
    assert main(["whatif", "--entry", "council", "--amount", "50000", "--warehouse", warehouse,
                 "--json"]) == 0  # fmt: skip
    reports = tmp_path / "reports"
    code = main(["statement", "--quarter", "2025Q2", "--warehouse", warehouse, "--reports",
                 str(reports), "--no-pdf", "--whatif-amount", "50000"])  # fmt: skip
    assert code == 0
    page = (reports / "statements" / "2025-04-01_2025-06-30" / "index.html").read_text("utf-8")
    assert "What would £50,000 in the currency do?" in page
    assert "A projection from past flows, not a promise" in page
    whatif_csv = reports / "statements" / "2025-04-01_2025-06-30" / "tables" / "whatif.csv"
    assert len(whatif_csv.read_text("utf-8").splitlines()) == 5  # header + four entry points
    assert main(["statement", "--quarter", "2025-2", "--warehouse", warehouse]) == 2


def test_statement_passes_the_browser_test_and_its_pdf_is_checked(
    published: Published, tmp_path: Path
) -> None:
    """Headless Chromium: every chart live, no request, no error, every chart with a text
    alternative, no overflow at phone width; the PDF: A4 pages numbered, headline present,
    charts as vector."""
    if not chromium_available():
        reason = f"Chromium not found at {CHROMIUM}: run `make browser` or set CIRCULATE_CHROMIUM"
        if os.environ.get("CIRCULATE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    settings = dataclasses.replace(published.settings, reports=tmp_path / "reports")
    result = make_statement(settings, SECOND_QUARTER, whatif_amount=25_000)
    source = result.index_html.read_text(encoding="utf-8")
    for viewport in (DESKTOP, PHONE):
        seen = inspect_report(result.index_html, tmp_path / "shot.png", viewport=viewport)
        assert seen.problems == [], seen.summary()
        assert len(seen.charts) == source.count('class="vis"') >= 3
        assert [r for r in seen.requests if r != seen.report_url] == []
    assert "What would £25,000 in the currency do?" in seen.expanded_text
    # Every chart's live element and static image carry its description.
    labels = re.findall(r'role="img" aria-label="([^"]*)"', source)
    alts = re.findall(r'<img class="static" src="[^"]*" alt="([^"]*)"', source)
    assert len(labels) == len(alts) == len(seen.charts) and all(labels) and all(alts)

    assert result.pdf is not None
    reader = pypdf.PdfReader(result.pdf)
    pages = len(reader.pages)
    assert 3 <= pages <= 30
    texts = [page.extract_text() for page in reader.pages]
    for number, (page, text) in enumerate(zip(reader.pages, texts, strict=True), start=1):
        assert (
            round(float(page.mediabox.width)) == 595 and round(float(page.mediabox.height)) == 842
        )
        assert f"Page {number} of {pages}" in text
        xobjects = page["/Resources"].get("/XObject", {})
        assert all(x.get_object().get("/Subtype") != "/Image" for x in xobjects.values())
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        totals = period_totals(con, SECOND_QUARTER, 5)
    first_page = " ".join(texts[0].split())
    assert "statement, 1 April 2025 to 30 June 2025" in first_page
    assert fmt.money(totals.issued) in first_page
    assert fmt.money(totals.transfer_volume) in first_page
    assert "What would £25,000" in " ".join(" ".join(t.split()) for t in texts)
