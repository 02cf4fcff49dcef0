"""The expectation suites run on every new batch, written in code.

A :class:`Check` names one Great Expectations expectation, the frame it runs on (see
:mod:`circulate.validate.frames`), its severity and what an operator should do when it
fails. ``critical`` checks block publishing: the previous snapshot stays and the run
fails. ``warning`` checks publish and are flagged in the report. Every threshold comes
from :class:`circulate.settings.ValidationThresholds`, none is written here.

Frames and what they hold (one suite each):

``schema``        one row per contract column of ``raw.transactions``: expected and actual type
``transactions``  the rows this batch loaded that some check flags, with their export day
                  and account attributes (every row would pass the others: see below)
``files``         one row with this batch's input accounting from ``audit.files``
``days``          one row per export day of this batch with its trailing-history band
``export_days``   one row per day from the first export day to this batch's last one

A batch can hold millions of rows, and Great Expectations on pandas pays per row and per
expectation. So every ``transactions`` check also states, as SQL, which rows its
expectation finds unexpected (:attr:`Check.unexpected_rows_sql`). DuckDB evaluates those
conditions on the whole batch in one pass and hands Great Expectations only the rows at
least one of them flags, in batch order; the expectation then sees every row it would
count as unexpected, in the same order, so its count, examples and sample are those of the
whole batch. The run compares each count with DuckDB's and stops on any disagreement.

Importing Great Expectations takes about 3 s, more than validating a town's night. So each
expectation is stated as data (:class:`Expected`) and also counted plainly on its frame
(:meth:`Expected.unexpected_count`, the same comparison on the same pandas frame). When
every count is zero, as on most nights, every check passed and Great Expectations is not
imported; when one is not, the suites run in Great Expectations, whose results are the
ones stored, and each of its counts must equal the plain one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from circulate.settings import ValidationThresholds
from circulate.validate.store import Severity

if TYPE_CHECKING:
    from great_expectations.expectations.expectation import Expectation

KINDS = ("issuance", "transfer", "redemption", "fee", "reversal")

#: Columns of ``raw.transactions`` the data contract (DESIGN §3) fixes, with DuckDB types.
CONTRACT_TYPES: dict[str, str] = {
    "txn_id": "VARCHAR",
    "occurred_at": "TIMESTAMP WITH TIME ZONE",
    "source_id": "VARCHAR",
    "target_id": "VARCHAR",
    "amount": "DECIMAL(18,2)",
    "kind": "VARCHAR",
    "channel": "VARCHAR",
    "batch_id": "VARCHAR",
    "source_file": "VARCHAR",
    "ingested_at": "TIMESTAMP WITH TIME ZONE",
}

#: Columns shown for an unexpected transaction: pseudonymised ids and provenance only.
TRANSACTION_SAMPLE = (
    "txn_id",
    "source_file",
    "source_line",
    "occurred_at",
    "source_id",
    "target_id",
    "amount",
)


@dataclass(frozen=True, init=False)
class Expected:
    """A Great Expectations column expectation as data: its class and arguments.

    Only the expectations the suites use are known here, each with the rule Great
    Expectations applies on a pandas frame: nulls are left out of every column check but
    ``not_null`` and ``null``, and bounds are inclusive unless ``strict_min``/``strict_max``.

    Examples
    --------
    >>> frame = pd.DataFrame({"amount": [5.0, 0.0, None, -1.0], "id": ["a", "b", "a", None]})
    >>> Expected("ExpectColumnValuesToBeBetween", column="amount", min_value=0,
    ...          strict_min=True).unexpected_count(frame)
    2
    >>> Expected("ExpectColumnValuesToBeUnique", column="id").unexpected_count(frame)
    2
    >>> Expected("ExpectColumnValuesToNotBeNull", column="amount").unexpected_count(frame)
    1
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, name: str, **arguments: Any) -> None:
        if name not in _UNEXPECTED:
            raise ValueError(f"{name} has no plain count: add it to _UNEXPECTED")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "arguments", arguments)

    def build(self) -> Expectation:
        """The Great Expectations expectation (imports Great Expectations)."""
        import great_expectations.expectations as gxe

        expectation: Expectation = getattr(gxe, self.name)(**self.arguments)
        return expectation

    def unexpected_count(self, frame: pd.DataFrame) -> int | None:
        """Rows of ``frame`` the expectation counts as unexpected; ``None`` when the plain
        count cannot say (a column missing, values that do not compare): Great
        Expectations then decides."""
        try:
            return int(_UNEXPECTED[self.name](frame, **self.arguments).sum())
        except (KeyError, TypeError, ValueError):
            return None


def _between(
    frame: pd.DataFrame,
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
) -> pd.Series:
    values = frame[column]
    present = values.dropna()
    inside = pd.Series(True, index=present.index)
    if min_value is not None:
        inside &= present > min_value if strict_min else present >= min_value
    if max_value is not None:
        inside &= present < max_value if strict_max else present <= max_value
    return ~inside


def _in_set(frame: pd.DataFrame, column: str, value_set: list[Any]) -> pd.Series:
    present = frame[column].dropna()
    return ~present.isin(value_set)


def _unique(frame: pd.DataFrame, column: str) -> pd.Series:
    present = frame[column].dropna()
    return present.duplicated(keep=False)


def _pair_equal(
    frame: pd.DataFrame,
    column_A: str,  # noqa: N803 (Great Expectations' argument names)
    column_B: str,  # noqa: N803
    ignore_row_if: str,
) -> pd.Series:
    if ignore_row_if != "neither":
        raise ValueError(f"ignore_row_if={ignore_row_if!r} has no plain count")
    return ~(frame[column_A] == frame[column_B])


_UNEXPECTED: dict[str, Any] = {
    "ExpectColumnValuesToBeBetween": _between,
    "ExpectColumnValuesToBeInSet": _in_set,
    "ExpectColumnValuesToBeUnique": _unique,
    "ExpectColumnValuesToNotBeNull": lambda frame, column: frame[column].isna(),
    "ExpectColumnValuesToBeNull": lambda frame, column: frame[column].notna(),
    "ExpectColumnPairValuesToBeEqual": _pair_equal,
}


@dataclass(frozen=True)
class Check:
    """One expectation with its severity.

    Attributes
    ----------
    name
        Stable expectation name stored in ``audit.validation_results.expectation``.
    frame
        Which frame (suite) it runs on.
    severity
        ``critical`` blocks publishing, ``warning`` publishes and flags.
    expected
        The Great Expectations expectation, as data (:meth:`make` builds it).
    description
        What is expected, in words.
    fix
        What to do when it fails.
    sample_columns
        Columns of the unexpected rows kept as a sample (never raw ids).
    needs
        A condition under which the check runs at all; when not met the result is
        ``skipped`` with the reason (for example no accounts file loaded yet).
    unexpected_rows_sql
        For a ``transactions`` check: a DuckDB condition on the batch's columns, true
        exactly for the rows the expectation counts as unexpected (nulls it ignores must
        not match). Required there, unused elsewhere.
    """

    name: str
    frame: str
    severity: Severity
    expected: Expected
    description: str
    fix: str
    sample_columns: tuple[str, ...] = ()
    needs: str | None = None
    unexpected_rows_sql: str | None = None

    def make(self) -> Expectation:
        """The Great Expectations expectation (imports Great Expectations)."""
        return self.expected.build()


def _not_null(column: str) -> Check:
    return Check(
        name=f"{column}_not_null",
        frame="transactions",
        severity="critical",
        expected=Expected("ExpectColumnValuesToNotBeNull", column=column),
        description=f"every loaded row has a {column}",
        fix="ingestion should have quarantined such rows: check the ingest code and re-run",
        sample_columns=TRANSACTION_SAMPLE,
        unexpected_rows_sql=f"{column} is null",
    )


def _sql_number(value: float) -> str:
    """A threshold as a DuckDB double literal, exactly the float GE compares with.

    >>> _sql_number(100000), _sql_number(0.1)
    ('100000.0::double', '0.1::double')
    """
    return f"{float(value)!r}::double"


def batch_checks(thresholds: ValidationThresholds) -> list[Check]:
    """All checks of the batch suites, in reporting order.

    Parameters
    ----------
    thresholds
        Limits from the settings.

    Returns
    -------
    list of Check

    Examples
    --------
    >>> from circulate.settings import ValidationThresholds
    >>> checks = batch_checks(ValidationThresholds())
    >>> len({c.name for c in checks}) == len(checks)
    True
    >>> sorted({c.severity for c in checks})
    ['critical', 'warning']
    >>> all(c.unexpected_rows_sql for c in checks if c.frame == "transactions")
    True
    """
    t = thresholds
    band_low, band_high = 1 / t.band_factor, t.band_factor
    checks = [
        Check(
            name="contract_column_types",
            frame="schema",
            severity="critical",
            expected=Expected(
                "ExpectColumnPairValuesToBeEqual",
                column_A="expected_type",
                column_B="actual_type",
                ignore_row_if="neither",
            ),
            description="raw.transactions has every contract column with its contract type",
            fix="the warehouse schema drifted from DESIGN §3: restore the column types",
            sample_columns=("column_name", "expected_type", "actual_type"),
        ),
        *(
            _not_null(c)
            for c in ("txn_id", "occurred_at", "source_id", "target_id", "amount", "kind")
        ),
        Check(
            name="amount_positive",
            frame="transactions",
            severity="critical",
            expected=Expected(
                "ExpectColumnValuesToBeBetween", column="amount", min_value=0, strict_min=True
            ),
            description="every amount is greater than zero",
            fix="ingestion should have quarantined non-positive amounts: check the ingest code",
            sample_columns=TRANSACTION_SAMPLE,
            unexpected_rows_sql="amount <= 0",
        ),
        Check(
            name="amount_below_ceiling",
            frame="transactions",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween", column="amount", max_value=t.amount_ceiling
            ),
            description=f"every amount is at most {t.amount_ceiling:,.2f}",
            fix="confirm these payments with the scheme, or raise "
            "CIRCULATE_VALIDATION_AMOUNT_CEILING if such payments are normal",
            sample_columns=TRANSACTION_SAMPLE,
            unexpected_rows_sql=f"amount > {_sql_number(t.amount_ceiling)}",
        ),
        Check(
            name="kind_allowed",
            frame="transactions",
            severity="critical",
            expected=Expected("ExpectColumnValuesToBeInSet", column="kind", value_set=list(KINDS)),
            description=f"kind is one of {', '.join(KINDS)}",
            fix="ingestion should have quarantined unknown kinds: check the ingest code",
            sample_columns=(*TRANSACTION_SAMPLE, "kind"),
            unexpected_rows_sql="kind not in (" + ", ".join(f"'{k}'" for k in KINDS) + ")",
        ),
        Check(
            name="txn_id_unique",
            frame="transactions",
            severity="critical",
            expected=Expected("ExpectColumnValuesToBeUnique", column="txn_id"),
            description="no txn_id is loaded twice in the batch",
            fix="ingestion should have kept one copy: check the ingest code and re-run",
            sample_columns=TRANSACTION_SAMPLE,
            unexpected_rows_sql="txn_id_repeated",
        ),
        Check(
            name="occurred_within_export_day",
            frame="transactions",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="hours_outside_export_day",
                min_value=0,
                max_value=t.day_tolerance_hours,
            ),
            description="every timestamp lies in its file's local day, give or take "
            f"{t.day_tolerance_hours:g} h",
            fix="check the export's timezone setting (CIRCULATE_TIMEZONE) and the file's name",
            sample_columns=(*TRANSACTION_SAMPLE, "export_day", "hours_outside_export_day"),
            unexpected_rows_sql="hours_outside_export_day < 0 "
            f"or hours_outside_export_day > {_sql_number(t.day_tolerance_hours)}",
        ),
        Check(
            name="source_account_known",
            frame="transactions",
            severity="warning",
            expected=Expected("ExpectColumnValuesToNotBeNull", column="source_account_type"),
            description="every paying account is listed in the accounts file",
            fix="send an up-to-date accounts.csv; until then these accounts count as unknown",
            sample_columns=TRANSACTION_SAMPLE,
            needs="accounts",
            unexpected_rows_sql="source_account_type is null",
        ),
        Check(
            name="target_account_known",
            frame="transactions",
            severity="warning",
            expected=Expected("ExpectColumnValuesToNotBeNull", column="target_account_type"),
            description="every paid account is listed in the accounts file",
            fix="send an up-to-date accounts.csv; until then these accounts count as unknown",
            sample_columns=TRANSACTION_SAMPLE,
            needs="accounts",
            unexpected_rows_sql="target_account_type is null",
        ),
        Check(
            name="issuance_from_issuer",
            frame="transactions",
            severity="critical",
            expected=Expected(
                "ExpectColumnValuesToBeInSet", column="issuance_from_issuer", value_set=[True]
            ),
            description="every issuance comes from an issuer account of the accounts file",
            fix="a member cannot create money: correct the export or the account's type",
            sample_columns=(*TRANSACTION_SAMPLE, "source_account_type"),
            needs="issuers",
            unexpected_rows_sql="not issuance_from_issuer",
        ),
        Check(
            name="outflow_to_issuer",
            frame="transactions",
            severity="critical",
            expected=Expected(
                "ExpectColumnValuesToBeInSet", column="outflow_to_issuer", value_set=[True]
            ),
            description="every redemption and fee goes to an issuer account",
            fix="money leaves circulation only through the issuer: correct the export or "
            "the account's type in accounts.csv",
            sample_columns=(*TRANSACTION_SAMPLE, "kind", "target_account_type"),
            needs="issuers",
            unexpected_rows_sql="not outflow_to_issuer",
        ),
        Check(
            name="issuer_kind_consistent",
            frame="transactions",
            severity="critical",
            # No accounts file needed: the issuers are the warehouse's own set (listed, or
            # issuing, redeeming or taking fees anywhere in the ledger), the set whose
            # balances sql/tests/account_balances_sum_to_supply.sql leaves out.
            expected=Expected("ExpectColumnValuesToBeNull", column="issuer_role_problem"),
            description="money passes between an issuer account and a member only as an "
            "issuance (to the member) or a redemption or fee (to the issuer); issuer accounts "
            "are those listed as issuer in accounts.csv or issuing money or taking a "
            "redemption or fee anywhere in the ledger",
            fix="rebook each named line in the export: a payment to the issuer (a fee or a "
            "cash-out) as fee or redemption, a payment from the issuer (a top-up or a "
            "refund) as issuance; if the account is a member, correct the row that makes it "
            "an issuer (named in brackets) or its type in accounts.csv; then re-run",
            sample_columns=(*TRANSACTION_SAMPLE, "kind", "issuer_role_problem"),
            unexpected_rows_sql="issuer_role_problem is not null",
        ),
        Check(
            name="payer_never_overdrawn",
            frame="transactions",
            severity="critical",
            expected=Expected(
                "ExpectColumnValuesToBeBetween", column="payer_lowest_balance", min_value=0
            ),
            description="no member pays more than they hold, replaying the whole ledger in "
            "time order (payer_lowest_balance: the payer's lowest balance from the payment "
            "up to their next payment in the batch, so a late payment that overdraws a later "
            "one already on file is named too)",
            fix="a payment with no money behind it: an earlier export is missing or wrong; "
            "ask the scheme for the missing rows and re-run",
            sample_columns=(*TRANSACTION_SAMPLE, "payer_lowest_balance"),
            unexpected_rows_sql="payer_lowest_balance < 0",
        ),
        Check(
            name="files_readable",
            frame="files",
            # An unreadable file is rejected whole and the others still publish (issue 4):
            # flag it loudly rather than hold back every good file of the night.
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween", column="files_unusable", max_value=0
            ),
            description="every input file of the batch was read and had the required columns",
            fix="see audit.files.message for the file and send a corrected export",
            sample_columns=("files", "files_unusable", "unusable_files"),
        ),
        Check(
            name="quarantine_share_warning",
            frame="files",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="quarantine_share",
                max_value=t.quarantine_warning,
            ),
            description=f"at most {t.quarantine_warning:.1%} of input rows quarantined",
            fix="see audit.quarantine for the reasons and ask the scheme for corrected rows",
            sample_columns=("rows_in", "rows_quarantined", "quarantine_share", "top_reasons"),
        ),
        Check(
            name="quarantine_share_critical",
            frame="files",
            severity="critical",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="quarantine_share",
                max_value=t.quarantine_critical,
            ),
            description=f"at most {t.quarantine_critical:.1%} of input rows quarantined",
            fix="too much of the export is unusable to publish: see audit.quarantine for the "
            "reasons, have the exports corrected and re-run",
            sample_columns=("rows_in", "rows_quarantined", "quarantine_share", "top_reasons"),
        ),
        Check(
            name="no_conflicting_resends",
            frame="files",
            severity="critical",
            expected=Expected("ExpectColumnValuesToBeBetween", column="conflicts", max_value=0),
            description="no txn_id arrives again with different content",
            fix="the source system changed a booked transaction: ask the scheme which version "
            "is right, then replace the older file's row and re-run",
            sample_columns=("conflicts", "conflict_files"),
        ),
        Check(
            name="duplicate_share",
            frame="files",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="duplicate_share",
                max_value=t.duplicate_warning,
            ),
            description=f"at most {t.duplicate_warning:.1%} of input rows are identical re-sends",
            fix="harmless for the figures (each re-send is loaded once) but the export job "
            "re-sends rows: tell the scheme",
            sample_columns=("rows_in", "rows_duplicate", "duplicate_share"),
        ),
        Check(
            name="row_count_within_band",
            frame="days",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="row_ratio",
                min_value=band_low,
                max_value=band_high,
            ),
            description=f"each day's row count is within {t.band_factor:g}× of the median "
            f"of the same weekday in the trailing {t.history_days} days",
            fix="a sudden drop or spike: check the export is complete and not repeated",
            sample_columns=("export_day", "row_count", "median_rows", "row_ratio"),
            needs="history",
        ),
        Check(
            name="volume_within_band",
            frame="days",
            severity="warning",
            expected=Expected(
                "ExpectColumnValuesToBeBetween",
                column="volume_ratio",
                min_value=band_low,
                max_value=band_high,
            ),
            description=f"each day's transfer volume is within {t.band_factor:g}× of the "
            f"median of the same weekday in the trailing {t.history_days} days (issuance and "
            "redemption are left out: council top-ups and monthly rates make them lumpy)",
            fix="a sudden drop or spike in money moved between members: check the export",
            sample_columns=("export_day", "volume", "median_volume", "volume_ratio"),
            needs="history",
        ),
        Check(
            name="export_day_present",
            frame="export_days",
            severity="critical",
            expected=Expected("ExpectColumnValuesToBeBetween", column="files", min_value=1),
            description="an export file exists for every day from the first export to the "
            "batch's last one",
            fix="a day's export is missing: ask the scheme for it (a day without payments "
            "needs a file with only the header row) and re-run",
            sample_columns=("day", "files"),
        ),
    ]
    return checks
