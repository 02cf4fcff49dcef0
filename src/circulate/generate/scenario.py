"""Scenarios: how the behaviour of a generated scheme drifts over its period.

A :class:`Scenario` is a set of knobs that bend the city's behaviour from an *onset*
(a fraction of the period) to its last day. The ``healthy`` preset keeps every knob
neutral: it generates the steady scheme, draw for draw. The ``declining`` preset is a
scheme destroying public value, the situation the funder report must flag:

- a supermarket chain (the dominant hub) wins a growing share of consumer spending and
  public contracts, while independents buy less and less from each other;
- residents, businesses and public bodies buy ever less of the currency and spend down
  what they hold, while businesses sweep part of their balance back to sterling every
  week and the chain sends ever more of its takings to head office: leakage
  (redeemed / issued) climbs month after month;
- newcomers stop coming and members leave at a growing rate, most of them cashing out.

Measured on one-year schemes starting 1 January, 1 April and 1 July: with 100,000 rows
(seeds 1–20) leakage rises in every one of the last four calendar months and the five
largest receivers take more than half of what businesses receive in the last month;
with 20,000 rows (about 50 businesses, seeds 1–60) so do 177 schemes of 180, the other
three missing one monthly rise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

__all__ = ["SCENARIOS", "Scenario", "scenario_named"]


@dataclass(frozen=True)
class Scenario:
    """Knobs of a scheme's drift, each neutral by default.

    Shares and hazards move linearly with :meth:`progress`; multipliers move
    geometrically (:meth:`trend`).

    Attributes
    ----------
    name
        Preset name, recorded in ``ground_truth.json``.
    onset
        Fraction of the period (0–1) at which the drift starts; before it the scheme
        behaves as it always did (1: never).
    individual_topup_end
        Individuals' top-up intensity on the last day, relative to before the onset.
    organisation_topup_end
        Businesses' and public bodies' top-ups on the last day, relative to before the
        onset (public budgets are cut; businesses stop buying the currency).
    local_supply_end
        Share of business-to-business supply payments still made on the last day.
    weekly_sweep
        Share of its balance every business redeems each Friday, over the whole period
        (0: occasional cash-outs instead, as in a steady scheme).
    hub_sweep_end
        The dominant hub's weekly share on the last day, reached from ``weekly_sweep``
        (a chain sending ever more of its takings to head office).
    hub_share_end
        Share of consumer spending and of public contracts captured by the dominant hub
        on the last day (0: no hub).
    joining_end
        Share of would-be newcomers who still start trading on the last day (the others
        sign up but never use their account).
    churn_hazard_end
        Daily probability, on the last day, that a member (an individual or a business
        other than the hub) leaves the scheme.
    leaver_cash_out
        Probability that a member who leaves redeems their balance on their last day.
    """

    name: str
    onset: float = 1.0
    individual_topup_end: float = 1.0
    organisation_topup_end: float = 1.0
    local_supply_end: float = 1.0
    weekly_sweep: float = 0.0
    hub_sweep_end: float = 0.0
    hub_share_end: float = 0.0
    joining_end: float = 1.0
    churn_hazard_end: float = 0.0
    leaver_cash_out: float = 0.33

    def __post_init__(self) -> None:
        for knob in fields(self):
            value = getattr(self, knob.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"scenario {self.name!r}: {knob.name} must lie in [0, 1], got {value}"
                )
        for knob_name in ("individual_topup_end", "organisation_topup_end"):
            if getattr(self, knob_name) == 0.0:
                raise ValueError(f"scenario {self.name!r}: {knob_name} must be > 0")

    def progress(self, days: int) -> npt.NDArray[np.float64]:
        """How far the drift has gone on each day: 0 until the onset, 1 on the last day.

        Measured at the middle of each day, linear in between.

        >>> Scenario("x", onset=0.5).progress(4).tolist()
        [0.0, 0.0, 0.25, 0.75]
        >>> Scenario("x").progress(2).tolist()
        [0.0, 0.0]
        """
        if self.onset >= 1.0:
            return np.zeros(days)
        t = (np.arange(days, dtype=np.float64) + 0.5) / days
        return np.asarray(np.clip((t - self.onset) / (1.0 - self.onset), 0.0, 1.0))

    def trend(self, days: int, end: float) -> npt.NDArray[np.float64]:
        """Per-day multiplier going from 1 before the onset to ``end`` on the last day.

        Geometric in between (``end ** progress``): every week multiplies it by the
        same factor, so a fading behaviour keeps shrinking at the same pace.

        >>> [round(x, 3) for x in Scenario("x", onset=0.5).trend(4, end=0.25).tolist()]
        [1.0, 1.0, 0.707, 0.354]
        """
        return np.asarray(end ** self.progress(days))


#: Named presets accepted by ``generate_scheme(scenario=...)``.
SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario("healthy"),
    # Onset at 70 % of the period (mid-September in a calendar year). Strong fades: a
    # monthly ratio of lumpy sums in a small scheme (50 businesses) is noisy, and
    # leakage must still rise in every one of the last four months. An earlier onset
    # drains the money supply before the end and leakage falls back in the last month.
    "declining": Scenario(
        "declining",
        onset=0.7,
        individual_topup_end=0.1,
        organisation_topup_end=0.02,
        local_supply_end=0.2,
        weekly_sweep=0.3,
        hub_sweep_end=0.9,
        hub_share_end=0.8,
        joining_end=0.05,
        churn_hazard_end=0.016,
        leaver_cash_out=0.9,
    ),
}


def scenario_named(name: str) -> Scenario:
    """The preset called ``name``.

    >>> scenario_named("healthy").hub_share_end
    0.0
    >>> scenario_named("booming")
    Traceback (most recent call last):
    ...
    ValueError: unknown scenario 'booming'; choose one of: healthy, declining
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        allowed = ", ".join(SCENARIOS)
        raise ValueError(f"unknown scenario {name!r}; choose one of: {allowed}") from None
