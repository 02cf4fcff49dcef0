"""Ingest export files: every row ends up loaded, a duplicate, or quarantined.

A folder holds transaction exports and optional account and area attributes, in the
canonical layout or another platform's (``scheme.toml``, see :mod:`.adapters`). The
manifest (``audit.files``) records each file's sha256, so a file already loaded is
skipped and a changed file with the same name is loaded as a new version. Files are
parsed by DuckDB (:mod:`.readers`), mapped to canonical text by SQL (:mod:`.adapters`),
redacted (:mod:`.privacy`) and classified inside DuckDB; Python only touches the
distinct account ids, to pseudonymise them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
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
from circulate.ingest.readers import UnreadableFile, read_file

TRANSACTION_COLUMNS = ("txn_id", "occurred_at", "source_id", "target_id", "amount", "kind")
KINDS = ("issuance", "transfer", "redemption", "fee", "reversal")
ACCOUNT_TYPES = ("individual", "business", "public_body", "issuer")
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


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
    versions: dict[str, set[str]] = {}
    for name, sha in con.execute("select file_name, sha256 from audit.files").fetchall():
        versions.setdefault(name, set()).add(sha)
    return versions


def _pseudonym_table(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...], key: bytes) -> None:
    """Make ``pseudonyms(raw_id, pseudonym)`` cover the distinct ids of ``incoming``.

    The temp table lives as long as the connection, so across the files of one run each
    id is hashed once (the HMAC is the only per-id Python work). A tag of the key keeps
    pseudonyms made under another key out.
    """
    # The table name carries a hash of the key (hex digits, never data).
    cache = "pseudonym_cache_" + hashlib.sha256(b"circulate-pseudonym-cache" + key).hexdigest()[:16]
    con.execute(f"create temp table if not exists {cache} (raw_id varchar, pseudonym varchar)")
    # Column expressions are this module's constants, never data.
    union = " union ".join(f"select {c} as raw_id from incoming" for c in columns)  # noqa: S608
    raw_ids = [
        row[0]
        for row in con.execute(
            f"select raw_id from ({union}) where raw_id is not null "  # noqa: S608
            f"and raw_id not in (select raw_id from {cache})"
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


def _quarantine_private_copy(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, file_name: str
) -> None:
    """Keep quarantined rows' raw text where only operators can read it, never published."""
    safe_name = file_name.replace("/", "__")
    parsed = con.sql(
        "select * from incoming_raw where source_line in "
        "(select source_line from classified where outcome = 'quarantined') order by 1"
    ).pl()
    unparsed = con.sql("select * from read_rejects order by source_line").pl()
    if parsed.height or unparsed.height:
        folder = _private_folder(ctx)
        if parsed.height:
            parsed.write_csv(folder / f"{safe_name}.csv")
        if unparsed.height:
            unparsed.write_csv(folder / f"{safe_name}.unparsed.csv")


_CLASSIFY_TRANSACTIONS = """
create or replace temp table classified as
with cleaned as (
    select
        source_line,
        adapter_problem,
        nullif(trim(txn_id), '') as txn_id,
        nullif(trim(source_id), '') as source_raw,
        nullif(trim(target_id), '') as target_raw,
        trim(occurred_at) as occurred_text,
        trim(amount) as amount_text,
        lower(trim(kind)) as kind,
        nullif(trim(channel), '') as channel,
        nullif(trim(memo), '') as memo
    from incoming
),
parsed as (
    select
        *,
        try_cast(occurred_text as timestamptz) as occurred_at,
        try_cast(amount_text as decimal(18, 2)) as amount
    from cleaned
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
        end as row_problem
    from parsed
    left join pseudonyms as src on src.raw_id = parsed.source_raw
    left join pseudonyms as tgt on tgt.raw_id = parsed.target_raw
),
ranked as (
    select
        checked.*,
        first_value(source_line) over same_id as first_line,
        row_number() over same_id as nth_with_id
    from checked
    where row_problem is null
    window same_id as (partition by txn_id order by source_line)
),
compared as (
    select
        ranked.source_line,
        case
            when ranked.nth_with_id > 1 and (
                first.occurred_at, first.source_id, first.target_id, first.amount, first.kind
            ) is not distinct from (
                ranked.occurred_at, ranked.source_id, ranked.target_id, ranked.amount, ranked.kind
            ) then 'duplicate'
            when ranked.nth_with_id > 1 then 'conflict'
            when loaded.txn_id is null then 'new'
            when (
                loaded.occurred_at, loaded.source_id, loaded.target_id, loaded.amount, loaded.kind
            ) is not distinct from (
                ranked.occurred_at, ranked.source_id, ranked.target_id, ranked.amount, ranked.kind
            ) then 'duplicate'
            else 'conflict'
        end as versus_loaded
    from ranked
    join ranked as first
        on first.txn_id = ranked.txn_id and first.source_line = ranked.first_line
    left join raw.transactions as loaded on loaded.txn_id = ranked.txn_id
)
select
    checked.*,
    case
        when checked.row_problem is not null then 'quarantined'
        when compared.versus_loaded = 'new' then 'loaded'
        when compared.versus_loaded = 'duplicate' then 'duplicate'
        else 'quarantined'
    end as outcome,
    coalesce(
        checked.row_problem,
        case when compared.versus_loaded = 'conflict'
            then 'txn_id already used with different content' end
    ) as reason
from checked
left join compared using (source_line)
"""


def _ingest_transactions(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, result: FileResult, timezone: str
) -> None:
    _pseudonym_table(con, ("nullif(trim(source_id), '')", "nullif(trim(target_id), '')"), ctx.key)
    # Naive timestamps are local to the scheme (or to the export, per scheme.toml);
    # explicit offsets and 'Z' win.
    con.execute("set TimeZone = $tz", {"tz": timezone})
    try:
        con.execute(_CLASSIFY_TRANSACTIONS, {"latest_allowed": ctx.now + ctx.future_tolerance})
    finally:
        con.execute("set TimeZone = 'UTC'")
    con.execute(
        """
        insert into raw.transactions by name
        select txn_id, occurred_at, source_id, target_id, amount, kind, channel, memo,
               $batch_id as batch_id, $file_name as source_file, source_line,
               $now as ingested_at
        from classified where outcome = 'loaded' order by occurred_at, txn_id
        """,
        {"batch_id": ctx.batch_id, "file_name": result.file_name, "now": ctx.now},
    )


_CLASSIFY_ACCOUNTS = """
create or replace temp table classified as
with cleaned as (
    select
        source_line,
        adapter_problem,
        nullif(trim(account_id), '') as raw_id,
        lower(trim(account_type)) as account_type,
        nullif(trim(sector), '') as sector,
        nullif(trim(area), '') as area,
        nullif(trim(joined_at), '') as joined_text
    from incoming
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
        when count(*) over (partition by cleaned.raw_id) > 1
            then 'account_id listed more than once'
    end as reason,
    case when reason is null then 'loaded' else 'quarantined' end as outcome
from cleaned
left join pseudonyms on pseudonyms.raw_id = cleaned.raw_id
"""

_CLASSIFY_AREAS = """
create or replace temp table classified as
with cleaned as (
    select
        source_line,
        adapter_problem,
        nullif(trim(area), '') as area,
        nullif(trim(deprivation_decile), '') as decile_text
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
        when count(*) over (partition by area) > 1 then 'area listed more than once'
    end as reason,
    case when reason is null then 'loaded' else 'quarantined' end as outcome
from cleaned
"""


def _ingest_accounts(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, result: FileResult, timezone: str
) -> None:
    _pseudonym_table(con, ("nullif(trim(account_id), '')",), ctx.key)
    con.execute(_CLASSIFY_ACCOUNTS)
    # The newest file describes an account: it replaces what an older one said.
    con.execute(
        "delete from raw.accounts where account_id in "
        "(select account_id from classified where outcome = 'loaded')"
    )
    con.execute(
        """
        insert into raw.accounts
        select account_id, account_type, sector, area, joined_at, $batch_id, $file_name
        from classified where outcome = 'loaded' order by source_line
        """,
        {"batch_id": ctx.batch_id, "file_name": result.file_name},
    )


def _ingest_areas(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, result: FileResult, timezone: str
) -> None:
    con.execute(_CLASSIFY_AREAS)
    con.execute(
        "delete from raw.areas where area in (select area from classified where outcome = 'loaded')"
    )
    con.execute(
        """
        insert into raw.areas
        select area, deprivation_decile, $batch_id, $file_name
        from classified where outcome = 'loaded' order by source_line
        """,
        {"batch_id": ctx.batch_id, "file_name": result.file_name},
    )


_LOADERS: dict[str, Callable[[duckdb.DuckDBPyConnection, IngestContext, FileResult, str], None]] = {
    "transactions": _ingest_transactions,
    "accounts": _ingest_accounts,
    "areas": _ingest_areas,
}


def _add_read_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """Lines the parser could not split become quarantined rows of ``classified``."""
    con.execute(
        "insert into classified by name select source_line, reason, 'quarantined' as outcome "
        "from read_rejects"
    )


def _record_quarantine(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, result: FileResult
) -> None:
    """Count outcomes, store quarantine reasons (pseudonymised ids only) and raw text."""
    counts = dict(con.execute("select outcome, count(*) from classified group by 1").fetchall())
    result.rows_loaded = counts.get("loaded", 0)
    result.rows_duplicate = counts.get("duplicate", 0)
    result.rows_quarantined = counts.get("quarantined", 0)
    result.reasons = dict(
        con.execute(
            "select reason, count(*) from classified where outcome = 'quarantined' "
            "group by 1 order by 2 desc, 1"
        ).fetchall()
    )
    con.execute(
        """
        insert into audit.quarantine
        select $run_id, $batch_id, $file_name, source_line, reason, txn_id, source_id, target_id
        from classified where outcome = 'quarantined' order by source_line
        """,
        {"run_id": ctx.run_id, "batch_id": ctx.batch_id, "file_name": result.file_name},
    )
    _quarantine_private_copy(con, ctx, result.file_name)


def _quarantine_whole_file(
    con: duckdb.DuckDBPyConnection, ctx: IngestContext, result: FileResult, reason: str
) -> None:
    con.execute(
        "create or replace temp table classified as select source_line, "
        "'quarantined' as outcome, $reason as reason, null::varchar as txn_id, "
        "null::varchar as source_id, null::varchar as target_id from incoming_raw",
        {"reason": reason},
    )
    _add_read_rejects(con)
    _record_quarantine(con, ctx, result)


def _prepare_incoming(
    con: duckdb.DuckDBPyConnection, scheme: SchemeMap, role: str, present: set[str]
) -> int:
    """Create ``incoming`` (canonical text, free text redacted); return the redaction count."""
    select, params = canonical_select(scheme, role, present)
    replaced = []
    counts = []
    for column in _FREE_TEXT[role]:
        redacted, hits = redaction_sql(column)
        replaced.append(f"{redacted} as {column}")
        counts.append(hits)
    con.execute(
        f"create or replace temp table incoming as select * replace ({', '.join(replaced)}), "  # noqa: S608
        f"{' + '.join(counts)} as redactions from ({select})",
        params,
    )
    total = con.execute("select coalesce(sum(redactions), 0) from incoming").fetchone()
    return int(total[0]) if total else 0


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    role: str,
    ctx: IngestContext,
    sha256: str,
    scheme: SchemeMap | None = None,
) -> FileResult:
    """Load one file; never raises for bad content: the result says what happened."""
    scheme = scheme or load_scheme_map(ctx.inbox)
    file_name = path.relative_to(ctx.inbox).as_posix()
    result = FileResult(file_name=file_name, role=role, sha256=sha256, adapter=scheme.adapter)
    try:
        info = read_file(con, path)
    except UnreadableFile as error:
        result.status = "rejected"
        result.message = f"{file_name} {error}"
        return result
    result.file_format = info.file_format
    parsed = con.execute("select count(*) from incoming_raw").fetchone()
    unparsed = con.execute("select count(*) from read_rejects").fetchone()
    result.rows_in = (parsed[0] if parsed else 0) + (unparsed[0] if unparsed else 0)
    present = {row[0] for row in con.execute("describe incoming_raw").fetchall()}
    present.discard("source_line")
    missing = [c for c in required_columns(scheme, role) if c not in present]
    notes = [info.note] if info.note else []
    if missing:
        _quarantine_whole_file(con, ctx, result, f"file lacks column(s): {', '.join(missing)}")
        result.status = "quarantined"
        notes.append(
            f"header lacks {', '.join(missing)} (found: {', '.join(sorted(present))}); "
            f"fix the export's header (adapter {scheme.adapter}) and send it again"
        )
    else:
        result.redactions = _prepare_incoming(con, scheme, role, present)
        _LOADERS[role](con, ctx, result, scheme.timestamps_timezone or ctx.timezone)
        _add_read_rejects(con)
        _record_quarantine(con, ctx, result)
    result.message = "; ".join(notes)
    result.check_accounting()
    return result


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


def _record_file(con: duckdb.DuckDBPyConnection, result: FileResult, ctx: IngestContext) -> None:
    con.execute(
        """
        insert into audit.files by name
        select $name as file_name, $sha as sha256, $role as file_role, $day as export_day,
            $rows_in as rows_in, $loaded as rows_loaded, $duplicates as rows_duplicate,
            $quarantined as rows_quarantined, $status as status, $message as message,
            $batch_id as batch_id, $run_id as run_id, $now as ingested_at,
            $redactions as redactions, $file_format as file_format, $adapter as adapter
        """,
        {
            "name": result.file_name,
            "sha": result.sha256,
            "role": result.role,
            "day": _export_day(result.file_name) if result.role == "transactions" else None,
            "rows_in": result.rows_in,
            "loaded": result.rows_loaded,
            "duplicates": result.rows_duplicate,
            "quarantined": result.rows_quarantined,
            "status": result.status,
            "message": result.message or None,
            "batch_id": ctx.batch_id,
            "run_id": ctx.run_id,
            "now": ctx.now,
            "redactions": result.redactions,
            "file_format": result.file_format or None,
            "adapter": result.adapter,
        },
    )


def ingest_inbox(
    con: duckdb.DuckDBPyConnection,
    ctx: IngestContext,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[FileResult]:
    """Load every file of ``ctx.inbox`` not loaded before; return one result per new file.

    Each file is one transaction: a crash leaves it either wholly loaded (and in the
    manifest) or not at all, so the next run picks up exactly where this one stopped.
    """
    require_inbox(ctx.inbox)
    scheme = load_scheme_map(ctx.inbox)
    seen = _loaded_versions(con)
    todo = []
    for path, role in discover_files(ctx.inbox, scheme):
        name = path.relative_to(ctx.inbox).as_posix()
        if role == "transactions" and not _in_backfill(name, ctx.export_days):
            continue
        sha = sha256_of(path)
        if sha not in seen.get(name, set()):
            todo.append((path, role, sha, name in seen))
    results = []
    rows = 0
    for index, (path, role, sha, new_version) in enumerate(todo, start=1):
        con.execute("begin transaction")
        try:
            result = ingest_file(con, path, role, ctx, sha, scheme)
            result.new_version = new_version
            _record_file(con, result, ctx)
        except BaseException:
            con.execute("rollback")
            raise
        con.execute("commit")
        results.append(result)
        rows += result.rows_in
        if progress and (index % 50 == 0 or index == len(todo)):
            progress(f"ingested {index}/{len(todo)} new files ({rows:,} rows)")
    return results
