"""Plain-text lines describing what ingestion did to each file (for ``circulate ingest``)."""

from __future__ import annotations

from collections.abc import Sequence

from circulate.ingest.canonical import FileResult


def file_line(result: FileResult, top: int = 3) -> str:
    """One line: rows in, loaded, duplicates, quarantined with the top reasons.

    >>> r = FileResult("exports/a.csv", "transactions", "x", 5, 2, 1, 2,
    ...                reasons={"unparseable amount": 1, "wrong number of fields": 1})
    >>> head, reasons = file_line(r).split(" (")
    >>> head
    'exports/a.csv: 5 rows in, 2 loaded, 1 duplicates, 2 quarantined'
    >>> reasons
    '1 unparseable amount, 1 wrong number of fields)'
    >>> file_line(FileResult("b.csv.gz", "transactions", "y", status="rejected",
    ...                      message="b.csv.gz is empty (0 bytes)"))
    'b.csv.gz: REJECTED — b.csv.gz is empty (0 bytes)'
    """
    if result.status == "rejected":
        return f"{result.file_name}: REJECTED — {result.message}"
    if result.status == "set_aside":
        return f"{result.file_name}: SET ASIDE, not loaded — {result.message}"
    reasons = ", ".join(f"{n:,} {r}" for r, n in list(result.reasons.items())[:top])
    extras = []
    if result.redactions:
        extras.append(f"{result.redactions:,} personal details redacted")
    if result.message:
        extras.append(result.message)
    if result.new_version:
        extras.append("new version of a file loaded before")
    return (
        f"{result.file_name}: {result.rows_in:,} rows in, {result.rows_loaded:,} loaded, "
        f"{result.rows_duplicate:,} duplicates, {result.rows_quarantined:,} quarantined"
        + (f" ({reasons})" if reasons else "")
        + "".join(f" [{e}]" for e in extras)
    )


def file_lines(results: Sequence[FileResult]) -> list[str]:
    """One :func:`file_line` per file, in load order."""
    return [file_line(r) for r in results]
