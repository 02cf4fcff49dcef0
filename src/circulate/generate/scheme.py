"""``generate_scheme``: a deterministic synthetic Bristol-Pound-like scheme with ground truth.

Pipeline: draw the city (:mod:`.city`) and its calendar (:mod:`.clock`) → vectorised
candidate events (:mod:`.events`) → sort by UTC time → one compiled settlement pass
(:mod:`.settle`) that books only affordable payments and thins to the requested count →
top up the few missing rows with issuance → write files (:mod:`.write`) → compute the
ground truth from the booked integer-pence arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from circulate.generate.city import ACCOUNT_TYPES, ANCHOR_ROLES, Population, build_population
from circulate.generate.clock import Calendar, build_calendar
from circulate.generate.events import (
    FEE,
    ISSUANCE,
    KINDS,
    OVERSAMPLE,
    REDEMPTION,
    REVERSAL,
    TRANSFER,
    Candidates,
    candidate_events,
    fill_topups,
)
from circulate.generate.scenario import SCENARIOS, Scenario, scenario_named
from circulate.generate.settle import running_min_balance, settle
from circulate.generate.truth import GroundTruth, PeriodTotals, pence_to_decimal
from circulate.generate.write import write_accounts, write_areas, write_exports

__all__ = ["generate_scheme"]


_ATTEMPTS = 3


def _settle_candidates(
    cand: Candidates, pop: Population, cal: Calendar, transactions: int
) -> tuple[Candidates, npt.NDArray[np.int64]]:
    """Sort candidates by UTC time, settle them and keep the booked ones (in order)."""
    utc = cal.to_utc(cand.day, cand.second)
    order = np.argsort(utc, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    ref = cand.ref[order]
    ref = np.where(ref >= 0, position[np.maximum(ref, 0)], -1)
    settled = settle(
        cand.src[order],
        cand.dst[order],
        cand.amount[order],
        cand.policy[order],
        cand.param[order],
        ref,
        pop.n_accounts,
        transactions,
    )
    booked_index = settled > 0
    keep = order[booked_index]
    booked = cand.take(keep)
    booked.amount = settled[booked_index]
    return booked, utc[keep]


def _book(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    transactions: int,
    progress: Callable[[str], None] | None,
    scenario: Scenario = SCENARIOS["healthy"],
) -> tuple[Candidates, npt.NDArray[np.int64]]:
    """Booked rows, exactly ``transactions`` of them, in (occurred_at, txn_id) order.

    Returns the rows (``amount`` = settled pence) and their UTC epoch seconds. If
    settlement falls more than 1 % short, candidates are redrawn with a larger
    oversampling factor (at most ``_ATTEMPTS`` times); the last small shortfall is
    filled with top-ups.
    """
    oversample = OVERSAMPLE
    for attempt in range(_ATTEMPTS):
        booked, booked_utc = _settle_candidates(
            candidate_events(rng, pop, cal, transactions, oversample, scenario),
            pop,
            cal,
            transactions,
        )
        if progress is not None:
            progress(f"settled {len(booked):,} of {transactions:,} rows (x{oversample:.2f})")
        short = transactions - len(booked)
        if short <= 0.01 * transactions or attempt == _ATTEMPTS - 1:
            break
        # Too many refusals (typically short periods, where everyone starts at zero):
        # draw a larger candidate set rather than fill many rows with top-ups.
        oversample *= 1.1 * transactions / max(len(booked), 1)

    # Fill the (small) shortfall with extra top-ups: issuance can go anywhere in time
    # without making any later payment unaffordable.
    missing = transactions - len(booked)
    if missing > 0:
        if progress is not None:
            progress(f"{missing:,} rows filled with top-ups")
        fill = fill_topups(rng, pop, cal, missing, scenario)
        booked = Candidates.concat([booked, fill])
        booked_utc = np.concatenate([booked_utc, cal.to_utc(fill.day, fill.second)])
        merged = np.argsort(booked_utc, kind="stable")
        booked, booked_utc = booked.take(merged), booked_utc[merged]
    if len(booked) != transactions:
        raise RuntimeError(
            f"internal error: booked {len(booked)} rows instead of {transactions}; "
            "the scheme has no individual who can receive a top-up"
        )
    low = running_min_balance(booked.src, booked.dst, booked.amount, pop.n_accounts, pop.issuer)
    if low < 0:
        raise RuntimeError(f"internal error: a member balance reaches {low} pence")
    return booked, booked_utc


def _totals(
    kind: npt.NDArray[np.int8], amount: npt.NDArray[np.int64], supply_end: int
) -> PeriodTotals:
    def vol(k: int) -> int:
        return int(amount[kind == k].sum())

    return PeriodTotals(
        issued=pence_to_decimal(vol(ISSUANCE)),
        redeemed=pence_to_decimal(vol(REDEMPTION)),
        fees=pence_to_decimal(vol(FEE)),
        transfer_volume=pence_to_decimal(vol(TRANSFER)),
        transfer_count=int((kind == TRANSFER).sum()),
        reversal_volume=pence_to_decimal(vol(REVERSAL)),
        reversal_count=int((kind == REVERSAL).sum()),
        money_supply_end=pence_to_decimal(supply_end),
        rows=len(kind),
    )


def _ground_truth(
    booked: Candidates,
    pop: Population,
    cal: Calendar,
    *,
    seed: int,
    transactions: int,
    scenario: str,
) -> GroundTruth:
    """Exact totals from the booked arrays (integer pence), with consistency checks."""
    kind, amount = booked.kind, booked.amount
    signed = np.where(kind == ISSUANCE, amount, 0) - np.where(
        (kind == REDEMPTION) | (kind == FEE), amount, 0
    )
    # Rows are grouped by local day, hence by month: slice instead of masking.
    month_bounds = np.searchsorted(booked.day, cal.month_first_day, side="left")
    month_bounds = np.append(month_bounds, len(kind))
    monthly: dict[str, PeriodTotals] = {}
    supply = 0
    for m, key in enumerate(cal.month_keys):
        a, b = int(month_bounds[m]), int(month_bounds[m + 1])
        supply += int(signed[a:b].sum())
        monthly[key] = _totals(kind[a:b], amount[a:b], supply)
    totals = _totals(kind, amount, supply)

    balance = np.zeros(pop.n_accounts, dtype=np.int64)
    np.add.at(balance, booked.dst, amount)
    np.subtract.at(balance, booked.src, amount)
    if int(balance[1:].sum()) != supply:
        raise RuntimeError("internal error: balances do not reconcile with issuance")

    counts = np.bincount(pop.account_type, minlength=len(ACCOUNT_TYPES))
    by_kind = np.bincount(kind, minlength=len(KINDS))
    return GroundTruth(
        seed=seed,
        transactions=transactions,
        days=cal.days,
        start=cal.start,
        timezone=cal.timezone,
        account_counts={t: int(c) for t, c in zip(ACCOUNT_TYPES, counts, strict=True)},
        roles={
            "issuer": pop.ids[pop.issuer],
            "council": pop.ids[pop.council],
            **{role: raw for raw, role in ANCHOR_ROLES.items()},
            **({"dominant_hub": pop.ids[pop.hub]} if pop.hub >= 0 else {}),
        },
        rows=len(kind),
        rows_by_kind={k: int(c) for k, c in zip(KINDS, by_kind, strict=True)},
        files=cal.days,
        monthly=monthly,
        totals=totals,
        final_balances={
            pop.ids[i]: pence_to_decimal(int(balance[i])) for i in range(1, pop.n_accounts)
        },
        scenario=scenario,
    )


def generate_scheme(
    out_dir: Path,
    *,
    seed: int,
    transactions: int,
    days: int = 365,
    start: date = date(2025, 1, 1),
    timezone: str = "Europe/London",
    scenario: str = "healthy",
    progress: Callable[[str], None] | None = None,
) -> GroundTruth:
    """Generate a synthetic local-currency scheme into ``out_dir`` and return its truth.

    Writes ``exports/YYYY-MM-DD.csv`` (one per local day, header-only when empty),
    ``accounts.csv``, ``areas.csv`` and ``ground_truth.json``. The same arguments always
    give byte-identical files.

    Parameters
    ----------
    out_dir
        Target directory (created if missing). Stale daily files in ``exports/`` are
        replaced.
    seed
        Non-negative seed of ``numpy.random.Generator(PCG64(seed))``.
    transactions
        Exact number of rows written over all daily files.
    days, start, timezone
        The period: ``days`` local calendar days from ``start`` in ``timezone``.
    scenario
        ``"healthy"`` (a steady scheme) or ``"declining"`` (one destroying value: a
        dominant hub, rising leakage, members leaving; see
        :mod:`circulate.generate.scenario`). Steady draws come first, so a healthy
        scheme is the same as before scenarios existed.
    progress
        Optional callback receiving one-line status messages (the library prints nothing).

    Returns
    -------
    GroundTruth
        Parameters and exact totals, also written to ``out_dir/ground_truth.json``.

    Notes
    -----
    Local times lie in [07:00, 22:00) and are written in UTC (``…Z``); a row belongs
    to the file of its local date. Replayed in (occurred_at, txn_id) order, no
    non-issuer balance is ever negative.
    """
    if transactions < 0:
        raise ValueError(f"transactions must be >= 0, got {transactions}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    drift = scenario_named(scenario)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.Generator(np.random.PCG64(seed))
    cal = build_calendar(start, days, timezone)
    pop = build_population(rng, transactions, days, drift)
    if progress is not None:
        progress(f"city: {pop.n_business:,} businesses, {pop.n_individual:,} individuals")
    booked, utc = _book(rng, pop, cal, transactions, progress, drift)
    truth = _ground_truth(
        booked, pop, cal, seed=seed, transactions=transactions, scenario=drift.name
    )

    write_areas(out_dir)
    write_accounts(out_dir, cal, pop)
    write_exports(
        out_dir,
        cal,
        pop,
        utc,
        booked.day,
        booked.src,
        booked.dst,
        booked.amount,
        booked.kind,
        booked.channel,
        progress,
    )
    truth.to_json(out_dir / "ground_truth.json")
    return truth
