"""Open a rendered funder report in headless Chromium and record what a reader's browser does.

The report must work offline: this driver blocks every request except the report file
itself, records each one it saw, collects console and page errors and dialogs, waits until
every chart has rendered live (vega-embed adds the class ``live`` to its ``<figure>``), counts
the SVG and drawn marks of each chart, measures horizontal overflow and takes a full-page
screenshot.

Run it as a script to screenshot a report and print a summary (exit 1 when the page
misbehaves)::

    .venv/bin/python tests/integration/browser.py reports/2025-12-31/index.html out.png

Chromium comes from the system (``/usr/bin/chromium``, or ``CIRCULATE_CHROMIUM``);
``scripts/install-browser.sh`` installs it on Debian. Playwright only drives it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Dialog, Request, Route, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from circulate.statement.pdf import OFFLINE_FLAGS, chromium_path

#: Where the system's Chromium lives; ``CIRCULATE_CHROMIUM`` points elsewhere.
CHROMIUM = chromium_path()
#: Chromium as circulate starts it to print (nothing that phones home, so any request seen
#: comes from the page), and no QUIC.
CHROMIUM_FLAGS = (*OFFLINE_FLAGS, "--disable-quic")
DESKTOP = (1280, 800)
#: A common phone's CSS width (iPhone 12 to 15).
PHONE = (390, 844)
LIVE_TIMEOUT_MS = 20_000

# Per figure: does it hold a live chart, is it live, how many SVGs does the chart hold, and
# how many items its data marks drew (Vega tags the groups of a chart's own marks
# ``role-mark``; axes, legends and titles have other roles). A path with no geometry
# (``d=""`` or ``M0,0``-only) is how Vega draws an empty series, so it does not count.
_FIGURES_JS = """
() => Array.from(document.querySelectorAll("figure")).map((fig, index) => {
  const vis = fig.querySelector(".vis");
  const svgs = vis ? vis.querySelectorAll("svg") : [];
  let marks = 0;
  for (const svg of svgs) {
    for (const item of svg.querySelectorAll("g.role-mark > *")) {
      const d = item.getAttribute("d");
      if (item.tagName.toLowerCase() !== "path" || (d && d.replace(/M0,0Z?/g, "").trim())) {
        marks += 1;
      }
    }
  }
  const img = fig.querySelector("img.static");
  return {
    id: fig.id || `figure-${index + 1}`,
    has_vis: vis !== null,
    live: fig.classList.contains("live"),
    svg_count: svgs.length,
    drawn_marks: marks,
    static_loaded: img ? img.complete && img.naturalWidth > 0 : null,
  };
})
"""

# Truthy (the time since navigation started) once every figure with a chart is live.
_ALL_LIVE_JS = """
() => {
  const pending = Array.from(document.querySelectorAll("figure"))
    .filter((fig) => fig.querySelector(".vis") && !fig.classList.contains("live"));
  return pending.length === 0 ? performance.now() : false;
}
"""

_EXPANDED_TEXT_JS = """
() => {
  document.querySelectorAll("details").forEach((details) => { details.open = true; });
  return document.body.innerText;
}
"""

_OVERFLOW_JS = """
() => ({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})
"""


def is_inline_url(url: str) -> bool:
    """Whether a URL carries its content inline (``data:``), so loading it uses no network.

    >>> is_inline_url("data:image/svg+xml;base64,PHN2Zy8+"), is_inline_url("DATA:,x")
    (True, True)
    >>> is_inline_url("file:///tmp/x.png"), is_inline_url("https://cdn.example/vega.js")
    (False, False)
    """
    return url[:5].lower() == "data:"


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


@dataclass(frozen=True)
class FigureInspection:
    """One ``<figure>`` of the page after rendering.

    Attributes
    ----------
    figure_id
        The figure's ``id`` (``figure-<n>`` when it has none).
    has_vis
        It holds a ``.vis`` element, i.e. a live chart is expected.
    live
        vega-embed resolved and the figure got the class ``live``.
    svg_count
        ``<svg>`` elements inside ``.vis``.
    drawn_marks
        Items drawn by the chart's data marks (lines, bars, cells, points) with geometry.
    static_loaded
        The static ``<img class="static">`` fallback decoded to a non-empty image
        (``None`` when the figure has none).
    """

    figure_id: str
    has_vis: bool
    live: bool
    svg_count: int
    drawn_marks: int
    static_loaded: bool | None

    @property
    def rendered(self) -> bool:
        """Live, with exactly one SVG that drew at least one data mark."""
        return self.live and self.svg_count == 1 and self.drawn_marks > 0


@dataclass(frozen=True)
class ReportInspection:
    """What headless Chromium saw while opening one report page.

    Attributes
    ----------
    report_url
        The ``file://`` URL of the page.
    viewport
        Width and height in CSS pixels.
    figures
        Every ``<figure>`` in page order.
    requests
        Every request the page (or a pop-up it opened) started, in order, including the
        page itself and any that the content security policy or this driver then blocked.
        ``data:`` URIs are inline content and Chromium reports none.
    blocked
        Requests this driver aborted: everything but the report file.
    console_errors, page_errors
        Console messages of type ``error`` and uncaught exceptions.
    dialogs
        ``alert``/``confirm``/``prompt``/``beforeunload`` dialogs, as ``type: message``.
    render_ms
        Milliseconds from navigation start until every chart was live; ``None`` when
        some chart was still not live at the timeout.
    scroll_width, inner_width
        ``document.scrollingElement.scrollWidth`` and ``window.innerWidth`` once rendered.
    screenshot
        The full-page PNG written.
    visible_text
        ``document.body.innerText``: the words a reader sees, chart labels included.
    expanded_text
        The same once every ``<details>`` is opened: every word a reader can reach.
    probes
        Results of the caller's JavaScript expressions, by name.
    """

    report_url: str
    viewport: tuple[int, int]
    figures: list[FigureInspection]
    requests: list[str]
    blocked: list[str]
    console_errors: list[str]
    page_errors: list[str]
    dialogs: list[str]
    render_ms: float | None
    scroll_width: int
    inner_width: int
    screenshot: Path
    visible_text: str
    expanded_text: str
    probes: dict[str, object] = field(default_factory=dict)

    @property
    def charts(self) -> list[FigureInspection]:
        """The figures that hold a live chart."""
        return [f for f in self.figures if f.has_vis]

    @property
    def not_rendered(self) -> list[FigureInspection]:
        """Charts that are not live or drew nothing."""
        return [f for f in self.charts if not f.rendered]

    @property
    def foreign_requests(self) -> list[str]:
        """Requests for anything but the report file itself (``data:`` URIs excepted)."""
        page = _without_fragment(self.report_url)
        return [
            url
            for url in self.requests
            if _without_fragment(url) != page and not is_inline_url(url)
        ]

    @property
    def horizontal_overflow_px(self) -> int:
        """How far the page is wider than the viewport (0 when it fits, 1 px of rounding)."""
        return max(0, self.scroll_width - self.inner_width - 1)

    @property
    def problems(self) -> list[str]:
        """Everything a reader would notice is wrong; empty for a good page."""
        found = [f"chart {f.figure_id} not rendered: {f}" for f in self.not_rendered]
        if not self.charts:
            found.append("the page has no chart")
        found += [f"request: {url}" for url in self.foreign_requests]
        found += [f"console error: {text}" for text in self.console_errors]
        found += [f"page error: {text}" for text in self.page_errors]
        found += [f"dialog: {text}" for text in self.dialogs]
        if self.horizontal_overflow_px:
            found.append(
                f"horizontal overflow: page {self.scroll_width}px wide in a "
                f"{self.inner_width}px viewport"
            )
        return found

    def summary(self) -> str:
        """A few lines for a person: charts, requests, errors, render time."""
        charts = self.charts
        live = sum(f.rendered for f in charts)
        render = "not all live" if self.render_ms is None else f"{self.render_ms:,.0f} ms"
        size = self.screenshot.stat().st_size if self.screenshot.exists() else 0
        lines = [
            f"report      {self.report_url}",
            f"viewport    {self.viewport[0]}x{self.viewport[1]}",
            f"charts      {live}/{len(charts)} rendered live "
            f"({sum(f.drawn_marks for f in charts):,} marks drawn)",
            f"render time {render} from navigation start",
            f"requests    {len(self.requests)} seen, {len(self.foreign_requests)} to anything "
            f"but the report file, {len(self.blocked)} blocked",
            f"errors      {len(self.console_errors)} console, {len(self.page_errors)} page, "
            f"{len(self.dialogs)} dialog(s)",
            f"width       {self.scroll_width}px page in {self.inner_width}px viewport",
            f"screenshot  {self.screenshot} ({size:,} bytes)",
        ]
        lines += [f"PROBLEM     {p}" for p in self.problems]
        return "\n".join(lines)


def chromium_available() -> bool:
    """Whether the system Chromium this driver uses is installed."""
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def inspect_report(
    index_html: Path,
    screenshot: Path,
    *,
    viewport: tuple[int, int] = DESKTOP,
    live_timeout_ms: int = LIVE_TIMEOUT_MS,
    probes: Mapping[str, str] | None = None,
) -> ReportInspection:
    """Open ``index_html`` in a fresh headless Chromium profile and inspect it.

    Parameters
    ----------
    index_html
        The report page (``reports/<as-of>/index.html``).
    screenshot
        Where to write the full-page PNG (parent folders are created).
    viewport
        Width and height in CSS pixels; :data:`PHONE` checks the narrow layout.
    live_timeout_ms
        How long to wait for every chart to become live before inspecting anyway.
    probes
        JavaScript expressions to evaluate once rendered, by name, e.g.
        ``{"pwned": "typeof window.__pwned"}``; results land in ``probes``.

    Returns
    -------
    ReportInspection

    Raises
    ------
    FileNotFoundError
        When the page or Chromium is missing (the message says how to install it).
    """
    if not index_html.is_file():
        raise FileNotFoundError(f"{index_html}: no such report page; render the report first")
    if not chromium_available():
        raise FileNotFoundError(
            f"{CHROMIUM}: Chromium is not installed; run `make browser` (as root on Debian) "
            "or set CIRCULATE_CHROMIUM to a Chromium binary"
        )
    report_url = index_html.resolve().as_uri()
    requests: list[str] = []
    blocked: list[str] = []
    console_errors: list[str] = []
    page_errors: list[str] = []
    dialogs: list[str] = []

    def route(handled: Route) -> None:
        if _without_fragment(handled.request.url) == report_url:
            handled.continue_()
        else:
            blocked.append(handled.request.url)
            handled.abort("blockedbyclient")

    def on_request(request: Request) -> None:
        requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    def on_page_error(error: PlaywrightError) -> None:
        page_errors.append(f"{error.name}: {error.message}")

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    width, height = viewport
    with (
        tempfile.TemporaryDirectory(prefix="circulate-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height},
            offline=True,
            service_workers="block",
        )
        try:
            context.route("**/*", route)
            # On the context, so a pop-up's requests are recorded too.
            context.on("request", on_request)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.on("dialog", on_dialog)
            page.goto(report_url, wait_until="load")
            render_ms: float | None
            try:
                handle = page.wait_for_function(
                    _ALL_LIVE_JS, polling="raf", timeout=live_timeout_ms
                )
                render_ms = float(handle.json_value())
            except PlaywrightError:
                render_ms = None
            # Vega sizes ``width: "container"`` charts once more on the next frame.
            page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(null)))")
            figures = [
                FigureInspection(
                    figure_id=str(f["id"]),
                    has_vis=bool(f["has_vis"]),
                    live=bool(f["live"]),
                    svg_count=int(f["svg_count"]),
                    drawn_marks=int(f["drawn_marks"]),
                    static_loaded=None if f["static_loaded"] is None else bool(f["static_loaded"]),
                )
                for f in page.evaluate(_FIGURES_JS)
            ]
            widths = page.evaluate(_OVERFLOW_JS)
            visible_text = str(page.evaluate("() => document.body.innerText"))
            probed = {name: page.evaluate(f"() => ({js})") for name, js in (probes or {}).items()}
            page.screenshot(path=str(screenshot), full_page=True)
            expanded_text = str(page.evaluate(_EXPANDED_TEXT_JS))
        finally:
            context.close()
    return ReportInspection(
        report_url=report_url,
        viewport=viewport,
        figures=figures,
        requests=requests,
        blocked=blocked,
        console_errors=console_errors,
        page_errors=page_errors,
        dialogs=dialogs,
        render_ms=render_ms,
        scroll_width=int(widths["scroll"]),
        inner_width=int(widths["inner"]),
        screenshot=screenshot,
        visible_text=visible_text,
        expanded_text=expanded_text,
        probes=probed,
    )


def main(argv: list[str] | None = None) -> int:
    """Screenshot a report and print what Chromium saw; exit 1 when something is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("index_html", type=Path, help="reports/<as-of>/index.html")
    parser.add_argument("screenshot", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=DESKTOP[0], help="viewport width, px")
    parser.add_argument("--height", type=int, default=DESKTOP[1], help="viewport height, px")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        inspection = inspect_report(
            args.index_html, args.screenshot, viewport=(args.width, args.height)
        )
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    print(inspection.summary())
    print(f"wall time   {time.perf_counter() - started:.1f} s (browser start to screenshot)")
    return 1 if inspection.problems else 0


if __name__ == "__main__":
    sys.exit(main())
