"""Time the nightly pipeline stage by stage against the bare DuckDB floor and baselines.

Not part of the tests (``make bench``). For each size it generates a scheme (cached by
size and seed under ``bench/cache``), then in one run measures:

- the floor: one DuckDB scan of the export files with a group-by of count and volume
  by kind (best of three) — the least any pipeline over these files can do here;
- a full rebuild: every stage of the nightly run into a fresh warehouse, peak RSS;
- two incremental nights on a warehouse holding all days but the last two: a mid-month
  night adds the day before last (the scheme's last month stays open), then a month-close
  night adds the last day, which completes that month (whole-history network figures are
  recomputed as of its end);
- the naive baseline (``bench/naive.py``): the headline metrics with pandas, networkx
  and a plain-Python FIFO on the same files. It computes far less than the pipeline
  (no validation, no warehouse, a handful of marts), so the ratio flatters it. With
  ``--naive-max-transactions`` a larger scheme's naive run reads only its first days
  and its time is scaled up to the whole scheme (the table says so);
- the money tracer: numba kernel against the pure-Python FIFO on the same ledger
  (``bench/bench_tracer.py``);
- for the small sizes of ``--cli-night-sizes`` (default 100,000: a town's year), one new
  mid-month day through the real ``circulate run`` as an operator runs it, wall time from the
  command's start to its exit: standalone (it starts its own temporary Prefect server)
  and through a Prefect server that is already running (``PREFECT_API_URL``). At town
  scale fixed costs (imports, the server, rendering) weigh as much as the data.

Results go to ``bench/results/<date>.json``; stage timings and a ratio table go to stdout
as markdown. Each measurement runs in a child process so peak memory is its own.

    uv run python bench/pipeline.py [--sizes 1000000,10000000] [--cli-night-sizes 100000]
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
timings, cpu, started, models, model = {}, {}, {}, {}, {}
def mark(stage):
    # CPU seconds (all threads) are less disturbed than wall time by other work.
    now, now_cpu = time.perf_counter(), time.process_time()
    if started:
        timings[started["stage"]] = round(now - started["at"], 3)
        cpu[started["stage"]] = round(now_cpu - started["cpu"], 3)
    started.update(stage=stage, at=now, cpu=now_cpu)
    note("")
def note(message):
    # The build reports "building <table>" as each model starts: time each model.
    now = time.perf_counter()
    if model:
        models[model["table"]] = round(now - model["at"], 3)
        model.clear()
    if message.startswith("building "):
        model.update(table=message.removeprefix("building "), at=now)
summary = pipeline.run_in_process(settings, on_stage=mark, progress=note)
timings.pop("done", None)
cpu.pop("done", None)
timings["cpu_seconds"] = cpu
timings["models"] = models
timings["rows_loaded"] = summary.rows_loaded
timings["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps(timings))
"""

FLOOR_SQL = """
select kind, count(*) as rows, sum(cast(amount as decimal(18, 2))) as volume
from read_csv($files, header = true, all_varchar = true)
group by kind
"""


def scheme_folder(size: int, seed: int, cache: Path) -> Path:
    folder = cache / f"scheme-{size}-seed{seed}"
    if not (folder / "ground_truth.json").exists():
        from circulate.generate import generate_scheme

        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {size:,} transactions into {folder}", file=sys.stderr)
        generate_scheme(folder, seed=seed, transactions=size, days=365, start=date(2025, 1, 1))
    return folder


def _floor(inbox: Path, repeats: int = 3) -> float:
    """The best of a few scans: the floor is the least the machine can do."""
    import duckdb

    files = sorted(str(p) for p in (inbox / "exports").glob("*.csv"))
    con = duckdb.connect()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        con.execute(FLOOR_SQL, {"files": files}).fetchall()
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


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


def linked_inbox(
    source: Path, target: Path, *, leave_out: int = 0, days: int | None = None
) -> Path:
    """An inbox of hard links to the scheme's files: all days, all but the last
    ``leave_out``, or the first ``days``."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "exports").mkdir(parents=True)
    for name in ("accounts.csv", "areas.csv"):
        os.link(source / name, target / name)
    exports = sorted((source / "exports").glob("*.csv"))
    exports = exports[: len(exports) - leave_out]
    for path in exports[:days]:
        os.link(path, target / "exports" / path.name)
    return target


def _child_json(arguments: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{arguments[0]} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _naive(scheme: Path, size: int, work: Path, max_transactions: int | None) -> dict[str, Any]:
    """Run bench/naive.py on the scheme (or on its first days, scaled up to all of it)."""
    truth = json.loads((scheme / "ground_truth.json").read_text())
    days = sorted((scheme / "exports").glob("*.csv"))
    folder = scheme
    if max_transactions is not None and size > max_transactions:
        keep = max(1, len(days) * max_transactions // size)
        folder = linked_inbox(scheme, work / "naive-prefix", days=keep)
    out = _child_json(
        [str(BENCH_DIR / "naive.py"), str(folder), "--timezone", truth["parameters"]["timezone"]]
    )
    seconds = float(out["seconds"])
    return {
        "seconds": seconds,
        "rows": out["rows"],
        "prefix": folder != scheme,
        "seconds_at_full_size": round(seconds * size / out["rows"], 3),
        "steps": out["steps"],
        "peak_rss_mib": out["peak_rss_mib"],
    }


def measure(
    size: int,
    seed: int,
    cache: Path,
    work: Path,
    *,
    naive_max_transactions: int | None = None,
    tracer: bool = True,
) -> dict[str, Any]:
    scheme = scheme_folder(size, seed, cache)
    load_before = os.getloadavg()[0]
    floor = _floor(scheme)
    shutil.rmtree(work, ignore_errors=True)
    full_inbox = linked_inbox(scheme, work / "inbox-full")
    # Linked before the full rebuild: a link changes a file's status-change time, and a
    # hash taken within seconds of that is taken again the next night (FileHashes), which
    # an operator's archive, received days before, never pays.
    inbox = linked_inbox(scheme, work / "inbox-incremental", leave_out=2)
    full = _run_stages(full_inbox, work / "full" / "circulate.duckdb")
    _run_stages(inbox, work / "incremental" / "circulate.duckdb")
    before_last, last = sorted((scheme / "exports").glob("*.csv"))[-2:]
    os.link(before_last, inbox / "exports" / before_last.name)
    incremental = _run_stages(inbox, work / "incremental" / "circulate.duckdb")
    os.link(last, inbox / "exports" / last.name)
    month_close = _run_stages(inbox, work / "incremental" / "circulate.duckdb")
    naive = _naive(scheme, size, work, naive_max_transactions)
    traced = (
        _child_json([str(BENCH_DIR / "bench_tracer.py"), "--scheme", str(scheme), "--json"])
        if tracer
        else None
    )
    stage_names = ("start", "ingest", "validate", "build", "check", "publish", "export")
    full_total = sum(full.get(s, 0.0) for s in stage_names)
    incremental_total = sum(incremental.get(s, 0.0) for s in stage_names)
    month_close_total = sum(month_close.get(s, 0.0) for s in stage_names)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "transactions": size,
        "floor_seconds": floor,
        "full": full,
        "full_seconds": round(full_total, 3),
        "ingest_rows_per_second": round(full["rows_loaded"] / full["ingest"]),
        "incremental": incremental,
        "incremental_seconds": round(incremental_total, 3),
        "month_close": month_close,
        "month_close_seconds": round(month_close_total, 3),
        "naive": naive,
        "tracer": traced,
        "ratio_full_vs_floor": round(full_total / floor, 2),
        "ratio_incremental_vs_full": round(incremental_total / full_total, 3),
        "ratio_month_close_vs_full": round(month_close_total / full_total, 3),
        "ratio_naive_vs_full": round(naive["seconds_at_full_size"] / full_total, 2),
        "tracer_speedup": traced["speedup"] if traced else None,
        "peak_rss_mib": full["peak_rss_mib"],
        # Other work on the machine inflates every figure: the 1-minute load average
        # before and after this size's measurements says how busy it was.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def measure_cli_night(size: int, seed: int, cache: Path, work: Path) -> dict[str, Any]:
    """Wall time of ``circulate run`` adding a mid-month day, standalone and with a server.

    Both runs start from the same warehouse of every day but the last two and add the day
    before last (the scheme's last month stays open), each with a cache
    folder of its own holding only the report's JavaScript bundle, as on any machine after
    its first night: no chart drawn by the other run is reused. The Prefect home already
    holds its database, as after the first night: a server started once creates it (on a
    new home that alone takes about 6 s, once).
    """
    from circulate.prefect_server import launch_temporary_server
    from circulate.report import charts

    scheme = scheme_folder(size, seed, cache)
    shutil.rmtree(work, ignore_errors=True)
    inbox = linked_inbox(scheme, work / "inbox", leave_out=2)
    base = work / "base" / "circulate.duckdb"
    _run_stages(inbox, base)
    before_last = sorted((scheme / "exports").glob("*.csv"))[-2]
    os.link(before_last, inbox / "exports" / before_last.name)
    env = dict(
        os.environ,
        CIRCULATE_PSEUDONYM_KEY=KEY,
        PREFECT_HOME=str(work / "prefect"),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    env.pop("PREFECT_API_URL", None)
    circulate = str(Path(sys.executable).parent / "circulate")
    os.environ["PREFECT_HOME"] = env["PREFECT_HOME"]  # for the servers started below
    warm_up = launch_temporary_server(work / "prefect" / "first-start.log")
    warm_up.wait_until_ready()
    warm_up.stop()
    seconds: dict[str, float] = {}
    for mode in ("standalone", "running_server"):
        night = work / mode
        shutil.copytree(base.parent, night)
        os.environ["CIRCULATE_CACHE_DIR"] = str(night / "cache")
        charts.javascript_bundle()  # built into this run's cache folder
        del os.environ["CIRCULATE_CACHE_DIR"]
        server = None
        if mode == "running_server":
            server = launch_temporary_server(work / "prefect" / "bench-server.log")
            server.wait_until_ready()
        run_env = dict(env, CIRCULATE_CACHE_DIR=str(night / "cache"))
        if server:
            run_env["PREFECT_API_URL"] = server.api_url
        started = time.perf_counter()
        done = subprocess.run(
            [
                circulate,
                "run",
                "--input",
                str(inbox),
                "--warehouse",
                str(night / "circulate.duckdb"),
                "--reports",
                str(night / "reports"),
            ],
            cwd=work,
            env=run_env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds[mode] = round(time.perf_counter() - started, 2)
        if server:
            server.stop()
        if done.returncode != 0:
            raise RuntimeError(f"circulate run ({mode}) failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "transactions": size,
        "night_standalone_seconds": seconds["standalone"],
        "night_running_server_seconds": seconds["running_server"],
        "load_average": round(os.getloadavg()[0], 2),
    }


def cli_markdown(nights: list[dict[str, Any]]) -> list[str]:
    """One new day through ``circulate run``, against the targets of the nightly issue."""
    if not nights:
        return []
    lines = [
        "| transactions | one new mid-month day, `circulate run` standalone (s) "
        "| through a running Prefect server (s) | load |",
        "|---:|---:|---:|---:|",
    ]
    for n in nights:
        lines.append(
            f"| {n['transactions']:,} | {n['night_standalone_seconds']:.1f} "
            f"| {n['night_running_server_seconds']:.1f} | {n['load_average']:.2f} |"
        )
    return lines


def markdown(results: list[dict[str, Any]]) -> str:
    """Stage timings, then the ratios, as two markdown tables (and notes)."""
    lines = [
        "| transactions | floor (s) | full rebuild (s) | ingest (CPU s) | ingest rows/s "
        "| validate | build | check | peak RSS (MiB) | mid-month night (s) "
        "| month-close night (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f = r["full"]
        lines.append(
            f"| {r['transactions']:,} | {r['floor_seconds']:.2f} | {r['full_seconds']:.1f} "
            f"| {f['ingest']:.1f} ({f['cpu_seconds']['ingest']:.1f}) "
            f"| {r['ingest_rows_per_second']:,} | {f['validate']:.1f} "
            f"| {f['build']:.1f} | {f['check']:.1f} | {f['peak_rss_mib']:,.0f} "
            f"| {r['incremental_seconds']:.1f} | {r['month_close_seconds']:.1f} |"
        )
    lines += [
        "",
        "| transactions | pipeline ÷ floor | naive pandas+networkx (s) | naive ÷ pipeline "
        "| tracer: Python ÷ numba | mid-month night ÷ full | month-close night ÷ full "
        "| peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for r in results:
        naive = r["naive"]
        naive_seconds = f"{naive['seconds_at_full_size']:.1f}"
        if naive["prefix"]:
            naive_seconds += "*"
            notes.append(
                f"* {r['transactions']:,}: naive timed on the first {naive['rows']:,} rows "
                f"({naive['seconds']:.1f} s), scaled linearly to the whole scheme."
            )
        speedup = f"{r['tracer_speedup']:.0f}×" if r["tracer_speedup"] else "–"
        lines.append(
            f"| {r['transactions']:,} | {r['ratio_full_vs_floor']:.1f}× | {naive_seconds} "
            f"| {r['ratio_naive_vs_full']:.2f}× | {speedup} "
            f"| {r['ratio_incremental_vs_full']:.0%} | {r['ratio_month_close_vs_full']:.0%} "
            f"| {r['peak_rss_mib']:,.0f} |"
        )
    slowest = _model_table(results)
    lines += ["", *slowest] if slowest else []
    return "\n".join(lines + (["", *notes] if notes else []))


def _model_table(results: list[dict[str, Any]], top: int = 8) -> list[str]:
    """The build's slowest models at the largest size: full rebuild and the two nights."""
    largest = max(results, key=lambda r: int(r["transactions"]))
    full = largest["full"].get("models", {})
    incremental = largest["incremental"].get("models", {})
    month_close = largest["month_close"].get("models", {})
    if not full:
        return []
    lines = [
        f"| slowest models at {largest['transactions']:,} | full rebuild (s) "
        "| mid-month night (s) | month-close night (s) |",
        "|---|---:|---:|---:|",
    ]
    for table in sorted(full, key=lambda t: -full[t])[:top]:
        lines.append(
            f"| {table} | {full[table]:.1f} | {incremental.get(table, 0.0):.1f} "
            f"| {month_close.get(table, 0.0):.1f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / "cache")
    parser.add_argument(
        "--naive-max-transactions",
        type=int,
        help="run the naive baseline on a prefix of larger schemes and scale its time up",
    )
    parser.add_argument("--no-tracer", action="store_true", help="skip the tracer comparison")
    parser.add_argument(
        "--cli-night-sizes",
        default="100000",
        help="sizes whose day before last is also run through `circulate run` ('' for none)",
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results" / f"{date.today():%Y-%m-%d}.json"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sizes already in --out (one size per run, one file per day)",
    )
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        print(f"measuring {size:,} transactions …", file=sys.stderr)
        results.append(
            measure(
                size,
                args.seed,
                args.cache,
                args.cache / "work",
                naive_max_transactions=args.naive_max_transactions,
                tracer=not args.no_tracer,
            )
        )
    nights = []
    for size in (int(s) for s in args.cli_night_sizes.split(",") if s):
        print(f"one new day of {size:,} transactions through circulate run …", file=sys.stderr)
        nights.append(measure_cli_night(size, args.seed, args.cache, args.cache / "work-cli"))
    out = args.out
    out.parent.mkdir(exist_ok=True)
    if args.merge and out.exists():
        measured = {r["transactions"] for r in results}
        earlier = json.loads(out.read_text()).get("results", [])
        kept = [r for r in earlier if r["transactions"] not in measured and "month_close" in r]
        results = sorted(kept + results, key=lambda r: int(r["transactions"]))
    payload = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": results,
        "cli_nights": nights,
        "peak_rss_self_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    table = "\n\n".join(
        part
        for part in (markdown(results) if results else "", "\n".join(cli_markdown(nights)))
        if part
    )
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwritten to {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
