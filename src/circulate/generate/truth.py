"""Exact ground truth of a generated scheme and its JSON form.

Money is held as :class:`decimal.Decimal` with two places (computed from integer pence)
and written to JSON as strings such as ``"12.50"`` so nothing passes through a float.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["GroundTruth", "PeriodTotals", "pence_to_decimal"]

_CENT = Decimal("0.01")


def pence_to_decimal(pence: int) -> Decimal:
    """Exact decimal pounds of an integer number of pence.

    >>> pence_to_decimal(1250), pence_to_decimal(-5)
    (Decimal('12.50'), Decimal('-0.05'))
    """
    return (Decimal(int(pence)) / 100).quantize(_CENT)


def _money(text: str) -> Decimal:
    return Decimal(text).quantize(_CENT)


@dataclass(frozen=True)
class PeriodTotals:
    """What was booked in one period (a local calendar month, or the whole history).

    Attributes
    ----------
    issued, redeemed, fees
        Sum of issuance, redemption and fee amounts.
    transfer_volume, transfer_count
        Sum and number of ``transfer`` rows (reversals excluded).
    reversal_volume, reversal_count
        Sum and number of ``reversal`` rows.
    money_supply_end
        Cumulative issued − redeemed − fees from the first row up to the end of the
        period (equals the sum of all non-issuer balances at that moment).
    rows
        Number of rows of any kind in the period.
    """

    issued: Decimal
    redeemed: Decimal
    fees: Decimal
    transfer_volume: Decimal
    transfer_count: int
    reversal_volume: Decimal
    reversal_count: int
    money_supply_end: Decimal
    rows: int

    _MONEY = (
        "issued",
        "redeemed",
        "fees",
        "transfer_volume",
        "reversal_volume",
        "money_supply_end",
    )
    _COUNTS = ("transfer_count", "reversal_count", "rows")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: money as two-decimal strings, counts as integers."""
        out: dict[str, Any] = {}
        for name in (*self._MONEY, *self._COUNTS):
            value = getattr(self, name)
            out[name] = f"{value:.2f}" if isinstance(value, Decimal) else int(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeriodTotals:
        """Inverse of :meth:`to_dict`."""
        return cls(
            issued=_money(data["issued"]),
            redeemed=_money(data["redeemed"]),
            fees=_money(data["fees"]),
            transfer_volume=_money(data["transfer_volume"]),
            transfer_count=int(data["transfer_count"]),
            reversal_volume=_money(data["reversal_volume"]),
            reversal_count=int(data["reversal_count"]),
            money_supply_end=_money(data["money_supply_end"]),
            rows=int(data["rows"]),
        )


@dataclass(frozen=True)
class GroundTruth:
    """Parameters and exact totals of a generated scheme.

    Attributes
    ----------
    seed, transactions, days, start, timezone
        The generation parameters.
    account_counts
        Accounts by ``account_type`` (individual, business, public_body, issuer).
    roles
        Raw ids of the special accounts: ``issuer``, ``council``, ``hospital_trust``,
        ``university``, and ``dominant_hub`` in a scenario that grows one.
    rows
        Total rows written over all daily files (equals ``transactions``).
    rows_by_kind
        Rows per ``kind`` (all five kinds present as keys).
    files
        Number of daily export files written (equals ``days``).
    monthly
        ``'YYYY-MM'`` (local month) → :class:`PeriodTotals`, for every month the
        period touches, in order.
    totals
        Whole-history :class:`PeriodTotals`.
    final_balances
        Raw id → closing balance of every non-issuer account (zero balances included).
    scenario
        Name of the behaviour scenario (``healthy``, ``declining``), also a generation
        parameter.
    """

    seed: int
    transactions: int
    days: int
    start: date
    timezone: str
    account_counts: dict[str, int]
    roles: dict[str, str]
    rows: int
    rows_by_kind: dict[str, int]
    files: int
    monthly: dict[str, PeriodTotals]
    totals: PeriodTotals
    final_balances: dict[str, Decimal] = field(repr=False)
    scenario: str = "healthy"

    @property
    def money_supply(self) -> Decimal:
        """Closing money supply: issued − redeemed − fees over the whole history."""
        return self.totals.money_supply_end

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (see :meth:`to_json` for the layout)."""
        return {
            "parameters": {
                "seed": self.seed,
                "transactions": self.transactions,
                "days": self.days,
                "start": self.start.isoformat(),
                "timezone": self.timezone,
                "scenario": self.scenario,
            },
            "account_counts": dict(self.account_counts),
            "roles": dict(self.roles),
            "rows": self.rows,
            "rows_by_kind": dict(self.rows_by_kind),
            "files": self.files,
            "totals": self.totals.to_dict(),
            "monthly": {k: v.to_dict() for k, v in self.monthly.items()},
            "final_balances": {k: f"{v:.2f}" for k, v in self.final_balances.items()},
        }

    def to_json(self, path: Path | str | None = None) -> str:
        """Serialise to JSON text; also write it to ``path`` when given.

        Layout: ``{"parameters": {seed, transactions, days, start, timezone, scenario},
        "account_counts": {...}, "roles": {...}, "rows": int, "rows_by_kind": {...},
        "files": int, "totals": {...}, "monthly": {"YYYY-MM": {...}},
        "final_balances": {raw_id: "12.50"}}`` with money as two-decimal strings.
        """
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundTruth:
        """Inverse of :meth:`to_dict`."""
        p = data["parameters"]
        return cls(
            seed=int(p["seed"]),
            transactions=int(p["transactions"]),
            days=int(p["days"]),
            start=date.fromisoformat(p["start"]),
            timezone=str(p["timezone"]),
            account_counts={k: int(v) for k, v in data["account_counts"].items()},
            roles={k: str(v) for k, v in data["roles"].items()},
            rows=int(data["rows"]),
            rows_by_kind={k: int(v) for k, v in data["rows_by_kind"].items()},
            files=int(data["files"]),
            monthly={k: PeriodTotals.from_dict(v) for k, v in data["monthly"].items()},
            totals=PeriodTotals.from_dict(data["totals"]),
            final_balances={k: _money(v) for k, v in data["final_balances"].items()},
            # Files written before scenarios existed describe a steady scheme.
            scenario=str(p.get("scenario", "healthy")),
        )

    @classmethod
    def from_json(cls, path: Path | str) -> GroundTruth:
        """Read a ``ground_truth.json`` written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
