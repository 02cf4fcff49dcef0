"""Ingestion killed with SIGKILL mid-way, and ``circulate ingest`` on a generated scheme.

The subprocess runs the real stages (begin_run → ingest_new_files → publish) on a
generated inbox of a few hundred daily files and reports progress on stdout; the test
kills it as soon as some files are in, as a power cut or the OOM killer would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from circulate.generate import generate_scheme
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.unit.ingest_helpers import ingest_only

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INGEST_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from circulate import pipeline
    from circulate.settings import Settings

    inbox, warehouse, private = (Path(p) for p in sys.argv[1:4])
    settings = Settings(inbox=inbox, warehouse=warehouse, reports=warehouse.parent / "r",
                        private_dir=private, key_file=private / "key")
    ctx = pipeline.begin_run(settings)
    summary = pipeline.ingest_new_files(ctx, progress=lambda line: print(line, flush=True))
    pipeline.publish_snapshot(ctx, summary)
    print("done", flush=True)
    """
)


def test_sigkill_mid_ingest_leaves_the_snapshot_and_the_next_run_loads_everything(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "scheme"
    truth = generate_scheme(source, seed=5, transactions=20_000, days=100, start=date(2025, 1, 1))
    # Night 1: only the attribute files, published.
    for name in ("accounts.csv", "areas.csv"):
        (settings.inbox / name).write_bytes((source / name).read_bytes())
    ingest_only(settings)
    before = settings.warehouse.read_bytes()
    # Night 2: all the exports; killed after the first 50 files are committed.
    (source / "exports").rename(settings.inbox / "exports")
    run = subprocess.Popen(
        [
            sys.executable,
            "-c",
            INGEST_RUN,
            str(settings.inbox),
            str(settings.warehouse),
            str(settings.private_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout is not None
    for line in run.stdout:
        if line.startswith("ingested 50/"):
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert settings.warehouse.read_bytes() == before

    summary = ingest_only(settings)
    assert summary.files_new == 100
    assert all(f.rows_in == f.rows_loaded for f in summary.files)
    con = connect(settings.warehouse, read_only=True)
    assert con.execute(
        "select count(*), count(distinct txn_id) from raw.transactions"
    ).fetchone() == (
        truth.rows,
        truth.rows,
    )
    assert con.execute(
        "select count(*), count(distinct file_name) from audit.files "
        "where file_role = 'transactions'"
    ).fetchone() == (100, 100)
    assert list(settings.warehouse.parent.glob("*.building*")) == []


def test_circulate_ingest_prints_every_file(tmp_path: Path) -> None:
    """The CLI on a Cyclos-format scheme: per-file lines, a published warehouse."""
    inbox = tmp_path / "inbox"
    warehouse = tmp_path / "warehouse" / "w.duckdb"
    generate = [
        sys.executable,
        "-m",
        "circulate.cli",
        "generate",
        "--out",
        str(inbox),
        "--seed",
        "3",
        "--transactions",
        "1500",
        "--days",
        "10",
        "--format",
        "cyclos",
    ]
    subprocess.run(generate, check=True, capture_output=True, text=True)
    (inbox / "exports" / "2025-01-11.csv").write_bytes(b"")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "circulate.cli",
            "ingest",
            str(inbox),
            "--warehouse",
            str(warehouse),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("users.csv: ")
    assert any(
        line.startswith("exports/2025-01-11.csv: REJECTED — exports/2025-01-11.csv is empty")
        for line in lines
    )
    first_day = next(line for line in lines if line.startswith("exports/2025-01-01.csv"))
    assert " loaded, " in first_day and " duplicates, 0 quarantined" in first_day
    assert "ingested 13/13 new files" in done.stderr
    con = connect(warehouse, read_only=True)
    assert con.execute("select count(*) from raw.transactions").fetchone() == (1_500,)
