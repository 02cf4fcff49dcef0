"""The what-if projection's maths: a hand-worked three-account chain and a Monte Carlo check."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from circulate.statement.whatif import WindowFlows, project, simulate

#: Account 0 pays half of what it gets to 1 and a fifth to 2; 1 pays a tenth back to 0 and
#: four tenths to 2; 2 pays three tenths to 1. Everything else leaves the currency.
THREE_ACCOUNTS = [[0.0, 0.5, 0.2], [0.1, 0.0, 0.4], [0.0, 0.3, 0.0]]


def test_three_account_chain_by_hand() -> None:
    result = project(THREE_ACCOUNTS, entry=0, k_max=3)
    # LM2 = 1 + 0.5 + 0.2; second round (0.5·0.1, 0.2·0.3, 0.5·0.4) adds 0.05 + 0.06 + 0.2.
    assert result.lm == pytest.approx([1.0, 1.7, 2.01])
    # (I − P) y = 1: y2 = 1 + 0.3 y1, y1 = 1 + 0.1 y0 + 0.4 y2, y0 = 1 + 0.5 y1 + 0.2 y2
    # give y1 = 190/103 and y0 = 230/103.
    assert result.full == pytest.approx(230 / 103)
    assert project(THREE_ACCOUNTS, entry=2).full == pytest.approx(1 + 0.3 * 190 / 103)


def test_monte_carlo_of_the_chain_agrees_with_the_matrix_power() -> None:
    hops = simulate(THREE_ACCOUNTS, entry=0, walks=200_000, seed=7)
    exact = project(THREE_ACCOUNTS, entry=0, k_max=4)
    # Share of units making at least t transfers, summed over t < k, is LM_k.
    simulated_lm = [1.0 + sum(float(np.mean(hops >= t)) for t in range(1, k)) for k in (1, 2, 3, 4)]
    assert simulated_lm == pytest.approx(exact.lm, abs=0.01)
    assert 1.0 + float(hops.mean()) == pytest.approx(exact.full, abs=0.02)


def test_a_closed_loop_has_no_finite_full_multiplier() -> None:
    result = project([[0.0, 1.0], [1.0, 0.0]], entry=0, k_max=3)
    assert result.lm == [1.0, 2.0, 3.0]
    assert result.full == float("inf")


def test_rows_summing_above_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        project([[0.6, 0.6], [0.0, 0.0]], entry=0)


def test_window_transitions_are_shares_of_what_left_each_group() -> None:
    # Day 0: group 0 pays 30 to group 1 and redeems 10; day 1: group 1 pays 5 to group 0
    # out of 20 that left it.
    transfers = np.zeros((2, 2, 2))
    transfers[0, 0, 1], transfers[1, 1, 0] = 30.0, 5.0
    outflow = np.array([[40.0, 0.0], [0.0, 20.0]])
    flows = WindowFlows(dt.date(2025, 1, 1), dt.date(2025, 1, 2), transfers, outflow)
    assert flows.transitions().tolist() == [[0.0, 0.75], [0.25, 0.0]]
    # Day 1 drawn twice and day 0 not at all: group 0 sent nothing.
    assert flows.transitions(np.array([0.0, 2.0])).tolist() == [[0.0, 0.0], [0.25, 0.0]]
