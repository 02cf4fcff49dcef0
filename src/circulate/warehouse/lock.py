"""One run at a time: a lock file naming the holder, taken over when its process is gone."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from circulate.errors import RunLocked


def _holder_alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot see another machine's processes: assume it still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(lock_path: Path) -> Iterator[None]:
    """Hold ``lock_path`` for the duration of the block.

    Raises
    ------
    RunLocked
        When a live process holds it; the message names its pid and start time.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for _attempt in range(2):
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock_path.read_text(encoding="utf-8"))
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = {}, -1, socket.gethostname()
            if pid > 0 and _holder_alive(pid, host):
                raise RunLocked(
                    f"Another circulate run holds {lock_path} (pid {pid} on {host}, "
                    f"started {holder.get('started_at', '?')}). Wait for it to finish; if that "
                    "process is gone, delete the lock file."
                ) from None
            lock_path.unlink(missing_ok=True)  # stale: its process died
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(me, handle)
        break
    else:
        raise RunLocked(f"Could not take {lock_path}: another run took it at the same moment.")
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
