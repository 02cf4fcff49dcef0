"""Plain-text formatting of report numbers and dates (no HTML here; callers escape)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

MINUS = "\N{MINUS SIGN}"


def money(value: Decimal | float | None, symbol: str = "£", *, places: int = 2) -> str:
    """Format an amount of local currency with thousands grouping.

    Parameters
    ----------
    value
        Amount in units of the local currency; ``None`` renders as "not available".
    symbol
        Prefix shown before the number (a label for local-currency units, e.g. "B£").
    places
        Decimal places.

    Examples
    --------
    >>> money(Decimal("1234567.5"))
    '£1,234,567.50'
    >>> money(Decimal("-12.345"), "B£")
    '−B£12.35'
    >>> money(1999.6, places=0)
    '£2,000'
    >>> money(None)
    'not available'
    """
    if value is None:
        return "not available"
    exact = Decimal(str(value)) if isinstance(value, float) else value
    rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = MINUS if rounded < 0 else ""
    return f"{sign}{symbol}{abs(rounded):,.{places}f}"


def count(value: int | None) -> str:
    """Format a count with thousands grouping.

    >>> count(1234567)
    '1,234,567'
    >>> count(None)
    'not available'
    """
    return "not available" if value is None else f"{value:,}"


def day(value: dt.date) -> str:
    """Format a date for readers.

    >>> day(dt.date(2024, 3, 5))
    '5 March 2024'
    """
    return f"{value.day} {value:%B %Y}"


def month(value: dt.date) -> str:
    """Format the month a date falls in.

    >>> month(dt.date(2024, 3, 1))
    'March 2024'
    """
    return f"{value:%B %Y}"


def ratio(value: float | None, places: int = 2) -> str:
    """Format a ratio such as a multiplier.

    >>> ratio(1.6449), ratio(None)
    ('1.64', 'not available')
    """
    return "not available" if value is None else f"{value:.{places}f}"


def share(value: float | None) -> str:
    """Format a fraction as a percentage.

    >>> share(0.4235), share(None)
    ('42.4 %', 'not available')
    """
    return "not available" if value is None else f"{value * 100:.1f} %"
