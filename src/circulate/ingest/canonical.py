"""Ingest export files: every row ends up loaded, a duplicate, or quarantined.

A folder holds transaction exports and optional account and area attributes, in the
canonical layout or another platform's (``scheme.toml``, see :mod:`.adapters`). The
manifest (``audit.files``) records each file's sha256, so a file already loaded is
skipped and a changed file with the same name is loaded as a new version. Files are
parsed by DuckDB (:mod:`.readers`), mapped to canonical text by SQL (:mod:`.adapters`),
redacted (:mod:`.privacy`) and classified inside DuckDB; Python only touches the
distinct account ids, to pseudonymise them.

Transaction exports are loaded in chunks of up to :data:`FILES_PER_CHUNK` files: one
read, one classification and one commit per chunk, with every row keeping its file and
line. The outcome is the same as loading the files one at a time in name order: a row
re-sent in a later file is a duplicate (or a conflict) of the one an earlier file loaded.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from circulate.errors import InputError
from circulate.ingest.adapters import (
    SchemeMap,
    canonical_select,
    discover,
    load_scheme_map,
    required_columns,
)
from circulate.ingest.privacy import redaction_sql
from circulate.ingest.pseudonym import pseudonymise
from circulate.ingest.readers import ReadInfo, UnreadableFile, quote_identifier, read_files

#: Transaction files loaded together in one transaction. A chunk never spans a multiple
#: of this in the run's list of new files, so progress lines stay at 50, 100, … files.
FILES_PER_CHUNK = 50
#: A chunk also stops before its files would exceed this many bytes on disk (memory).
CHUNK_BYTES = 256 << 20
TRANSACTION_COLUMNS = ("txn_id", "occurred_at", "source_id", "target_id", "amount", "kind")
KINDS = ("issuance", "transfer", "redemption", "fee", "reversal")
ACCOUNT_TYPES = ("individual", "business", "public_body", "issuer")
#: The quarantine reason of a row whose txn_id was loaded before with other content;
#: validation and ``circulate review`` find conflicts by it.
CONFLICT_REASON = "txn_id already used with different content"
_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
# Free text that may carry personal data, per role; ids and amounts are never free text.
_FREE_TEXT = {
    "transactions": ("channel", "memo"),
    "accounts": ("sector", "area"),
    "areas": ("area",),
}


@dataclass
class FileResult:
    """What happened to one input file."""

    file_name: str
    role: str
    sha256: str
    rows_in: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    status: str = "loaded"
    message: str = ""
    reasons: dict[str, int] = field(default_factory=dict)
    new_version: bool = False
    redactions: int = 0
    file_format: str = ""
    adapter: str = "canonical"

    def check_accounting(self) -> None:
        """Raise unless rows_in = loaded + duplicates + quarantined."""
        accounted = self.rows_loaded + self.rows_duplicate + self.rows_quarantined
        if self.status != "rejected" and accounted != self.rows_in:
            raise AssertionError(
                f"{self.file_name}: {self.rows_in} rows in but {accounted} accounted for "
                f"({self.rows_loaded} loaded, {self.rows_duplicate} duplicates, "
                f"{self.rows_quarantined} quarantined)"
            )


@dataclass(frozen=True)
class SetAside:
    """An export an operator set aside (``circulate set-aside``): never loaded.

    Attributes
    ----------
    file_name
        Where it was in the input folder (relative path).
    role
        ``transactions``, ``accounts`` or ``areas``.
    note
        Who set it aside, when and why, in words (the manifest's message).
    """

    file_name: str
    role: str
    note: str


@dataclass(frozen=True)
class IngestContext:
    """Everything ingestion needs besides the connection."""

    inbox: Path
    run_id: str
    batch_id: str
    key: bytes
    timezone: str
    private_dir: Path
    future_tolerance: timedelta = timedelta(hours=24)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Load only transaction files whose name carries a day in this range (a backfill).
    export_days: tuple[date, date] | None = None
    #: Files set aside by sha256: skipped under any name, listed once in the manifest.
    set_aside: Mapping[str, SetAside] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingFile:
    """A file of the inbox the manifest has not seen (in this version)."""

    path: Path
    role: str
    sha256: str
    new_version: bool = False


#: A file's hash is trusted from this many seconds after its last change (FileHashes).
SETTLE_SECONDS = 2


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class FileHashes:
    """The sha256 of inbox files, read again only when a file's stat changed.

    An archive of daily exports is mostly files a previous night hashed: hashing them
    all read the whole archive every night (2.3 s of a night at 10 M transactions).
    ``audit.file_hashes`` keeps each file's size, modification and status-change times
    (nanoseconds) with its hash and when the hashing started; a file keeps its hash while
    the three are unchanged. Writing a file changes both times, and tools that set the
    modification time back (``touch -d``, ``cp -p``) still change the status-change time.
    As in git's index, a hash taken less than :data:`SETTLE_SECONDS` after the file last
    changed is not trusted: the clock ticks that stamp a file are coarser than a
    nanosecond, so a rewrite just after hashing could leave the stat unchanged.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._known = {
            name: (size, modified, changed, sha, hashed_ns)
            for name, size, modified, changed, sha, hashed_ns in con.execute(
                "select file_name, size_bytes, modified_ns, changed_ns, sha256, "
                "epoch_ns(hashed_at) from audit.file_hashes"
            ).fetchall()
        }
        self._hashed: list[tuple[str, int, int, int, str, datetime]] = []

    def sha256(self, path: Path, name: str) -> str:
        """The hex sha256 of ``path`` (``name`` in the inbox)."""
        started = datetime.now(UTC)
        stat = path.stat()
        now = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        known = self._known.get(name)
        if (
            known is not None
            and known[:3] == now
            and stat.st_ctime_ns < known[4] - SETTLE_SECONDS * 1_000_000_000
        ):
            return str(known[3])
        sha = sha256_of(path)
        self._hashed.append((name, *now, sha, started))
        return sha

    def store(self) -> None:
        """Replace the rows of the files hashed since this was made."""
        if not self._hashed:
            return
        self._con.execute(
            "delete from audit.file_hashes where file_name in (select unnest($names))",
            {"names": [row[0] for row in self._hashed]},
        )
        # One statement for all rows: a statement per file took 0.3 s for a year's exports.
        columns = list(zip(*self._hashed, strict=True))
        self._con.execute(
            "insert into audit.file_hashes select unnest($name), unnest($size), "
            "unnest($modified), unnest($changed), unnest($sha), unnest($at)",
            dict(zip(("name", "size", "modified", "changed", "sha", "at"), columns, strict=True)),
        )
        self._hashed.clear()


def require_inbox(inbox: Path) -> None:
    """Raise a clear error when the input folder is missing."""
    if not inbox.is_dir():
        raise InputError(
            f"Input folder {inbox} does not exist: pass --input with the folder that holds "
            "the export files (for example data/inbox)."
        )


def discover_files(inbox: Path, scheme: SchemeMap | None = None) -> list[tuple[Path, str]]:
    """Input files in load order: attribute files first, then exports by name.

    Returns
    -------
    list of (path, role) where role is ``accounts``, ``areas`` or ``transactions``.
    """
    require_inbox(inbox)
    return discover(inbox, scheme or load_scheme_map(inbox))


def _loaded_versions(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """File name to the sha256 of every version read (set-aside files were not read)."""
    versions: dict[str, set[str]] = {}
    for name, sha in con.execute(
        "select file_name, sha256 from audit.files where status <> 'set_aside'"
    ).fetchall():
        versions.setdefault(name, set()).add(sha)
    return versions


def _set_aside_results(
    con: duckdb.DuckDBPyConnection,
    ctx: IngestContext,
    found: Sequence[tuple[str, str, str]],
) -> list[FileResult]:
    """Manifest rows (status ``set_aside``, no rows) for set-aside files not listed yet.

    ``found`` holds (name, role, sha256) of inbox files whose content is set aside: such
    a file is skipped, and said so once, under every name it arrives with. Each set-aside
    file is listed in the manifest too, so its export day counts as present.
    """
    listed = {
        (name, sha)
        for name, sha in con.execute(
            "select file_name, sha256 from audit.files where status = 'set_aside'"
        ).fetchall()
    }
    wanted = {(s.file_name, sha): (s.role, s.note) for sha, s in ctx.set_aside.items()}
    for name, role, sha in found:
        wanted[(name, sha)] = (
            role,
            f"{ctx.set_aside[sha].note}; arrived in the inbox again and was not loaded",
        )
    return [
        FileResult(file_name=name, role=role, sha256=sha, status="set_aside", message=note)
        for (name, sha), (role, note) in sorted(wanted.items())
        if (name, sha) not in listed
    ]


@dataclass(frozen=True)
class Incoming:
    """The chunk's rows as canonical text with free text redacted: SQL and its parameters.

    Used as the CTE ``incoming`` of the statements that read it, rather than stored as
    a table: each statement computes only the columns it needs, straight from
    ``incoming_raw``. Columns: see :mod:`.adapters`, plus ``redactions`` (hits per row).
    """

    sql: str
    params: dict[str, str]

    def statement(self, body: str) -> str:
        """``body`` (which may start with more CTEs) preceded by ``with incoming as (…)``."""
        return f"with incoming as ({self.sql}){body}"


def _pseudonym_table(
    con: duckdb.DuckDBPyConnection, incoming: Incoming, columns: tuple[str, ...], key: bytes
) -> None:
    """Make ``pseudonyms(raw_id, pseudonym)`` cover the distinct ids of ``incoming``.

    The temp table lives as long as the connection, so across the chunks of one run each
    id is hashed once (the HMAC is the only per-id Python work). A tag of the key keeps
    pseudonyms made under another key out.
    """
    # The table name carries a hash of the key (hex digits, never data).
    cache = "pseudonym_cache_" + hashlib.sha256(b"circulate-pseudonym-cache" + key).hexdigest()[:16]
    con.execute(f"create temp table if not exists {cache} (raw_id varchar, pseudonym varchar)")
    # Column names are this module's constants, never data.
    union = " union ".join(f"select {c} as raw_id from incoming" for c in columns)  # noqa: S608
    raw_ids = [
        row[0]
        for row in con.execute(
            incoming.statement(
                f" select raw_id from ({union}) where raw_id is not null "  # noqa: S608
                f"and raw_id not in (select raw_id from {cache})"
            ),
            incoming.params,
        ).fetchall()
    ]
    if raw_ids:
        mapping = pl.DataFrame(
            {"raw_id": raw_ids, "pseudonym": [pseudonymise(raw, key) for raw in raw_ids]},
            schema={"raw_id": pl.String, "pseudonym": pl.String},
        )
        con.register("new_pseudonyms", mapping)
        con.execute(f"insert into {cache} select * from new_pseudonyms")  # noqa: S608
        con.unregister("new_pseudonyms")
    con.execute(f"create or replace temp view pseudonyms as select * from {cache}")  # noqa: S608


def _private_folder(ctx: IngestContext) -> Path:
    folder = ctx.private_dir / "quarantine" / ctx.batch_id
    folder.mkdir(parents=True, exist_ok=True)
    for directory in (ctx.private_dir, ctx.private_dir / "quarantine", folder):
        os.chmod(directory, 0o700)
    return folder


def _quarantine_private_copies(
    con: duckdb.DuckDBPyConnection,
    ctx: IngestContext,
    results: Sequence[FileResult],
    readable: dict[int, ReadInfo],
) -> None:
    """Keep quarantined rows' raw text where only operators can read it, never published."""
    with_rows = [
        int(row[0])
        for row in con.execute(
            "select distinct file_index from classified where outcome = 'quarantined' order by 1"
        ).fetchall()
    ]
    for file_index in with_rows:
        safe_name = results[file_index].file_name.replace("/", "__")
        # The file's own fields only (other files of the chunk may have more).
        fields = "".join(", " + quote_identifier(c) for c in readable[file_index].columns)
        parsed = con.sql(
            f"select source_line{fields} from incoming_raw where file_index = $file and "  # noqa: S608
            "source_line in (select source_line from classified where file_index = $file "
            "and outcome = 'quarantined') order by 1",
            params={"file": file_index},
        ).pl()
        unparsed = con.sql(
            "select source_line, reason, raw_text from read_rejects where file_index = $file "
            "order by source_line",
            params={"file": file_index},
        ).pl()
        if parsed.height or unparsed.height:
            folder = _private_folder(ctx)
            if parsed.height:
                parsed.write_csv(folder / f"{safe_name}.csv")
            if unparsed.height:
                unparsed.write_csv(folder / f"{safe_name}.unparsed.csv")


# Follows ``with incoming as (…)``. The adapters give trimmed text, empty as NULL. Each
# row is checked on its own here; ids seen before are settled by _SETTLE_REPEATED_IDS.
_CLASSIFY_TRANSACTIONS = """,
parsed as (
    select
        file_index,
        source_line,
        adapter_problem,
        redactions,
        txn_id,
        source_id as source_raw,
        target_id as target_raw,
        occurred_at as occurred_text,
        amount as amount_text,
        lower(kind) as kind,
        channel,
        memo,
        try_cast(occurred_at as timestamptz) as occurred_at,
        try_cast(amount as decimal(18, 2)) as amount
    from incoming
),
checked as (
    select
        parsed.*,
        src.pseudonym as source_id,
        tgt.pseudonym as target_id,
        case
            when adapter_problem is not null then adapter_problem
            when txn_id is null then 'missing txn_id'
            when source_raw is null then 'missing source_id'
            when target_raw is null then 'missing target_id'
            when nullif(occurred_text, '') is null then 'missing occurred_at'
            when occurred_at is null then 'unparseable timestamp'
            when nullif(amount_text, '') is null then 'missing amount'
            when amount is null then 'unparseable amount'
            when amount <= 0 then 'amount not positive'
            when not regexp_full_match(amount_text, '[0-9]*(\\.[0-9]{0,2})?')
                then 'more than two decimal places'
            when kind is null
                or kind not in ('issuance', 'transfer', 'redemption', 'fee', 'reversal')
                then 'unknown kind'
            when source_raw = target_raw then 'self-transfer'
            when occurred_at > $latest_allowed then 'timestamp in the future'
        end as reason
    from parsed
    left join pseudonyms as src on src.raw_id = parsed.source_raw
    left join pseudonyms as tgt on tgt.raw_id = parsed.target_raw
)
select
    file_index, source_line, txn_id, occurred_at, source_id, target_id, amount, kind,
    channel, memo, redactions, reason,
    case when reason is null then 'loaded' else 'quarantined' end as outcome
from checked
"""

# Rows that passed the checks but whose id the warehouse holds, or the chunk holds more
# than once, become duplicates or conflicts (usually none). The outcome is that of
# loading the chunk's files one by one, in order: a later row of a file is compared with
# the file's first; a file's first row with the warehouse's row or, when the id is new to
# the warehouse, with the row the chunk's earliest file loads.
_SETTLE_REPEATED_IDS = """
create or replace temp table settled as
with valid as (
    select
        file_index,
        source_line,
        txn_id,
        struct_pack(occurred_at, source_id, target_id, amount, kind) as content
    from classified
    where outcome = 'loaded'
),
loaded as (
    select
        txn_id,
        struct_pack(occurred_at, source_id, target_id, amount, kind) as content
    from raw.transactions
    where txn_id in (select txn_id from valid)
),
repeated as (
    select
        valid.*,
        row_number() over in_file as nth_in_file,
        first_value(content) over in_file as first_in_file,
        min(file_index) over (partition by txn_id) as first_file,
        first_value(content) over in_chunk as first_in_chunk
    from valid
    where txn_id in (select txn_id from valid group by txn_id having count(*) > 1)
        or txn_id in (select txn_id from loaded)
    window
        in_file as (partition by file_index, txn_id order by source_line),
        in_chunk as (partition by txn_id order by file_index, source_line)
),
compared as (
    select
        repeated.file_index,
        repeated.source_line,
        case
            when repeated.nth_in_file > 1 then
                case when repeated.content is not distinct from repeated.first_in_file
                    then 'duplicate' else 'conflict' end
            when loaded.txn_id is not null then
                case when repeated.content is not distinct from loaded.content
                    then 'duplicate' else 'conflict' end
            when repeated.first_file = repeated.file_index then 'new'
            when repeated.content is not distinct from repeated.first_in_chunk then 'duplicate'
            else 'conflict'
        end as versus_loaded
    from repeated
    left join loaded using (txn_id)
)
select
    file_index,
    source_line,
    case versus_loaded when 'duplicate' then 'duplicate' else 'quarantined' end as outcome,
    case versus_loaded when 'conflict' then $conflict_reason end
        as reason
from compared
where versus_loaded <> 'new'
"""


def _ingest_transactions(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, incoming: Incoming, timezone: str
) -> None:
    _pseudonym_table(con, incoming, ("source_id", "target_id"), ctx.key)
    # Naive timestamps are local to the scheme (or to the export, per scheme.toml);
    # explicit offsets and 'Z' win.
    con.execute("set TimeZone = $tz", {"tz": timezone})
    try:
        con.execute(
            "create or replace temp table classified as "
            + incoming.statement(_CLASSIFY_TRANSACTIONS),
            {**incoming.params, "latest_allowed": ctx.now + ctx.future_tolerance},
        )
    finally:
        con.execute("set TimeZone = 'UTC'")
    con.execute(_SETTLE_REPEATED_IDS, {"conflict_reason": CONFLICT_REASON})
    con.execute(
        """
        update classified
        set outcome = settled.outcome, reason = settled.reason
        from settled
        where classified.file_index = settled.file_index
            and classified.source_line = settled.source_line
        """
    )
    con.execute(
        """
        insert into raw.transactions by name
        select txn_id, occurred_at, source_id, target_id, amount, kind, channel, memo,
               $batch_id as batch_id, chunk_files.file_name as source_file, source_line,
               $now as ingested_at
        from classified
        join chunk_files using (file_index)
        where outcome = 'loaded'
        order by occurred_at, txn_id
        """,
        {"batch_id": ctx.batch_id, "now": ctx.now},
    )


# Follows ``with incoming as (…)``.
_CLASSIFY_ACCOUNTS = """,
cleaned as (
    select
        file_index,
        source_line,
        adapter_problem,
        redactions,
        account_id as raw_id,
        lower(account_type) as account_type,
        sector,
        area,
        joined_at as joined_text
    from incoming
),

-- Accounts this file lists as issuer that the ledger on file already shows as a member
-- (paying or paid a transfer or reversal, receiving an issuance, paying a redemption or
-- fee), with the first such row. Listed as issuer, their balances would leave circulation
-- while those rows stay: member balances would no longer add up to the money supply.
listed_as_issuer as (
    select pseudonyms.pseudonym as account_id
    from cleaned
    join pseudonyms on pseudonyms.raw_id = cleaned.raw_id
    where cleaned.account_type = 'issuer'
),

member_rows as (
    select account_id, min(source_file || ' line ' || source_line) as first_member_row
    from (
        select source_id as account_id, source_file, source_line
        from raw.transactions
        where kind in ('transfer', 'reversal', 'redemption', 'fee')
            and source_id in (select account_id from listed_as_issuer)
        union all
        select target_id, source_file, source_line
        from raw.transactions
        where kind in ('transfer', 'reversal', 'issuance')
            and target_id in (select account_id from listed_as_issuer)
    )
    group by account_id
)

select
    cleaned.*,
    pseudonyms.pseudonym as account_id,
    try_cast(joined_text as date) as joined_at,
    null::varchar as txn_id,
    null::varchar as target_id,
    pseudonyms.pseudonym as source_id,
    case
        when adapter_problem is not null then adapter_problem
        when cleaned.raw_id is null then 'missing account_id'
        when account_type not in ('individual', 'business', 'public_body', 'issuer')
            or account_type is null then 'unknown account_type'
        when joined_text is not null and try_cast(joined_text as date) is null
            then 'unparseable joined_at'
        when count(*) over (partition by cleaned.file_index, cleaned.raw_id) > 1
            then 'account_id listed more than once'
        when member_rows.account_id is not null
            then 'listed as issuer but a member in the ledger on file ('
                || member_rows.first_member_row || '): correct its account_type, '
                || 'or rebook that account''s rows as issuance, redemption or fee'
    end as reason,
    case when reason is null then 'loaded' else 'quarantined' end as outcome
from cleaned
left join pseudonyms on pseudonyms.raw_id = cleaned.raw_id
left join member_rows on member_rows.account_id = pseudonyms.pseudonym
"""

# Follows ``with incoming as (…)``.
_CLASSIFY_AREAS = """,
cleaned as (
    select
        file_index,
        source_line,
        adapter_problem,
        redactions,
        area,
        deprivation_decile as decile_text
    from incoming
)
select
    cleaned.*,
    try_cast(decile_text as integer) as deprivation_decile,
    null::varchar as txn_id,
    null::varchar as source_id,
    null::varchar as target_id,
    case
        when adapter_problem is not null then adapter_problem
        when area is null then 'missing area'
        when decile_text is not null and (
            try_cast(decile_text as integer) is null
            or try_cast(decile_text as integer) not between 1 and 10
        ) then 'deprivation_decile not an integer from 1 to 10'
        when count(*) over (partition by file_index, area) > 1 then 'area listed more than once'
    end as reason,
    case when reason is null then 'loaded' else 'quarantined' end as outcome
from cleaned
"""


def _ingest_accounts(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, incoming: Incoming, timezone: str
) -> None:
    # An attribute file is always a chunk of its own (see _chunks): the newest file
    # describes an account and replaces what an older one said.
    _pseudonym_table(con, incoming, ("account_id",), ctx.key)
    con.execute(
        "create or replace temp table classified as " + incoming.statement(_CLASSIFY_ACCOUNTS),
        incoming.params,
    )
    con.execute(
        "delete from raw.accounts where account_id in "
        "(select account_id from classified where outcome = 'loaded')"
    )
    con.execute(
        """
        insert into raw.accounts
        select account_id, account_type, sector, area, joined_at, $batch_id,
            chunk_files.file_name
        from classified
        join chunk_files using (file_index)
        where outcome = 'loaded'
        order by source_line
        """,
        {"batch_id": ctx.batch_id},
    )


def _ingest_areas(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, incoming: Incoming, timezone: str
) -> None:
    con.execute(
        "create or replace temp table classified as " + incoming.statement(_CLASSIFY_AREAS),
        incoming.params,
    )
    con.execute(
        "delete from raw.areas where area in (select area from classified where outcome = 'loaded')"
    )
    con.execute(
        """
        insert into raw.areas
        select area, deprivation_decile, $batch_id, chunk_files.file_name
        from classified
        join chunk_files using (file_index)
        where outcome = 'loaded'
        order by source_line
        """,
        {"batch_id": ctx.batch_id},
    )


_LOADERS: dict[str, Callable[[duckdb.DuckDBPyConnection, IngestContext, Incoming, str], None]] = {
    "transactions": _ingest_transactions,
    "accounts": _ingest_accounts,
    "areas": _ingest_areas,
}


def _add_unloadable_rows(con: duckdb.DuckDBPyConnection, whole_file: dict[int, str]) -> None:
    """Quarantine every row of a file lacking a required column, and every unsplit line."""
    if whole_file:
        con.execute(
            """
            insert into classified by name
            select incoming_raw.file_index, incoming_raw.source_line,
                'quarantined' as outcome, problems.reason
            from incoming_raw
            join (select unnest($indexes)::integer as file_index, unnest($reasons) as reason)
                as problems using (file_index)
            """,
            {"indexes": list(whole_file), "reasons": list(whole_file.values())},
        )
    con.execute(
        "insert into classified by name select file_index, source_line, reason, "
        "'quarantined' as outcome from read_rejects"
    )


def _record_quarantine(
    con: duckdb.DuckDBPyConnection,
    ctx: IngestContext,
    results: Sequence[FileResult],
    readable: dict[int, ReadInfo],
) -> None:
    """Count outcomes and redactions, store quarantine reasons (pseudonymised ids only)
    and raw text."""
    for file_index, outcome, count, redactions in con.execute(
        "select file_index, outcome, count(*), coalesce(sum(redactions), 0) "
        "from classified group by all"
    ).fetchall():
        result = results[file_index]
        result.redactions += int(redactions)
        if outcome == "loaded":
            result.rows_loaded = count
        elif outcome == "duplicate":
            result.rows_duplicate = count
        else:
            result.rows_quarantined = count
    for file_index, reason, count in con.execute(
        "select file_index, reason, count(*) from classified where outcome = 'quarantined' "
        "group by all order by 1, 3 desc, 2"
    ).fetchall():
        results[file_index].reasons[reason] = count
    con.execute(
        """
        insert into audit.quarantine
        select $run_id, $batch_id, chunk_files.file_name, source_line, reason, txn_id,
            source_id, target_id
        from classified
        join chunk_files using (file_index)
        where outcome = 'quarantined'
        order by file_index, source_line
        """,
        {"run_id": ctx.run_id, "batch_id": ctx.batch_id},
    )
    _quarantine_private_copies(con, ctx, results, readable)


def _incoming(
    scheme: SchemeMap, role: str, files_by_columns: dict[frozenset[str], list[int]]
) -> Incoming:
    """The canonical, redacted text of the chunk's loadable files.

    Files with the same fields share one canonical select; a field one file lacks stays
    NULL for it even when another file of the chunk has it.
    """
    selects = []
    params: dict[str, str] = {}
    for present, indexes in files_by_columns.items():
        select, select_params = canonical_select(scheme, role, set(present))
        params.update(select_params)  # one scheme map: equal names, equal values
        chosen = ", ".join(str(index) for index in indexes)  # integers of ours
        selects.append(f"select * from ({select}) where file_index in ({chosen})")  # noqa: S608
    if not selects:
        select, params = canonical_select(scheme, role, set())
        selects.append(f"select * from ({select}) where false")  # noqa: S608
    replaced = []
    counts = []
    for column in _FREE_TEXT[role]:
        redacted, hits = redaction_sql(column)
        replaced.append(f"{redacted} as {column}")
        counts.append(hits)
    sql = (
        f"select * replace ({', '.join(replaced)}), {' + '.join(counts)} as redactions "  # noqa: S608
        f"from ({' union all '.join(selects)})"
    )
    return Incoming(sql, params)


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[PendingFile],
    ctx: IngestContext,
    scheme: SchemeMap | None = None,
) -> list[FileResult]:
    """Load files of one role together; never raises for bad content.

    Returns one result per file, in order, saying what happened to its rows. The caller
    owns the transaction: the chunk is loaded wholly or not at all.
    """
    scheme = scheme or load_scheme_map(ctx.inbox)
    role = files[0].role
    if any(f.role != role for f in files) or (role != "transactions" and len(files) > 1):
        raise ValueError("a chunk holds transaction files, or one attribute file alone")
    results = [
        FileResult(
            file_name=f.path.relative_to(ctx.inbox).as_posix(),
            role=role,
            sha256=f.sha256,
            adapter=scheme.adapter,
            new_version=f.new_version,
        )
        for f in files
    ]
    con.execute(
        "create or replace temp table chunk_files as "
        "select unnest($indexes)::integer as file_index, unnest($names) as file_name",
        {"indexes": list(range(len(results))), "names": [r.file_name for r in results]},
    )
    readable: dict[int, ReadInfo] = {}
    for file_index, (result, info) in enumerate(
        zip(results, read_files(con, [f.path for f in files]), strict=True)
    ):
        if isinstance(info, UnreadableFile):
            result.status = "rejected"
            result.message = f"{result.file_name} {info}"
        else:
            readable[file_index] = info
            result.file_format = info.file_format
    for file_index, rows_in in con.execute(
        "select file_index, count(*) from (select file_index from incoming_raw "
        "union all select file_index from read_rejects) group by 1"
    ).fetchall():
        results[file_index].rows_in = rows_in
    notes: dict[int, list[str]] = {
        i: [info.note] if info.note else [] for i, info in readable.items()
    }
    whole_file: dict[int, str] = {}
    files_by_columns: dict[frozenset[str], list[int]] = {}
    for file_index, info in readable.items():
        present = set(info.columns)
        missing = [c for c in required_columns(scheme, role) if c not in present]
        if missing:
            whole_file[file_index] = f"file lacks column(s): {', '.join(missing)}"
            results[file_index].status = "quarantined"
            notes[file_index].append(
                f"header lacks {', '.join(missing)} (found: {', '.join(sorted(present))}); "
                f"fix the export's header (adapter {scheme.adapter}) and send it again"
            )
        else:
            files_by_columns.setdefault(frozenset(present), []).append(file_index)
    incoming = _incoming(scheme, role, files_by_columns)
    _LOADERS[role](con, ctx, incoming, scheme.timestamps_timezone or ctx.timezone)
    _add_unloadable_rows(con, whole_file)
    _record_quarantine(con, ctx, results, readable)
    for file_index, file_notes in notes.items():
        results[file_index].message = "; ".join(file_notes)
    for result in results:
        result.check_accounting()
    return results


def _export_day(file_name: str) -> date | None:
    match = _DAY_IN_NAME.search(file_name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _in_backfill(file_name: str, export_days: tuple[date, date] | None) -> bool:
    """True unless a backfill range is set and the file's day lies outside it.

    >>> _in_backfill("exports/2025-03-02.csv", (date(2025, 3, 1), date(2025, 3, 31)))
    True
    >>> _in_backfill("exports/2025-04-01.csv", (date(2025, 3, 1), date(2025, 3, 31)))
    False
    >>> _in_backfill("exports/all.csv", (date(2025, 3, 1), date(2025, 3, 31)))
    False
    """
    if export_days is None:
        return True
    day = _export_day(file_name)
    return day is not None and export_days[0] <= day <= export_days[1]


_MANIFEST_SCHEMA = pl.Schema(
    {
        "file_name": pl.String(),
        "sha256": pl.String(),
        "file_role": pl.String(),
        "export_day": pl.Date(),
        "rows_in": pl.Int64(),
        "rows_loaded": pl.Int64(),
        "rows_duplicate": pl.Int64(),
        "rows_quarantined": pl.Int64(),
        "status": pl.String(),
        "message": pl.String(),
        "batch_id": pl.String(),
        "run_id": pl.String(),
        "ingested_at": pl.Datetime("us", "UTC"),
        "redactions": pl.Int64(),
        "file_format": pl.String(),
        "adapter": pl.String(),
    }
)


def _record_files(
    con: duckdb.DuckDBPyConnection, results: Sequence[FileResult], ctx: IngestContext
) -> None:
    """Add the files to the manifest (``audit.files``), one statement for the chunk."""
    rows = [
        {
            "file_name": r.file_name,
            "sha256": r.sha256,
            "file_role": r.role,
            "export_day": _export_day(r.file_name) if r.role == "transactions" else None,
            "rows_in": r.rows_in,
            "rows_loaded": r.rows_loaded,
            "rows_duplicate": r.rows_duplicate,
            "rows_quarantined": r.rows_quarantined,
            "status": r.status,
            "message": r.message or None,
            "batch_id": ctx.batch_id,
            "run_id": ctx.run_id,
            "ingested_at": ctx.now,
            "redactions": r.redactions,
            "file_format": r.file_format or None,
            "adapter": r.adapter,
        }
        for r in results
    ]
    con.register("new_manifest_rows", pl.DataFrame(rows, schema=_MANIFEST_SCHEMA))
    try:
        con.execute("insert into audit.files by name select * from new_manifest_rows")
    finally:
        con.unregister("new_manifest_rows")


def _chunks(files: Sequence[PendingFile]) -> Iterator[list[PendingFile]]:
    """Consecutive runs of transaction files (see FILES_PER_CHUNK, CHUNK_BYTES); each
    attribute file alone.

    >>> day = [PendingFile(Path(f"{d}.csv"), "transactions", "") for d in range(120)]
    >>> people = PendingFile(Path("accounts.csv"), "accounts", "")
    >>> [len(chunk) for chunk in _chunks([people, *day])]
    [1, 49, 50, 21]
    """
    chunk: list[PendingFile] = []
    size = 0
    for position, pending in enumerate(files):
        pending_size = pending.path.stat().st_size if pending.path.exists() else 0
        if chunk and (
            pending.role != "transactions"
            or chunk[0].role != "transactions"
            or position % FILES_PER_CHUNK == 0
            or size + pending_size > CHUNK_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(pending)
        size += pending_size
    if chunk:
        yield chunk


def ingest_inbox(
    con: duckdb.DuckDBPyConnection,
    ctx: IngestContext,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[FileResult]:
    """Load every file of ``ctx.inbox`` not loaded before; return one result per new file.

    Each chunk of files is one transaction: a crash leaves each file either wholly
    loaded (and in the manifest) or not at all, so the next run picks up exactly where
    this one stopped.
    """
    require_inbox(ctx.inbox)
    scheme = load_scheme_map(ctx.inbox)
    seen = _loaded_versions(con)
    hashes = FileHashes(con)
    pending = []
    set_aside_found = []
    for path, role in discover_files(ctx.inbox, scheme):
        name = path.relative_to(ctx.inbox).as_posix()
        if role == "transactions" and not _in_backfill(name, ctx.export_days):
            continue
        sha = hashes.sha256(path, name)
        if sha in ctx.set_aside:
            set_aside_found.append((name, role, sha))
        elif sha not in seen.get(name, set()):
            pending.append(PendingFile(path, role, sha, new_version=name in seen))
    hashes.store()
    results: list[FileResult] = []
    if ctx.set_aside:
        results = _set_aside_results(con, ctx, set_aside_found)
        if results:
            _record_files(con, results, ctx)  # one statement: no partial state to undo
    rows = 0
    for chunk in _chunks(pending):
        con.execute("begin transaction")
        try:
            chunk_results = ingest_files(con, chunk, ctx, scheme)
            _record_files(con, chunk_results, ctx)
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
        results += chunk_results
        rows += sum(r.rows_in for r in chunk_results)
        done = sum(r.status != "set_aside" for r in results)
        if progress and (done % FILES_PER_CHUNK == 0 or done == len(pending)):
            progress(f"ingested {done}/{len(pending)} new files ({rows:,} rows)")
    return results
