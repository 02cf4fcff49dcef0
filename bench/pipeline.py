"""Time the nightly pipeline stage by stage against the bare DuckDB floor.

Not part of the tests (``make bench``). For each size it generates a scheme (cached by
size and seed under ``bench/cache``), then in one run measures:

- the floor: one DuckDB scan of the export files with a group-by of count and volume
  by kind — the least any pipeline over these files can do on this machine;
- a full rebuild: every stage of the nightly run into a fresh warehouse, peak RSS;
- an incremental night: the same warehouse holding all days but the last, then a run
  that adds the last day's file.

Results go to ``bench/results/<date>.json`` and a markdown table on stdout. Each stage
runs in a child process so peak memory is the stage's own.

    uv run python bench/pipeline.py [--sizes 1000000,10000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
KEY = "benchmark-pseudonym-key-0123456789"

STAGES_CHILD = """
import json, sys, time, resource
from pathlib import Path
from circulate import pipeline
from circulate.settings import Settings

inbox, warehouse = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(inbox=inbox, warehouse=warehouse, reports=warehouse.parent / "reports",
                    private_dir=warehouse.parent / "private", key_file=warehouse.parent / "key")
timings, started = {}, {}
def mark(stage):
    now = time.perf_counter()
    if started:
        timings[started["stage"]] = round(now - started["at"], 3)
    started.update(stage=stage, at=now)
summary = pipeline.run_in_process(settings, on_stage=mark)
timings.pop("done", None)
timings["rows_loaded"] = summary.rows_loaded
timings["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps(timings))
"""

FLOOR_SQL = """
select kind, count(*) as rows, sum(cast(amount as decimal(18, 2))) as volume
from read_csv($files, header = true, all_varchar = true)
group by kind
"""


def _scheme(size: int, seed: int, cache: Path) -> Path:
    folder = cache / f"scheme-{size}-seed{seed}"
    if not (folder / "ground_truth.json").exists():
        from circulate.generate import generate_scheme

        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {size:,} transactions into {folder}", file=sys.stderr)
        generate_scheme(folder, seed=seed, transactions=size, days=365, start=date(2025, 1, 1))
    return folder


def _floor(inbox: Path) -> float:
    import duckdb

    files = sorted(str(p) for p in (inbox / "exports").glob("*.csv"))
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(FLOOR_SQL, {"files": files}).fetchall()
    return round(time.perf_counter() - started, 3)


def _run_stages(inbox: Path, warehouse: Path) -> dict[str, Any]:
    env = dict(os.environ, CIRCULATE_PSEUDONYM_KEY=KEY)
    done = subprocess.run(
        [sys.executable, "-c", STAGES_CHILD, str(inbox), str(warehouse)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pipeline stages failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _linked_inbox(source: Path, target: Path, *, leave_out_last: bool) -> Path:
    """An inbox of hard links to the scheme's files (optionally without the last day)."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "exports").mkdir(parents=True)
    for name in ("accounts.csv", "areas.csv"):
        os.link(source / name, target / name)
    days = sorted((source / "exports").glob("*.csv"))
    for path in days[:-1] if leave_out_last else days:
        os.link(path, target / "exports" / path.name)
    return target


def measure(size: int, seed: int, cache: Path, work: Path) -> dict[str, Any]:
    scheme = _scheme(size, seed, cache)
    floor = _floor(scheme)
    shutil.rmtree(work, ignore_errors=True)
    full = _run_stages(
        _linked_inbox(scheme, work / "inbox-full", leave_out_last=False),
        work / "full" / "circulate.duckdb",
    )
    inbox = _linked_inbox(scheme, work / "inbox-incremental", leave_out_last=True)
    _run_stages(inbox, work / "incremental" / "circulate.duckdb")
    last = sorted((scheme / "exports").glob("*.csv"))[-1]
    os.link(last, inbox / "exports" / last.name)
    incremental = _run_stages(inbox, work / "incremental" / "circulate.duckdb")
    stage_names = ("start", "ingest", "validate", "build", "check", "publish", "export")
    full_total = sum(full.get(s, 0.0) for s in stage_names)
    incremental_total = sum(incremental.get(s, 0.0) for s in stage_names)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "transactions": size,
        "floor_seconds": floor,
        "full": full,
        "full_seconds": round(full_total, 3),
        "incremental": incremental,
        "incremental_seconds": round(incremental_total, 3),
        "ratio_full_vs_floor": round(full_total / floor, 2),
        "ratio_incremental_vs_full": round(incremental_total / full_total, 3),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| transactions | floor (s) | full rebuild (s) | full ÷ floor | ingest | validate "
        "| build | check | peak RSS (MiB) | incremental night (s) | incremental ÷ full |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r["full"]
        lines.append(
            f"| {r['transactions']:,} | {r['floor_seconds']:.2f} | {r['full_seconds']:.1f} "
            f"| {r['ratio_full_vs_floor']:.1f}× | {f['ingest']:.1f} | {f['validate']:.1f} "
            f"| {f['build']:.1f} "
            f"| {f['check']:.1f} | {f['peak_rss_mib']:,.0f} | {r['incremental_seconds']:.1f} "
            f"| {r['ratio_incremental_vs_full']:.0%} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / "cache")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size:,} transactions …", file=sys.stderr)
        results.append(measure(size, args.seed, args.cache, args.cache / "work"))
    out = BENCH_DIR / "results" / f"{date.today():%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
        "peak_rss_self_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown(results))
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
