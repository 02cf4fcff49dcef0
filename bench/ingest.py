"""Time (and optionally profile) ingestion alone on a generated scheme.

Not part of the tests. Runs ``begin_run`` → ``ingest_new_files`` into a fresh warehouse
in a temporary folder and prints rows in, wall and CPU seconds and rows per second;
with ``--profile`` it also prints a pyinstrument call tree (where the time goes)::

    uv run --frozen --no-sync python bench/ingest.py [--transactions 1000000] [--profile]

``--src DIR`` imports circulate from another source tree (for example an older version
exported with ``git archive``), to compare before and after in one sitting. The scheme
is the benchmark's (cached by size and seed under ``bench/cache``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from pipeline import KEY, linked_inbox, scheme_folder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / "cache")
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument tree")
    parser.add_argument("--src", type=Path, help="import circulate from this source folder")
    args = parser.parse_args()
    if args.src:
        forwarded = [a for a in sys.argv[1:] if a not in ("--src", str(args.src))]
        env = dict(os.environ, PYTHONPATH=str(args.src.resolve()))
        child = subprocess.run([sys.executable, __file__, *forwarded], env=env, check=False)
        return child.returncode
    os.environ["CIRCULATE_PSEUDONYM_KEY"] = KEY
    scheme = scheme_folder(args.transactions, args.seed, args.cache)

    from circulate import pipeline
    from circulate.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        inbox = linked_inbox(scheme, work / "inbox")
        settings = Settings(
            inbox=inbox,
            warehouse=work / "warehouse" / "circulate.duckdb",
            reports=work / "reports",
            private_dir=work / "private",
            key_file=work / "key",
        )
        ctx = pipeline.begin_run(settings)
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.005)
            profiler.start()
        started, cpu = time.perf_counter(), time.process_time()
        summary = pipeline.ingest_new_files(ctx)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        pipeline.skip_publish(ctx)
    rows_in = sum(f.rows_in for f in summary.files)
    print(
        f"circulate from {Path(pipeline.__file__).parent}: {summary.files_new} files, "
        f"{rows_in:,} rows in, {summary.rows_loaded:,} loaded: {seconds:.2f} s "
        f"({cpu:.2f} s CPU), {rows_in / seconds:,.0f} rows/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
