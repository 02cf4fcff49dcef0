"""Sequential settlement of time-sorted candidates: the only non-vectorised step.

One pass in (time, tie-break) order keeps each member's balance, settles what the payer
can afford and thins the candidates towards an exact row count. Compiled with numba.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

__all__ = ["running_min_balance", "settle"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    # Typed wrapper: numba has no stubs, and mypy --strict rejects untyped decorators.
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


@_jit
def _settle_kernel(
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    amount: npt.NDArray[np.int64],
    policy: npt.NDArray[np.int8],
    param: npt.NDArray[np.int32],
    ref: npt.NDArray[np.int64],
    n_accounts: int,
    target: int,
) -> npt.NDArray[np.int64]:
    m = len(src)
    balance = np.zeros(n_accounts, dtype=np.int64)
    settled = np.zeros(m, dtype=np.int64)
    accepted = 0
    for i in range(m):
        # Thinning quota: never run ahead of target * (i + 1) / m settled rows, so the
        # surplus of candidates is dropped evenly over time whatever their kind.
        if accepted * m >= target * (i + 1):
            continue
        s = src[i]
        p = policy[i]
        a = np.int64(0)
        if p == 0:  # ISSUE
            a = amount[i]
        elif p == 1:  # ALL_OR_NOTHING
            if balance[s] >= amount[i]:
                a = amount[i]
        elif p == 2:  # CLAMP
            a = min(amount[i], balance[s])
            if a < param[i]:
                a = np.int64(0)
        elif p == 3:  # REDEEM: a share of the balance, in whole pounds
            b = balance[s]
            if b >= amount[i]:
                a = (b * param[i] // 1000) // 100 * 100
        else:  # REVERSE: (part of) what the original actually settled
            r = ref[i]
            if r >= 0:
                a = settled[r] * param[i] // 1000
                if balance[s] < a:
                    a = np.int64(0)
        if a > 0:
            balance[s] -= a
            balance[dst[i]] += a
            settled[i] = a
            accepted += 1
    return settled


def settle(
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    amount: npt.NDArray[np.int64],
    policy: npt.NDArray[np.int8],
    param: npt.NDArray[np.int32],
    ref: npt.NDArray[np.int64],
    n_accounts: int,
    target: int,
) -> npt.NDArray[np.int64]:
    """Settled amount (pence) of each time-sorted candidate; 0 = not booked.

    Parameters
    ----------
    src, dst, amount, policy, param, ref
        Candidate columns in settlement order (see ``circulate.generate.events`` for
        the policy codes). ``ref`` must point to an *earlier* candidate.
    n_accounts
        Number of accounts (balances start at zero).
    target
        At most this many candidates are booked.

    Returns
    -------
    numpy.ndarray
        int64 amounts; every booked row keeps each non-issuer balance ≥ 0 in this order.

    Examples
    --------
    Issue £10 to account 1, which then tries to pay £15 (refused) and £4 (booked):

    >>> i32, i64, i8 = np.int32, np.int64, np.int8
    >>> settle(np.array([0, 1, 1], i32), np.array([1, 2, 2], i32),
    ...        np.array([1000, 1500, 400], i64), np.array([0, 1, 1], i8),
    ...        np.zeros(3, i32), np.full(3, -1, i64), 3, 3).tolist()
    [1000, 0, 400]
    """
    return _settle_kernel(src, dst, amount, policy, param, ref, n_accounts, target)


@_jit
def _running_min_kernel(
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    amount: npt.NDArray[np.int64],
    n_accounts: int,
    skip: int,
) -> int:
    balance = np.zeros(n_accounts, dtype=np.int64)
    low = 0
    for i in range(len(src)):
        s = src[i]
        balance[s] -= amount[i]
        balance[dst[i]] += amount[i]
        if s != skip and balance[s] < low:
            low = balance[s]
    return low


def running_min_balance(
    src: npt.NDArray[np.int32],
    dst: npt.NDArray[np.int32],
    amount: npt.NDArray[np.int64],
    n_accounts: int,
    skip: int,
) -> int:
    """Lowest balance any account except ``skip`` reaches when rows are replayed in order.

    >>> i32 = np.int32
    >>> running_min_balance(np.array([0, 1], i32), np.array([1, 2], i32),
    ...                     np.array([500, 700], np.int64), 3, skip=0)
    -200
    """
    return int(_running_min_kernel(src, dst, amount, n_accounts, skip))
