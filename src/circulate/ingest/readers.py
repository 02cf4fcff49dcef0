"""Read one export file into DuckDB as text, keeping every row's place in the file.

Supported: delimited text (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz``) with the
delimiter sniffed from the header among ``, ; | TAB``; Parquet (``.parquet``); JSON Lines
(``.jsonl``, ``.ndjson``). Files are parsed by DuckDB, never row by row in Python.

Every reader leaves two temp tables on the connection:

``incoming_raw``
    ``source_line`` (BIGINT) and one VARCHAR column per field, names lower-cased.
    ``source_line`` is the record's line for CSV (header = line 1; a quoted newline does
    not start a new record), the physical line for JSON Lines and the 1-based row number
    for Parquet.
``read_rejects``
    ``source_line``, ``reason``, ``raw_text``: records the parser could not split into
    the header's fields (ragged lines, bad quoting, invalid JSON). They are quarantined
    by the caller, so ``rows_in`` = rows of ``incoming_raw`` + rows of ``read_rejects``.

Encoding: UTF-8 with or without a byte-order mark. A file that is not valid UTF-8 is
decoded as Latin-1 (every byte is a character, so nothing is lost) and the file's
manifest message says so; UTF-16 and binary files are rejected whole.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
PARQUET_SUFFIXES = (".parquet",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES
DELIMITERS = (",", ";", "|", "\t")
_SAMPLE_BYTES = 1 << 16
# Longest record accepted (bytes); longer ones are quarantined, not fatal.
MAX_LINE_BYTES = 1 << 20


class UnreadableFile(Exception):
    """The file cannot be read at all; the message says why and what to do."""


@dataclass(frozen=True)
class ReadInfo:
    """How a file was read: format, delimiter, encoding, and a note for the manifest."""

    file_format: str
    delimiter: str | None = None
    encoding: str = "utf-8"
    note: str = ""


def is_supported(name: str) -> bool:
    """Whether a file name has a suffix the readers handle.

    >>> is_supported("2025-01-01.csv.gz"), is_supported("notes.pdf")
    (True, False)
    """
    return name.lower().endswith(SUPPORTED_SUFFIXES)


def sniff_delimiter(header: str) -> str:
    """The candidate delimiter that occurs most often in the header line (``,`` on a tie).

    >>> sniff_delimiter("a;b;c"), sniff_delimiter("a|b"), sniff_delimiter("a\\tb,c\\td")
    (';', '|', '\\t')
    >>> sniff_delimiter("single")
    ','
    """
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _check_bytes(path: Path) -> tuple[str, str, int]:
    """Scan the (decompressed) bytes once: return (encoding, first line, count of ``"``).

    Raises UnreadableFile for empty, binary, UTF-16 or corrupt compressed files.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    head = b""
    total = 0
    quotes = 0
    utf8 = True
    try:
        with (
            gzip.open(path, "rb")
            if path.name.lower().endswith(".gz")
            else open(path, "rb") as handle
        ):
            while block := handle.read(1 << 20):
                if total == 0 and block[:2] in (b"\xff\xfe", b"\xfe\xff"):
                    raise UnreadableFile(
                        "is UTF-16 encoded; export it as UTF-8 (or Latin-1) CSV and send it again"
                    )
                if total < _SAMPLE_BYTES:
                    head += block[: _SAMPLE_BYTES - total]
                    if b"\x00" in head:
                        raise UnreadableFile(
                            "contains NUL bytes, so it is a binary file, not a text export; "
                            "check the file name and send the CSV itself"
                        )
                total += len(block)
                quotes += block.count(b'"')
                if utf8:
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError:
                        utf8 = False
            if utf8:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    utf8 = False
    except (OSError, EOFError, zlib.error) as error:
        raise UnreadableFile(
            f"is a damaged or truncated compressed file ({type(error).__name__}: {error}); "
            "send the export again"
        ) from error
    if total == 0:
        raise UnreadableFile("is empty (0 bytes); send the export again with its header row")
    encoding = "utf-8" if utf8 else "latin-1"
    head = head.removeprefix(codecs.BOM_UTF8)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise UnreadableFile("has no header row (the first line is blank); add the header")
    return encoding, first, quotes


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("incoming_raw", "read_rejects", "reject_errors", "reject_scans"):
        con.execute(f"drop table if exists {table}")


def _normalised_names(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    names = [row[0] for row in con.execute(f"describe {table}").fetchall()]
    out: list[tuple[str, str]] = []
    taken: set[str] = set()
    for name in names:
        clean = name.strip().lstrip("\ufeff").strip().lower() or "column"
        while clean in taken or clean == "source_line":
            clean += "_"
        taken.add(clean)
        out.append((name, clean))
    return out


def quote_identifier(name: str) -> str:
    """A DuckDB identifier, quoted so any column name from a file is safe.

    >>> quote_identifier('we"ird')
    '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path) -> ReadInfo:
    encoding, header, quotes = _check_bytes(path)
    delimiter = sniff_delimiter(header)
    # The column list comes from the header alone; DuckDB then checks every record.
    fields = next(csv.reader(io.StringIO(header), delimiter=delimiter), [])
    if not fields:
        raise UnreadableFile("has no header row; add the header")
    columns: dict[str, str] = {}
    for index, field_name in enumerate(fields):
        clean = field_name.strip().lstrip("\ufeff").strip().lower() or f"column_{index + 1}"
        while clean in columns or clean == "source_line":  # source_line is ours
            clean += "_"
        columns[clean] = "VARCHAR"
    try:
        # Single-threaded so row_number() follows the file; fixed up below for rejects.
        con.execute(
            "create temp table incoming_raw as select "
            "(row_number() over () + 1)::bigint as source_line, * "
            "from read_csv($path, delim = $delim, quote = '\"', escape = '\"', "
            "header = true, columns = $columns, store_rejects = true, parallel = false, "
            "encoding = $encoding, max_line_size = $max_line_size, auto_detect = false, "
            "null_padding = false)",
            {
                "path": str(path),
                "delim": delimiter,
                "columns": columns,
                "encoding": encoding,
                "max_line_size": MAX_LINE_BYTES,
            },
        )
    except duckdb.Error as error:
        raise UnreadableFile(
            f"could not be parsed as delimited text ({str(error).splitlines()[0]}); check it "
            "is a complete CSV export and send it again"
        ) from error
    con.execute(
        """
        create temp table read_rejects as
        select line::bigint as source_line,
            case when bool_or(error_type in ('MISSING COLUMNS', 'TOO MANY COLUMNS'))
                then 'wrong number of fields'
                when bool_or(error_type = 'LINE SIZE OVER MAXIMUM')
                then 'line longer than the limit'
                else 'unparseable line (' || lower(min(error_type)) || ')'
            end as reason,
            min(csv_line) as raw_text
        from reject_errors group by line
        """
    )
    counted = con.execute(
        "select (select count(*) from incoming_raw), (select count(*) from read_rejects)"
    ).fetchone()
    accepted, rejected = (int(counted[0]), int(counted[1])) if counted else (0, 0)
    total = accepted + rejected
    if rejected:
        # Accepted records fill, in order, the record lines the parser did not reject.
        con.execute(
            """
            update incoming_raw set source_line = slots.line
            from (
                select line, row_number() over (order by line) + 1 as ordinal
                from range(2, $last + 1) as lines(line)
                where line not in (select source_line from read_rejects)
            ) as slots
            where incoming_raw.source_line = slots.ordinal
            """,
            {"last": total + 1},
        )
    if quotes % 2:
        _unterminated_tail(con, path, encoding, total)
    note = "" if encoding == "utf-8" else "not valid UTF-8: decoded as Latin-1"
    return ReadInfo("csv", delimiter, encoding, note)


def _unterminated_tail(
    con: duckdb.DuckDBPyConnection, path: Path, encoding: str, records: int
) -> None:
    """Account for lines DuckDB drops silently after an unterminated quote.

    With an odd number of ``"`` a field may open and never close; DuckDB then ends the
    scan without an error and without the rest of the file. The non-blank lines of the
    file, less the lines the parsed records span, are the dropped ones: each of those
    last lines is quarantined, numbered after the records that were read. Only such
    files (odd quote count) are read into Python, once, whole.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        text = handle.read().decode(encoding).lstrip("\ufeff")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()][1:]
    columns = [
        quote_identifier(row[0])
        for row in con.execute("describe incoming_raw").fetchall()
        if row[0] != "source_line"
    ]
    newlines = " + ".join(
        f"coalesce(sum(len({c}) - len(replace({c}, chr(10), ''))), 0)" for c in columns
    )
    spanned = con.execute(
        f"select (select {newlines or '0'} from incoming_raw) + (select coalesce(sum("  # noqa: S608
        "len(raw_text) - len(replace(raw_text, chr(10), ''))), 0) from read_rejects)"
    ).fetchone()
    dropped = len(lines) - records - int(spanned[0] if spanned else 0)
    if dropped <= 0:
        return
    con.executemany(
        "insert into read_rejects values (?, ?, ?)",
        [
            (records + 2 + offset, "unterminated quote (line not split into fields)", line)
            for offset, line in enumerate(lines[-dropped:])
        ],
    )


def _read_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> ReadInfo:
    try:
        con.execute(
            "create temp table scanned as select * from read_parquet($path, "
            "file_row_number = true)",
            {"path": str(path)},
        )
    except duckdb.Error as error:
        raise UnreadableFile(
            f"could not be read as Parquet ({str(error).splitlines()[0]}); send it again"
        ) from error
    selected = [
        f"cast({quote_identifier(old)} as varchar) as {quote_identifier(new)}"
        for old, new in _normalised_names(con, "scanned")
        if old != "file_row_number"
    ]
    con.execute(
        f"create temp table incoming_raw as select file_row_number + 1 as source_line, "  # noqa: S608
        f"{', '.join(selected)} from scanned order by source_line"
    )
    con.execute(
        "create temp table read_rejects as select null::bigint as source_line, "
        "null::varchar as reason, null::varchar as raw_text where false"
    )
    con.execute("drop table scanned")
    return ReadInfo("parquet")


def _read_jsonl(con: duckdb.DuckDBPyConnection, path: Path) -> ReadInfo:
    encoding, _first, _quotes = _check_bytes(path)
    if encoding != "utf-8":
        raise UnreadableFile("is not valid UTF-8, as JSON requires; export it again as UTF-8")
    try:
        con.execute(
            """
            create temp table scanned as
            with split as (
                select string_split(replace(content, chr(13), ''), chr(10)) as lines
                from read_text($path)
            )
            select unnest(range(1, len(lines) + 1))::bigint as source_line,
                   unnest(lines) as line
            from split
            """,
            {"path": str(path)},
        )
    except duckdb.Error as error:
        raise UnreadableFile(
            f"could not be read as JSON Lines ({str(error).splitlines()[0]}); send it again"
        ) from error
    con.execute("delete from scanned where trim(line) = ''")
    con.execute(
        """
        create temp table read_rejects as
        select source_line, 'not a JSON object' as reason, line as raw_text
        from scanned
        where not coalesce(json_valid(line), false) or json_type(line) <> 'OBJECT'
        """
    )
    con.execute("delete from scanned where source_line in (select source_line from read_rejects)")
    keys = [
        row[0]
        for row in con.execute(
            "select k from (select unnest(json_keys(line)) as k, source_line from scanned) "
            "group by k order by min(source_line), k"
        ).fetchall()
    ]
    selected: list[str] = []
    parameters: dict[str, str] = {}
    taken: set[str] = set()
    for index, key in enumerate(keys):
        clean = key.strip().lower() or f"column_{index + 1}"
        while clean in taken or clean == "source_line":
            clean += "_"
        taken.add(clean)
        parameters[f"k{index}"] = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        selected.append(f"json_extract_string(line, $k{index}) as {quote_identifier(clean)}")
    con.execute(
        "create temp table incoming_raw as select source_line"  # noqa: S608
        + "".join(", " + s for s in selected)
        + " from scanned order by source_line",
        parameters,
    )
    con.execute("drop table scanned")
    return ReadInfo("jsonl")


def read_file(con: duckdb.DuckDBPyConnection, path: Path) -> ReadInfo:
    """Read ``path`` into the temp tables ``incoming_raw`` and ``read_rejects``.

    Raises
    ------
    UnreadableFile
        When nothing of the file can be read; the message names the fix.
    """
    _drop_temp(con)
    con.execute("drop table if exists scanned")
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return _read_parquet(con, path)
    if name.endswith(JSONL_SUFFIXES):
        return _read_jsonl(con, path)
    return _read_csv(con, path)
