"""One Settings object: paths, timezone, privacy thresholds and secrets.

Values come from keyword arguments, then ``CIRCULATE_*`` environment variables, then
defaults relative to the working directory, so ``circulate run`` in a checkout uses
``data/`` and ``reports/`` beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from circulate.errors import ConfigurationError

MINIMUM_K_ANONYMITY = 3


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    """Where circulate reads, writes and keeps its secrets.

    Attributes
    ----------
    inbox
        Folder of export files (``exports/*.csv`` plus ``accounts.csv``, or CSVs at the top).
    warehouse
        The published DuckDB snapshot analysts open read-only.
    reports
        Folder that receives ``<as-of>/index.html`` and ``index.html``.
    private_dir
        Mode-0700 store for quarantined raw rows; never published.
    key_file
        HMAC key for pseudonyms when ``CIRCULATE_PSEUDONYM_KEY`` is unset; created on first
        use with mode 0600. Keep it outside the repository and back it up: a new key gives
        every account a new pseudonym.
    timezone
        Scheme timezone: naive timestamps are read in it and days are its calendar days.
    k_anonymity
        Smallest group of distinct accounts a published figure may describe (never below 3).
    future_tolerance
        How far past the run's clock a timestamp may lie before the row is quarantined.
    currency_symbol
        Shown in reports, for example ``B£`` for Bristol Pounds.
    scheme_name
        Shown in report titles.
    """

    inbox: Path = field(default_factory=lambda: _env_path("CIRCULATE_INBOX", "data/inbox"))
    warehouse: Path = field(
        default_factory=lambda: _env_path("CIRCULATE_WAREHOUSE", "data/warehouse/circulate.duckdb")
    )
    reports: Path = field(default_factory=lambda: _env_path("CIRCULATE_REPORTS", "reports"))
    private_dir: Path = field(
        default_factory=lambda: _env_path("CIRCULATE_PRIVATE_DIR", "data/private")
    )
    key_file: Path = field(
        default_factory=lambda: _env_path(
            "CIRCULATE_KEY_FILE",
            str(
                Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
                / "circulate"
                / "pseudonym.key"
            ),
        )
    )
    timezone: str = field(
        default_factory=lambda: os.environ.get("CIRCULATE_TIMEZONE", "Europe/London")
    )
    k_anonymity: int = field(
        default_factory=lambda: int(os.environ.get("CIRCULATE_K_ANONYMITY", "5"))
    )
    future_tolerance: timedelta = timedelta(hours=24)
    currency_symbol: str = field(
        default_factory=lambda: os.environ.get("CIRCULATE_CURRENCY_SYMBOL", "£")
    )
    scheme_name: str = field(
        default_factory=lambda: os.environ.get("CIRCULATE_SCHEME_NAME", "Local currency")
    )

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConfigurationError(
                f"Unknown timezone {self.timezone!r}: set CIRCULATE_TIMEZONE to an IANA name "
                "such as 'Europe/London'."
            ) from error
        if self.k_anonymity < MINIMUM_K_ANONYMITY:
            raise ConfigurationError(
                f"k_anonymity={self.k_anonymity} is below the floor of {MINIMUM_K_ANONYMITY}: "
                f"set CIRCULATE_K_ANONYMITY to {MINIMUM_K_ANONYMITY} or more."
            )

    def with_paths(
        self,
        *,
        inbox: Path | None = None,
        warehouse: Path | None = None,
        reports: Path | None = None,
    ) -> Settings:
        """Return a copy with the given paths replaced (``None`` keeps the current one)."""
        return replace(
            self,
            inbox=inbox or self.inbox,
            warehouse=warehouse or self.warehouse,
            reports=reports or self.reports,
        )
