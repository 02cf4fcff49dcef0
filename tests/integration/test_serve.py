"""`circulate serve` registers the nightly deployment on a real local Prefect server.

The test starts the command as a user would (it starts its own server on a loopback
port), waits for the deployment, triggers a run through the API and sees it complete.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from circulate.generate import generate_scheme

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _api(url: str, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _circulate(command: str, *extra: str) -> list[str]:
    """The command line of ``circulate COMMAND`` on the test's inbox, warehouse and reports."""
    return [
        str(Path(sys.executable).parent / "circulate"),
        command,
        *extra,
        "--input",
        "inbox",
        "--warehouse",
        "wh/circulate.duckdb",
        "--reports",
        "reports",
    ]


def _wait_for(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_serve_registers_the_schedule_and_runs_when_triggered(tmp_path: Path) -> None:
    generate_scheme(tmp_path / "inbox", seed=8, transactions=600, days=10, start=date(2025, 4, 1))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    serve = subprocess.Popen(
        _circulate("serve", "--port", str(port)),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deployment = _wait_for(
            "the deployment",
            lambda: _api(f"{api}/deployments/name/circulate-nightly/nightly"),
            timeout=180,
        )
        schedule = deployment["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Europe/London")
        assert deployment["parameters"]["warehouse"] == str(tmp_path / "wh" / "circulate.duckdb")

        # The server may answer 503 for a moment while the runner registers: retry.
        run = _wait_for(
            "the run to be created",
            lambda: _api(f"{api}/deployments/{deployment['id']}/create_flow_run", {}),
            timeout=60,
        )
        final = _wait_for(
            "the triggered run to finish",
            lambda: (
                state
                if (state := _api(f"{api}/flow_runs/{run['id']}")["state_type"])
                in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                else None
            ),
            timeout=240,
        )
        assert final == "COMPLETED"
        assert (tmp_path / "wh" / "circulate.duckdb").is_file()
        assert (tmp_path / "reports" / "2025-04-10" / "index.html").is_file()

        # `circulate run` with the same Prefect home uses this server: no temporary one.
        runs_before = _api(f"{api}/flow_runs/count", {})
        ran = subprocess.run(
            _circulate("run"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert _api(f"{api}/flow_runs/count", {}) == runs_before + 1
        assert not (tmp_path / "prefect-home" / "temporary-server.log").exists()
    finally:
        serve.send_signal(signal.SIGTERM)
        _out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err.decode()[-2000:]
    with pytest.raises(OSError):
        _api(f"{api}/health")  # the server it started has stopped with it
    assert not (tmp_path / "prefect-home" / "served-api-url").exists()
