"""Where pulls left off: ``pulls.jsonl`` beside the warehouse, copied into ``audit.pulls``.

A pull runs before the night's build exists (and also alone, from ``circulate pull``), so
its record cannot wait for a published snapshot: each pull appends one line to
``pulls.jsonl`` beside the warehouse, as runs do to ``runs.jsonl``, and every publish
replaces ``audit.pulls`` with that log. The next pull starts at the end of the last
successful window for the same base URL: from the log, else from the published
``audit.pulls`` (a warehouse restored without its log). Lines hold the base URL, never a
credential.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from circulate.errors import InputError
from circulate.warehouse.connection import connect, table_exists

PULL_LOG = "pulls.jsonl"


def pull_log_path(warehouse: Path) -> Path:
    """``pulls.jsonl`` beside the published warehouse file."""
    return warehouse.with_name(PULL_LOG)


@dataclass(frozen=True)
class PullRecord:
    """One pull: its window, what it fetched and wrote, and how it ended.

    ``window_begin`` and ``window_end`` are local midnights (ISO with offset): the pull
    covers the local days from the first up to, not including, the second.
    """

    pull_id: str
    platform: str
    base_url: str
    started_at: str
    finished_at: str
    status: str
    window_begin: str
    window_end: str
    transfers: int = 0
    pages: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    message: str = ""


def append_pull(path: Path, record: PullRecord) -> None:
    """Add one pull's line to the log (created with its folder when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(record), sort_keys=True) + "\n")


def read_pulls(path: Path) -> list[PullRecord]:
    """Every pull in the log, oldest first; none when there is no log.

    Raises
    ------
    InputError
        A line that is not a pull record, named by line.
    """
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(PullRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise InputError(
                f"{path} line {number} is not a pull record ({error}); restore the file "
                "from a backup or delete that line (the next pull then needs --since)"
            ) from error
    return records


def last_pulled_until(log: Path, warehouse: Path, base_url: str) -> datetime | None:
    """End of the last successful pull's window from ``base_url``, or None when none is on
    record (in the log, else in the published warehouse's ``audit.pulls``)."""
    ends = [
        datetime.fromisoformat(r.window_end)
        for r in read_pulls(log)
        if r.status == "success" and r.base_url == base_url
    ]
    if ends:
        return max(ends)
    if not warehouse.exists():
        return None
    con = connect(warehouse, read_only=True)
    try:
        if not table_exists(con, "audit.pulls"):
            return None
        row = con.execute(
            "select max(window_end) from audit.pulls where status = 'success' and base_url = ?",
            [base_url],
        ).fetchone()
    finally:
        con.close()
    return row[0] if row and row[0] is not None else None


def copy_pulls(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Replace ``audit.pulls`` with the log (every pull, failed ones included)."""
    records = read_pulls(path)
    con.execute("delete from audit.pulls")
    if records:
        con.executemany(
            "insert into audit.pulls (pull_id, platform, base_url, started_at, finished_at, "
            "status, window_begin, window_end, transfers, pages, files_written, "
            "files_unchanged, message) values (?, ?, ?, ?::timestamptz, ?::timestamptz, ?, "
            "?::timestamptz, ?::timestamptz, ?, ?, ?, ?, nullif(?, ''))",
            [
                (
                    r.pull_id,
                    r.platform,
                    r.base_url,
                    r.started_at,
                    r.finished_at,
                    r.status,
                    r.window_begin,
                    r.window_end,
                    r.transfers,
                    r.pages,
                    r.files_written,
                    r.files_unchanged,
                    r.message,
                )
                for r in records
            ],
        )
