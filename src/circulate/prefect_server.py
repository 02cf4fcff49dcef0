"""Start, or find, the local Prefect server that ``circulate serve`` registers with.

This module starts the server as a subprocess and talks to it over HTTP only; it never
imports Prefect, so the core stays Prefect-free.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
