"""A generated scheme as the Cyclos 4 REST API would serve it (for tests and demos).

:func:`cyclos_api_records` reads a canonical scheme written by
:func:`circulate.generate.generate_scheme` (``exports/*.csv``, ``accounts.csv``) and
returns what ``GET /api/transfers``, ``GET /api/users`` and ``GET /api/system/accounts``
answer for it: one transfer object per row (the issuer's account a system account known by
its type's internal name, every other account a user's), dates in the scheme's local time
with their offset, amounts as text. Pulling these with ``circulate pull cyclos`` and
ingesting the pulled files gives the canonical ledger exactly (tests/unit/test_pull_cyclos.py).
Users carry a display name and an e-mail address, as the real API does, so tests can check
the pull keeps neither.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

#: Canonical kind → (transfer type internal name, Cyclos transfer kind).
TRANSFER_TYPES = {
    "issuance": ("topUp", "payment"),
    "transfer": ("payment", "payment"),
    "redemption": ("cashOut", "payment"),
    "fee": ("membershipFee", "accountFee"),
    "reversal": ("payment", "chargeback"),
}
#: Canonical account type → the user group (internal name, display name).
USER_GROUPS = {
    "individual": ("consumers", "Consumers"),
    "business": ("businesses", "Businesses"),
    "public_body": ("publicBodies", "Public bodies"),
}
#: First transfer id: Cyclos ids are opaque numbers, unrelated to transaction numbers.
FIRST_TRANSFER_ID = 7_000_000_001


@dataclass
class CyclosApiData:
    """What the API serves: each list in the order the server keeps it."""

    transfers: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    system_accounts: list[dict[str, Any]] = field(default_factory=list)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def local_iso(instant: datetime, zone: ZoneInfo) -> str:
    """An instant as Cyclos writes it: local time, milliseconds, offset.

    >>> local_iso(datetime(2025, 3, 30, 1, 30, tzinfo=UTC), ZoneInfo("Europe/London"))
    '2025-03-30T02:30:00.000+01:00'
    """
    return instant.astimezone(zone).isoformat(timespec="milliseconds")


def cyclos_api_records(folder: Path, timezone: str = "Europe/London") -> CyclosApiData:
    """The canonical scheme in ``folder`` as the Cyclos REST API's objects."""
    zone = ZoneInfo(timezone)
    accounts = _read_csv(folder / "accounts.csv")
    issuers = {a["account_id"] for a in accounts if a["account_type"] == "issuer"}
    system_ids = {issuer: f"sys-{n}" for n, issuer in enumerate(sorted(issuers), start=1)}

    def account(raw_id: str) -> dict[str, Any]:
        if raw_id in issuers:
            return {
                "id": system_ids[raw_id],
                "kind": "system",
                "type": {"internalName": raw_id, "name": "Issuing account"},
            }
        return {
            "id": f"acc-{raw_id}",
            "kind": "user",
            "type": {"internalName": "member", "name": "Member account"},
            "user": {"id": raw_id, "display": f"Member {raw_id}"},
        }

    data = CyclosApiData()
    rows = [row for path in sorted((folder / "exports").glob("*.csv")) for row in _read_csv(path)]
    for offset, row in enumerate(rows):
        type_name, transfer_kind = TRANSFER_TYPES[row["kind"]]
        instant = datetime.strptime(row["occurred_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        transfer: dict[str, Any] = {
            "id": str(FIRST_TRANSFER_ID + offset),
            "transactionNumber": row["txn_id"],
            "date": local_iso(instant, zone),
            "amount": row["amount"],
            "from": account(row["source_id"]),
            "to": account(row["target_id"]),
            "type": {"internalName": type_name, "name": type_name},
            "kind": transfer_kind,
        }
        if row.get("channel"):
            transfer["channel"] = {"internalName": row["channel"], "name": row["channel"]}
        data.transfers.append(transfer)
    for row in accounts:
        if row["account_id"] in issuers:
            continue
        internal, name = USER_GROUPS[row["account_type"]]
        joined = datetime.combine(date.fromisoformat(row["joined_at"]), time(), zone)
        custom = {"category": row["sector"], "neighbourhood": row["area"]}
        data.users.append(
            {
                "id": row["account_id"],
                "display": f"Member {row['account_id']}",
                "email": f"{row['account_id'].lower()}@example.org",
                "group": {"internalName": internal, "name": name},
                "customValues": {k: v for k, v in custom.items() if v},
                "activationDate": joined.isoformat(timespec="milliseconds"),
            }
        )
    data.system_accounts = [
        {"id": system_ids[i], "type": {"internalName": i, "name": "Issuing account"}}
        for i in sorted(issuers)
    ]
    return data
