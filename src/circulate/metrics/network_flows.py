"""Sector × sector and area × area transfer matrices, k-anonymised for publication.

A cell is the transfers from accounts of one group (sector or area) to accounts of another
in one period (each calendar month and the whole history), among member accounts only.
DESIGN.md §5: a cell describing fewer than k distinct accounts is suppressed (volume and
counts null, ``suppressed`` true). Here that means fewer than k distinct payers *or* fewer
than k distinct payees, since either side alone would expose a few accounts' trade.

Complementary suppression: totals that analysts can rebuild from other tables (a
period's row and column totals, the period's grand total — e.g. ``monthly_circulation``
— and the whole history of a cell as the sum of its months) must not reveal a hidden
cell by subtraction. So every such line holds either no suppressed cell or at least two
(or no unsuppressed cell that could be added). This is the usual row/column heuristic, not
a full linear-programming audit; a line whose only non-empty cell is suppressed (a
group that trades with one group only) cannot be protected by more suppression within
this table, and any table that publishes that line's total must suppress it too.

This module decides what is suppressed; :mod:`circulate.metrics.flow_cells` counts the
cells in the warehouse and writes ``marts.sector_flows`` and ``marts.area_flows``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from circulate.errors import ConfigurationError
from circulate.settings import MINIMUM_K_ANONYMITY

__all__ = [
    "DEFAULT_K_ANONYMITY",
    "complementary_suppression",
    "k_anonymity",
    "primary_suppression",
    "suppress_cells",
]

DEFAULT_K_ANONYMITY = 5


def k_anonymity(parameters: Mapping[str, Any]) -> int:
    """The run's k (``parameters['k_anonymity']``, default 5); never below the minimum.

    >>> k_anonymity({}), k_anonymity({"k_anonymity": 7})
    (5, 7)
    """
    k = int(parameters.get("k_anonymity", DEFAULT_K_ANONYMITY))
    if k < MINIMUM_K_ANONYMITY:
        raise ConfigurationError(
            f"k_anonymity = {k} is below the minimum of {MINIMUM_K_ANONYMITY}: set "
            f"CIRCULATE_K_ANONYMITY to {MINIMUM_K_ANONYMITY} or more."
        )
    return k


def primary_suppression(
    source_accounts: npt.ArrayLike, target_accounts: npt.ArrayLike, k: int
) -> npt.NDArray[np.bool_]:
    """Cells with fewer than ``k`` distinct payers or fewer than ``k`` distinct payees.

    >>> primary_suppression([5, 4, 9], [5, 9, 1], 5).tolist()
    [False, True, True]
    """
    payers = np.asarray(source_accounts)
    payees = np.asarray(target_accounts)
    return np.asarray((payers < k) | (payees < k), dtype=np.bool_)


def complementary_suppression(
    lines: Sequence[npt.ArrayLike], volume: npt.ArrayLike, primary: npt.ArrayLike
) -> npt.NDArray[np.bool_]:
    """Grow ``primary`` until no line holds exactly one suppressed cell beside open ones.

    ``lines`` has one array per family of totals (rows, columns, …): the cells sharing an
    id in it add up to a total someone can know. A line with a single hidden cell gets its
    smallest open cell (lowest index on ties) hidden too; repeat until nothing changes.

    Worked 2 × 2 example, cells (a→a, a→b, b→a, b→b) = (10, 20, 30, 40), a→a primary:
    row a hides a→b, column a hides b→a, then row b and column b are left with one hidden
    cell each, so b→b goes too — in a 2 × 2 table one hidden cell hides all four.

    >>> rows, cols = [0, 0, 1, 1], [0, 1, 0, 1]
    >>> complementary_suppression([rows, cols], [10, 20, 30, 40], [1, 0, 0, 0]).tolist()
    [True, True, True, True]

    In a 3 × 1 column with a total, hiding the smallest other cell is enough:

    >>> complementary_suppression([[0, 0, 0]], [5, 9, 7], [1, 0, 0]).tolist()
    [True, False, True]
    """
    vol = np.asarray(volume, dtype=np.float64)
    hidden = np.asarray(primary, dtype=np.bool_).copy()
    families = [np.unique(np.asarray(ids), return_inverse=True)[1] for ids in lines]
    index = np.arange(len(vol))
    changed = True
    while changed:
        changed = False
        for line in families:
            per_line = np.bincount(line, weights=hidden, minlength=line.max(initial=-1) + 1)
            exposed = per_line[line] == 1
            candidates = index[exposed & ~hidden]
            if len(candidates) == 0:
                continue
            # Smallest open cell of each exposed line: sort by (line, volume, index).
            order = np.lexsort((candidates, vol[candidates], line[candidates]))
            ranked = candidates[order]
            first = np.ones(len(ranked), np.bool_)
            first[1:] = line[ranked][1:] != line[ranked][:-1]
            hidden[ranked[first]] = True
            changed = True
    return hidden


def suppress_cells(cells: pl.DataFrame, k: int) -> pl.DataFrame:
    """Decide ``suppressed`` for the group × group cells of every period.

    ``cells`` has one row per (period_start, source_group, target_group) with ``cents``,
    ``transfer_count``, ``source_accounts`` and ``target_accounts``; a null period_start
    is the whole history. The result gives it the first month as period_start and says
    which period_kind each row is.
    """
    cells = cells.sort("period_start", "source_group", "target_group", nulls_last=True)
    first_month = cells["period_start"].drop_nulls().min()
    period = cells["period_start"].fill_null(date(1, 1, 1)).rank("dense").to_numpy()
    source = cells["source_group"].rank("dense").to_numpy()
    target = cells["target_group"].rank("dense").to_numpy()
    pair = source * (len(cells) + 1) + target
    lines = [
        period * (len(cells) + 1) + source,  # a period's row totals
        period * (len(cells) + 1) + target,  # a period's column totals
        period,  # a period's grand total
        pair,  # whole history = Σ months, cell by cell
    ]
    primary = primary_suppression(cells["source_accounts"], cells["target_accounts"], k)
    hidden = complementary_suppression(lines, cells["cents"].to_numpy(), primary)
    return cells.with_columns(
        pl.when(pl.col("period_start").is_null())
        .then(pl.lit("all"))
        .otherwise(pl.lit("month"))
        .alias("period_kind"),
        pl.col("period_start").fill_null(pl.lit(first_month, dtype=pl.Date)),
        pl.Series("suppressed", hidden, dtype=pl.Boolean),
        pl.lit(k, dtype=pl.Int64).alias("k_anonymity"),
    )
