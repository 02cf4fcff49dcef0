"""Per-report ``summary.json`` files and the ``reports/index.html`` built from them.

The index is rebuilt from every ``<reports_dir>/*/summary.json`` on each render, so it
lists every report folder whatever process wrote it; re-rendering the same as-of date
keeps that folder's earlier renders in its ``runs`` list.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

from circulate.report.page import CSP, esc

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
#: Headline keys shown as index columns, with their column titles.
INDEX_COLUMNS = (
    ("money_in_circulation", "Money in circulation"),
    ("transfer_volume_30d", "Transfer volume, last 30 days"),
    ("transfer_count_30d", "Transfers, last 30 days"),
    ("active_accounts", "Active accounts, latest month"),
)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Summary:
    """The contents of one ``summary.json``."""

    folder: str
    payload: dict[str, Any]


def read_summary(report_dir: Path) -> dict[str, Any] | None:
    """Return a report folder's summary, or ``None`` if missing or unreadable."""
    path = report_dir / SUMMARY_NAME
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s (delete or fix the file)", path, exc)
        return None
    return value if isinstance(value, dict) else None


def write_summary(report_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json``, carrying over earlier renders of the same folder.

    Parameters
    ----------
    report_dir
        The report folder (``reports/<as-of>``).
    summary
        Must hold ``run_id``, ``run_status`` and ``generated_at``; a ``runs`` list with
        this and every earlier render (newest first) is added.
    """
    previous = read_summary(report_dir) or {}
    earlier = [r for r in previous.get("runs", []) if isinstance(r, dict)]
    this_run = {k: summary.get(k) for k in ("run_id", "run_status", "generated_at")}
    path = report_dir / SUMMARY_NAME
    write_atomic(path, json.dumps({**summary, "runs": [this_run, *earlier]}, indent=2) + "\n")
    return path


def collect_summaries(reports_dir: Path) -> list[Summary]:
    """All readable summaries under ``reports_dir``, newest as-of date first."""
    found = []
    for path in reports_dir.glob(f"*/{SUMMARY_NAME}"):
        payload = read_summary(path.parent)
        if payload is not None:
            found.append(Summary(path.parent.name, payload))
    found.sort(
        key=lambda s: (str(s.payload.get("as_of", s.folder)), str(s.payload.get("generated_at"))),
        reverse=True,
    )
    return found


def _index_row(summary: Summary) -> str:
    p = summary.payload
    headline = p.get("headline") if isinstance(p.get("headline"), dict) else {}
    assert isinstance(headline, dict)
    status = str(p.get("run_status", "unknown"))
    runs = p.get("runs") if isinstance(p.get("runs"), list) else []
    assert isinstance(runs, list)
    status_text = status if len(runs) <= 1 else f"{status} (rendered {len(runs)} times)"
    href = f"{quote(summary.folder)}/index.html"
    cells = [
        f'<td><a href="{esc(href)}">{esc(p.get("as_of", summary.folder))}</a></td>',
        f'<td class="status-{esc(status)}">{esc(status_text)}</td>',
        *(f"<td>{esc(headline.get(key, ''))}</td>" for key, _ in INDEX_COLUMNS),
        f"<td>{esc(p.get('generated_at', ''))}</td>",
        f"<td>{esc(p.get('run_id') or '')}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


STATEMENT_MANIFEST = "manifest.json"


def _statements_table(reports_dir: Path) -> str:
    """Period statements (``statements/*/manifest.json``), newest period first."""
    found = []
    for path in (reports_dir / "statements").glob(f"*/{STATEMENT_MANIFEST}"):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s (delete or fix the file)", path, exc)
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("period"), dict):
            found.append((path.parent.name, manifest))
    if not found:
        return ""
    found.sort(
        key=lambda item: (str(item[1]["period"].get("to")), str(item[1]["period"].get("from")),
                          int(item[1].get("version") or 0)),
        reverse=True,
    )  # fmt: skip
    rows = "".join(
        "<tr>"
        f'<td><a href="statements/{esc(quote(folder))}/index.html">{esc(m.get("title", folder))}'
        "</a></td>"
        f"<td>{esc(m['period'].get('from', ''))}</td><td>{esc(m['period'].get('to', ''))}</td>"
        f"<td>{esc(m.get('version', ''))}</td><td>{esc(m.get('figures_moved', 0))}</td>"
        f'<td><a href="statements/{esc(quote(folder))}/statement.pdf">PDF</a></td>'
        f"<td>{esc(m.get('generated_at', ''))}</td></tr>"
        for folder, m in found
    )
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in ("Statement", "From", "To", "Version", "Figures moved", "PDF", "Made (UTC)")
    )
    return (
        '<h2 id="statements">Period statements</h2><div class="table-wrap"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render_index(reports_dir: Path) -> Path:
    """Rebuild ``reports_dir/index.html`` listing every report folder, newest first."""
    summaries = collect_summaries(reports_dir)
    rows = "".join(_index_row(s) for s in summaries)
    head = "".join(
        f'<th scope="col">{esc(h)}</th>'
        for h in (
            "As of",
            "Run status",
            *(title for _, title in INDEX_COLUMNS),
            "Generated (UTC)",
            "Run id",
        )
    )
    css = files("circulate.report").joinpath("assets/report.css").read_text(encoding="utf-8")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>circulate reports</title><style>{css}</style></head>\n<body><main>"
        "<h1>circulate reports</h1>"
        f'<p class="meta">{len(summaries)} report(s), newest first. Amounts are in units of '
        "the local currency.</p>"
        '<div class="table-wrap"><table><thead><tr>'
        f"{head}</tr></thead><tbody>{rows}</tbody></table></div>"
        f"{_statements_table(reports_dir)}</main></body></html>\n"
    )
    path = reports_dir / "index.html"
    write_atomic(path, page)
    return path
