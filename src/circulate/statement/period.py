"""Statement periods: a closed range of calendar days, and the usual ways to name one.

A statement covers ``start`` to ``end`` inclusive, in the scheme's time zone (the days of
``marts.daily_circulation``). Its comparison is the previous period of equal length: the
same number of days ending the day before ``start``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$")


@dataclass(frozen=True, order=True)
class Period:
    """Calendar days ``start`` .. ``end``, both included.

    >>> p = Period(dt.date(2025, 4, 1), dt.date(2025, 6, 30))
    >>> p.days, p.slug, p.previous().slug
    (91, '2025-04-01_2025-06-30', '2024-12-31_2025-03-31')
    """

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(
                f"period ends ({self.end}) before it starts ({self.start}): give --from on "
                "or before --to"
            )

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    @property
    def slug(self) -> str:
        """Folder name: ``<from>_<to>``."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    def previous(self) -> Period:
        """The period of equal length ending the day before this one starts."""
        end = self.start - dt.timedelta(days=1)
        return Period(end - dt.timedelta(days=self.days - 1), end)

    def months(self) -> list[dt.date]:
        """First days of the calendar months lying wholly inside the period.

        >>> Period(dt.date(2025, 1, 15), dt.date(2025, 4, 30)).months()
        [datetime.date(2025, 2, 1), datetime.date(2025, 3, 1), datetime.date(2025, 4, 1)]
        """
        out = []
        month = self.start.replace(day=1)
        if month < self.start:
            month = _next_month(month)
        while _next_month(month) - dt.timedelta(days=1) <= self.end:
            out.append(month)
            month = _next_month(month)
        return out


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def financial_year_before(today: dt.date) -> Period:
    """The last complete UK financial year (1 April to 31 March) before ``today``.

    >>> financial_year_before(dt.date(2026, 12, 6))
    Period(start=datetime.date(2025, 4, 1), end=datetime.date(2026, 3, 31))
    >>> financial_year_before(dt.date(2026, 3, 31))
    Period(start=datetime.date(2024, 4, 1), end=datetime.date(2025, 3, 31))
    """
    end_year = today.year if today >= dt.date(today.year, 4, 1) else today.year - 1
    return Period(dt.date(end_year - 1, 4, 1), dt.date(end_year, 3, 31))


def quarter(text: str) -> Period:
    """A calendar quarter written ``YYYYQn`` (Q1 = January to March).

    >>> quarter("2026Q3")
    Period(start=datetime.date(2026, 7, 1), end=datetime.date(2026, 9, 30))
    >>> quarter("2026-3")
    Traceback (most recent call last):
    ...
    ValueError: quarter '2026-3' is not of the form YYYYQn, e.g. 2026Q3 (July to September 2026)
    """
    found = _QUARTER.match(text.strip())
    if not found:
        raise ValueError(
            f"quarter {text!r} is not of the form YYYYQn, e.g. 2026Q3 (July to September 2026)"
        )
    year, number = int(found.group(1)), int(found.group(2))
    start = dt.date(year, 3 * number - 2, 1)
    end = _next_month(dt.date(year, 3 * number, 1)) - dt.timedelta(days=1)
    return Period(start, end)


def last_complete_quarter(last_day: dt.date) -> Period:
    """The latest calendar quarter that ends on or before ``last_day``.

    >>> last_complete_quarter(dt.date(2026, 9, 30)).slug
    '2026-07-01_2026-09-30'
    >>> last_complete_quarter(dt.date(2026, 9, 29)).slug
    '2026-04-01_2026-06-30'
    """
    q = (last_day.month - 1) // 3 + 1
    current = quarter(f"{last_day.year}Q{q}")
    if current.end <= last_day:
        return current
    return quarter(f"{last_day.year}Q{q - 1}") if q > 1 else quarter(f"{last_day.year - 1}Q4")
