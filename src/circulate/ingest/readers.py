"""Read export files into DuckDB as text, keeping every row's file and place in it.

Supported: delimited text (``.csv``, ``.tsv``, ``.txt``, each optionally ``.gz``) with the
delimiter sniffed from the header among ``, ; | TAB``; Parquet (``.parquet``); JSON Lines
(``.jsonl``, ``.ndjson``). Files are parsed by DuckDB, never row by row in Python, and
delimited files that share a header, delimiter and encoding are parsed together in one
statement (a night's daily exports usually all do), which is what makes a year of daily
files load in seconds rather than minutes.

:func:`read_files` leaves two temp tables on the connection:

``incoming_raw``
    ``file_index`` (INTEGER, the file's position in the list read), ``source_line``
    (BIGINT) and one VARCHAR column per field of any file read, names lower-cased (a
    file lacking a field another file has gets NULL there; :attr:`ReadInfo.columns` says
    which fields each file really has). ``source_line`` is the record's line for CSV
    (header = line 1; a quoted newline does not start a new record), the physical line
    for JSON Lines and the 1-based row number for Parquet.
``read_rejects``
    ``file_index``, ``source_line``, ``reason``, ``raw_text``: records the parser could
    not split into the header's fields (ragged lines, bad quoting, invalid JSON). They
    are quarantined by the caller, so a file's ``rows_in`` = its rows of
    ``incoming_raw`` + its rows of ``read_rejects``.

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
from collections.abc import Sequence
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
    #: The file's own field names as read (lower-cased, de-duplicated), in file order.
    columns: tuple[str, ...] = ()


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


# Columns the readers add; a file's field of the same name gets a trailing "_".
_RESERVED = ("source_line", "file_index", "source_path")
_NO_REJECTS = (
    "select null::integer as file_index, null::bigint as source_line, "
    "null::varchar as reason, null::varchar as raw_text where false"
)


def quote_identifier(name: str) -> str:
    """A DuckDB identifier, quoted so any column name from a file is safe.

    >>> quote_identifier('we"ird')
    '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'


def field_names(names: Sequence[str]) -> list[str]:
    """A file's field names as columns: stripped, lower-cased, unique, never reserved.

    >>> field_names([" TXN_ID ", "amount", "Amount", "", "source_line"])
    ['txn_id', 'amount', 'amount_', 'column_4', 'source_line_']
    """
    out: list[str] = []
    for index, name in enumerate(names):
        clean = name.strip().lstrip("\ufeff").strip().lower() or f"column_{index + 1}"
        while clean in out or clean in _RESERVED:
            clean += "_"
        out.append(clean)
    return out


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    for table in tables:
        con.execute(f"drop table if exists {table}")


@dataclass(frozen=True)
class _CsvPlan:
    """What reading one delimited file needs, learned from its bytes and header."""

    file_index: int
    path: Path
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    odd_quotes: bool

    @property
    def parse_options(self) -> tuple[str, str, tuple[str, ...]]:
        """Files with equal options can be parsed by one ``read_csv`` call."""
        return (self.encoding, self.delimiter, self.columns)

    @property
    def info(self) -> ReadInfo:
        note = "" if self.encoding == "utf-8" else "not valid UTF-8: decoded as Latin-1"
        return ReadInfo("csv", self.delimiter, self.encoding, note, self.columns)


def _plan_csv(file_index: int, path: Path) -> _CsvPlan:
    encoding, header, quotes = _check_bytes(path)
    delimiter = sniff_delimiter(header)
    # The column list comes from the header alone; DuckDB then checks every record.
    fields = next(csv.reader(io.StringIO(header), delimiter=delimiter), [])
    if not fields:
        raise UnreadableFile("has no header row; add the header")
    return _CsvPlan(
        file_index, path, encoding, delimiter, tuple(field_names(fields)), bool(quotes % 2)
    )


# Single-threaded per file, so the row number follows each file; rows of one file come
# out together and in list order (checked after the scan, fixed up below for rejects).
# DuckDB reports each row's file name as it was given; a row whose name does not match
# keeps a NULL file_index and the scan is not used (see _rows_kept_together).
_CSV_SCAN = """
create temp table {part} as
with scan as (
    select row_number() over () as source_line, *
    from read_csv($paths, delim = $delim, quote = '"', escape = '"', header = true,
        columns = $columns, store_rejects = true, parallel = false, encoding = $encoding,
        max_line_size = $max_line_size, auto_detect = false, null_padding = false,
        filename = 'source_path')
),
files as (select unnest($paths) as source_path, unnest($indexes)::integer as file_index)
select
    files.file_index,
    (scan.source_line - min(scan.source_line) over (partition by files.file_index) + 2)::bigint
        as source_line,
    {fields}
from scan
left join files using (source_path)
"""

_CSV_REJECTS = """
create temp table {part}_rejects as
with files as (select unnest($paths) as source_path, unnest($indexes)::integer as file_index)
select
    files.file_index,
    errors.line::bigint as source_line,
    case when bool_or(errors.error_type in ('MISSING COLUMNS', 'TOO MANY COLUMNS'))
        then 'wrong number of fields'
        when bool_or(errors.error_type = 'LINE SIZE OVER MAXIMUM')
        then 'line longer than the limit'
        else 'unparseable line (' || lower(min(errors.error_type)) || ')'
    end as reason,
    min(errors.csv_line) as raw_text
from reject_errors as errors
join reject_scans as scans on scans.scan_id = errors.scan_id and scans.file_id = errors.file_id
left join files on files.source_path = scans.file_path
group by files.file_index, errors.line
"""

# Accepted records fill, in order, the record lines of their file the parser did not reject.
_CSV_LINES_AFTER_REJECTS = """
update {part} set source_line = slots.line
from (
    select
        lines.file_index,
        lines.line,
        row_number() over (partition by lines.file_index order by lines.line) + 1 as ordinal
    from (
        select file_index, unnest(range(2, count(*) + 2)) as line
        from (
            select file_index from {part}
            union all
            select file_index from {part}_rejects
        )
        where file_index in (select file_index from {part}_rejects)
        group by file_index
    ) as lines
    where not exists (
        select 1 from {part}_rejects as rejected
        where rejected.file_index = lines.file_index and rejected.source_line = lines.line
    )
) as slots
where {part}.file_index = slots.file_index and {part}.source_line = slots.ordinal
"""


def _rows_kept_together(con: duckdb.DuckDBPyConnection, part: str) -> bool:
    """Whether every row of ``part`` has its file and each file's rows are numbered 2, 3, …
    without a gap (so they came out of the scan together and in order)."""
    gaps = con.execute(
        f"select count(*) from (select file_index from {part} group by file_index "  # noqa: S608
        "having file_index is null or max(source_line) - 1 <> count(*))"
    ).fetchone()
    return gaps is not None and gaps[0] == 0


def _read_csv_group(con: duckdb.DuckDBPyConnection, plans: Sequence[_CsvPlan], part: str) -> bool:
    """Parse files with the same options in one statement into ``part``, ``part_rejects``.

    Returns False (and leaves no table) when the scan did not keep each file's rows
    together or lost track of which file a row came from; the caller then reads the
    files one by one.

    Raises
    ------
    duckdb.Error
        When DuckDB cannot parse one of the files at all.
    UnreadableFile
        When even a file read alone does not come back as its own rows.
    """
    first = plans[0]
    parameters = {
        "paths": [str(plan.path) for plan in plans],
        "indexes": [plan.file_index for plan in plans],
    }
    _drop(con, "reject_errors", "reject_scans")
    con.execute(
        # Field names are quoted identifiers; every value is a bound parameter.
        _CSV_SCAN.format(part=part, fields=", ".join(quote_identifier(c) for c in first.columns)),
        {
            **parameters,
            "delim": first.delimiter,
            "columns": dict.fromkeys(first.columns, "VARCHAR"),
            "encoding": first.encoding,
            "max_line_size": MAX_LINE_BYTES,
        },
    )
    if not _rows_kept_together(con, part):
        _drop(con, part)
        if len(plans) > 1:
            return False
        raise UnreadableFile(
            "was read, but DuckDB did not report its rows as coming from it; rename the "
            "file to plain ASCII characters and send it again"
        )
    con.execute(_CSV_REJECTS.format(part=part), parameters)
    unmatched = con.execute(
        f"select count(*) from {part}_rejects where file_index is null"  # noqa: S608
    ).fetchone()
    if unmatched and unmatched[0]:
        _drop(con, part, f"{part}_rejects")
        if len(plans) > 1:
            return False
        raise UnreadableFile(
            "was read, but DuckDB did not report its unreadable lines as coming from it; "
            "rename the file to plain ASCII characters and send it again"
        )
    rejected = con.execute(f"select count(*) from {part}_rejects").fetchone()  # noqa: S608
    if rejected and rejected[0]:
        con.execute(_CSV_LINES_AFTER_REJECTS.format(part=part))
    if first.odd_quotes:
        _unterminated_tail(con, first, part)
    return True


def _unterminated_tail(con: duckdb.DuckDBPyConnection, plan: _CsvPlan, part: str) -> None:
    """Account for lines DuckDB drops silently after an unterminated quote.

    With an odd number of ``"`` a field may open and never close; DuckDB then ends the
    scan without an error and without the rest of the file. The non-blank lines of the
    file, less the lines the parsed records span, are the dropped ones: each of those
    last lines is quarantined, numbered after the records that were read. Only such
    files (odd quote count, always read alone) are read into Python, once, whole.
    """
    opener = gzip.open if plan.path.name.lower().endswith(".gz") else open
    with opener(plan.path, "rb") as handle:
        text = handle.read().decode(plan.encoding).lstrip("\ufeff")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()][1:]
    columns = [quote_identifier(c) for c in plan.columns]
    newlines = " + ".join(
        f"coalesce(sum(len({c}) - len(replace({c}, chr(10), ''))), 0)" for c in columns
    )
    counted = con.execute(
        f"select (select count(*) from {part}) + (select count(*) from {part}_rejects), "  # noqa: S608
        f"(select {newlines or '0'} from {part}) + (select coalesce(sum("
        f"len(raw_text) - len(replace(raw_text, chr(10), ''))), 0) from {part}_rejects)"
    ).fetchone()
    records, spanned = (int(counted[0]), int(counted[1])) if counted else (0, 0)
    dropped = len(lines) - records - spanned
    if dropped <= 0:
        return
    con.executemany(
        f"insert into {part}_rejects values (?, ?, ?, ?)",  # noqa: S608
        [
            (
                plan.file_index,
                records + 2 + offset,
                "unterminated quote (line not split into fields)",
                line,
            )
            for offset, line in enumerate(lines[-dropped:])
        ],
    )


def _read_parquet(
    con: duckdb.DuckDBPyConnection, file_index: int, path: Path, part: str
) -> ReadInfo:
    _drop(con, "scanned")
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
    names = [
        row[0] for row in con.execute("describe scanned").fetchall() if row[0] != "file_row_number"
    ]
    clean = field_names(names)
    selected = [
        f"cast({quote_identifier(old)} as varchar) as {quote_identifier(new)}"
        for old, new in zip(names, clean, strict=True)
    ]
    con.execute(
        f"create temp table {part} as select $file_index::integer as file_index, "  # noqa: S608
        f"file_row_number + 1 as source_line{''.join(', ' + s for s in selected)} "
        "from scanned order by source_line",
        {"file_index": file_index},
    )
    con.execute(f"create temp table {part}_rejects as {_NO_REJECTS}")
    _drop(con, "scanned")
    return ReadInfo("parquet", columns=tuple(clean))


def _read_jsonl(con: duckdb.DuckDBPyConnection, file_index: int, path: Path, part: str) -> ReadInfo:
    encoding, _first, _quotes = _check_bytes(path)
    if encoding != "utf-8":
        raise UnreadableFile("is not valid UTF-8, as JSON requires; export it again as UTF-8")
    _drop(con, "scanned")
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
        f"""
        create temp table {part}_rejects as
        select $file_index::integer as file_index, source_line,
            'not a JSON object' as reason, line as raw_text
        from scanned
        where not coalesce(json_valid(line), false) or json_type(line) <> 'OBJECT'
        """,  # noqa: S608
        {"file_index": file_index},
    )
    con.execute(
        f"delete from scanned where source_line in (select source_line from {part}_rejects)"  # noqa: S608
    )
    keys = [
        row[0]
        for row in con.execute(
            "select k from (select unnest(json_keys(line)) as k, source_line from scanned) "
            "group by k order by min(source_line), k"
        ).fetchall()
    ]
    clean = field_names(keys)
    selected: list[str] = []
    parameters: dict[str, str | int] = {"file_index": file_index}
    for index, (key, name) in enumerate(zip(keys, clean, strict=True)):
        parameters[f"k{index}"] = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        selected.append(f"json_extract_string(line, $k{index}) as {quote_identifier(name)}")
    con.execute(
        f"create temp table {part} as select $file_index::integer as file_index, "  # noqa: S608
        f"source_line{''.join(', ' + s for s in selected)} from scanned order by source_line",
        parameters,
    )
    _drop(con, "scanned")
    return ReadInfo("jsonl", columns=tuple(clean))


def _combine(con: duckdb.DuckDBPyConnection, parts: Sequence[str]) -> None:
    """Make ``incoming_raw`` and ``read_rejects`` the union (by column name) of the parts."""
    if not parts:
        con.execute("create temp table incoming_raw (file_index integer, source_line bigint)")
        con.execute(f"create temp table read_rejects as {_NO_REJECTS}")
        return
    if len(parts) == 1:
        con.execute(f"alter table {parts[0]} rename to incoming_raw")
        con.execute(f"alter table {parts[0]}_rejects rename to read_rejects")
        return
    # Part names are this module's own (read_part_<n>), never data.
    raw = " union all by name ".join(f"select * from {part}" for part in parts)  # noqa: S608
    rejects = " union all ".join(f"select * from {part}_rejects" for part in parts)  # noqa: S608
    con.execute(f"create temp table incoming_raw as {raw}")
    con.execute(f"create temp table read_rejects as {rejects}")
    _drop(con, *parts, *(f"{part}_rejects" for part in parts))


def _unreadable(error: duckdb.Error | UnreadableFile) -> UnreadableFile:
    if isinstance(error, UnreadableFile):
        return error
    return UnreadableFile(
        f"could not be parsed as delimited text ({str(error).splitlines()[0]}); check it "
        "is a complete CSV export and send it again"
    )


def read_files(
    con: duckdb.DuckDBPyConnection, paths: Sequence[Path]
) -> list[ReadInfo | UnreadableFile]:
    """Read ``paths`` into the temp tables ``incoming_raw`` and ``read_rejects``.

    Returns
    -------
    list
        For each path, in order, how it was read or, when nothing of it can be read, an
        :class:`UnreadableFile` whose message names the fix; such a file has no rows.
    """
    _drop(con, "incoming_raw", "read_rejects", "reject_errors", "reject_scans")
    outcomes: list[ReadInfo | UnreadableFile] = []
    parts: list[str] = []
    # Delimited files by parse options; a file with an odd count of quotes goes alone.
    groups: dict[tuple[str, str, tuple[str, ...], int], list[_CsvPlan]] = {}

    def new_part() -> str:
        parts.append(f"read_part_{len(parts)}")
        _drop(con, parts[-1], f"{parts[-1]}_rejects")
        return parts[-1]

    def discard_part() -> None:
        part = parts.pop()
        _drop(con, part, f"{part}_rejects")

    for file_index, path in enumerate(paths):
        name = path.name.lower()
        try:
            if name.endswith(PARQUET_SUFFIXES + JSONL_SUFFIXES):
                reader = _read_parquet if name.endswith(PARQUET_SUFFIXES) else _read_jsonl
                part = new_part()
                try:
                    outcomes.append(reader(con, file_index, path, part))
                except UnreadableFile:
                    discard_part()
                    raise
            else:
                plan = _plan_csv(file_index, path)
                outcomes.append(plan.info)
                alone = file_index if plan.odd_quotes else -1  # its tail needs the file alone
                groups.setdefault((*plan.parse_options, alone), []).append(plan)
        except UnreadableFile as error:
            outcomes.append(error)
    for plans in groups.values():
        try:
            if _read_csv_group(con, plans, new_part()):
                continue
            discard_part()
        except (duckdb.Error, UnreadableFile) as error:
            discard_part()
            if len(plans) == 1:
                outcomes[plans[0].file_index] = _unreadable(error)
                continue
        for plan in plans:  # one at a time, to tell the unreadable file from the others
            try:
                _read_csv_group(con, [plan], new_part())
            except (duckdb.Error, UnreadableFile) as error:
                discard_part()
                outcomes[plan.file_index] = _unreadable(error)
    _combine(con, parts)
    return outcomes
