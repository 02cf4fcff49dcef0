"""Funder report rendered from a hand-made four-day warehouse (answers computed by hand)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from circulate.report import ReportResult, render_report
from circulate.report.data import load_report_data
from circulate.report.page import FAILED_BANNER
from circulate.settings import Settings

# day, issued, redeemed, fees, transfer_volume, transfer_count, money_supply, active_accounts
DAYS = [
    ("2024-01-01", "1000.00", "0.00", "0.00", "250.50", 3, "1000.00", 5),
    ("2024-01-15", "500.00", "100.00", "1.00", "400.25", 4, "1399.00", 6),
    ("2024-02-10", "0.00", "200.00", "2.00", "1200.00", 10, "1197.00", 8),
    ("2024-02-20", "2500.00", "0.00", "0.00", "3000.75", 12, "3697.00", 9),
]
# month, active_accounts (other monthly columns are not read by the report)
MONTHS = [("2024-01-01", 7), ("2024-02-01", 12)]

# By hand, as of 2024-02-20: the 30-day window starts 2024-01-22 (rows of 10 and 20 Feb).
EXPECTED = {
    "money_in_circulation": "£3,697.00",  # 4000 − 300 − 3
    "total_issued": "£4,000.00",
    "total_redeemed": "£300.00",
    "transfer_volume_30d": "£4,200.75",  # 1200.00 + 3000.75
    "transfer_count_30d": "22",  # 10 + 12
    "transfer_volume_all": "£4,851.50",  # 250.50 + 400.25 + 1200.00 + 3000.75
    "transfer_count_all": "29",
    "active_accounts": "12",  # February 2024, month to date
}


def make_warehouse(path: Path, *, runs: list[tuple[str, str]] | None = None) -> Path:
    """Create the two marts (and optionally audit.runs) with the rows above."""
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.daily_circulation (
                day date, issued decimal(18,2), redeemed decimal(18,2), fees decimal(18,2),
                transfer_volume decimal(18,2), transfer_count bigint,
                money_supply decimal(18,2), active_accounts bigint)
            """
        )
        con.executemany("insert into marts.daily_circulation values (?, ?, ?, ?, ?, ?, ?, ?)", DAYS)
        con.execute(
            """
            create table marts.monthly_circulation (
                month date, issued decimal(18,2), redeemed decimal(18,2), fees decimal(18,2),
                transfer_volume decimal(18,2), transfer_count bigint,
                money_supply_end decimal(18,2), active_accounts bigint)
            """
        )
        con.executemany(
            "insert into marts.monthly_circulation (month, active_accounts) values (?, ?)",
            MONTHS,
        )
        if runs is not None:
            con.execute("create schema audit")
            con.execute(
                """
                create table audit.runs (run_id varchar, started_at timestamptz,
                    finished_at timestamptz, status varchar, stage varchar, rows_loaded bigint)
                """
            )
            con.executemany(
                "insert into audit.runs values (?, timestamptz '2024-02-21 02:00:00+00', "
                "timestamptz '2024-02-21 02:05:00+00', ?, 'publish', 42)",
                runs,
            )
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportResult, str]:
    root = tmp_path_factory.mktemp("report")
    warehouse = make_warehouse(root / "w.duckdb")
    result = render_report(warehouse, root / "reports", run_id="run-1")
    return result, result.index_html.read_text(encoding="utf-8")


def test_writes_report_folder_for_last_day(rendered: tuple[ReportResult, str]) -> None:
    result, _ = rendered
    assert result.report_dir.name == "2024-02-20"
    assert result.index_html == result.report_dir / "index.html"
    assert result.index_html.is_file()
    assert (result.report_dir.parent / "index.html").is_file()


def test_headline_values_match_hand_computation(rendered: tuple[ReportResult, str]) -> None:
    result, page = rendered
    assert result.headline == EXPECTED
    for value in EXPECTED.values():
        assert f"<dd>{value}</dd>" in page
    assert "Active accounts, February 2024 (month to date)" in page
    summary = json.loads((result.report_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["headline"] == EXPECTED
    assert summary["run_status"] == "success"
    assert summary["run_id"] == "run-1"
    assert summary["generated_at"]


def test_page_is_self_contained(rendered: tuple[ReportResult, str]) -> None:
    _, page = rendered
    # The inlined JS bundle holds URL strings and markup templates; what matters is that
    # no tag of the page itself loads anything, so check the markup with scripts emptied.
    markup = re.sub(r"(<script\b[^>]*>).*?</script>", r"\1</script>", page, flags=re.S | re.I)
    assert markup.count("<script") == 4  # two JSON specs, the bundle, the embed call
    assert not re.search(r"<script[^>]*\bsrc\s*=", markup, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=", markup, re.I)
    assert not re.search(r"<img[^>]*\bsrc\s*=\s*[\"']?https?:", markup, re.I)
    srcs = re.findall(r"<img[^>]*\bsrc=\"([^\"]*)\"", markup)
    assert len(srcs) == 2
    assert all(src.startswith("data:image/svg+xml;base64,") for src in srcs)
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:)?//", markup, re.I)
    style = page[page.index("<style>") : page.index("</style>")]
    assert "url(" not in style and "@import" not in style
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert 'name="viewport"' in page and "@media print" in page
    assert "vegaEmbed" in page


def test_page_has_charts_caveats_and_title(rendered: tuple[ReportResult, str]) -> None:
    _, page = rendered
    assert "<title>circulate — Local currency impact report, as of 20 February 2024</title>" in page
    assert page.count("Source: marts.daily_circulation") >= 2
    assert page.count("<figcaption>") == 2
    assert page.count('role="img" aria-label="') == 2
    assert "Activity is not causal impact" in page
    assert "Paper notes are only visible when issued and redeemed" in page
    assert "anonymised exports" in page
    assert FAILED_BANNER not in page
    specs = re.findall(r'<script type="application/json" id="spec-[a-z_]+">(.*?)</script>', page)
    assert len(specs) == 2
    for raw in specs:
        spec = json.loads(raw)
        assert spec["width"] == "container"
        assert spec["description"]


def test_chart_files_are_valid_png_and_svg(rendered: tuple[ReportResult, str]) -> None:
    result, _ = rendered
    names = sorted(p.name for p in result.charts)
    assert names == [
        "money_supply.png",
        "money_supply.svg",
        "monthly_transfers.png",
        "monthly_transfers.svg",
    ]
    for path in result.charts:
        assert path.parent == result.report_dir / "charts"
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
        else:
            assert b"<svg" in data and b"</svg>" in data


def test_index_lists_every_run_newest_first(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "w.duckdb")
    reports = tmp_path / "reports"
    older = render_report(warehouse, reports, as_of=dt.date(2024, 1, 15), run_id="r-old")
    newer = render_report(warehouse, reports, run_id="r-new")
    index = (reports / "index.html").read_text(encoding="utf-8")
    first, second = (
        index.index('href="2024-02-20/index.html"'),
        index.index('href="2024-01-15/index.html"'),
    )
    assert first < second
    assert "r-old" in index and "r-new" in index
    assert "£3,697.00" in index and "£1,399.00" in index
    # Back-dated: 30 days back reaches the first day; January's active count would
    # include days after 15 January, so it is not shown.
    assert older.headline["transfer_volume_30d"] == "£650.75"
    assert older.headline["transfer_count_30d"] == "7"
    assert older.headline["active_accounts"] == "not available"
    assert newer.headline == EXPECTED


def test_failed_run_shows_banner_and_is_recorded(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "w.duckdb")
    reports = tmp_path / "reports"
    render_report(warehouse, reports, run_id="ok")
    result = render_report(warehouse, reports, run_status="failed", run_id="bad")
    page = result.index_html.read_text(encoding="utf-8")
    assert FAILED_BANNER == "The latest run failed: showing the last published data"
    assert f'<div class="banner" role="alert">{FAILED_BANNER}' in page
    summary = json.loads((result.report_dir / "summary.json").read_text(encoding="utf-8"))
    assert [r["run_status"] for r in summary["runs"]] == ["failed", "success"]
    assert "failed (rendered 2 times)" in (reports / "index.html").read_text(encoding="utf-8")


def test_hostile_strings_arrive_escaped(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>"
    warehouse = make_warehouse(tmp_path / "w.duckdb", runs=[(hostile, "<b>ok</b>")])
    result = render_report(
        warehouse,
        tmp_path / "reports",
        scheme_name=hostile,
        currency_symbol="</script><i>X",
        run_status="<img src=x onerror=alert(1)>",
        run_id=hostile,
    )
    page = result.index_html.read_text(encoding="utf-8")
    assert hostile not in page
    assert "</script><i>" not in page
    assert "<img src=x" not in page and "<b>ok</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # title, runs table, footer
    assert "&lt;b&gt;ok&lt;/b&gt;" in page
    assert "\\u003c/script\\u003e\\u003ci\\u003eX" in page  # symbol inside chart JSON
    index = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert hostile not in index and "<img src=x" not in index


def test_opens_warehouse_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse = make_warehouse(tmp_path / "w.duckdb")
    warehouse.chmod(0o444)
    before = hashlib.sha256(warehouse.read_bytes()).hexdigest()
    calls: list[dict[str, Any]] = []
    real_connect = duckdb.connect

    def spy(*args: Any, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        calls.append(kwargs)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    try:
        result = render_report(warehouse, tmp_path / "reports")
    finally:
        warehouse.chmod(0o644)
    assert result.headline == EXPECTED
    assert calls == [{"read_only": True}]
    assert hashlib.sha256(warehouse.read_bytes()).hexdigest() == before


def test_small_months_are_suppressed(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "w.duckdb")
    result = render_report(warehouse, tmp_path / "reports", k_anonymity=8)
    page = result.index_html.read_text(encoding="utf-8")
    assert "1 month(s) not shown: fewer than 8 active accounts" in page
    assert "hidden (fewer than 8 accounts)" in page
    spec = json.loads(
        re.search(
            r'<script type="application/json" id="spec-monthly_transfers">(.*?)</script>', page
        ).group(1)  # type: ignore[union-attr]
    )
    rows = next(iter(spec["datasets"].values()))
    assert [r["transfer_volume"] for r in rows] == [None, 4200.75]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path / "w.duckdb")
    with pytest.raises(ValueError, match=r"outside marts\.daily_circulation"):
        render_report(warehouse, tmp_path / "r", as_of=dt.date(2024, 3, 1))
    with pytest.raises(ValueError, match="below the minimum"):
        render_report(warehouse, tmp_path / "r", k_anonymity=2)
    with pytest.raises(FileNotFoundError):
        render_report(tmp_path / "missing.duckdb", tmp_path / "r")


def test_long_history_is_drawn_weekly(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "long.duckdb")) as con:
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.daily_circulation as
            select date '2010-01-04' + i::int as day, 1.00::decimal(18,2) as issued,
                   0.00::decimal(18,2) as redeemed, 0.00::decimal(18,2) as fees,
                   0.00::decimal(18,2) as transfer_volume, 0::bigint as transfer_count,
                   (i + 1)::decimal(18,2) as money_supply, 0::bigint as active_accounts
            from range(4200) as t(i)
            """
        )
        con.execute(
            "create table marts.monthly_circulation as select distinct "
            "date_trunc('month', day)::date as month, 0::bigint as active_accounts "
            "from marts.daily_circulation"
        )
        data = load_report_data(con)
    assert data.supply_period == "week"
    assert data.supply.height == 600  # 4200 days from a Monday
    assert data.supply["money_supply"][-1] == 4200.0  # end-of-week balance


def test_a_scheme_whose_every_decile_is_hidden_still_renders(published: Settings) -> None:
    """The six-row hand ledger has one area with two accounts: every decile cell is under
    k and hidden, so the deprivation chart has nothing to draw and is left out (an empty
    chart made vl-convert fail the whole report); the table still says "hidden"."""
    result = render_report(published.warehouse, published.reports, run_id="hand")
    page = result.index_html.read_text(encoding="utf-8")
    assert 'id="h-inclusion"' in page and "hidden" in page
    charts_dir = result.index_html.parent / "charts"
    assert not (charts_dir / "deprivation.png").exists()
    assert (charts_dir / "money_supply.png").exists()


def test_the_javascript_bundle_is_built_once_and_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circulate.report import charts

    monkeypatch.setenv("CIRCULATE_CACHE_DIR", str(tmp_path / "cache"))
    built = charts.javascript_bundle()
    assert "vegaEmbed" in built
    [cached] = (tmp_path / "cache").glob("vega-bundle-*.js")
    assert cached.read_text(encoding="utf-8") == built

    def must_not_build(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("the bundle was built again")

    monkeypatch.setattr(charts.vlc, "javascript_bundle", must_not_build)
    assert charts.javascript_bundle() == built
    cached.unlink()
    with pytest.raises(AssertionError, match="built again"):
        charts.javascript_bundle()


def test_a_chart_drawn_before_is_copied_from_the_cache_not_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import altair as alt
    import polars as pl

    from circulate.report import charts

    monkeypatch.setenv("CIRCULATE_CACHE_DIR", str(tmp_path / "cache"))

    def bars(values: list[int]) -> charts.ReportChart:
        data = pl.DataFrame({"month": ["Jan", "Feb"], "value": values})
        chart = alt.Chart(data).mark_bar().encode(x="month:N", y="value:Q")
        return charts.ReportChart("bars", "Bars", "Two bars.", "a test", "", chart)

    first = charts.write_images(bars([1, 2]), tmp_path / "night1")
    assert len(list((tmp_path / "cache" / "charts").iterdir())) == 2  # a PNG and an SVG

    drawn: list[str] = []
    draw_svg = charts.vlc.vegalite_to_svg

    def counting_svg(*args: Any, **kwargs: Any) -> str:
        drawn.append("svg")
        return str(draw_svg(*args, **kwargs))

    monkeypatch.setattr(charts.vlc, "vegalite_to_svg", counting_svg)
    again = charts.write_images(bars([1, 2]), tmp_path / "night2")
    assert drawn == []
    assert again[0].read_bytes() == first[0].read_bytes() and again[2] == first[2]
    other = charts.write_images(bars([1, 3]), tmp_path / "night3")
    assert drawn == ["svg"], "other data: drawn anew"
    assert other[2] != first[2]
