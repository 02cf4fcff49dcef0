"""Local calendar of a synthetic scheme: day weights, paydays and local-to-UTC conversion.

Every event is generated as (local day index, local second of day). This module turns
that pair into a UTC epoch second and provides the weekly, payday and seasonal rhythms
that the event generator samples days from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = ["DAY_END_S", "DAY_START_S", "Calendar", "build_calendar", "cumulative"]

#: Local trading window: events happen in [07:00, 22:00) local time.
DAY_START_S = 7 * 3600
DAY_END_S = 22 * 3600

_EPOCH = date(1970, 1, 1)

# Relative activity by weekday (Mon..Sun): Friday and Saturday are the busy days.
_SPEND_DOW = np.array([0.85, 0.9, 0.95, 1.0, 1.3, 1.45, 0.75])
_TOPUP_DOW = np.array([1.0, 1.0, 1.0, 1.05, 1.2, 1.1, 0.85])
_BUSINESS_DOW = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.05])
# Mild seasonality by calendar month (Jan..Dec): a December peak, a January dip.
_SEASON = np.array([0.85, 0.92, 0.97, 1.0, 1.0, 1.03, 1.05, 1.05, 1.0, 1.0, 1.05, 1.22])


@dataclass(frozen=True)
class Calendar:
    """The local days of a generated period and the rhythms defined on them.

    Attributes
    ----------
    start, days, timezone
        First local date, number of days, IANA time zone name.
    dow
        Weekday of each day (Monday = 0).
    month_of_day
        Index into ``month_keys`` for each day.
    month_keys
        ``'YYYY-MM'`` of every calendar month touched by the period, in order.
    payday
        Per month: day index of the last working day of the calendar month, or -1 when
        it falls outside the period.
    month_first_day
        Per month: first day index of the month inside the period.
    month_start
        Per month: day index of the 1st of the calendar month (negative when the period
        starts mid-month).
    first_working
        Per month: first working day index inside the period, or -1 when there is none.
    next_working
        Per day (and one past the end): the next working day index, or ``days``.
    spend_weight, topup_weight, business_weight
        Non-negative relative weight of each day for consumer spending, sterling top-ups
        and business-hours activity.
    local_midnight
        Per day: local midnight as if it were UTC, in epoch seconds.
    utc_offset
        Per day and local hour (shape ``(days, 24)``): the zone's UTC offset in seconds.
    """

    start: date
    days: int
    timezone: str
    dow: npt.NDArray[np.int8]
    month_of_day: npt.NDArray[np.int32]
    month_keys: list[str]
    month_first_day: npt.NDArray[np.int32]
    month_start: npt.NDArray[np.int32]
    payday: npt.NDArray[np.int32]
    first_working: npt.NDArray[np.int32]
    next_working: npt.NDArray[np.int32]
    spend_weight: npt.NDArray[np.float64]
    topup_weight: npt.NDArray[np.float64]
    business_weight: npt.NDArray[np.float64]
    local_midnight: npt.NDArray[np.int64]
    utc_offset: npt.NDArray[np.int64]

    @property
    def months(self) -> int:
        """Number of calendar months touched by the period."""
        return len(self.month_keys)

    def to_utc(
        self, day: npt.NDArray[np.int32], second: npt.NDArray[np.int32]
    ) -> npt.NDArray[np.int64]:
        """UTC epoch seconds of local (day index, second of day) pairs.

        The offset is looked up per local hour, so a zone whose transition falls inside
        the trading window still maps each hour correctly (Europe/London changes at
        01:00/02:00 local, outside the window).
        """
        hour = second // 3600
        offset = self.utc_offset[day, hour]
        return self.local_midnight[day] + second.astype(np.int64) - offset

    def date_of(self, day: int) -> date:
        """Local calendar date of a day index (may be negative)."""
        return self.start + timedelta(days=day)


def build_calendar(start: date, days: int, timezone: str) -> Calendar:
    """Build the calendar of ``days`` local days from ``start`` in ``timezone``.

    >>> cal = build_calendar(date(2025, 3, 28), 5, "Europe/London")
    >>> cal.month_keys
    ['2025-03', '2025-04']
    >>> [int(o) for o in cal.utc_offset[:, 12]]  # BST starts on Sunday 30 March
    [0, 0, 3600, 3600, 3600]
    >>> int(cal.payday[0])  # Monday 31 March is the last working day of March
    3
    """
    zone = ZoneInfo(timezone)
    dates = [start + timedelta(days=d) for d in range(days)]
    dow = np.array([d.weekday() for d in dates], dtype=np.int8)
    month_numbers = np.array([d.month for d in dates], dtype=np.int64)
    keys: list[str] = []
    month_of_day = np.zeros(days, dtype=np.int32)
    for i, d in enumerate(dates):
        key = f"{d.year:04d}-{d.month:02d}"
        if not keys or keys[-1] != key:
            keys.append(key)
        month_of_day[i] = len(keys) - 1

    working = dow < 5
    month_first_day = np.full(len(keys), -1, dtype=np.int32)
    month_start = np.zeros(len(keys), dtype=np.int32)
    payday = np.full(len(keys), -1, dtype=np.int32)
    first_working = np.full(len(keys), -1, dtype=np.int32)
    for m, key in enumerate(keys):
        in_month = np.flatnonzero(month_of_day == m)
        month_first_day[m] = in_month[0]
        year, month = int(key[:4]), int(key[5:])
        month_start[m] = (date(year, month, 1) - start).days
        # The payday is the last working day of the *calendar* month, which may lie
        # beyond the period's end (then that month has no payday inside the period).
        nxt = date(year + month // 12, month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        while last.weekday() >= 5:
            last -= timedelta(days=1)
        idx = (last - start).days
        payday[m] = idx if 0 <= idx < days else -1
        wk = in_month[working[in_month]]
        first_working[m] = wk[0] if len(wk) else -1

    next_working = np.full(days + 1, days, dtype=np.int32)
    for i in range(days - 1, -1, -1):
        next_working[i] = i if working[i] else next_working[i + 1]

    # Payday effects: people top up on payday and the two days after, and spend a
    # little more in the days after payday.
    after_payday = np.zeros(days, dtype=bool)
    topup_boost = np.ones(days)
    for p in payday[payday >= 0]:
        after_payday[p : p + 4] = True
        topup_boost[p : p + 3] = 3.0
    season = _SEASON[month_numbers - 1]
    spend_weight = _SPEND_DOW[dow] * np.where(after_payday, 1.25, 1.0) * season
    topup_weight = _TOPUP_DOW[dow] * topup_boost * season
    business_weight = _BUSINESS_DOW[dow].astype(np.float64)

    local_midnight = np.array([(d - _EPOCH).days * 86400 for d in dates], dtype=np.int64)
    utc_offset = np.zeros((days, 24), dtype=np.int64)
    for i, d in enumerate(dates):
        for h in range(24):
            off = datetime(d.year, d.month, d.day, h, tzinfo=zone).utcoffset()
            utc_offset[i, h] = int(off.total_seconds()) if off is not None else 0

    return Calendar(
        start=start,
        days=days,
        timezone=timezone,
        dow=dow,
        month_of_day=month_of_day,
        month_keys=keys,
        month_first_day=month_first_day,
        month_start=month_start,
        payday=payday,
        first_working=first_working,
        next_working=next_working,
        spend_weight=spend_weight,
        topup_weight=topup_weight,
        business_weight=business_weight,
        local_midnight=local_midnight,
        utc_offset=utc_offset,
    )


def cumulative(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cumulative weights with a leading zero: ``out[d]`` = sum of ``weights[:d]``.

    >>> cumulative(np.array([1.0, 2.0])).tolist()
    [0.0, 1.0, 3.0]
    """
    out = np.zeros(len(weights) + 1)
    np.cumsum(weights, out=out[1:])
    return out
