"""The synthetic city: wards, sectors and the member population of a Bristol-like scheme.

Account indices are laid out in blocks so that roles are cheap to test in vectorised
code: ``0`` issuer, ``1`` council, ``2`` hospital trust, ``3`` university, then the
businesses, then the individuals. Raw export ids are numbered by joining order within
each type (``BUS-00001`` joined first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from circulate.generate.clock import cumulative
from circulate.generate.scenario import SCENARIOS, Scenario

__all__ = [
    "ACCOUNT_TYPES",
    "ANCHOR_ROLES",
    "BUSINESS",
    "INDIVIDUAL",
    "ISSUER",
    "PUBLIC_BODY",
    "SECTORS",
    "WARDS",
    "Population",
    "build_population",
    "member_count",
]

# (name, deprivation decile 1 = most deprived, x km, y km, share of residents,
# share of businesses). Bristol-like, not official statistics.
WARDS: tuple[tuple[str, int, float, float, float, float], ...] = (
    ("Lawrence Hill", 1, 1.4, 0.2, 1.3, 1.0),
    ("Filwood", 1, 0.9, -4.0, 0.9, 0.4),
    ("Hartcliffe & Withywood", 2, -1.5, -5.5, 1.1, 0.4),
    ("Southmead", 2, -0.4, 5.5, 0.9, 0.4),
    ("Easton", 3, 1.8, 0.9, 1.2, 1.3),
    ("Ashley", 3, 0.6, 1.6, 1.2, 1.4),
    ("Knowle", 4, 1.2, -2.8, 0.9, 0.5),
    ("Windmill Hill", 5, 0.4, -1.6, 1.0, 0.8),
    ("Bedminster", 5, -0.3, -1.8, 1.0, 1.3),
    ("Central", 6, 0.0, 0.0, 1.1, 3.5),
    ("Southville", 7, -0.9, -1.2, 0.9, 1.4),
    ("Bishopston & Ashley Down", 8, 0.2, 3.0, 1.1, 1.5),
    ("Redland", 9, -1.2, 2.4, 0.9, 0.8),
    ("Clifton", 10, -2.0, 0.3, 1.0, 1.6),
)

# (sector, share of businesses, median consumer basket £, appeal to consumers)
SECTORS: tuple[tuple[str, float, float, float], ...] = (
    ("food & drink", 0.24, 7.5, 1.6),
    ("retail", 0.20, 18.0, 1.0),
    ("services", 0.15, 30.0, 0.7),
    ("trades", 0.09, 85.0, 0.15),
    ("green energy", 0.04, 120.0, 0.1),
    ("arts & culture", 0.10, 14.0, 0.8),
    ("health & wellbeing", 0.13, 35.0, 0.6),
    ("wholesale", 0.05, 60.0, 0.05),
)
WHOLESALE = len(SECTORS) - 1
_FOOD_AND_DRINK, _RETAIL = 0, 1

ACCOUNT_TYPES = ("individual", "business", "public_body", "issuer")
INDIVIDUAL, BUSINESS, PUBLIC_BODY, ISSUER = 0, 1, 2, 3

ISSUER_ID = "ISSUER-1"
COUNCIL_ID = "COUNCIL-1"
#: Anchor institutions beside the council: raw id → role.
ANCHOR_ROLES = {"ANCHOR-1": "hospital_trust", "ANCHOR-2": "university"}
N_FIXED = 2 + len(ANCHOR_ROLES)  # issuer, council, anchors


def member_count(transactions: int, days: int) -> int:
    """Members (businesses + individuals) for a scheme of this size.

    About 0.3 transactions per member per day, so a year of 1 M transactions has
    about 9 000 members. Periods shorter than 60 days are sized as 60 days (a busy
    slice of a larger scheme, not a crowd of one-off users), and there are never fewer
    than 40 members so that small schemes still have a network.

    >>> member_count(1_000_000, 365)
    9132
    >>> member_count(1_000, 5), member_count(100, 5)
    (56, 40)
    """
    return max(40, round(transactions / (0.3 * max(days, 60))))


@dataclass(frozen=True)
class Population:
    """Accounts of the scheme and the behavioural traits the event generator uses.

    Attributes
    ----------
    ids
        Raw export id of every account, by index.
    account_type
        Code into ``ACCOUNT_TYPES``.
    sector
        Index into ``SECTORS`` for businesses, -1 otherwise.
    ward
        Index into ``WARDS``.
    join_day
        Day index (relative to the period start) the account joined; negative = before.
    active_from, active_to
        Half-open window ``[from, to)`` of day indices in which the account transacts:
        from joining (or the period start) until churn (or the period end).
    activity
        Relative transaction rate (individuals, businesses).
    spend_scale
        Multiplier on an individual's basket sizes (lower in deprived wards).
    popularity
        Heavy-tailed consumer pull of a business (a few hubs).
    size
        Business size: drives supplier payments, staff, rates and redemptions.
    hub
        Index of the business that becomes the dominant hub in a drifting scenario
        (a supermarket chain), or -1 when there is none.
    """

    ids: list[str]
    account_type: npt.NDArray[np.int8]
    sector: npt.NDArray[np.int8]
    ward: npt.NDArray[np.int8]
    join_day: npt.NDArray[np.int32]
    active_from: npt.NDArray[np.int32]
    active_to: npt.NDArray[np.int32]
    activity: npt.NDArray[np.float64]
    spend_scale: npt.NDArray[np.float64]
    popularity: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    n_business: int
    n_individual: int
    hub: int = -1

    @property
    def n_accounts(self) -> int:
        """Number of accounts, issuer included."""
        return len(self.ids)

    @property
    def issuer(self) -> int:
        """Index of the issuer account."""
        return 0

    @property
    def council(self) -> int:
        """Index of the council account."""
        return 1

    @property
    def anchors(self) -> npt.NDArray[np.int32]:
        """Indices of the anchor institutions (hospital trust, university)."""
        return np.arange(2, N_FIXED, dtype=np.int32)

    @property
    def businesses(self) -> npt.NDArray[np.int32]:
        """Indices of the businesses."""
        return np.arange(N_FIXED, N_FIXED + self.n_business, dtype=np.int32)

    @property
    def individuals(self) -> npt.NDArray[np.int32]:
        """Indices of the individuals."""
        start = N_FIXED + self.n_business
        return np.arange(start, start + self.n_individual, dtype=np.int32)

    def is_wholesaler(self) -> npt.NDArray[np.bool_]:
        """Boolean mask over all accounts: businesses in the wholesale sector."""
        return np.asarray(self.sector == WHOLESALE, dtype=np.bool_)


def ward_distances() -> npt.NDArray[np.float64]:
    """Matrix of straight-line distances (km) between ward centres."""
    xy = np.array([(w[2], w[3]) for w in WARDS])
    diff = xy[:, None, :] - xy[None, :, :]
    return np.asarray(np.sqrt((diff**2).sum(axis=2)), dtype=np.float64)


def _join_and_churn(
    rng: np.random.Generator, n: int, days: int, churn_rate: float
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Joining day and active window for ``n`` members, sorted by joining day.

    A share of members (growing with the period length, 40 % a year) joins during the
    period; the others joined up to three years before it. Some members churn: they
    stop transacting from a day inside the period.
    """
    span = min(1.0, days / 365.0)
    new = rng.random(n) < 0.4 * span
    join = np.where(
        new,
        rng.integers(0, max(days, 1), size=n),
        -rng.integers(1, 3 * 365, size=n),
    ).astype(np.int32)
    join.sort()
    active_from = np.maximum(join, 0).astype(np.int32)
    churn = (rng.random(n) < churn_rate * span) & (active_from + 2 < days)
    # Churn day uniform strictly after the first active day.
    lo = active_from + 1
    churn_day = lo + (rng.random(n) * np.maximum(days - lo, 1)).astype(np.int32)
    active_to = np.where(churn, churn_day, days).astype(np.int32)
    return join, active_from, active_to


def _dominant_hub(
    sector: npt.NDArray[np.int8],
    popularity: npt.NDArray[np.float64],
    active_from: npt.NDArray[np.int32],
    active_to: npt.NDArray[np.int32],
    businesses: npt.NDArray[np.int32],
    days: int,
) -> int:
    """The business that grows into the dominant hub, or -1 when none can.

    The most popular food & drink or retail business (a supermarket chain) among those
    trading over the whole period; any business trading throughout if there is none.
    """
    throughout = businesses[(active_from[businesses] == 0) & (active_to[businesses] == days)]
    if len(throughout) == 0:
        return -1
    shops = throughout[np.isin(sector[throughout], [_FOOD_AND_DRINK, _RETAIL])]
    pool = shops if len(shops) else throughout
    return int(pool[np.argmax(popularity[pool])])


def _drift_churn(
    rng: np.random.Generator,
    members: npt.NDArray[np.int32],
    active_from: npt.NDArray[np.int32],
    active_to: npt.NDArray[np.int32],
    scenario: Scenario,
    days: int,
) -> None:
    """Members leave at the scenario's growing daily hazard (``active_to`` in place).

    Each member draws an exponential "patience" and leaves on the day the hazard
    accumulated since they became active exceeds it, unless they leave earlier anyway.
    """
    hazard = scenario.churn_hazard_end * scenario.progress(days)
    accumulated = cumulative(hazard)
    patience = rng.exponential(1.0, len(members))
    start = active_from[members]
    # Day on which the accumulated hazard crosses the patience: the last active day.
    last = np.searchsorted(accumulated, accumulated[start] + patience, side="left") - 1
    leaves = (last + 1 < active_to[members]) & (last > start)
    active_to[members[leaves]] = (last[leaves] + 1).astype(np.int32)


def _drift_recruitment(
    rng: np.random.Generator,
    members: npt.NDArray[np.int32],
    active_from: npt.NDArray[np.int32],
    active_to: npt.NDArray[np.int32],
    scenario: Scenario,
    days: int,
) -> None:
    """Fewer newcomers as the scheme fades (``active_to`` in place).

    A member signing up on a day after the onset starts trading only with the
    probability given by the scenario's joining trend; the others keep their account
    but never use it (an empty active window).
    """
    joining = scenario.trend(days, scenario.joining_end)
    start = active_from[members]
    new = start > 0
    stays = rng.random(len(members)) < joining[np.minimum(start, days - 1)]
    dormant = members[new & ~stays]
    active_to[dormant] = active_from[dormant]


def build_population(
    rng: np.random.Generator,
    transactions: int,
    days: int,
    scenario: Scenario = SCENARIOS["healthy"],
) -> Population:
    """Draw the accounts of a scheme sized for ``transactions`` over ``days``.

    About 71 % individuals and 29 % businesses, plus the issuer, the council and two
    anchor institutions (a hospital trust and a university). A drifting ``scenario``
    names a dominant hub, turns away newcomers and makes members leave at a growing
    rate; its draws come after all the steady ones, so the steady city is the same
    whatever the scenario.
    """
    members = member_count(transactions, days)
    n_bus = max(8, round(0.29 * members))
    n_ind = max(8, members - n_bus)
    n = N_FIXED + n_bus + n_ind

    account_type = np.full(n, INDIVIDUAL, dtype=np.int8)
    account_type[0] = ISSUER
    account_type[1:N_FIXED] = PUBLIC_BODY
    account_type[N_FIXED : N_FIXED + n_bus] = BUSINESS

    resident_share = np.array([w[4] for w in WARDS])
    business_share = np.array([w[5] for w in WARDS])
    sector_share = np.array([s[1] for s in SECTORS])
    sector_appeal = np.array([s[3] for s in SECTORS])
    deciles = np.array([w[1] for w in WARDS], dtype=np.float64)

    ward = np.zeros(n, dtype=np.int8)
    ward[:N_FIXED] = [9, 9, 3, 13]  # issuer and council in Central, hospital, university
    bus = slice(N_FIXED, N_FIXED + n_bus)
    ind = slice(N_FIXED + n_bus, n)
    ward[bus] = rng.choice(len(WARDS), size=n_bus, p=business_share / business_share.sum())
    ward[ind] = rng.choice(len(WARDS), size=n_ind, p=resident_share / resident_share.sum())

    sector = np.full(n, -1, dtype=np.int8)
    sector[bus] = rng.choice(len(SECTORS), size=n_bus, p=sector_share)

    join = np.full(n, -1500, dtype=np.int32)  # the issuer and public bodies predate the data
    join[1:N_FIXED] = -1400
    active_from = np.zeros(n, dtype=np.int32)
    active_to = np.full(n, days, dtype=np.int32)
    join[bus], active_from[bus], active_to[bus] = _join_and_churn(rng, n_bus, days, 0.08)
    join[ind], active_from[ind], active_to[ind] = _join_and_churn(rng, n_ind, days, 0.15)

    activity = np.ones(n)
    activity[ind] = rng.lognormal(0.0, 0.8, size=n_ind)
    spend_scale = np.ones(n)
    # Smaller baskets in deprived wards: decile 1 spends ~70 % of decile 10.
    spend_scale[ind] = (0.67 + 0.033 * deciles[ward[ind]]) * rng.lognormal(0.0, 0.3, n_ind)

    popularity = np.zeros(n)
    size = np.zeros(n)
    # Pareto tail: a handful of hubs draw a large share of consumer spending.
    pop = (rng.pareto(1.8, size=n_bus) + 1.0) * sector_appeal[sector[bus]]
    popularity[bus] = pop
    sz = np.sqrt(rng.pareto(1.3, size=n_bus) + 1.0) * rng.lognormal(0.0, 0.4, n_bus)
    sz = np.where(sector[bus] == WHOLESALE, sz * 4.0, sz)
    size[bus] = sz
    activity[bus] = sz

    ids: list[str] = [ISSUER_ID, COUNCIL_ID, *ANCHOR_ROLES]
    w_bus = max(5, len(str(n_bus)))
    w_ind = max(6, len(str(n_ind)))
    ids += [f"BUS-{i:0{w_bus}d}" for i in range(1, n_bus + 1)]
    ids += [f"IND-{i:0{w_ind}d}" for i in range(1, n_ind + 1)]

    businesses = np.arange(N_FIXED, N_FIXED + n_bus, dtype=np.int32)
    hub = -1
    if scenario.hub_share_end > 0:
        hub = _dominant_hub(sector, popularity, active_from, active_to, businesses, days)
    # The hub trades throughout: it neither stays dormant nor leaves.
    drifting = np.arange(N_FIXED, n, dtype=np.int32)
    drifting = drifting[drifting != hub]
    if scenario.joining_end < 1.0:
        _drift_recruitment(rng, drifting, active_from, active_to, scenario, days)
    if scenario.churn_hazard_end > 0:
        _drift_churn(rng, drifting, active_from, active_to, scenario, days)

    return Population(
        ids=ids,
        account_type=account_type,
        sector=sector,
        ward=ward,
        join_day=join,
        active_from=active_from,
        active_to=active_to,
        activity=activity,
        spend_scale=spend_scale,
        popularity=popularity,
        size=size,
        n_business=n_bus,
        n_individual=n_ind,
        hub=hub,
    )
