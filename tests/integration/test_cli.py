"""The real ``circulate`` command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _circulate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "circulate"), *args]
    # As a user runs it: Prefect's home is the CLI's default, not the test session's.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_HOME"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_generate_then_run_prints_the_report_path(tmp_path: Path) -> None:
    generated = _circulate(
        "generate",
        "--out",
        "scheme",
        "--seed",
        "5",
        "--transactions",
        "800",
        "--days",
        "20",
        cwd=tmp_path,
    )
    assert generated.returncode == 0, generated.stderr
    assert "wrote 800 transactions over 20 days" in generated.stderr
    truth = json.loads((tmp_path / "scheme" / "ground_truth.json").read_text())
    assert truth["rows"] == 800

    ran = _circulate(
        "run",
        "--input",
        "scheme",
        "--warehouse",
        "wh/circulate.duckdb",
        "--reports",
        "out",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = Path(ran.stdout.strip().splitlines()[-1])
    assert report == Path("out/2025-01-20/index.html")
    assert (tmp_path / report).is_file()
    assert (tmp_path / "data" / "prefect").is_dir(), "Prefect's state stays under data/"


def test_missing_input_folder_is_a_clear_error(tmp_path: Path) -> None:
    ran = _circulate("run", "--input", "nowhere", "--warehouse", "wh/c.duckdb", cwd=tmp_path)
    assert ran.returncode == 2
    assert "Input folder nowhere does not exist" in ran.stderr
    assert not (tmp_path / "wh" / "c.duckdb").exists()


def test_uv_run_does_not_compile_bytecode_again() -> None:
    """Bytecode is compiled once by `make install`, not by every `uv run` (≈ 1 s each)."""
    import shutil

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    project = Path(__file__).resolve().parents[2]
    ran = subprocess.run(
        [uv, "run", "--frozen", "circulate", "--help"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Bytecode compiled" not in ran.stderr
    assert "exit codes:" in ran.stdout


def test_the_command_runs_the_exit_handlers_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """`circulate` ends with os._exit after main (no interpreter teardown): exit handlers,
    where Prefect flushes its logs, still run, after main's message, and the exit code is
    main's (2: the input folder is missing)."""
    script = (
        "import atexit, sys\n"
        "from circulate import cli\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        f"sys.argv = ['circulate', 'run', '--input', {str(tmp_path / 'missing')!r}, "
        f"'--warehouse', {str(tmp_path / 'w' / 'circulate.duckdb')!r}]\n"
        "cli.console_main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert done.stdout.strip().endswith("exit handler ran")
