"""A run killed at any stage leaves the published snapshot intact; readers never block.

The runs here are subprocesses that announce each stage on stdout, so the test can send
SIGKILL in the middle of that stage, as a power cut or the OOM killer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest

from circulate.generate import generate_scheme
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.conftest import run_stages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAGED_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from circulate import pipeline
    from circulate.settings import Settings

    inbox, warehouse, private = (Path(p) for p in sys.argv[1:4])
    settings = Settings(inbox=inbox, warehouse=warehouse, reports=warehouse.parent / "r",
                        private_dir=private, key_file=private / "key")
    pipeline.run_in_process(settings, on_stage=lambda name: print(name, flush=True))
    """
)


@pytest.fixture
def two_nights(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    """A published first night and, in a second folder, enough new days to take seconds."""
    source = tmp_path / "scheme"
    generate_scheme(source, seed=21, transactions=120_000, days=60, start=date(2025, 1, 1))
    (settings.inbox / "exports").mkdir(parents=True)
    for name in ("accounts.csv", "areas.csv"):
        os.link(source / name, settings.inbox / name)
    exports = sorted((source / "exports").iterdir())
    for path in exports[:10]:
        os.link(path, settings.inbox / "exports" / path.name)
    run_stages(settings)
    return settings, source


def _add_remaining_days(settings: Settings, source: Path) -> None:
    for path in sorted((source / "exports").iterdir()):
        target = settings.inbox / "exports" / path.name
        if not target.exists():
            os.link(path, target)


def _start_run(settings: Settings) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            STAGED_RUN,
            str(settings.inbox),
            str(settings.warehouse),
            str(settings.private_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("stage", "delay"), [("ingest", 0.5), ("build", 0.1), ("publish", 0.0)])
def test_kill_at_any_stage_leaves_yesterday_and_next_run_completes(
    two_nights: tuple[Settings, Path], stage: str, delay: float
) -> None:
    settings, source = two_nights
    before = settings.warehouse.read_bytes()
    _add_remaining_days(settings, source)
    run = _start_run(settings)
    assert run.stdout is not None
    for line in run.stdout:
        if line.strip() == stage:
            time.sleep(delay)
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    after = settings.warehouse.read_bytes()
    assert after == before or stage == "publish"  # a kill after the rename is a success
    assert any(p.name.endswith(".building") for p in settings.warehouse.parent.iterdir()) or (
        stage == "publish"
    )

    summary = run_stages(settings)
    con = connect(settings.warehouse, read_only=True)
    loaded = con.execute("select count(*) from raw.transactions").fetchone()
    assert loaded == (120_000,)
    assert summary.files_new in (0, 50)
    assert not [p for p in settings.warehouse.parent.iterdir() if ".building" in p.name]


READER = textwrap.dedent(
    """
    import sys, time, duckdb
    from pathlib import Path
    path, stop_file = sys.argv[1], Path(sys.argv[2])
    con = duckdb.connect(path, read_only=True)
    print("connected", flush=True)
    deadline = time.monotonic() + 300
    queries = 0
    while not stop_file.exists() and time.monotonic() < deadline:
        con.execute("select count(*), sum(transfer_volume) from marts.daily_circulation")
        con.fetchall()
        queries += 1
    print(queries, flush=True)
    """
)


def test_reader_keeps_querying_through_a_whole_run(
    two_nights: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, source = two_nights
    stop_file = tmp_path / "stop-reading"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.warehouse), str(stop_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "connected"
    _add_remaining_days(settings, source)
    run_stages(settings)
    assert reader.poll() is None, "the reader stopped before the run ended"
    stop_file.touch()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert int(out.strip()) > 10
    con = connect(settings.warehouse, read_only=True)
    assert con.execute("select count(*) from marts.daily_circulation").fetchone() == (60,)
