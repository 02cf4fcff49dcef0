"""Writers for the generated files: daily exports, accounts, areas."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.generate.city import ACCOUNT_TYPES, SECTORS, WARDS, Population
from circulate.generate.clock import Calendar
from circulate.generate.events import CHANNELS, KINDS

__all__ = ["EXPORT_COLUMNS", "write_accounts", "write_areas", "write_exports"]

EXPORT_COLUMNS = ("txn_id", "occurred_at", "source_id", "target_id", "amount", "kind", "channel")
_DAILY = re.compile(r"^\d{4}-\d{2}-\d{2}\.csv$")
_ROWS_PER_CHUNK = 2_000_000  # bounds the memory of the string columns at 10 M rows


def txn_id_width(rows: int) -> int:
    """Digits of the zero-padded txn_id number (at least 8).

    >>> txn_id_width(1_000), txn_id_width(123_456_789)
    (8, 9)
    """
    return max(8, len(str(rows)))


def write_exports(
    out_dir: Path,
    cal: Calendar,
    pop: Population,
    utc: npt.NDArray[np.int64],
    day: npt.NDArray[np.int32],
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    amount: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    channel: npt.NDArray[np.int8],
    progress: Callable[[str], None] | None = None,
) -> None:
    """Write ``exports/YYYY-MM-DD.csv`` for every local day of the period.

    Rows must already be in (occurred_at, txn_id) order; txn ids are assigned in that
    order (``T00000001`` …). Stale daily files in ``exports/`` from an earlier run are
    removed first, so the directory always matches this run.
    """
    exports = out_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    for old in exports.iterdir():
        if _DAILY.match(old.name):
            old.unlink()

    if len(day) and np.any(np.diff(day) < 0):
        raise RuntimeError("internal error: rows are not grouped by local day")
    bounds = np.searchsorted(day, np.arange(cal.days + 1), side="left")
    ids = pl.Series("id", pop.ids, dtype=pl.String)
    kinds = pl.Series("kind", KINDS, dtype=pl.String)
    channels = pl.Series("channel", CHANNELS, dtype=pl.String)
    width = txn_id_width(len(day))

    d0 = 0
    while d0 < cal.days:
        # Group consecutive days into chunks of about _ROWS_PER_CHUNK rows.
        d1 = int(np.searchsorted(bounds, bounds[d0] + _ROWS_PER_CHUNK, side="right")) - 1
        d1 = min(max(d1, d0 + 1), cal.days)
        r0, r1 = int(bounds[d0]), int(bounds[d1])
        frame = pl.DataFrame(
            {
                "txn_id": pl.int_range(r0 + 1, r1 + 1, eager=True, dtype=pl.Int64),
                "occurred_at": pl.from_epoch(pl.Series(utc[r0:r1]), time_unit="s"),
                "source_id": ids.gather(pl.Series(src[r0:r1])),
                "target_id": ids.gather(pl.Series(dst[r0:r1])),
                # Pence / 100 printed with two decimals is exact far beyond any balance.
                "amount": amount[r0:r1] / 100.0,
                "kind": kinds.gather(pl.Series(kind[r0:r1])),
                "channel": channels.gather(pl.Series(channel[r0:r1])),
            }
        ).with_columns(("T" + pl.col("txn_id").cast(pl.String).str.zfill(width)).alias("txn_id"))
        for d in range(d0, d1):
            a, b = int(bounds[d]) - r0, int(bounds[d + 1]) - r0
            frame.slice(a, b - a).write_csv(
                exports / f"{cal.date_of(d).isoformat()}.csv",
                datetime_format="%Y-%m-%dT%H:%M:%SZ",
                float_precision=2,
            )
        if progress is not None:
            progress(f"wrote exports up to {cal.date_of(d1 - 1).isoformat()} ({r1:,} rows)")
        d0 = d1


def write_accounts(out_dir: Path, cal: Calendar, pop: Population) -> None:
    """Write ``accounts.csv``: account_id, account_type, sector, area, joined_at."""
    sector_names = [s[0] for s in SECTORS]
    frame = pl.DataFrame(
        {
            "account_id": pop.ids,
            "account_type": [ACCOUNT_TYPES[t] for t in pop.account_type.tolist()],
            "sector": [sector_names[s] if s >= 0 else None for s in pop.sector.tolist()],
            "area": [WARDS[w][0] for w in pop.ward.tolist()],
            "joined_at": [cal.start + timedelta(days=j) for j in pop.join_day.tolist()],
        },
        schema={
            "account_id": pl.String,
            "account_type": pl.String,
            "sector": pl.String,
            "area": pl.String,
            "joined_at": pl.Date,
        },
    )
    frame.write_csv(out_dir / "accounts.csv")


def write_areas(out_dir: Path) -> None:
    """Write ``areas.csv``: area, deprivation_decile."""
    pl.DataFrame(
        {"area": [w[0] for w in WARDS], "deprivation_decile": [w[1] for w in WARDS]},
        schema={"area": pl.String, "deprivation_decile": pl.Int64},
    ).write_csv(out_dir / "areas.csv")
