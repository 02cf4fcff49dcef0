"""Tables that accumulate across runs (raw and audit); models rebuild everything else."""

from __future__ import annotations

import duckdb

LAYERS = ("staging", "intermediate", "marts")

PERSISTENT_DDL = """
create schema if not exists raw;
create schema if not exists audit;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists marts;

create table if not exists raw.transactions (
    txn_id varchar not null,
    occurred_at timestamptz not null,
    source_id varchar not null,
    target_id varchar not null,
    amount decimal(18, 2) not null,
    kind varchar not null,
    channel varchar,
    batch_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    ingested_at timestamptz not null
);

create table if not exists raw.accounts (
    account_id varchar not null,
    account_type varchar not null,
    sector varchar,
    area varchar,
    joined_at date,
    batch_id varchar not null,
    source_file varchar not null
);

create table if not exists raw.areas (
    area varchar not null,
    deprivation_decile integer,
    batch_id varchar not null,
    source_file varchar not null
);

create table if not exists audit.files (
    file_name varchar not null,
    sha256 varchar not null,
    file_role varchar not null,
    export_day date,
    rows_in bigint not null,
    rows_loaded bigint not null,
    rows_duplicate bigint not null,
    rows_quarantined bigint not null,
    status varchar not null,
    message varchar,
    batch_id varchar not null,
    run_id varchar not null,
    ingested_at timestamptz not null
);

create table if not exists audit.quarantine (
    run_id varchar not null,
    batch_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    reason varchar not null,
    txn_id varchar,
    source_id varchar,
    target_id varchar
);

create table if not exists audit.runs (
    run_id varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,
    stage varchar not null,
    files_loaded bigint not null,
    rows_loaded bigint not null,
    message varchar
);

create table if not exists audit.validation_results (
    run_id varchar not null,
    batch_id varchar not null,
    suite varchar not null,
    expectation varchar not null,
    severity varchar not null,
    success boolean not null,
    status varchar not null,
    observed_value varchar,
    unexpected_count bigint,
    unexpected_sample varchar,
    description varchar,
    validated_at timestamptz not null
);

-- The operator's decisions on blocked nights, one row per decision and file: a copy of
-- decisions.jsonl beside the warehouse, replaced whole at every publish (see
-- circulate.decisions), because a blocked run's build is thrown away.
create table if not exists audit.decisions (
    decision_id varchar not null,
    action varchar not null,
    decided_at timestamptz not null,
    decided_by varchar not null,
    reason varchar not null,
    run_id varchar,
    check_name varchar,
    file_name varchar not null,
    sha256 varchar not null,
    moved_to varchar
);
comment on table audit.decisions is 'What an operator decided about a blocked night or an \
export, one row per decision and file: accept (a failed check on these exact files is \
published as a warning), set_aside (the file is moved out of the inbox and never loaded) \
or take_back (a set-aside file returned to the inbox); copied from decisions.jsonl beside \
the warehouse';

-- What each inbox file looked like when its sha256 was last taken: a file whose size,
-- modification and status-change times are unchanged is not read again to hash it.
create table if not exists audit.file_hashes (
    file_name varchar not null,
    size_bytes bigint not null,
    modified_ns bigint not null,
    changed_ns bigint not null,
    sha256 varchar not null,
    hashed_at timestamptz not null
);
comment on table audit.file_hashes is 'The sha256 of each inbox file with the size and \
times the file had when it was hashed: a night reads a file to hash it only when these \
changed (or the hash was taken within 2 s of the file''s last change), not the whole \
archive (see circulate.ingest.canonical.FileHashes)';

-- Pulls from the scheme's platform (circulate pull), one row per pull: a copy of
-- pulls.jsonl beside the warehouse, replaced whole at every publish (see
-- circulate.pull.state), because a pull runs before the night's build exists.
create table if not exists audit.pulls (
    pull_id varchar not null,
    platform varchar not null,
    base_url varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,
    window_begin timestamptz not null,
    window_end timestamptz not null,
    transfers bigint not null,
    pages bigint not null,
    files_written bigint not null,
    files_unchanged bigint not null,
    message varchar
);
comment on table audit.pulls is 'Every pull of transfers from the scheme''s platform \
(circulate pull, or the nightly run when scheme.toml names a [source]): its window of \
local days, what it fetched and wrote into the inbox, and how it ended; the next pull \
starts where the last successful one ended; copied from pulls.jsonl beside the warehouse';

-- Added by ingestion v2; `add column if not exists` upgrades warehouses built before.
alter table raw.transactions add column if not exists memo varchar;
alter table audit.files add column if not exists redactions bigint default 0;
alter table audit.files add column if not exists file_format varchar;
alter table audit.files add column if not exists adapter varchar;
-- Validation outcome of each run: passed, N warning(s), blocked, or not run.
alter table audit.runs add column if not exists validation varchar;

create or replace view audit.rejected_files as
select file_name, sha256, file_role, status, message, run_id, ingested_at
from audit.files
where status in ('rejected', 'quarantined');
"""

#: How each table that accumulates across runs is written, as the data dictionary says
#: under "Refreshed". These tables are created above, except ``audit.appended_batches``
#: (:data:`circulate.warehouse.runner.APPENDED_BATCHES_DDL`). Nothing here is rebuilt:
#: ``circulate run --full`` keeps them (it only empties ``audit.appended_batches``).
PERSISTENT_REFRESH = {
    "raw.transactions": "appended at ingest, one load batch per run",
    "raw.accounts": (
        "updated at ingest: an accounts file replaces the rows of the accounts it lists "
        "and adds the accounts that are new"
    ),
    "raw.areas": (
        "updated at ingest: an areas file replaces the rows of the areas it lists and adds "
        "the areas that are new"
    ),
    "audit.files": (
        "appended at ingest, one row per file in the inbox that the table does not list "
        "yet (a changed file, by sha256, is a new row; set-aside files too)"
    ),
    "audit.quarantine": "appended at ingest, one row per line a run quarantines",
    "audit.file_hashes": (
        "updated at ingest: a file of the inbox that is new, whose size, modification or "
        "status-change time differs from its row, or that was hashed within 2 s of its last "
        "change is read and hashed and its row replaced; the others keep their row and are "
        "not read"
    ),
    "audit.runs": (
        "appended at every publish: the publishing run and the runs logged in runs.jsonl "
        "since the previous publish (failed, or with nothing new)"
    ),
    "audit.validation_results": (
        "appended at every publish: the checks of the run's load batch and the warehouse "
        "assertions (a blocked run's results are kept in validation/<run_id>.json beside "
        "the warehouse instead)"
    ),
    "audit.decisions": "replaced whole at every publish from decisions.jsonl",
    "audit.pulls": "replaced whole at every publish from pulls.jsonl",
    "audit.appended_batches": (
        "updated at every build: one row per load batch an append-by-batch table gains, "
        "its rows replaced when that table is rebuilt whole; emptied by `circulate run --full`"
    ),
}


def ensure_persistent_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the layer schemas and the raw and audit tables when they are missing."""
    con.execute(PERSISTENT_DDL)
