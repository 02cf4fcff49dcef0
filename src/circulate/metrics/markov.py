"""Markov estimate of the local multiplier LM_k, beside the traced figure.

Treat each member account as a state of a Markov chain (DESIGN.md §4): over a period,
``P_ij`` = share of account i's money that went to j by ``transfer``, where account i's
money is everything that left it in the period (transfers, reversals, redemptions, fees)
plus its balance at the period's end — so redemption, fee, reversal and still-held are
exits, and each row of P sums to at most 1. ``π0`` = where the period's issuance lands
(shares of the amount issued). Then

    LM_k ≈ Σ_{t<k} π0ᵀ Pᵗ 1,

computed with k − 1 sparse vector-matrix products over the period's edge list (numpy
``bincount``; no dense matrix, no scipy). The estimate assumes money forgets where it came
from; the traced LM_k does not, so a large gap between the two is itself a finding.
When every account receives from a single stream (a tree of payments) the two agree
exactly — the unit tests construct such ledgers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from circulate.metrics.tracing import KIND_CODES, Ledger

__all__ = ["MAX_K", "PeriodSlices", "markov_lm", "markov_lm_by_period"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
MAX_K = 5


def markov_lm(
    landing: npt.ArrayLike,
    source: npt.ArrayLike,
    target: npt.ArrayLike,
    weight: npt.ArrayLike,
    available: npt.ArrayLike,
    k_max: int = MAX_K,
) -> list[float] | None:
    """LM_1 … LM_k_max of the Markov chain given by an edge list.

    Parameters
    ----------
    landing
        Amount issued to each account (π0 before normalising), length = accounts.
    source, target, weight
        Transfer edges (repeated pairs are summed): amount moved from source to target.
    available
        Each account's money in the period (the row total of P's denominator); must be
        ≥ the summed weight of its outgoing edges.
    k_max
        Largest k returned.

    Returns
    -------
    list of float or None
        ``[LM_1, …, LM_k_max]``; ``None`` when nothing was issued.

    Examples
    --------
    A receives 100 and passes 60 to B, who passes all of it to C:

    >>> markov_lm([100, 0, 0], [0, 1], [1, 2], [60, 60], [100, 60, 60], 4)
    [1.0, 1.6, 2.2, 2.2]
    """
    pi = np.asarray(landing, dtype=np.float64)
    total = pi.sum()
    if total <= 0:
        return None
    src = np.asarray(source, dtype=np.int64)
    dst = np.asarray(target, dtype=np.int64)
    w = np.asarray(weight, dtype=np.float64)
    out = np.asarray(available, dtype=np.float64)
    if src.size and np.any(out[src] <= 0):
        raise ValueError("every account with an outgoing edge needs available > 0")
    share = w / out[src] if src.size else w
    x = pi / total
    values = [1.0]
    running = 1.0
    for _ in range(1, k_max):
        x = np.bincount(dst, weights=x[src] * share, minlength=pi.size) if src.size else x * 0
        running += float(x.sum())
        values.append(running)
    return values


@dataclass(frozen=True)
class PeriodSlices:
    """Contiguous replay-order slices of a ledger, one per period.

    Attributes
    ----------
    starts
        Day index (relative to the ledger's first day) where each period starts.
    bounds
        Row bounds: period p covers rows ``bounds[p]`` up to ``bounds[p + 1]``.
    """

    starts: IntArray
    bounds: IntArray


def _slices(ledger: Ledger, period_of_day: IntArray) -> PeriodSlices:
    period = period_of_day[ledger.day] if ledger.day.size else np.zeros(0, dtype=np.int64)
    ids = np.arange(int(period_of_day.max(initial=-1)) + 1, dtype=np.int64)
    bounds = np.searchsorted(period, np.append(ids, ids.size), side="left").astype(np.int64)
    first_day = np.zeros(ids.size, dtype=np.int64)
    # First day index of every period (periods are runs of consecutive days).
    for day in range(period_of_day.size - 1, -1, -1):
        first_day[period_of_day[day]] = day
    return PeriodSlices(first_day, bounds)


def markov_lm_by_period(
    ledger: Ledger, period_of_day: IntArray, k_max: int = MAX_K
) -> list[tuple[int, list[float] | None]]:
    """LM_1 … LM_k_max for every period (``period_of_day`` maps day index → period id).

    Period ids must be non-decreasing in the day index (days, weeks, months, or all 0).
    Returns ``(first day index, values)`` per period in order.
    """
    accounts = ledger.accounts
    balance = np.zeros(max(accounts, 1), dtype=np.int64)
    slices = _slices(ledger, period_of_day)
    transfer = KIND_CODES["transfer"]
    out: list[tuple[int, list[float] | None]] = []
    for p in range(slices.starts.size):
        a, b = int(slices.bounds[p]), int(slices.bounds[p + 1])
        src = ledger.source[a:b]
        dst = ledger.target[a:b]
        pence = ledger.pence[a:b]
        kind = ledger.kind[a:b]
        paying = src >= 0
        receiving = dst >= 0
        outflow = np.bincount(src[paying], weights=pence[paying], minlength=balance.size)
        inflow = np.bincount(dst[receiving], weights=pence[receiving], minlength=balance.size)
        balance += (inflow - outflow).astype(np.int64)
        landing = np.bincount(
            dst[~paying & receiving], weights=pence[~paying & receiving], minlength=balance.size
        )
        edges = (kind == transfer) & paying & receiving
        available = outflow + balance
        values = markov_lm(
            landing, src[edges], dst[edges], pence[edges].astype(np.float64), available, k_max
        )
        out.append((int(slices.starts[p]), values))
    return out
