"""The run lock: the kernel decides who holds it, never a pid read from the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from circulate.errors import RunLocked
from circulate.warehouse.lock import run_lock

# A process that takes the lock, says so on stdout and holds it until killed.
_HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from circulate.warehouse.lock import run_lock
    with run_lock(Path(sys.argv[1])):
        print("held", flush=True)
        time.sleep(600)
    """
)

# Each racer, once every racer is ready, tries to take the lock until it has held it five
# times. Whenever it holds it, it writes "enter" and then "exit" (or "crash") lines to one
# append-only log shared by all; some racers die on their third hold with their name in the
# lock file, like a crashed run, and the kernel must release the lock for the others.
_RACE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from circulate.errors import RunLocked
    from circulate.warehouse.lock import run_lock
    lock, log, go, crash_on = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    held, give_up = 0, time.monotonic() + 120
    while held < 5 and time.monotonic() < give_up:
        try:
            with run_lock(lock):
                held += 1
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, f"enter {os.getpid()}\\n".encode())
                time.sleep(0.002)
                if held == crash_on:
                    os.write(fd, f"crash {os.getpid()}\\n".encode())
                    os._exit(0)  # dies holding it
                os.write(fd, f"exit {os.getpid()}\\n".encode())
                os.close(fd)
        except RunLocked:
            time.sleep(0.0005)
    """
)


def _hold(lock: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_is_refused_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "circulate.duckdb.lock"
    holder = _hold(lock)
    try:
        refused_by = rf"pid {holder.pid} on .*Nothing was done"
        with pytest.raises(RunLocked, match=refused_by) as refused, run_lock(lock):
            pass
        assert refused.value.exit_code == 5
    finally:
        holder.kill()
        holder.wait()
    with run_lock(lock):  # killed with SIGKILL: the kernel released it at once
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_process_holding_the_lock_may_enter_it_again(tmp_path: Path) -> None:
    lock = tmp_path / "circulate.duckdb.lock"
    with run_lock(lock):
        with run_lock(lock):
            pass
        # Leaving the inner block did not release it.
        holder = subprocess.run(
            [sys.executable, "-c", _HOLD, str(lock)], capture_output=True, text=True, timeout=60
        )
        assert holder.returncode != 0 and "Another circulate run holds" in holder.stderr
    assert lock.read_text() == "", "the holder's name is cleared on release"


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    lock = tmp_path / "circulate.duckdb.lock"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": "x", "started_at": "2025"}))
    with run_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_racing_processes_never_hold_the_lock_together(tmp_path: Path) -> None:
    lock, log, go = tmp_path / "circulate.duckdb.lock", tmp_path / "holders.log", tmp_path / "go"
    # A name left by a process that is gone, half written: it may not decide anything.
    lock.write_text('{"pid": 999999, "host": "')
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, str(lock), str(log), str(go), "3" if i % 3 else "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    go.touch()
    for racer in racers:
        assert racer.wait(timeout=240) == 0
    events = [line.split() for line in log.read_text().splitlines()]
    holder = None
    for event, pid in events:
        if event == "enter":
            assert holder is None, f"{pid} took the lock while {holder} held it"
            holder = pid
        else:
            assert holder == pid
            holder = None
    crashes = [pid for event, pid in events if event == "crash"]
    assert len(crashes) == 8, "each racer that died holding the lock did so once"
    holds = [pid for event, pid in events if event == "enter"]
    assert len(holds) == 4 * 5 + 8 * 3, "every racer got the lock as often as it asked"


def test_sigkill_of_the_holder_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "circulate.duckdb.lock"
    holder = _hold(lock)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with run_lock(lock):
        pass
