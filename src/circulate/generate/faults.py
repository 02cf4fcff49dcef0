"""Inject one named fault into a generated scheme's export files, for validation tests.

``inject_fault(scheme_dir, "duplicates")`` edits ``scheme_dir/exports/<day>.csv`` in
place and returns an :class:`InjectedFault` saying exactly what it changed. Every fault
keeps the rest of the ledger valid, so only the check aimed at it can fail:

=================  ==========================================================  =========
fault              what is written                                              expected
=================  ==========================================================  =========
duplicates         ``share`` of the day's rows sent a second time, unchanged    flagged
conflicts          ``share`` of the day's txn_ids sent again with +1.00         blocked
negative_amounts   ``share`` of the day's amounts made negative                 flagged
unknown_accounts   issuances to accounts missing from accounts.csv              flagged
overspending       a member pays one unit more than everything they hold        blocked
missing_day        the day's file deleted                                       blocked
volume_spike       issuance + redemption round trips: about 10× the day's rows  flagged
=================  ==========================================================  =========

(``circulate.validate.suites`` says which expectation fails and why that severity.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

FAULTS = (
    "duplicates",
    "conflicts",
    "negative_amounts",
    "unknown_accounts",
    "overspending",
    "missing_day",
    "volume_spike",
)
SPIKE_FACTOR = 10
_STAMP = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class InjectedFault:
    """What :func:`inject_fault` did.

    Attributes
    ----------
    fault
        One of :data:`FAULTS`.
    file
        The export file changed (or deleted).
    rows_changed
        Rows added, altered or removed.
    detail
        One sentence for a test's failure message.
    """

    fault: str
    file: Path
    rows_changed: int
    detail: str


def _exports(scheme_dir: Path) -> list[Path]:
    files = sorted((scheme_dir / "exports").glob("*.csv"))
    if len(files) < 2:
        raise ValueError(f"{scheme_dir}/exports holds {len(files)} file(s); a fault needs two")
    return files


def _read(path: Path) -> pl.DataFrame:
    # Strings throughout: the file is written back byte-for-byte in the same format.
    return pl.read_csv(path, infer_schema=False)


def _accounts(scheme_dir: Path) -> pl.DataFrame:
    return pl.read_csv(scheme_dir / "accounts.csv", infer_schema=False)


def _issuer(scheme_dir: Path) -> str:
    issuers = _accounts(scheme_dir).filter(pl.col("account_type") == "issuer")["account_id"]
    if issuers.is_empty():
        raise ValueError(f"{scheme_dir}/accounts.csv lists no issuer account")
    return str(issuers[0])


def _pick(frame: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    n = max(1, round(frame.height * share))
    return frame.sample(n=min(n, frame.height), seed=seed).sort("txn_id")


def _cents(column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Float64) * 100).round(0).cast(pl.Int64)


def _money(cents: int) -> str:
    """Pence as an export amount.

    >>> _money(1234), _money(5)
    ('12.34', '0.05')
    """
    return f"{cents // 100}.{cents % 100:02d}"


def inject_fault(
    scheme_dir: Path,
    fault: str,
    *,
    day: str | None = None,
    share: float = 0.02,
    seed: int = 0,
) -> InjectedFault:
    """Inject ``fault`` into one export day of ``scheme_dir`` (edited in place).

    Parameters
    ----------
    scheme_dir
        A folder written by :func:`circulate.generate.generate_scheme`.
    fault
        One of :data:`FAULTS`.
    day
        ``YYYY-MM-DD`` of the export to change; default the last day, or the day before
        it for ``missing_day`` (a gap needs a later day to show).
    share
        Share of the day's rows affected, for the faults that affect a share.
    seed
        Which rows are picked.

    Returns
    -------
    InjectedFault
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: choose one of {', '.join(FAULTS)}")
    files = _exports(scheme_dir)
    path = (
        scheme_dir / "exports" / f"{day}.csv"
        if day
        else files[-2 if fault == "missing_day" else -1]
    )
    if not path.is_file():
        raise ValueError(f"{path} does not exist: pass a day that has an export file")
    if fault == "missing_day":
        rows = _read(path).height
        path.unlink()
        return InjectedFault(fault, path, rows, f"deleted {path.name} ({rows} rows)")
    frame = _read(path)
    if frame.is_empty():
        raise ValueError(f"{path} has no rows to inject {fault} into: pick another day")
    if fault == "duplicates":
        extra = _pick(frame, share, seed)
        out = pl.concat([frame, extra])
        detail = f"re-sent {extra.height} rows unchanged"
    elif fault == "conflicts":
        extra = _pick(frame, share, seed).with_columns(
            pl.col("amount")
            .cast(pl.Float64)
            .add(1)
            .map_elements(lambda v: f"{v:.2f}", return_dtype=pl.String)
        )
        out = pl.concat([frame, extra])
        detail = f"re-sent {extra.height} txn_ids with the amount raised by 1.00"
    elif fault == "negative_amounts":
        picked = set(_pick(frame, share, seed)["txn_id"].to_list())
        out = frame.with_columns(
            pl.when(pl.col("txn_id").is_in(picked))
            .then("-" + pl.col("amount"))
            .otherwise(pl.col("amount"))
            .alias("amount")
        )
        extra = frame.filter(pl.col("txn_id").is_in(picked))
        detail = f"made {extra.height} amounts negative"
    elif fault == "unknown_accounts":
        extra = _issuances(frame, scheme_dir, share, seed, unknown=True)
        out = pl.concat([frame, extra])
        detail = f"added {extra.height} issuances to accounts missing from accounts.csv"
    elif fault == "overspending":
        extra = _overspend(frame, files[: files.index(path) + 1], scheme_dir)
        out = pl.concat([frame, extra])
        detail = f"{extra['source_id'][0]} pays {extra['amount'][0]}, one unit more than it holds"
    else:  # volume_spike
        extra = _spike(frame, scheme_dir)
        out = pl.concat([frame, extra])
        detail = f"added {extra.height} round-trip rows to {frame.height} ({out.height} in all)"
    out.write_csv(path)
    return InjectedFault(fault, path, extra.height, detail)


def _times(frame: pl.DataFrame, count: int) -> list[datetime]:
    """``count`` whole seconds spread over the day's span of timestamps."""
    stamps = sorted(frame["occurred_at"].to_list())
    first = datetime.strptime(stamps[0][:19], _STAMP)
    last = datetime.strptime(stamps[-1][:19], _STAMP)
    span = max(int((last - first).total_seconds()), count)
    return [first + timedelta(seconds=span * i // count) for i in range(count)]


def _issuances(
    frame: pl.DataFrame, scheme_dir: Path, share: float, seed: int, *, unknown: bool
) -> pl.DataFrame:
    n = max(1, round(frame.height * share))
    issuer = _issuer(scheme_dir)
    times = _times(frame, n)
    return pl.DataFrame(
        {
            "txn_id": [f"FAULT-U{seed}-{i:06d}" for i in range(n)],
            "occurred_at": [f"{t:{_STAMP}}Z" for t in times],
            "source_id": [issuer] * n,
            "target_id": [f"UNKNOWN-{seed}-{i:04d}" if unknown else issuer for i in range(n)],
            "amount": ["20.00"] * n,
            "kind": ["issuance"] * n,
            "channel": ["app"] * n,
        }
    ).select(frame.columns)


def _overspend(frame: pl.DataFrame, files: list[Path], scheme_dir: Path) -> pl.DataFrame:
    """A member pays their whole balance at the end of the day, plus 1.00."""
    ledger = pl.concat([_read(p) for p in files]).with_columns(_cents("amount").alias("cents"))
    issuer = _issuer(scheme_dir)
    inflow = ledger.group_by(pl.col("target_id").alias("account")).agg(pl.col("cents").sum())
    outflow = ledger.group_by(pl.col("source_id").alias("account")).agg(
        pl.col("cents").sum().alias("out")
    )
    balances = (
        inflow.join(outflow, on="account", how="left")
        .with_columns((pl.col("cents") - pl.col("out").fill_null(0)).alias("balance"))
        .filter(pl.col("account") != issuer)
        .sort("balance", "account", descending=[True, False])
    )
    payer, payee = str(balances["account"][0]), str(balances["account"][1])
    balance = int(balances["balance"][0])
    last = datetime.strptime(max(frame["occurred_at"].to_list())[:19], _STAMP)
    return pl.DataFrame(
        {
            "txn_id": ["FAULT-O000001"],
            "occurred_at": [f"{last + timedelta(seconds=1):{_STAMP}}Z"],
            "source_id": [payer],
            "target_id": [payee],
            "amount": [_money(balance + 100)],
            "kind": ["transfer"],
            "channel": ["app"],
        }
    ).select(frame.columns)


def _spike(frame: pl.DataFrame, scheme_dir: Path) -> pl.DataFrame:
    """Issuance then redemption of the same 10.00 at .100 and .200 of distinct seconds.

    Export timestamps are whole seconds, so no other row falls between the two halves
    of a round trip: no balance dips, and transfer volume is unchanged.
    """
    issuer = _issuer(scheme_dir)
    members = (
        _accounts(scheme_dir).filter(pl.col("account_type") == "individual")["account_id"]
    ).to_list()
    pairs = ((SPIKE_FACTOR - 1) * frame.height + 1) // 2
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    for i, second in enumerate(_times(frame, pairs)):
        member = members[i % len(members)]
        rows.append(
            (
                f"FAULT-S{i:06d}a",
                f"{second:{_STAMP}}.100Z",
                issuer,
                member,
                "10.00",
                "issuance",
                "app",
            )
        )
        rows.append(
            (
                f"FAULT-S{i:06d}b",
                f"{second:{_STAMP}}.200Z",
                member,
                issuer,
                "10.00",
                "redemption",
                "app",
            )
        )
    return pl.DataFrame(rows, schema=list(frame.columns), orient="row")
