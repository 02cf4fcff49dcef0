"""The headline metrics computed the straightforward way: pandas, networkx, a Python FIFO.

Not part of the tests' code path (``tests/unit/test_bench_naive.py`` checks that it agrees
with the warehouse). It is the benchmark's baseline for "what an analyst would write
without circulate": read every export CSV with pandas, take the scheme's calendar days
in its timezone, and compute, per calendar month and for the whole history,

- issued, redeemed, fees, transfer volume and count, money supply at the month's end
  (cumulative issued − redeemed − fees), mean daily supply, velocity = transfer volume /
  mean daily supply, full multiplier = (issued + transfer volume) / issued, leakage =
  redeemed / issued, active accounts (paying or paid by a transfer);
- LM3 traced FIFO, by the month the money was issued: (issued + amount that made ≥ 1
  transfer + amount that made ≥ 2) / issued, followed with a deque of lots per account;
- on the business network (transfers between two business accounts, weight = amount):
  weighted PageRank (networkx, damping 0.85), the top hub's score, and the top-5 share
  of business receipts (in-strength).

Definitions are the warehouse's (DESIGN.md §4, ``sql/marts``, ``circulate.metrics``):
issuer accounts are those listed as issuer plus every source of an issuance and target
of a redemption or fee; the day series runs from the first transaction's day to the
later of the last transaction's and the last export file's day. The input is assumed
clean (a generated scheme): nothing is quarantined or de-duplicated here.

    uv run --frozen --no-sync python bench/naive.py SCHEME_DIR [--timezone Europe/London]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

DAMPING = 0.85
TOP_HUBS = 5
_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


def read_exports(scheme: Path, timezone: str) -> pd.DataFrame:
    """Every export CSV of ``scheme/exports`` in one frame, amounts in pence, local days."""
    files = sorted((scheme / "exports").glob("*.csv"))
    frame = pd.concat(
        [pd.read_csv(path, dtype=str, keep_default_na=False) for path in files],
        ignore_index=True,
    )
    frame["at"] = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    frame["day"] = frame["at"].dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    frame["month"] = frame["day"].dt.to_period("M")
    frame["pence"] = (frame["amount"].astype(float) * 100).round().astype("int64")
    return frame


def last_export_day(scheme: Path) -> pd.Timestamp | None:
    """The latest day named in an export file's name (the day series reaches at least it)."""
    days = [
        pd.Timestamp(match.group(1))
        for path in (scheme / "exports").glob("*.csv")
        if (match := _DAY_IN_NAME.search(path.name))
    ]
    return max(days) if days else None


def issuer_accounts(frame: pd.DataFrame, accounts: pd.DataFrame) -> set[str]:
    """Listed issuers, sources of issuances, targets of redemptions and fees."""
    listed = accounts.loc[accounts["account_type"] == "issuer", "account_id"]
    sources = frame.loc[frame["kind"] == "issuance", "source_id"]
    targets = frame.loc[frame["kind"].isin(["redemption", "fee"]), "target_id"]
    return set(listed) | set(sources) | set(targets)


def circulation(frame: pd.DataFrame, last_export: pd.Timestamp | None) -> list[dict[str, Any]]:
    """One row per month plus an ``all`` row (``month`` = None): flows, supply, ratios."""

    def pence_of(kind: str) -> pd.Series:
        return frame[frame["kind"] == kind].groupby("day")["pence"].sum()

    last = frame["day"].max() if last_export is None else max(frame["day"].max(), last_export)
    days = pd.date_range(frame["day"].min(), last, freq="D")
    daily = pd.DataFrame(index=days)
    for name, kind in (
        ("issued", "issuance"),
        ("redeemed", "redemption"),
        ("fees", "fee"),
        ("transfer_volume", "transfer"),
    ):
        daily[name] = pence_of(kind).reindex(days, fill_value=0)
    transfers = frame[frame["kind"] == "transfer"]
    daily["transfer_count"] = transfers.groupby("day").size().reindex(days, fill_value=0)
    daily["supply"] = (daily["issued"] - daily["redeemed"] - daily["fees"]).cumsum()
    daily["month"] = daily.index.to_period("M")

    traders = pd.concat(
        [
            transfers[["month", "source_id"]].rename(columns={"source_id": "account"}),
            transfers[["month", "target_id"]].rename(columns={"target_id": "account"}),
        ]
    )
    rows = []
    for month, days_of_month in daily.groupby("month"):
        active = traders.loc[traders["month"] == month, "account"].nunique()
        rows.append(_flows_row(month, days_of_month, active))
    rows.append(_flows_row(None, daily, traders["account"].nunique()))
    return rows


def _flows_row(month: pd.Period | None, days: pd.DataFrame, active: int) -> dict[str, Any]:
    issued = int(days["issued"].sum())
    volume = int(days["transfer_volume"].sum())
    redeemed = int(days["redeemed"].sum())
    mean_supply = days["supply"].mean() / 100
    return {
        "month": None if month is None else str(month),
        "issued": issued / 100,
        "redeemed": redeemed / 100,
        "fees": int(days["fees"].sum()) / 100,
        "transfer_volume": volume / 100,
        "transfer_count": int(days["transfer_count"].sum()),
        "money_supply_end": int(days["supply"].iloc[-1]) / 100,
        "mean_money_supply": mean_supply,
        "velocity": volume / 100 / mean_supply if mean_supply else None,
        "full_multiplier": (issued + volume) / issued if issued else None,
        "leakage": redeemed / issued if issued else None,
        "active_accounts": int(active),
    }


def traced_lm3(frame: pd.DataFrame, issuers: set[str]) -> dict[str | None, float | None]:
    """LM3 by issuance month (and ``None`` = all), tracing every lot FIFO in plain Python.

    Replay order is (occurred_at, txn_id). An entry from an issuer to a member creates a
    lot (0 hops); a transfer between members moves the oldest lots and adds a hop; a
    reversal moves them without a hop; an entry to an issuer consumes them.
    """
    ordered = frame.sort_values(["at", "txn_id"], kind="stable")
    lots: defaultdict[str, deque[list[Any]]] = defaultdict(deque)
    reach: list[list[int]] = []  # per issuance: issued, made >= 1 transfer, made >= 2
    origin_month: list[str] = []
    for month, kind, source, target, pence in zip(
        ordered["month"].astype(str),
        ordered["kind"],
        ordered["source_id"],
        ordered["target_id"],
        ordered["pence"],
        strict=True,
    ):
        if source in issuers:
            if target not in issuers:
                lots[target].append([int(pence), len(reach), 0])
                reach.append([int(pence), 0, 0])
                origin_month.append(month)
            continue
        hop = 1 if kind == "transfer" and target not in issuers else 0
        queue = lots[source]
        remaining = int(pence)
        while remaining > 0 and queue:
            lot = queue[0]
            take = min(remaining, lot[0])
            remaining -= take
            if take == lot[0]:
                queue.popleft()
            else:
                lot[0] -= take
            if target not in issuers:
                hops = lot[2] + hop
                queue_to = lots[target]
                queue_to.append([take, lot[1], hops])
                if hop and hops <= 2:
                    reach[lot[1]][hops] += take
    totals: defaultdict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for month, values in zip(origin_month, reach, strict=True):
        for key in (month, None):
            for t in range(3):
                totals[key][t] += values[t]
    return {key: (sum(v) / v[0] if v[0] else None) for key, v in totals.items()}


def whole_history_end(first_day: pd.Timestamp, last_day: pd.Timestamp) -> pd.Timestamp:
    """The last day the ``all`` network figures cover, as the pipeline publishes them.

    The end of the latest month the data covers every day of; the last day while no
    month is complete yet.
    """
    month_ends = pd.date_range(first_day, last_day, freq="ME")
    complete = [end for end in month_ends if end.replace(day=1) >= first_day]
    return complete[-1] if complete else last_day


def business_network(
    frame: pd.DataFrame,
    accounts: pd.DataFrame,
    issuers: set[str],
    last_export: pd.Timestamp | None = None,
) -> list[dict[str, Any]]:
    """Per month and ``all``: top hub and its PageRank, top-5 share of business receipts.

    ``all`` covers the data up to :func:`whole_history_end` (the last export day, when
    later than the last transaction, counts as covered).
    """
    business = set(accounts.loc[accounts["account_type"] == "business", "account_id"])
    transfers = frame[
        (frame["kind"] == "transfer")
        & (frame["source_id"] != frame["target_id"])
        & frame["source_id"].isin(business)
        & frame["target_id"].isin(business)
        & ~frame["source_id"].isin(issuers)
        & ~frame["target_id"].isin(issuers)
    ]
    periods: list[tuple[str | None, pd.DataFrame]] = [
        (str(month), part) for month, part in transfers.groupby("month")
    ]
    last = frame["day"].max() if last_export is None else max(frame["day"].max(), last_export)
    history_end = whole_history_end(frame["day"].min(), last)
    periods.append((None, transfers[transfers["day"] <= history_end]))
    rows = []
    for month, part in periods:
        edges = part.groupby(["source_id", "target_id"])["pence"].sum()
        graph = nx.DiGraph()
        for (source, target), pence in edges.items():
            graph.add_edge(source, target, weight=pence / 100)
        ranks = nx.pagerank(graph, alpha=DAMPING, weight="weight")
        hub = max(ranks, key=lambda node: ranks[node])
        receipts = sorted(
            (sum(w for _, _, w in graph.in_edges(node, data="weight")) for node in graph),
            reverse=True,
        )
        rows.append(
            {
                "month": month,
                "nodes": graph.number_of_nodes(),
                "top_hub": hub,
                "top_hub_pagerank": ranks[hub],
                "receipts_top5_share": sum(receipts[:TOP_HUBS]) / sum(receipts),
            }
        )
    return rows


def headline_metrics(
    scheme: Path, timezone: str = "Europe/London", timings: dict[str, float] | None = None
) -> dict[str, Any]:
    """Every figure above for the scheme in ``scheme`` (exports/ and accounts.csv).

    ``timings``, when given, receives the seconds each step took.
    """
    clock = {"at": time.perf_counter()}

    def lap(step: str) -> None:
        now = time.perf_counter()
        if timings is not None:
            timings[step] = round(now - clock["at"], 3)
        clock["at"] = now

    frame = read_exports(scheme, timezone)
    accounts = pd.read_csv(scheme / "accounts.csv", dtype=str, keep_default_na=False)
    issuers = issuer_accounts(frame, accounts)
    lap("read")
    flows = circulation(frame, last_export_day(scheme))
    lap("circulation")
    lm3 = traced_lm3(frame, issuers)
    for row in flows:
        row["lm3"] = lm3.get(row["month"])
    lap("fifo_lm3")
    network = business_network(frame, accounts, issuers, last_export_day(scheme))
    lap("business_network")
    return {"rows": len(frame), "circulation": flows, "business_network": network}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scheme", type=Path)
    parser.add_argument("--timezone", default="Europe/London")
    args = parser.parse_args()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    metrics = headline_metrics(args.scheme, args.timezone, timings)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {"seconds": round(seconds, 3), "steps": timings, "peak_rss_mib": round(peak, 1)}
    print(json.dumps({**summary, **metrics}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
