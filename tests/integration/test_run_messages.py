"""What an operator sees from ``circulate run``: messages and exit codes, no tracebacks.

Also the run's life cycle: the lock is taken before Prefect starts, and the temporary
Prefect server a run starts never outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from circulate.generate import generate_scheme
from circulate.generate.faults import inject_fault
from circulate.warehouse.lock import run_lock
from tests.unit.test_run_lock import _hold

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_CIRCULATE = str(Path(sys.executable).parent / "circulate")


def _env() -> dict[str, str]:
    # As a user runs it: Prefect's home is the CLI's default, not the test session's, and
    # no server of the test session is named.
    return {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "PREFECT_API_URL")}


def _circulate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_CIRCULATE, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_env()
    )


def _scheme(root: Path) -> Path:
    """A small scheme in ``root/inbox`` without its last export day, which is returned."""
    generate_scheme(root / "inbox", seed=7, transactions=600, days=10, start=date(2025, 5, 1))
    last = sorted((root / "inbox" / "exports").glob("*.csv"))[-1]
    held_back = root / last.name
    last.rename(held_back)
    return held_back


def test_a_blocked_night_prints_a_message_and_exit_code_3_without_tracebacks(
    tmp_path: Path,
) -> None:
    held_back = _scheme(tmp_path)
    first = _circulate("ingest", "inbox", "--warehouse", "wh/circulate.duckdb", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    held_back.rename(tmp_path / "inbox" / "exports" / held_back.name)
    inject_fault(tmp_path / "inbox", "conflicts", share=0.05)  # re-sent ids, other amounts

    blocked = _circulate(
        "run", "--input", "inbox", "--warehouse", "wh/circulate.duckdb", cwd=tmp_path
    )
    terminal = blocked.stdout + blocked.stderr
    assert blocked.returncode == 3, terminal[-3000:]
    assert "Traceback" not in terminal
    assert "nanobind" not in terminal
    assert "no_conflicting_resends" in terminal
    closing = blocked.stderr.strip().splitlines()
    assert closing[-1].startswith("See why and how to move on: circulate review"), closing[-5:]


def test_a_second_run_is_refused_before_prefect_starts(tmp_path: Path) -> None:
    _scheme(tmp_path)
    holder = _hold(tmp_path / "wh" / "circulate.duckdb.lock")
    try:
        # The CLI's main() in a process that reports afterwards whether Prefect was imported.
        started = time.perf_counter()
        refused = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from circulate.cli import main; code = main(sys.argv[1:]); "
                "print('prefect imported' if 'prefect' in sys.modules else 'no prefect'); "
                "sys.exit(code)",
                "run",
                "--input",
                "inbox",
                "--warehouse",
                "wh/circulate.duckdb",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
        )
        elapsed = time.perf_counter() - started
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 5, refused.stderr[-3000:]
    assert refused.stdout.strip() == "no prefect"
    assert f"Another circulate run holds wh/circulate.duckdb.lock (pid {holder.pid}" in (
        refused.stderr
    )
    assert not (tmp_path / "data" / "prefect" / "temporary-server.log").exists()
    print(f"refused in {elapsed:.2f} s")  # shown with -s; a figure, not an assertion


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_killing_the_run_alone_leaves_no_prefect_server_behind(tmp_path: Path) -> None:
    _scheme(tmp_path)
    run = subprocess.Popen(
        [_CIRCULATE, "run", "--input", "inbox", "--warehouse", "wh/circulate.duckdb"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    server = None
    deadline = time.monotonic() + 120
    while server is None and time.monotonic() < deadline and run.poll() is None:
        for child in _children(run.pid):
            if b"circulate.prefect_server" in Path(f"/proc/{child}/cmdline").read_bytes():
                server = child
        time.sleep(0.05)
    assert server is not None, "the run should have started its temporary Prefect server"
    time.sleep(1)  # let the server get going, as an OOM kill mid-night would find it
    os.kill(run.pid, signal.SIGKILL)  # the run alone, as the OOM killer does
    run.wait()
    deadline = time.monotonic() + 60
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server), "the temporary Prefect server outlived the run"
    with run_lock(tmp_path / "wh" / "circulate.duckdb.lock"):
        pass  # and the killed run's lock was released with it
