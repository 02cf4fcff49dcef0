"""Rewrite a generated canonical scheme as another platform's export (Sarafu or Cyclos).

``convert_scheme(folder, "sarafu")`` replaces ``exports/*.csv`` and ``accounts.csv`` of a
folder written by :func:`circulate.generate.generate_scheme` with the platform's files and
writes the ``scheme.toml`` that tells ingestion how to read them. ``areas.csv`` and
``ground_truth.json`` stay as they are. Ingesting the converted folder reproduces the
canonical ledger exactly (tests/unit/test_ingest_adapters.py checks it), so the adapters
are tested against the generator's ground truth.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

FORMATS = ("canonical", "sarafu", "cyclos")
TOKEN = "BRISTOL"

_SARAFU_SUBTYPES = {
    "issuance": "DISBURSEMENT",
    "transfer": "STANDARD",
    "redemption": "RECLAMATION",
    "fee": "FEE",
    "reversal": "REVERSAL",
}
_SARAFU_ROLES = {
    "issuer": "ADMIN",
    "individual": "BENEFICIARY",
    "business": "VENDOR",
    "public_body": "GROUP_ACCOUNT",
}
_CYCLOS_TYPES = {
    "issuance": "Top-up",
    "transfer": "Payment",
    "redemption": "Cash-out",
    "fee": "Membership fee",
    "reversal": "Chargeback",
}
_CYCLOS_GROUPS = {
    "issuer": "Administrators",
    "individual": "Consumers",
    "business": "Businesses",
    "public_body": "Public bodies",
}

SARAFU_TOML = f"""# Sarafu-style export written by `circulate generate --format sarafu`.
adapter = "sarafu"
# timeset is naive UTC in these files (the scheme's days are still Europe/London days).
timestamps_timezone = "UTC"
token = "{TOKEN}"

[files]
transactions = ["exports/*.csv"]
accounts = "users.csv"
areas = "areas.csv"

[kinds]  # transfer_subtype values beyond Sarafu's four
fee = "fee"
reversal = "reversal"
"""

CYCLOS_TOML = """# Cyclos-style account history written by `circulate generate --format cyclos`.
adapter = "cyclos"
timestamps_timezone = "UTC"
timestamp_format = "%d/%m/%Y %H:%M:%S"

[files]
transactions = ["exports/*.csv"]
accounts = "users.csv"
areas = "areas.csv"

[kinds]  # transfer types; unmapped ones follow the related account (system/user)
"top-up" = "issuance"
payment = "transfer"
"cash-out" = "redemption"
"membership fee" = "fee"
chargeback = "reversal"
"""


def _replace(mapping: dict[str, str], column: str) -> pl.Expr:
    return pl.col(column).replace_strict(mapping, return_dtype=pl.String)


def _read_export(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _sarafu_transactions(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("txn_id").alias("id"),
        pl.col("occurred_at")
        .str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ")
        .dt.strftime("%Y-%m-%d %H:%M:%S")
        .alias("timeset"),
        _replace(_SARAFU_SUBTYPES, "kind").alias("transfer_subtype"),
        pl.col("source_id").alias("source"),
        pl.col("target_id").alias("target"),
        pl.col("amount").alias("weight"),
        pl.lit(TOKEN).alias("token_name"),
        pl.lit(None, dtype=pl.String).alias("transfer_use"),
        pl.col("channel"),
    )


def _cyclos_legs(frame: pl.DataFrame, issuers: set[str]) -> pl.DataFrame:
    """Each transaction as seen from each non-issuer account's history (debit leg first)."""
    base = frame.with_columns(
        pl.col("occurred_at")
        .str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ")
        .dt.strftime("%d/%m/%Y %H:%M:%S")
        .alias("date"),
        _replace(_CYCLOS_TYPES, "kind").alias("transfer_type"),
        pl.int_range(pl.len()).alias("order"),
    )
    issuer_list = sorted(issuers)

    def leg(account: str, related: str, sign: str, rank: int) -> pl.DataFrame:
        return base.filter(~pl.col(account).is_in(issuer_list)).select(
            "order",
            pl.lit(rank).alias("rank"),
            "date",
            pl.col(account).alias("account"),
            (pl.lit(sign) + pl.col("amount")).alias("amount"),
            pl.col(related).alias("related_account"),
            pl.when(pl.col(related).is_in(issuer_list))
            .then(pl.lit("system"))
            .otherwise(pl.lit("user"))
            .alias("related_account_kind"),
            "transfer_type",
            pl.col("txn_id").alias("transaction_number"),
            pl.lit(None, dtype=pl.String).alias("description"),
            "channel",
        )

    legs = pl.concat([leg("source_id", "target_id", "-", 0), leg("target_id", "source_id", "", 1)])
    return legs.sort("order", "rank").drop("order", "rank")


def _sarafu_users(accounts: pl.DataFrame) -> pl.DataFrame:
    return accounts.select(
        pl.col("account_id").alias("id"),
        (pl.col("joined_at") + " 00:00:00").alias("start"),
        pl.col("area").alias("area_name"),
        pl.lit("urban").alias("area_type"),
        _replace(_SARAFU_ROLES, "account_type").alias("held_roles"),
        pl.col("sector").alias("business_type"),
    )


def _cyclos_users(accounts: pl.DataFrame) -> pl.DataFrame:
    return accounts.select(
        pl.col("account_id").alias("username"),
        _replace(_CYCLOS_GROUPS, "account_type").alias("group"),
        pl.col("sector").alias("category"),
        pl.col("area").alias("neighbourhood"),
        pl.col("joined_at").alias("member_since"),
    )


def convert_scheme(folder: Path, fmt: str) -> None:
    """Rewrite the canonical scheme in ``folder`` as ``fmt`` (``sarafu`` or ``cyclos``).

    ``canonical`` leaves the folder unchanged. Amounts keep their exact text, timestamps
    are written as naive UTC (stated in ``scheme.toml``) so no local time is ambiguous.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "canonical":
        return
    accounts_path = folder / "accounts.csv"
    accounts = _read_export(accounts_path)
    issuers = set(accounts.filter(pl.col("account_type") == "issuer")["account_id"].to_list())
    for path in sorted((folder / "exports").glob("*.csv")):
        frame = _read_export(path)
        out = _sarafu_transactions(frame) if fmt == "sarafu" else _cyclos_legs(frame, issuers)
        out.write_csv(path)
    users = _sarafu_users(accounts) if fmt == "sarafu" else _cyclos_users(accounts)
    users.write_csv(folder / "users.csv")
    accounts_path.unlink()
    (folder / "scheme.toml").write_text(
        SARAFU_TOML if fmt == "sarafu" else CYCLOS_TOML, encoding="utf-8"
    )
