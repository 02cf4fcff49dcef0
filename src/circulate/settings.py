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


def _env_number(name: str, default: str) -> float:
    text = os.environ.get(name, default)
    try:
        return float(text)
    except ValueError as error:
        raise ConfigurationError(
            f"{name}={text!r} is not a number: set it to e.g. {default}."
        ) from error


@dataclass(frozen=True)
class ValidationThresholds:
    """Limits the batch expectations check against (``CIRCULATE_VALIDATION_*`` overrides).

    Attributes
    ----------
    amount_ceiling
        A single payment above this (units of the local currency) is flagged (warning).
    day_tolerance_hours
        How far outside its export file's local day a timestamp may lie (warning).
    history_days
        Trailing days the row-count and volume band is measured on; with fewer days on
        file the band check is skipped and says so.
    band_factor
        A day's rows or transfer volume may be at most this many times above, or this many
        times below, the median of the same weekday in the trailing window (warning). On a
        generated year the ratios stay within 0.84–2.8, a tenfold spike is far outside.
    quarantine_warning, quarantine_critical
        Share of the run's input rows quarantined above which the run is flagged, and
        above which it is blocked.
    duplicate_warning
        Share of re-sent identical rows above which the run is flagged.
    """

    amount_ceiling: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_AMOUNT_CEILING", "100000")
    )
    day_tolerance_hours: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_DAY_TOLERANCE_HOURS", "2")
    )
    history_days: int = field(
        default_factory=lambda: int(_env_number("CIRCULATE_VALIDATION_HISTORY_DAYS", "28"))
    )
    band_factor: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_BAND_FACTOR", "4")
    )
    quarantine_warning: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_QUARANTINE_WARNING", "0.005")
    )
    quarantine_critical: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_QUARANTINE_CRITICAL", "0.05")
    )
    duplicate_warning: float = field(
        default_factory=lambda: _env_number("CIRCULATE_VALIDATION_DUPLICATE_WARNING", "0.01")
    )

    def __post_init__(self) -> None:
        if self.band_factor <= 1 or self.history_days < 1 or self.amount_ceiling <= 0:
            raise ConfigurationError(
                f"Validation thresholds out of range ({self}): band_factor must exceed 1, "
                "history_days be at least 1 and amount_ceiling be positive."
            )
        if not 0 <= self.quarantine_warning <= self.quarantine_critical <= 1:
            raise ConfigurationError(
                f"quarantine_warning={self.quarantine_warning} and quarantine_critical="
                f"{self.quarantine_critical} must satisfy 0 <= warning <= critical <= 1."
            )


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
    validation
        Thresholds of the batch expectations, see :class:`ValidationThresholds`.
    impact_thresholds
        The partnership's edited copy of the public-value thresholds table
        (``CIRCULATE_IMPACT_THRESHOLDS``); ``None`` uses the shipped
        ``circulate/metrics/impact_thresholds.toml``.
    set_aside_dir
        Where ``circulate set-aside`` moves exports (``CIRCULATE_SET_ASIDE_DIR``); ``None``
        means ``set-aside/`` beside the inbox, see :func:`circulate.decisions.set_aside_dir`.
    source_token_file
        File holding the access token of the scheme's platform (``[source]`` in its
        ``scheme.toml``), readable by its owner only (``CIRCULATE_SOURCE_TOKEN_FILE``;
        ``CIRCULATE_SOURCE_TOKEN`` holds the token itself instead), see
        :mod:`circulate.pull.source`.
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
    validation: ValidationThresholds = field(default_factory=ValidationThresholds)
    impact_thresholds: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["CIRCULATE_IMPACT_THRESHOLDS"])
            if os.environ.get("CIRCULATE_IMPACT_THRESHOLDS")
            else None
        )
    )
    set_aside_dir: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["CIRCULATE_SET_ASIDE_DIR"])
            if os.environ.get("CIRCULATE_SET_ASIDE_DIR")
            else None
        )
    )
    source_token_file: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["CIRCULATE_SOURCE_TOKEN_FILE"])
            if os.environ.get("CIRCULATE_SOURCE_TOKEN_FILE")
            else None
        )
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
