"""One run at a time: a kernel lock (``flock``) on a lock file beside the warehouse.

The kernel decides who holds the lock and releases it when the holder's process ends,
however it ends (crash, ``kill -9``, the OOM killer), so there is no stale lock to take
over and no pid to parse. The file also records the holder's pid, host and start time,
but only for the message a refused run prints. The file is never deleted: deleting a
lock file by path while another process waits on the same file lets two processes hold
two different files at once.

A process that already holds the lock may enter :func:`run_lock` again (``circulate
run`` takes it before starting Prefect, and the nightly flow takes it once more): the
inner block neither locks nor releases.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from circulate.errors import RunLocked

#: Lock files this process holds, by resolved path, with how many blocks entered them.
_held: dict[Path, int] = {}


def _describe_holder(text: str) -> str:
    """The holder as its lock file names it, for the refusal message.

    >>> _describe_holder('{"pid": 42, "host": "box", "started_at": "2026-12-06T02:00:00+00:00"}')
    'pid 42 on box, started 2026-12-06T02:00:00+00:00'
    >>> _describe_holder("")
    'a process that has not yet written its name'
    """
    try:
        holder = json.loads(text)
        return f"pid {int(holder['pid'])} on {holder['host']}, started {holder['started_at']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


@contextmanager
def run_lock(lock_path: Path) -> Iterator[None]:
    """Hold the kernel lock on ``lock_path`` for the duration of the block.

    Never waits: a run that finds the lock held is refused at once.

    Raises
    ------
    RunLocked
        When another process holds it; the message names the holder and what to do.
    """
    key = lock_path.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            raise RunLocked(
                f"Another circulate run holds {lock_path} ({holder}). Nothing was done; "
                "run again when it has finished (`circulate status` lists the runs). The "
                "lock is released by the operating system when that process ends."
            ) from None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # the name is only for messages: no holder, no name
    finally:
        os.close(fd)  # closing the descriptor releases the lock
