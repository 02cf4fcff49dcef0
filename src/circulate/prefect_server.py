"""Start, or find, the Prefect servers circulate runs its flows against.

``circulate serve`` starts a lasting local server (:func:`start_local_server`);
``circulate run`` starts a temporary one for the night (:func:`launch_temporary_server`)
unless ``PREFECT_API_URL`` names a running one. This module starts servers as
subprocesses and talks to them over HTTP only; it never imports Prefect, so the core
stays Prefect-free.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from circulate.errors import ConfigurationError

DEFAULT_PORT = 4200


def healthy(api_url: str) -> bool:
    """True when the Prefect API at ``api_url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_local_server(
    port: int, log_file: Path, *, timeout: float = 120.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` and wait until it answers.

    Returns the process and the API URL. The server's output goes to ``log_file``.
    """
    api_url = f"http://127.0.0.1:{port}/api"
    if healthy(api_url):
        raise ConfigurationError(
            f"A Prefect server already answers on port {port}: connect to it with "
            f"PREFECT_API_URL={api_url} (or --api-url), or choose another --port."
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ConfigurationError(
                f"The Prefect server stopped at start-up (exit {server.returncode}); "
                f"see {log_file}."
            )
        if healthy(api_url):
            return server, api_url
        time.sleep(0.5)
    server.terminate()
    raise ConfigurationError(
        f"The Prefect server did not answer within {timeout:.0f} s; see {log_file}."
    )


#: The file in ``PREFECT_HOME`` naming the API ``circulate serve`` serves through.
SERVED_API_FILE = "served-api-url"


def announce_served_api(prefect_home: Path, api_url: str) -> Path:
    """Tell later commands sharing ``prefect_home`` which API ``circulate serve`` uses."""
    path = prefect_home / SERVED_API_FILE
    path.write_text(api_url + "\n", encoding="utf-8")
    return path


def served_api(prefect_home: Path) -> str | None:
    """The API ``circulate serve`` announced in ``prefect_home``, if it answers now."""
    try:
        api_url = (prefect_home / SERVED_API_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return api_url if api_url and healthy(api_url) else None


#: Environment Prefect's own temporary server runs with: no UI, no background services.
_TEMPORARY_SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
#: uvicorn's exit code when its port was taken between choosing and binding it.
_PORT_TAKEN_EXIT_CODE = 3
_PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_tied_to_parent(parent_pid: int, module: str, arguments: list[str]) -> None:
    """Run ``python -m module arguments`` in this process, stopped when ``parent_pid`` dies.

    Linux stops the process with SIGTERM when its parent dies (``PR_SET_PDEATHSIG``); the
    OOM killer ends only the process it picks, and without this the server that process
    started would be re-parented and keep running, one more every such night. The request
    is made here, after ``exec``, rather than in a ``preexec_fn``, which is unsafe in a
    parent that already runs threads. Elsewhere than Linux there is no such request.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        sys.exit(1)
    sys.argv = [module, *arguments]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


@dataclass
class TemporaryServer:
    """A Prefect API server that lives exactly as long as the command that started it."""

    process: subprocess.Popen[bytes]
    api_url: str
    log_file: Path

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Return once the server answers; stop it and raise if it does not in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if healthy(self.api_url):
                return
            time.sleep(0.1)
        self.stop()
        if self.process.returncode == _PORT_TAKEN_EXIT_CODE:
            cause = f"another program took its port ({self.api_url}) as it started"
        else:
            cause = f"it did not answer within {timeout:.0f} s (exit {self.process.returncode})"
        raise ConfigurationError(
            f"The temporary Prefect server did not start: {cause}; see {self.log_file}. Run "
            "again, or point PREFECT_API_URL at a running server (`circulate serve` starts one)."
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_temporary_server(log_file: Path) -> TemporaryServer:
    """Start a Prefect API server for one command, the way Prefect starts its own.

    Prefect starts the same server by itself when no ``PREFECT_API_URL`` is set, but as a
    child that outlives a killed parent. This one is tied to the calling process (see
    :func:`_run_tied_to_parent`), listens on a free port of 127.0.0.1 and writes its
    output to ``log_file``. It returns at once, so the caller can import Prefect (with
    ``PREFECT_API_URL`` set to :attr:`TemporaryServer.api_url`: Prefect reads it on
    import) while the server starts; then :meth:`TemporaryServer.wait_until_ready`, and
    :meth:`TemporaryServer.stop` when done.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "circulate.prefect_server",
                str(os.getpid()),
                "uvicorn",
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **_TEMPORARY_SERVER_ENV},
        )
    return TemporaryServer(process, f"http://127.0.0.1:{port}/api", log_file)


if __name__ == "__main__":
    _run_tied_to_parent(int(sys.argv[1]), sys.argv[2], sys.argv[3:])
