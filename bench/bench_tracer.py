"""Time the numba money tracer against the pure-Python FIFO on the same generated ledger.

Not part of the tests. Usage::

    uv run --frozen --no-sync python bench/bench_tracer.py [--transactions 1000000]

Generates a scheme (``circulate.generate``; or ``--scheme DIR`` takes a generated one,
``--json`` prints one object for ``bench/pipeline.py``), reads its exports with DuckDB into the
tracer's arrays (the same replay order and issuer rule as the warehouse: issuer accounts
are the sources of issuances and targets of redemptions and fees), traces it FIFO with
both implementations, asserts identical results and prints times and the ratio. The
numba compile (or cache load) is timed separately and left out of the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from circulate.generate import GroundTruth, generate_scheme
from circulate.metrics.tracing import Ledger, trace, trace_reference

READ_SQL = """
with t as (
    select * from read_csv($files, header = true, columns = {
        'txn_id': 'VARCHAR', 'occurred_at': 'TIMESTAMPTZ', 'source_id': 'VARCHAR',
        'target_id': 'VARCHAR', 'amount': 'DECIMAL(18,2)', 'kind': 'VARCHAR',
        'channel': 'VARCHAR'})
),

issuers as (
    select source_id as account_id from t where kind = 'issuance'
    union
    select target_id from t where kind in ('redemption', 'fee')
),

members as (
    select account_id, row_number() over (order by account_id) - 1 as idx
    from (select source_id as account_id from t union select target_id from t)
    where account_id not in (select account_id from issuers)
),

days as (
    select *, cast(timezone($timezone, occurred_at) as date) as local_day from t
)

select
    cast(epoch_us(occurred_at) // 1000000 as bigint) as at,
    cast(local_day - (select min(local_day) from days) as bigint) as day,
    cast(case kind when 'issuance' then 0 when 'transfer' then 1 when 'redemption' then 2
        when 'fee' then 3 else 4 end as bigint) as kind,
    cast(coalesce(s.idx, -1) as bigint) as source,
    cast(coalesce(g.idx, -1) as bigint) as target,
    cast(amount * 100 as bigint) as pence
from days
left join members as s on s.account_id = days.source_id
left join members as g on g.account_id = days.target_id
order by occurred_at, txn_id
"""


def read_ledger(scheme: Path, timezone: str, first_day: date) -> Ledger:
    """The generated exports as tracer arrays, in replay order."""
    con = duckdb.connect()
    try:
        files = sorted(str(p) for p in (scheme / "exports").glob("*.csv"))
        arrays = con.execute(READ_SQL, {"files": files, "timezone": timezone}).fetchnumpy()
    finally:
        con.close()

    def column(name: str) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
        return np.ascontiguousarray(arrays[name], dtype=np.int64)

    return Ledger(
        at=column("at"),
        day=column("day"),
        kind=column("kind"),
        source=column("source"),
        target=column("target"),
        pence=column("pence"),
        first_day=first_day,
    )


def measure(ledger: Ledger) -> dict[str, float]:
    """Seconds of the numba tracer (compile excluded) and of the pure-Python FIFO.

    Asserts both give identical results and that Σ amount × hops is the transfer volume.
    """
    started = time.perf_counter()
    trace(
        Ledger(
            at=ledger.at[:2],
            day=ledger.day[:2],
            kind=ledger.kind[:2],
            source=ledger.source[:2],
            target=ledger.target[:2],
            pence=ledger.pence[:2],
            first_day=ledger.first_day,
        )
    )
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    fast = trace(ledger)
    numba_seconds = time.perf_counter() - started
    started = time.perf_counter()
    slow = trace_reference(ledger)
    python_seconds = time.perf_counter() - started
    assert fast.equals(slow), "numba tracer and pure-Python reference disagree"
    assert fast.hop_pence == int(
        ledger.pence[(ledger.kind == 1) & (ledger.target >= 0) & (ledger.source >= 0)].sum()
    )
    return {
        "rows": int(ledger.at.size),
        "compile_seconds": round(warmup, 3),
        "numba_seconds": round(numba_seconds, 3),
        "python_seconds": round(python_seconds, 3),
        "speedup": round(python_seconds / numba_seconds, 1),
        "issued_pence": fast.issued,
        "full_multiplier": 1 + fast.hop_pence / fast.issued,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=2012)
    parser.add_argument(
        "--scheme", type=Path, help="trace this generated scheme instead of generating one"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.scheme:
        truth = GroundTruth.from_json(args.scheme / "ground_truth.json")
        started = time.perf_counter()
        ledger = read_ledger(args.scheme, truth.timezone, truth.start)
        loaded = time.perf_counter() - started
        generated = 0.0
    else:
        with tempfile.TemporaryDirectory(prefix="bench-tracer-") as tmp:
            scheme = Path(tmp)
            started = time.perf_counter()
            truth = generate_scheme(
                scheme, seed=args.seed, transactions=args.transactions, days=args.days
            )
            generated = time.perf_counter() - started
            started = time.perf_counter()
            ledger = read_ledger(scheme, truth.timezone, truth.start)
            loaded = time.perf_counter() - started
    result = measure(ledger)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"ledger: {ledger.at.size:,} rows, {ledger.accounts:,} member accounts, "
        f"{ledger.issuances:,} issuances (generated in {generated:.1f} s, read in {loaded:.1f} s)"
    )
    print(f"numba compile/cache load: {result['compile_seconds']:.2f} s (excluded)")
    print(f"numba tracer:      {result['numba_seconds']:8.3f} s")
    print(f"pure-Python FIFO:  {result['python_seconds']:8.3f} s")
    print(f"ratio (python / numba): {result['speedup']:.1f}x; results identical")
    print(f"issued {int(result['issued_pence']) / 100:,.2f}; M = {result['full_multiplier']:.4f}")


if __name__ == "__main__":
    main()
