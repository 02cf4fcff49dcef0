"""Vectorised candidate events of the synthetic city.

Each behaviour (consumer spending, supplier payments, wages, rates, top-ups …) becomes a
block of *candidate* events: who wants to pay whom, when, and how much. Candidates
ignore balances; :mod:`circulate.generate.settle` later replays them in time order and
keeps only what the payer can afford. Top-ups and redemptions are sized from the
desired flows of each account so that the settled ledger is roughly balanced. A drifting
:class:`~circulate.generate.scenario.Scenario` bends these behaviours over time; its
extra draws happen only when a knob is off its neutral value, so a steady scheme draws
exactly the same numbers whatever code a scenario adds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from circulate.generate.city import (
    SECTORS,
    WARDS,
    Population,
    ward_distances,
)
from circulate.generate.clock import DAY_END_S, DAY_START_S, Calendar, cumulative
from circulate.generate.scenario import SCENARIOS, Scenario

__all__ = [
    "CHANNELS",
    "KINDS",
    "Candidates",
    "candidate_events",
    "fill_topups",
]

KINDS = ("issuance", "transfer", "redemption", "fee", "reversal")
ISSUANCE, TRANSFER, REDEMPTION, FEE, REVERSAL = range(5)
CHANNELS = ("app", "card", "sms", "paper")
APP, CARD, SMS, PAPER = range(4)

# Settlement policies, interpreted by circulate.generate.settle.
ISSUE = 0  # always settles (issuer balance is unconstrained)
ALL_OR_NOTHING = 1  # settles only if the payer holds the full amount
CLAMP = 2  # pays min(amount, balance) if that is at least `param` pence
REDEEM = 3  # if balance >= amount (threshold), redeems param/1000 of it in whole pounds
REVERSE = 4  # returns param/1000 of the settled amount of candidate `ref`, if affordable

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass
class Candidates:
    """Column arrays of candidate events (one element per candidate)."""

    day: I32
    second: I32
    src: I32
    dst: I32
    amount: I64
    kind: npt.NDArray[np.int8]
    policy: npt.NDArray[np.int8]
    param: I32
    ref: I64
    channel: npt.NDArray[np.int8]
    reversible: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.day)

    @classmethod
    def make(
        cls,
        day: npt.ArrayLike,
        second: npt.ArrayLike,
        src: npt.ArrayLike,
        dst: npt.ArrayLike,
        amount: npt.ArrayLike,
        *,
        kind: int,
        policy: int,
        channel: npt.ArrayLike,
        param: npt.ArrayLike = 0,
        reversible: bool = False,
    ) -> Candidates:
        """Build a block, broadcasting scalar columns to the block length."""
        d = np.asarray(day, dtype=np.int32)
        n = len(d)

        def col(x: npt.ArrayLike, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
            return np.broadcast_to(np.asarray(x, dtype=dtype), (n,)).copy()

        return cls(
            day=d,
            second=np.asarray(col(second, np.int32), dtype=np.int32),
            src=np.asarray(col(src, np.int32), dtype=np.int32),
            dst=np.asarray(col(dst, np.int32), dtype=np.int32),
            amount=np.asarray(col(amount, np.int64), dtype=np.int64),
            kind=np.full(n, kind, dtype=np.int8),
            policy=np.full(n, policy, dtype=np.int8),
            param=np.asarray(col(param, np.int32), dtype=np.int32),
            ref=np.full(n, -1, dtype=np.int64),
            channel=np.asarray(col(channel, np.int8), dtype=np.int8),
            reversible=np.full(n, reversible, dtype=np.bool_),
        )

    def take(self, index: npt.NDArray[np.integer] | npt.NDArray[np.bool_]) -> Candidates:
        """Subset (or reorder) every column."""
        return Candidates(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, parts: list[Candidates]) -> Candidates:
        """Concatenate blocks; ``ref`` indices must already be global."""
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


# --------------------------------------------------------------------------- sampling


def _sample_days(
    rng: np.random.Generator, cum: F64, lo: npt.NDArray[np.integer], hi: npt.NDArray[np.integer]
) -> I32:
    """A day in ``[lo, hi)`` for each event, with probability ∝ the day weights."""
    base = cum[lo]
    u = base + rng.random(len(lo)) * (cum[hi] - base)
    day = np.searchsorted(cum, u, side="right") - 1
    return np.asarray(np.clip(day, lo, hi - 1), dtype=np.int32)


def _pick_sources(
    rng: np.random.Generator,
    count: int,
    pool: I32,
    weight: F64,
    cum: F64,
    pop: Population,
) -> tuple[I32, I32]:
    """Draw ``count`` (source, day) pairs.

    A source is drawn with probability ∝ its weight × the day weight it is active for,
    then a day inside its active window ∝ the day weights: so every event lies inside
    its source's window and busy days get more events.
    """
    lo, hi = pop.active_from[pool], pop.active_to[pool]
    w = weight * (cum[hi] - cum[lo])
    if count <= 0 or w.sum() <= 0:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty
    cdf = np.cumsum(w)
    pick = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")
    src = pool[np.minimum(pick, len(pool) - 1)]
    day = _sample_days(rng, cum, pop.active_from[src], pop.active_to[src])
    return src, day


def _pick_targets(
    rng: np.random.Generator,
    pool: I32,
    weight: F64,
    day: I32,
    pop: Population,
    exclude: I32 | None = None,
    rounds: int = 64,
) -> I32:
    """Draw a target ∝ weight among accounts active on each event's day.

    Rejection sampling: redraw only the events whose target was inactive that day (or
    equal to ``exclude``). Events still unmatched after ``rounds`` get -1.
    """
    out = np.full(len(day), -1, dtype=np.int32)
    if len(pool) == 0 or weight.sum() <= 0:
        return out
    cdf = np.cumsum(weight)
    todo = np.arange(len(day))
    for _ in range(rounds):
        if len(todo) == 0:
            break
        pick = np.searchsorted(cdf, rng.random(len(todo)) * cdf[-1], side="right")
        cand = pool[np.minimum(pick, len(pool) - 1)]
        d = day[todo]
        ok = (pop.active_from[cand] <= d) & (d < pop.active_to[cand])
        if exclude is not None:
            ok &= cand != exclude[todo]
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def _seconds(rng: np.random.Generator, n: int, profile: str) -> I32:
    """Local second of day in the trading window [07:00, 22:00) for ``n`` events."""
    h = 3600.0
    if profile == "consumer":
        # Lunchtime and after-work peaks over a flat base.
        mix = rng.random(n)
        s = np.where(
            mix < 0.25,
            rng.normal(12.75 * h, 1.0 * h, n),
            np.where(mix < 0.6, rng.normal(18.0 * h, 1.5 * h, n), rng.uniform(7 * h, 22 * h, n)),
        )
    elif profile == "topup":
        s = np.where(
            rng.random(n) < 0.5, rng.normal(19.5 * h, 1.5 * h, n), rng.uniform(7 * h, 22 * h, n)
        )
    elif profile == "business":
        s = rng.uniform(9 * h, 17.5 * h, n)
    elif profile == "payroll":
        s = rng.uniform(8 * h, 11 * h, n)
    elif profile == "batch":
        s = rng.uniform(7 * h, 8 * h, n)
    else:
        s = rng.uniform(7 * h, 22 * h, n)
    out = s.astype(np.int64)
    bad = (out < DAY_START_S) | (out >= DAY_END_S)
    out[bad] = rng.integers(DAY_START_S, DAY_END_S, int(bad.sum()))
    return out.astype(np.int32)


def _channels(rng: np.random.Generator, n: int, probs: npt.ArrayLike) -> npt.NDArray[np.int8]:
    p = np.asarray(probs, dtype=np.float64)
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1).astype(np.int8)


def _round_to(pence: F64 | I64, unit: int) -> I64:
    """Round to a whole ``unit`` of pence, never below one unit."""
    return (
        np.maximum(np.rint(np.asarray(pence, dtype=np.float64) / unit), 1).astype(np.int64) * unit
    )


def _lognormal_pence(
    rng: np.random.Generator, median_pounds: F64 | float, sigma: float, n: int
) -> F64:
    return np.asarray(median_pounds * 100.0 * rng.lognormal(0.0, sigma, n), dtype=np.float64)


def _split_counts(rng: np.random.Generator, expected: F64) -> I64:
    """Stochastically round expected counts to integers (unbiased)."""
    base = np.floor(expected)
    return (base + (rng.random(len(expected)) < expected - base)).astype(np.int64)


def _first_of_blocks(counts: I64) -> I64:
    """Positions of the first element of each non-empty block of ``np.repeat``."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return starts[counts > 0]


# ------------------------------------------------------------------------ behaviours


@dataclass
class _Flows:
    """Desired (pre-settlement) pence flowing out of / into each account."""

    out: F64
    into: F64

    def add(self, c: Candidates) -> None:
        n = len(self.out)
        self.out += np.bincount(c.src, weights=c.amount, minlength=n)
        self.into += np.bincount(c.dst, weights=c.amount, minlength=n)


def _employment(rng: np.random.Generator, pop: Population) -> tuple[I32, I32, I64]:
    """Employer, employee and monthly local-currency pay of each job.

    Businesses employ ∝ their size, preferring staff from their own ward; the council
    and anchors pay part of some salaries in the local currency.
    """
    bus, ind = pop.businesses, pop.individuals
    staff = np.minimum(rng.poisson(0.3 * pop.size[bus]), 30)
    employer = np.repeat(bus, staff)
    local = rng.random(len(employer)) < 0.5
    # Same-ward staff: draw among residents of the employer's ward when possible.
    employee = ind[rng.integers(0, len(ind), len(employer))]
    ward_ind = pop.ward[ind]
    order = np.argsort(ward_ind, kind="stable")
    bounds = np.searchsorted(ward_ind[order], np.arange(len(WARDS) + 1))
    w = pop.ward[employer]
    lo, hi = bounds[w], bounds[w + 1]
    has = local & (hi > lo)
    pick = lo[has] + (rng.random(int(has.sum())) * (hi[has] - lo[has])).astype(np.int64)
    employee[has] = ind[order[pick]]
    pay = _round_to(_lognormal_pence(rng, 200.0, 0.5, len(employer)), 1000)

    pub_employer: list[npt.NDArray[np.int32]] = []
    pub_employee: list[npt.NDArray[np.int32]] = []
    for body, share in ((pop.council, 0.015), (2, 0.01), (3, 0.01)):
        k = max(1, round(share * len(ind)))
        pub_employee.append(rng.choice(ind, size=k, replace=False).astype(np.int32))
        pub_employer.append(np.full(k, body, dtype=np.int32))
    pe = np.concatenate(pub_employer)
    pi = np.concatenate(pub_employee)
    ppay = _round_to(_lognormal_pence(rng, 350.0, 0.4, len(pe)), 1000)
    return (
        np.concatenate([employer, pe]).astype(np.int32),
        np.concatenate([employee, pi]).astype(np.int32),
        np.concatenate([pay, ppay]),
    )


def _active(pop: Population, acct: I32, day: I32) -> npt.NDArray[np.bool_]:
    return (pop.active_from[acct] <= day) & (day < pop.active_to[acct])


def _structured(
    rng: np.random.Generator, pop: Population, cal: Calendar, jobs: tuple[I32, I32, I64]
) -> list[Candidates]:
    """Monthly obligations: business rates, membership fees and wages/salaries."""
    bus = pop.businesses
    months = cal.months
    parts: list[Candidates] = []

    # Business rates to the council on a fixed day of the month (moved to the next
    # working day); about half of the businesses pay them in the local currency.
    payer = bus[rng.random(len(bus)) < 0.5]
    rates = _round_to(_lognormal_pence(rng, 60.0, 0.5, len(payer)) * np.sqrt(pop.size[payer]), 100)
    dom = rng.integers(1, 29, len(payer))
    b = np.repeat(payer, months)
    m = np.tile(np.arange(months), len(payer))
    d = cal.month_start[m] + np.repeat(dom, months) - 1
    ok = (d >= 0) & (d < cal.days)
    b, d = b[ok], d[ok]
    d = cal.next_working[d]
    ok = d < cal.days
    b, d = b[ok], d[ok].astype(np.int32)
    amt_by_acct = np.zeros(pop.n_accounts, dtype=np.int64)
    amt_by_acct[payer] = rates
    ok = _active(pop, b, d)
    b, d = b[ok], d[ok]
    parts.append(
        Candidates.make(
            d,
            _seconds(rng, len(d), "business"),
            b,
            pop.council,
            amt_by_acct[b],
            kind=TRANSFER,
            policy=ALL_OR_NOTHING,
            channel=_channels(rng, len(d), [0.9, 0.1, 0.0, 0.0]),
        )
    )

    # Monthly membership fee to the issuer, billed in arrears on the first working day
    # of each month after the one the business joined in.
    tier = np.digitize(pop.size, [1.2, 2.5])
    fee = np.array([500, 1000, 2000], dtype=np.int64)[tier]
    fw = cal.first_working
    mm = np.flatnonzero(fw >= 0)
    b = np.repeat(bus, len(mm))
    d = np.tile(fw[mm], len(bus)).astype(np.int32)
    ok = _active(pop, b, d) & (pop.active_from[b] < np.tile(cal.month_first_day[mm], len(bus)))
    b, d = b[ok], d[ok]
    parts.append(
        Candidates.make(
            d,
            _seconds(rng, len(d), "batch"),
            b,
            pop.issuer,
            fee[b],
            kind=FEE,
            policy=ALL_OR_NOTHING,
            channel=APP,
        )
    )

    # Wages and salaries on payday, while both sides are active.
    employer, employee, pay = jobs
    pd = cal.payday
    mm = np.flatnonzero(pd >= 0)
    j = np.repeat(np.arange(len(employer)), len(mm))
    d = np.tile(pd[mm], len(employer)).astype(np.int32)
    ok = _active(pop, employer[j], d) & _active(pop, employee[j], d)
    j, d = j[ok], d[ok]
    parts.append(
        Candidates.make(
            d,
            _seconds(rng, len(d), "payroll"),
            employer[j],
            employee[j],
            pay[j],
            kind=TRANSFER,
            policy=ALL_OR_NOTHING,
            channel=APP,
        )
    )
    return parts


def _consumer(
    rng: np.random.Generator, pop: Population, cal: Calendar, count: int, scenario: Scenario
) -> Candidates:
    """Individuals paying businesses: local preference and heavy-tailed popularity.

    With a dominant hub, a growing share of the spending (the same baskets) goes to the
    hub instead: a chain with a branch in every ward takes custom from independents.
    """
    ind, bus = pop.individuals, pop.businesses
    cum = cumulative(cal.spend_weight)
    src, day = _pick_sources(rng, count, ind, pop.activity[ind], cum, pop)
    dst = np.full(len(src), -1, dtype=np.int32)
    dist = ward_distances()
    bus_ward = pop.ward[bus]
    src_ward = pop.ward[src]
    for w in range(len(WARDS)):
        sel = np.flatnonzero(src_ward == w)
        if len(sel) == 0:
            continue
        # Distance decay with a bonus for the home ward: most spending is local.
        locality = np.exp(-dist[w, bus_ward] / 1.2) * np.where(bus_ward == w, 2.0, 1.0)
        dst[sel] = _pick_targets(rng, bus, pop.popularity[bus] * locality, day[sel], pop)
    ok = dst >= 0
    src, day, dst = src[ok], day[ok], dst[ok]
    basket = np.array([s[2] for s in SECTORS])[pop.sector[dst]]
    amount = np.maximum(_lognormal_pence(rng, basket * pop.spend_scale[src], 0.6, len(src)), 50)
    # Residents of deprived wards use SMS and paper more, cards less.
    deprived = np.array([w[1] for w in WARDS])[pop.ward[src]] <= 3
    ch = np.where(
        deprived,
        _channels(rng, len(src), [0.38, 0.30, 0.17, 0.15]),
        _channels(rng, len(src), [0.47, 0.38, 0.06, 0.09]),
    )
    if pop.hub >= 0:
        share = scenario.hub_share_end * scenario.progress(cal.days)
        dst = np.where(rng.random(len(src)) < share[day], pop.hub, dst).astype(np.int32)
    return Candidates.make(
        day,
        _seconds(rng, len(src), "consumer"),
        src,
        dst,
        amount.astype(np.int64),
        kind=TRANSFER,
        policy=ALL_OR_NOTHING,
        channel=ch,
        reversible=True,
    )


def _peer(rng: np.random.Generator, pop: Population, cal: Calendar, count: int) -> Candidates:
    """Individuals paying each other (splitting bills, small favours)."""
    ind = pop.individuals
    cum = cumulative(cal.spend_weight)
    src, day = _pick_sources(rng, count, ind, pop.activity[ind], cum, pop)
    dst = _pick_targets(rng, ind, np.sqrt(pop.activity[ind]), day, pop, exclude=src)
    ok = dst >= 0
    src, day, dst = src[ok], day[ok], dst[ok]
    return Candidates.make(
        day,
        _seconds(rng, len(src), "any"),
        src,
        dst,
        _round_to(_lognormal_pence(rng, 15.0, 0.8, len(src)), 100),
        kind=TRANSFER,
        policy=ALL_OR_NOTHING,
        channel=_channels(rng, len(src), [0.75, 0.0, 0.2, 0.05]),
        reversible=True,
    )


def _supply(
    rng: np.random.Generator, pop: Population, cal: Calendar, count: int, scenario: Scenario
) -> Candidates:
    """Business-to-business supply payments; wholesalers receive a large share.

    A drifting scenario keeps only a shrinking share of them: independents buy less
    from each other.
    """
    bus = pop.businesses
    cum = cumulative(cal.business_weight)
    src, day = _pick_sources(rng, count, bus, pop.size[bus], cum, pop)
    wholesale = pop.is_wholesaler()[bus]
    dst = _pick_targets(rng, bus, pop.size[bus] * np.where(wholesale, 3.0, 1.0), day, pop, src)
    ok = dst >= 0
    src, day, dst = src[ok], day[ok], dst[ok]
    amount = _lognormal_pence(rng, 120.0, 1.0, len(src)) * np.where(
        pop.is_wholesaler()[dst], 1.5, 1.0
    )
    supply = Candidates.make(
        day,
        _seconds(rng, len(src), "business"),
        src,
        dst,
        np.maximum(amount, 100).astype(np.int64),
        kind=TRANSFER,
        policy=CLAMP,
        param=1000,  # part-pay in local currency, but not less than £10
        channel=_channels(rng, len(src), [0.9, 0.05, 0.05, 0.0]),
        reversible=True,
    )
    if scenario.local_supply_end < 1.0:
        kept = scenario.trend(cal.days, scenario.local_supply_end)
        supply = supply.take(rng.random(len(supply)) < kept[supply.day])
    return supply


def _public_spend(
    rng: np.random.Generator, pop: Population, cal: Calendar, count: int, scenario: Scenario
) -> Candidates:
    """Council and anchor institutions paying local suppliers.

    With a dominant hub, the hub wins a growing share of these contracts too.
    """
    bus = pop.businesses
    cum = cumulative(cal.business_weight)
    bodies = np.array([pop.council, 2, 3], dtype=np.int32)
    src, day = _pick_sources(rng, count, bodies, np.array([0.6, 0.25, 0.15]), cum, pop)
    dst = _pick_targets(rng, bus, pop.size[bus], day, pop)
    ok = dst >= 0
    src, day, dst = src[ok], day[ok], dst[ok]
    second = _seconds(rng, len(src), "business")
    amount = _round_to(_lognormal_pence(rng, 400.0, 0.9, len(src)), 100)
    if pop.hub >= 0:
        share = scenario.hub_share_end * scenario.progress(cal.days)
        dst = np.where(rng.random(len(src)) < share[day], pop.hub, dst).astype(np.int32)
    return Candidates.make(
        day, second, src, dst, amount, kind=TRANSFER, policy=CLAMP, param=5000, channel=APP
    )


def _topups(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    accounts: I32,
    need: F64,
    typical: F64,
    unit: int,
    profile: str,
    weights: F64,
    channels: list[float],
) -> Candidates:
    """Sterling top-ups (issuance) that cover each account's expected shortfall.

    ``need`` pence are split into top-ups of about ``typical`` pence; the first one
    lands when the account becomes active, the rest on days drawn from ``weights``
    (paydays for individuals).
    """
    has = need > 0
    accounts, need, typical = accounts[has], need[has], typical[has]
    counts = np.maximum(_split_counts(rng, need / typical), 1)
    acct = np.repeat(accounts, counts)
    per = np.repeat(need / counts, counts)
    cum = cumulative(weights)
    day = _sample_days(rng, cum, pop.active_from[acct], pop.active_to[acct])
    # Members who predate the period spread their first top-up over its first four
    # days (no launch-day spike); new members top up on the day they join.
    first = _first_of_blocks(counts)
    lo, hi = pop.active_from[accounts], pop.active_to[accounts]
    spread = np.where(pop.join_day[accounts] < 0, 4, 1)
    day[first] = np.minimum(lo + (rng.random(len(lo)) * spread).astype(np.int32), hi - 1)
    amount = _round_to(per * rng.lognormal(0.0, 0.2, len(acct)), unit)
    return Candidates.make(
        day,
        _seconds(rng, len(acct), profile),
        pop.issuer,
        acct,
        amount,
        kind=ISSUANCE,
        policy=ISSUE,
        channel=_channels(rng, len(acct), channels),
    )


def _public_topups(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    flows: list[Candidates],
    scenario: Scenario,
) -> Candidates:
    """Monthly top-ups of the council and anchors, sized to the month's net outflow.

    A drifting scenario shrinks them: the public bodies' local-currency budgets are
    cut as the scheme fades.
    """
    budget = np.ones(cal.months)
    if scenario.organisation_topup_end != 1.0:
        budget = scenario.trend(cal.days, scenario.organisation_topup_end)[cal.month_first_day]
    days: list[int] = []
    dsts: list[int] = []
    amounts: list[int] = []
    for body in (pop.council, 2, 3):
        out = np.zeros(cal.months)
        into = np.zeros(cal.months)
        for c in flows:
            mo = cal.month_of_day[c.day]
            out += np.bincount(
                mo[c.src == body], weights=c.amount[c.src == body], minlength=cal.months
            )
            into += np.bincount(
                mo[c.dst == body], weights=c.amount[c.dst == body], minlength=cal.months
            )
        for m in range(cal.months):
            gap = (out[m] * 1.15 - into[m] * 0.6) * budget[m]
            if gap > 0:
                days.append(int(cal.month_first_day[m]))
                dsts.append(body)
                amounts.append(int(np.ceil(gap / 10_000)) * 10_000)
    n = len(days)
    return Candidates.make(
        np.array(days, dtype=np.int32),
        _seconds(rng, n, "batch"),
        pop.issuer,
        np.array(dsts, dtype=np.int32),
        np.array(amounts, dtype=np.int64),
        kind=ISSUANCE,
        policy=ISSUE,
        channel=APP,
    )


def _redemptions(
    rng: np.random.Generator, pop: Population, cal: Calendar, flows: _Flows, scenario: Scenario
) -> list[Candidates]:
    """Businesses converting surplus back to sterling; churning members cashing out.

    A redemption candidate fires only when the balance is above a threshold, and then
    redeems a fraction of the balance: redemptions are more likely, and larger, when
    balances are high. A scenario with weekly sweeps replaces these occasional
    cash-outs by :func:`_sweeps`; it may also make leavers cash out more often.
    """
    bus = pop.businesses
    if scenario.weekly_sweep > 0:
        business = _sweeps(rng, pop, cal, scenario)
    else:
        cum = cumulative(cal.business_weight)
        surplus = flows.into[bus] * 0.9 - flows.out[bus]
        months_active = np.maximum((pop.active_to[bus] - pop.active_from[bus]) / 30.4, 0.1)
        typical = np.maximum(15_000.0, surplus / (2.0 * months_active))
        expected = np.maximum(surplus, 0) / typical + 0.3 * months_active
        counts = _split_counts(rng, expected)
        src = np.repeat(bus, counts)
        day = _sample_days(rng, cum, pop.active_from[src], pop.active_to[src])
        threshold = _round_to(np.repeat(typical, counts) * 0.5, 100)
        business = Candidates.make(
            day,
            _seconds(rng, len(src), "business"),
            src,
            pop.issuer,
            threshold,
            kind=REDEMPTION,
            policy=REDEEM,
            param=rng.integers(600, 951, len(src)),
            channel=_channels(rng, len(src), [0.85, 0.0, 0.0, 0.15]),
        )

    # Some of the members who churn cash out their balance on their last day: a third
    # of the individuals in a steady scheme; businesses too when members drift away.
    # (Accounts that signed up but never traded have an empty window: nothing to do.)
    leaving = pop.individuals
    if scenario.churn_hazard_end > 0:
        leaving = np.concatenate([bus, leaving])
    to, since = pop.active_to[leaving], pop.active_from[leaving]
    churn = (to < cal.days) & (to > since)
    churned = leaving[churn & (rng.random(len(leaving)) < scenario.leaver_cash_out)]
    last = (pop.active_to[churned] - 1).astype(np.int32)
    leavers = Candidates.make(
        last,
        _seconds(rng, len(churned), "any"),
        churned,
        pop.issuer,
        500,
        kind=REDEMPTION,
        policy=REDEEM,
        param=1000,
        channel=APP,
    )
    return [business, leavers]


def _sweeps(
    rng: np.random.Generator, pop: Population, cal: Calendar, scenario: Scenario
) -> Candidates:
    """Weekly cash-outs: every Friday each business redeems a share of its balance.

    The share is the scenario's ``weekly_sweep``; the dominant hub's grows from there
    to ``hub_sweep_end`` (a chain sending ever more of its takings to head office).
    Regular sweeps of many balances give a smooth redemption series, so the drift of
    a scenario is not drowned by a few large, occasional cash-outs.
    """
    fridays = np.flatnonzero(cal.dow == 4).astype(np.int32)
    bus = pop.businesses
    b = np.repeat(bus, len(fridays))
    d = np.tile(fridays, len(bus))
    ok = _active(pop, b, d)
    b, d = b[ok], d[ok]
    hub_share = scenario.weekly_sweep + (
        scenario.hub_sweep_end - scenario.weekly_sweep
    ) * scenario.progress(cal.days)
    share = np.where(b == pop.hub, hub_share[d], scenario.weekly_sweep)
    return Candidates.make(
        d,
        _seconds(rng, len(b), "business"),
        b,
        pop.issuer,
        100,  # any balance of a pound or more
        kind=REDEMPTION,
        policy=REDEEM,
        param=np.maximum(np.rint(1000 * share), 1),
        channel=APP,
    )


def _reversals(
    rng: np.random.Generator, pop: Population, cal: Calendar, base: Candidates
) -> Candidates:
    """Refunds of a small share of consumer, peer and supply payments, days later."""
    orig = np.flatnonzero(base.reversible & (rng.random(len(base)) < 0.003))
    day = base.day[orig] + rng.geometric(0.4, len(orig)).astype(np.int32)
    src, dst = base.dst[orig], base.src[orig]
    ok = (day < cal.days) & (day < pop.active_to[src]) & (day < pop.active_to[dst])
    orig, day, src, dst = orig[ok], day[ok], src[ok], dst[ok]
    partial = rng.random(len(orig)) < 0.3
    frac = np.where(partial, rng.integers(200, 901, len(orig)), 1000)
    c = Candidates.make(
        day,
        _seconds(rng, len(orig), "any"),
        src,
        dst,
        0,
        kind=REVERSAL,
        policy=REVERSE,
        param=frac,
        channel=base.channel[orig],
    )
    c.ref = orig.astype(np.int64)
    return c


# Top-ups: mostly in the app, some as paper notes bought at an issuing point.
_TOPUP_CHANNELS = [0.75, 0.0, 0.05, 0.2]

#: Candidates generated per requested transaction on a first attempt; the surplus is
#: thinned evenly in settlement.
OVERSAMPLE = 1.3


def _faded(weight: F64, scenario: Scenario, end: float) -> F64:
    """Day weights of top-ups, fading to ``end`` as the scenario drifts.

    Accounts top up on days drawn from these weights, so their money comes in earlier
    and they spend down their balances later on.
    """
    if end == 1.0:
        return weight
    return weight * scenario.trend(len(weight), end)


def _newcomer_need(
    need: F64, pop: Population, accounts: I32, scenario: Scenario, end: float, days: int
) -> F64:
    """Top-up needs of accounts that start trading during the drift, scaled down.

    Fading day weights cannot reach an account whose whole window lies in the drift,
    so a newcomer brings only the share of money the scheme's trend allows that day.
    """
    if end == 1.0:
        return need
    return need * scenario.trend(days, end)[np.minimum(pop.active_from[accounts], days - 1)]


def candidate_events(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    transactions: int,
    oversample: float = OVERSAMPLE,
    scenario: Scenario = SCENARIOS["healthy"],
) -> Candidates:
    """All candidate events of the period, in generation order (not yet time-sorted).

    About ``transactions * oversample`` candidates: enough that, after unaffordable
    payments are refused, settlement can still book ``transactions`` rows.
    """
    target = int(np.ceil(transactions * oversample)) + 50
    jobs = _employment(rng, pop)
    # People paid in the currency spend more of it.
    activity = pop.activity.copy()
    activity[np.unique(jobs[1])] *= 1.3
    pop = replace(pop, activity=activity)

    structured = _structured(rng, pop, cal, jobs)
    s_count = sum(len(c) for c in structured)
    cap = int(0.3 * target)
    if s_count > cap:
        # Tiny schemes over long periods: keep obligations a minority of the rows.
        structured = [c.take(rng.random(len(c)) < cap / s_count) for c in structured]
        s_count = sum(len(c) for c in structured)

    # Emergent events (top-ups, redemptions, refunds) add about a fifth on top of the
    # driving events, so size the drivers to leave room for them.
    drivers = max(target - s_count, 0) / 1.2
    consumer = _consumer(rng, pop, cal, round(drivers * 0.78), scenario)
    peer = _peer(rng, pop, cal, round(drivers * 0.06))
    supply = _supply(rng, pop, cal, round(drivers * 0.15), scenario)
    public = _public_spend(rng, pop, cal, max(round(drivers * 0.01), 1), scenario)
    flows_list = [*structured, consumer, peer, supply, public]

    flows = _Flows(np.zeros(pop.n_accounts), np.zeros(pop.n_accounts))
    for c in flows_list:
        flows.add(c)

    ind = pop.individuals
    need_ind = flows.out[ind] * 1.08 - flows.into[ind] * 0.9
    need_ind = _newcomer_need(need_ind, pop, ind, scenario, scenario.individual_topup_end, cal.days)
    # About two top-ups a month, between £20 and £300 each.
    months_active = np.maximum((pop.active_to[ind] - pop.active_from[ind]) / 30.4, 0.25)
    typical = np.clip(need_ind / (2.0 * months_active), 2000.0, 30000.0)
    ind_topups = _topups(
        rng,
        pop,
        cal,
        ind,
        need_ind,
        typical,
        500,
        "topup",
        _faded(cal.topup_weight, scenario, scenario.individual_topup_end),
        _TOPUP_CHANNELS,
    )
    bus = pop.businesses
    need_bus = flows.out[bus] * 1.05 - flows.into[bus] * 0.85
    need_bus = _newcomer_need(
        need_bus, pop, bus, scenario, scenario.organisation_topup_end, cal.days
    )
    bus_topups = _topups(
        rng,
        pop,
        cal,
        bus,
        need_bus,
        30_000.0 * np.sqrt(pop.size[bus]),
        5000,
        "business",
        _faded(cal.business_weight, scenario, scenario.organisation_topup_end),
        [0.9, 0.0, 0.0, 0.1],
    )
    public_topups = _public_topups(rng, pop, cal, flows_list, scenario)
    flows.add(bus_topups)
    redemptions = _redemptions(rng, pop, cal, flows, scenario)

    base = Candidates.concat([*flows_list, ind_topups, bus_topups, public_topups, *redemptions])
    return Candidates.concat([base, _reversals(rng, pop, cal, base)])


def fill_topups(
    rng: np.random.Generator,
    pop: Population,
    cal: Calendar,
    count: int,
    scenario: Scenario = SCENARIOS["healthy"],
) -> Candidates:
    """``count`` extra individual top-ups, used to reach the exact transaction count.

    Issuance only ever raises a member's balance, so these can be inserted anywhere in
    time without invalidating any settled payment.
    """
    ind = pop.individuals
    cum = cumulative(_faded(cal.topup_weight, scenario, scenario.individual_topup_end))
    src, day = _pick_sources(rng, count, ind, pop.activity[ind], cum, pop)
    amount = _round_to(_lognormal_pence(rng, 25.0, 0.5, len(src)) * pop.spend_scale[src], 500)
    return Candidates.make(
        day,
        _seconds(rng, len(src), "topup"),
        pop.issuer,
        src,
        amount,
        kind=ISSUANCE,
        policy=ISSUE,
        channel=_channels(rng, len(src), _TOPUP_CHANNELS),
    )
