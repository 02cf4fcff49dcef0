"""Adapters: turn each platform's export into the canonical text frame ingestion classifies.

An input folder may hold a ``scheme.toml`` that names its adapter and how its files map
to the data contract (README "Input formats"). Without one the folder is canonical.
Every adapter is SQL over the reader's ``incoming_raw`` table and yields, per role:

transactions
    file_index, source_line, txn_id, occurred_at, source_id, target_id, amount, kind,
    channel, memo, adapter_problem
accounts
    file_index, source_line, account_id, account_type, sector, area, joined_at,
    adapter_problem
areas
    file_index, source_line, area, deprivation_decile, adapter_problem

all VARCHAR except file_index and source_line, trimmed, empty text as NULL (the
classification relies on it). ``adapter_problem`` is a quarantine reason the adapter
found (for example a Sarafu row in another token); the canonical classification checks
everything else, so duplicate, conflict and quarantine logic lives in one place.

Adapters
--------
canonical
    The data contract's own column names.
sarafu
    Grassroots Economics' Sarafu export: transactions ``id, timeset, transfer_subtype,
    source, target, weight, token_name`` (optional ``transfer_use`` → memo, ``channel``);
    users ``id, start, area_name, area_type, held_roles, business_type``.
    DISBURSEMENT → issuance, RECLAMATION and AGENT_OUT → redemption, STANDARD → transfer.
cyclos
    A Cyclos account-history export, one row per leg: ``date, account, amount`` (signed:
    negative = paid out of ``account``), ``related_account, related_account_kind``
    (``system`` or ``user``), ``transfer_type, transaction_number`` (optional
    ``description`` → memo, ``channel``); users ``username, group, category,
    neighbourhood, member_since``. A user-to-user payment appears once in each account's
    history with the same transaction number: the second leg is counted as a duplicate
    (and quarantined as a conflict when the legs disagree). A leg with a system account
    is issuance (money in) or redemption (money out) unless ``[kinds]`` maps its transfer
    type (for example ``"membership fee" = "fee"``); ``Chargeback`` is a reversal.
cyclos, ``layout = "transfers"``
    What ``circulate pull cyclos`` writes: the Cyclos 4 REST API's own JSON, one object
    per line. Transfers (``GET /api/transfers``): ``id``, ``transactionNumber``, ``date``
    (ISO with offset), ``amount`` (positive), ``from`` / ``to`` account references
    (``kind`` system or user; a user account is known by ``user.id``, a system account by
    its type's ``internalName``, Cyclos keeping one system account per type), ``type``
    (``internalName``), ``kind`` and ``description`` (→ memo), optional
    ``channel.internalName``. txn_id is the transaction number, else the transfer id.
    kind: a ``chargeback`` transfer is a reversal, ``accountFee`` / ``transferFee`` to a
    system account a fee, then ``[kinds]`` on ``type.internalName``, then from a system
    account issuance, to one redemption, else transfer. Users (``GET /api/users``): ``id``,
    ``group.internalName`` (→ ``[account_types]``), ``customValues.category`` → sector,
    ``customValues.neighbourhood`` → area, ``activationDate`` → joined_at (a dotted
    ``[account_columns]`` value such as ``"customValues.businessType"`` names another
    field). System accounts (``GET /api/system/accounts``, a file with ``type`` and no
    ``group``): each row is an issuer known by ``type.internalName``.
generic
    Any column names: ``[columns]`` maps canonical names to the export's, ``[kinds]`` the
    export's type values to issuance, transfer, redemption, fee or reversal.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from circulate.errors import InputError
from circulate.ingest.readers import is_supported, quote_identifier

SCHEME_FILE = "scheme.toml"
ADAPTERS = ("canonical", "sarafu", "cyclos", "generic")
KINDS = ("issuance", "transfer", "redemption", "fee", "reversal")
ACCOUNT_TYPES = ("individual", "business", "public_body", "issuer")
ROLES = ("accounts", "areas", "transactions")
#: Severities a ``[validation]`` entry may give a check (see circulate.validate.suites).
SEVERITIES = ("critical", "warning")
#: Cyclos layouts: account-history legs (flat CSV) or the REST API's transfers (JSON).
CYCLOS_LAYOUTS = ("history", "transfers")

TRANSACTION_FIELDS = ("txn_id", "occurred_at", "source_id", "target_id", "amount", "kind")
OPTIONAL_TRANSACTION_FIELDS = ("channel", "memo", "token")
ACCOUNT_FIELDS = ("account_id", "account_type")
OPTIONAL_ACCOUNT_FIELDS = ("sector", "area", "joined_at")
AREA_FIELDS = ("area",)
OPTIONAL_AREA_FIELDS = ("deprivation_decile",)

_IDENTITY_TRANSACTIONS = {c: c for c in (*TRANSACTION_FIELDS, "channel", "memo")}
_IDENTITY_ACCOUNTS = {c: c for c in ACCOUNT_FIELDS + OPTIONAL_ACCOUNT_FIELDS}

_DEFAULT_COLUMNS: dict[str, dict[str, str]] = {
    "canonical": _IDENTITY_TRANSACTIONS,
    "generic": _IDENTITY_TRANSACTIONS,
    "sarafu": {
        "txn_id": "id",
        "occurred_at": "timeset",
        "source_id": "source",
        "target_id": "target",
        "amount": "weight",
        "kind": "transfer_subtype",
        "token": "token_name",
        "memo": "transfer_use",
        "channel": "channel",
    },
    "cyclos": {
        "txn_id": "transaction_number",
        "occurred_at": "date",
        "account": "account",
        "amount": "amount",
        "related_account": "related_account",
        "related_account_kind": "related_account_kind",
        "kind": "transfer_type",
        "memo": "description",
        "channel": "channel",
    },
}
_CYCLOS_REQUIRED = (
    "txn_id",
    "occurred_at",
    "account",
    "amount",
    "related_account",
    "related_account_kind",
    "kind",
)
# Key paths into the Cyclos REST API's transfer objects (layout "transfers"): the first
# segment is the file's column (the top-level key), the rest a path inside its JSON.
_CYCLOS_TRANSFER_PATHS = {
    "transaction_number": "transactionnumber",
    "transfer_id": "id",
    "occurred_at": "date",
    "amount": "amount",
    "from_kind": "from.kind",
    "from_user": "from.user.id",
    "from_system": "from.type.internalName",
    "to_kind": "to.kind",
    "to_user": "to.user.id",
    "to_system": "to.type.internalName",
    "transfer_type": "type.internalName",
    "transfer_kind": "kind",
    "memo": "description",
    "channel": "channel.internalName",
}
_CYCLOS_TRANSFER_REQUIRED = ("id", "date", "amount", "from", "to", "type")
# Users of GET /api/users; a dotted [account_columns] value replaces one of these.
_CYCLOS_API_USER_PATHS = {
    "account_id": "id",
    "account_type": "group.internalName",
    "sector": "customvalues.category",
    "area": "customvalues.neighbourhood",
    "joined_at": "activationdate",
}
_DEFAULT_ACCOUNT_COLUMNS: dict[str, dict[str, str]] = {
    "canonical": _IDENTITY_ACCOUNTS,
    "generic": _IDENTITY_ACCOUNTS,
    "sarafu": {
        "account_id": "id",
        "account_type": "held_roles",
        "sector": "business_type",
        "area": "area_name",
        "joined_at": "start",
    },
    "cyclos": {
        "account_id": "username",
        "account_type": "group",
        "sector": "category",
        "area": "neighbourhood",
        "joined_at": "member_since",
    },
}
_DEFAULT_KINDS: dict[str, dict[str, str]] = {
    "canonical": {},
    "generic": {},
    "sarafu": {
        "standard": "transfer",
        "disbursement": "issuance",
        "reclamation": "redemption",
        "agent_out": "redemption",
    },
    "cyclos": {"chargeback": "reversal"},
}
_DEFAULT_ACCOUNT_TYPES: dict[str, dict[str, str]] = {
    "canonical": {},
    "generic": {},
    "sarafu": {
        "admin": "issuer",
        "beneficiary": "individual",
        "vendor": "business",
        "token_agent": "business",
        "group_account": "public_body",
    },
    "cyclos": {
        "administrators": "issuer",
        "consumers": "individual",
        "businesses": "business",
        "public bodies": "public_body",
        "publicbodies": "public_body",  # the group's internalName in the REST API
    },
}
_DEFAULT_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "canonical": {
        "transactions": ("exports/*", "*"),
        "accounts": ("accounts.*",),
        "areas": ("areas.*",),
    },
    "generic": {"transactions": ("exports/*",), "accounts": ("accounts.*",), "areas": ("areas.*",)},
    "sarafu": {"transactions": ("exports/*",), "accounts": ("users.*",), "areas": ("areas.*",)},
    "cyclos": {
        "transactions": ("exports/*",),
        "accounts": ("users.*", "system-accounts.*"),
        "areas": ("areas.*",),
    },
}


@dataclass(frozen=True)
class SchemeMap:
    """How one input folder's files map to the data contract (from ``scheme.toml``)."""

    adapter: str = "canonical"
    files: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(_DEFAULT_FILES["canonical"])
    )
    columns: Mapping[str, str] = field(default_factory=lambda: dict(_IDENTITY_TRANSACTIONS))
    account_columns: Mapping[str, str] = field(default_factory=lambda: dict(_IDENTITY_ACCOUNTS))
    kinds: Mapping[str, str] = field(default_factory=dict)
    account_types: Mapping[str, str] = field(default_factory=dict)
    timestamps_timezone: str | None = None
    timestamp_format: str | None = None
    token: str | None = None
    #: ``[validation]``: check name to severity, overriding the check's default. Names
    #: are checked against the suites when the batch is validated (``validate_batch``).
    validation: Mapping[str, str] = field(default_factory=dict)
    #: cyclos only: ``history`` (account-history legs) or ``transfers`` (the REST API's
    #: JSON, as ``circulate pull cyclos`` writes it).
    layout: str = "history"


def _fail(path: Path, message: str) -> InputError:
    return InputError(f"{path}: {message}")


def _string_table(path: Path, data: dict[str, Any], key: str) -> dict[str, str]:
    table = data.get(key, {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise _fail(path, f'[{key}] must be a table of text values, such as a = "b"')
    return {k.strip().lower(): v.strip() for k, v in table.items()}


def column_spec(value: str) -> str:
    """A ``[columns]`` value as matched: the column lower-cased, a JSON path after a dot kept.

    The reader lower-cases a file's column names; keys inside a JSON value keep their case.

    >>> column_spec("Transfer_Type"), column_spec("customValues.businessType")
    ('transfer_type', 'customvalues.businessType')
    """
    head, dot, path = value.partition(".")
    return head.lower() + dot + path


def load_scheme_map(inbox: Path) -> SchemeMap:
    """Read ``inbox/scheme.toml``; the canonical map when there is none.

    Raises
    ------
    InputError
        Naming the file and the setting to fix.
    """
    path = inbox / SCHEME_FILE
    if not path.is_file():
        return SchemeMap()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise _fail(path, f"is not valid TOML ({error}); fix the syntax") from error
    adapter = str(data.get("adapter", "canonical")).lower()
    if adapter not in ADAPTERS:
        raise _fail(path, f"adapter = {adapter!r} is unknown; use one of {', '.join(ADAPTERS)}")
    files: dict[str, tuple[str, ...]] = dict(_DEFAULT_FILES[adapter])
    for role, value in _files_table(path, data).items():
        files[role] = value
    columns = dict(_DEFAULT_COLUMNS[adapter])
    columns.update({k: column_spec(v) for k, v in _string_table(path, data, "columns").items()})
    account_columns = dict(_DEFAULT_ACCOUNT_COLUMNS[adapter])
    account_columns.update(
        {k: column_spec(v) for k, v in _string_table(path, data, "account_columns").items()}
    )
    layout = str(data.get("layout", "history")).lower()
    if layout not in CYCLOS_LAYOUTS or (layout != "history" and adapter != "cyclos"):
        raise _fail(
            path,
            f"layout = {layout!r} is unknown; the cyclos adapter reads layout = "
            '"history" (account-history CSV) or "transfers" (the REST API\'s JSON, '
            "as circulate pull cyclos writes it)",
        )
    kinds = dict(_DEFAULT_KINDS[adapter])
    kinds.update({k: v.lower() for k, v in _string_table(path, data, "kinds").items()})
    bad = sorted({v for v in kinds.values() if v not in KINDS})
    if bad:
        raise _fail(path, f"[kinds] maps to {bad}; each value must be one of {', '.join(KINDS)}")
    types = dict(_DEFAULT_ACCOUNT_TYPES[adapter])
    types.update({k: v.lower() for k, v in _string_table(path, data, "account_types").items()})
    bad = sorted({v for v in types.values() if v not in ACCOUNT_TYPES})
    if bad:
        raise _fail(path, f"[account_types] maps to {bad}; use one of {', '.join(ACCOUNT_TYPES)}")
    zone = data.get("timestamps_timezone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise _fail(path, f"timestamps_timezone = {zone!r} is not an IANA name") from error
    fmt = data.get("timestamp_format")
    token = data.get("token")
    validation = _string_table(path, data, "validation")
    bad = sorted(f"{k} = {v!r}" for k, v in validation.items() if v.lower() not in SEVERITIES)
    if bad:
        raise _fail(
            path,
            f"[validation] {', '.join(bad)}: a check's severity must be one of "
            f"{', '.join(SEVERITIES)}",
        )
    return SchemeMap(
        adapter=adapter,
        files=files,
        columns=columns,
        account_columns=account_columns,
        kinds=kinds,
        account_types=types,
        timestamps_timezone=str(zone) if zone is not None else None,
        timestamp_format=str(fmt) if fmt is not None else None,
        token=str(token) if token is not None else None,
        validation={k: v.lower() for k, v in validation.items()},
        layout=layout,
    )


def _files_table(path: Path, data: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    table = data.get("files", {})
    if not isinstance(table, dict):
        raise _fail(path, '[files] must be a table such as transactions = ["exports/*.csv"]')
    out: dict[str, tuple[str, ...]] = {}
    for role, value in table.items():
        if role not in ROLES:
            raise _fail(path, f"[files] {role} is unknown; use {', '.join(ROLES)}")
        patterns = [value] if isinstance(value, str) else value
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise _fail(path, f"[files] {role} must be a glob or a list of globs")
        out[role] = tuple(patterns)
    return out


def discover(inbox: Path, scheme: SchemeMap) -> list[tuple[Path, str]]:
    """Input files in load order: accounts, areas, then transactions by name.

    A file matched by an earlier role is not matched again; ``scheme.toml`` and
    unsupported suffixes (``ground_truth.json``, notes) are never inputs.
    """
    found: list[tuple[Path, str]] = []
    taken: set[Path] = {inbox / SCHEME_FILE}
    for role in ROLES:
        matched: set[Path] = set()
        for pattern in scheme.files.get(role, ()):
            for path in inbox.glob(pattern):
                if path.is_file() and path not in taken and is_supported(path.name):
                    matched.add(path)
        for path in sorted(matched, key=lambda p: p.relative_to(inbox).as_posix()):
            found.append((path, role))
            taken.add(path)
    return found


def trimmed(column: str) -> str:
    """SQL for ``trim(column)`` that skips the copy when there is nothing to trim.

    DuckDB's ``trim`` strips Unicode space separators (not tabs or newlines) and copies
    every value. A value that is pure ASCII (byte length = character length) and neither
    starts nor ends with a space is returned as it is, which most export values are.

    >>> import duckdb
    >>> values = [" a ", "b", "\u00a0c\u2003", "d\t", "", None]
    >>> duckdb.sql(f"select {trimmed('v')} = trim(v) from unnest($values) as t(v)",
    ...            params={"values": values}).fetchall()
    [(True,), (True,), (True,), (True,), (True,), (None,)]
    """
    return (
        f"case when strlen({column}) <> length({column}) or starts_with({column}, ' ') "
        f"or ends_with({column}, ' ') then trim({column}) else {column} end"
    )


def _col(name: str | None, present: set[str], params: dict[str, str] | None = None) -> str:
    """Trimmed, empty-as-null text of an export column, or NULL when it is absent.

    With ``params``, a name such as ``from.user.id`` that is not a column itself reads
    the JSON of column ``from`` at path ``user.id`` (the path bound as a parameter); a
    value that is not a JSON object there gives NULL.
    """
    if name is None:
        return "null::varchar"
    if name.lower() in present:
        return f"nullif({trimmed(quote_identifier(name.lower()))}, '')"
    head, _, path = name.partition(".")
    if params is None or not path or head not in present:
        return "null::varchar"
    key = "path_" + hashlib.sha256(name.encode()).hexdigest()[:12]
    params[key] = "$" + "".join(
        '."' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in path.split(".")
    )
    column = quote_identifier(head)
    return (
        f"nullif(trim(case when json_valid({column}) then "
        f"json_extract_string({column}, ${key}) end), '')"
    )


def _mapping_case(
    expr: str, mapping: Mapping[str, str], prefix: str, params: dict[str, str]
) -> str:
    """``case lower(expr) when … end``, values bound as parameters; NULL when unmapped."""
    if not mapping:
        return "null::varchar"
    arms = []
    for index, (value, target) in enumerate(sorted(mapping.items())):
        params[f"{prefix}_from_{index}"] = value
        params[f"{prefix}_to_{index}"] = target
        arms.append(f"when ${prefix}_from_{index} then ${prefix}_to_{index}")
    return f"case lower({expr}) {' '.join(arms)} end"


def _timestamp(expr: str, scheme: SchemeMap, params: dict[str, str]) -> str:
    if scheme.timestamp_format is None:
        return expr
    params["timestamp_format"] = scheme.timestamp_format
    # A value that does not match the format stays as it is; the classifier then either
    # parses it (ISO text) or quarantines it as an unparseable timestamp.
    return (
        f"coalesce(strftime(try_strptime({expr}, $timestamp_format), '%Y-%m-%d %H:%M:%S'), {expr})"
    )


def required_columns(scheme: SchemeMap, role: str) -> list[str]:
    """Export column names a file of ``role`` must have under this map."""
    if scheme.layout == "transfers":
        return list(_CYCLOS_TRANSFER_REQUIRED) if role == "transactions" else ["id"]
    if role == "transactions":
        fields = _CYCLOS_REQUIRED if scheme.adapter == "cyclos" else TRANSACTION_FIELDS
        return [scheme.columns[f] for f in fields]
    if role == "accounts":
        return [scheme.account_columns[f] for f in ACCOUNT_FIELDS]
    return list(AREA_FIELDS)


def canonical_select(scheme: SchemeMap, role: str, present: set[str]) -> tuple[str, dict[str, str]]:
    """SQL (and its parameters) selecting the canonical text frame from ``incoming_raw``."""
    params: dict[str, str] = {}
    if scheme.layout == "transfers" and role != "areas":
        return _cyclos_api_select(scheme, role, present, params), params
    if role == "accounts":
        c = scheme.account_columns
        raw_type = _col(c.get("account_type"), present)
        mapped_type = _mapping_case(raw_type, scheme.account_types, "type", params)
        joined = _col(c.get("joined_at"), present)
        sql = f"""
            select file_index, source_line,
                {_col(c.get("account_id"), present)} as account_id,
                coalesce({mapped_type}, lower({raw_type})) as account_type,
                {_col(c.get("sector"), present)} as sector,
                {_col(c.get("area"), present)} as area,
                coalesce(cast(cast(try_cast({joined} as timestamp) as date) as varchar),
                    {joined}) as joined_at,
                null::varchar as adapter_problem
            from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
        return sql, params
    if role == "areas":
        sql = f"""
            select file_index, source_line, {_col("area", present)} as area,
                {_col("deprivation_decile", present)} as deprivation_decile,
                null::varchar as adapter_problem
            from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
        return sql, params
    c = scheme.columns
    raw_kind = _col(c.get("kind"), present)
    mapped_kind = _mapping_case(raw_kind, scheme.kinds, "kind", params)
    occurred = _timestamp(_col(c.get("occurred_at"), present), scheme, params)
    common = f"""
        {_col(c.get("txn_id"), present)} as txn_id,
        {occurred} as occurred_at,
        {_col(c.get("channel"), present)} as channel,
        {_col(c.get("memo"), present)} as memo"""
    if scheme.adapter == "cyclos":
        account = _col(c["account"], present)
        related = _col(c["related_account"], present)
        related_kind = f"lower({_col(c['related_account_kind'], present)})"
        amount = _col(c["amount"], present)
        debit = f"starts_with({amount}, '-')"
        sql = f"""
            select file_index, source_line, {common},
                case when {debit} then {account} else {related} end as source_id,
                case when {debit} then {related} else {account} end as target_id,
                regexp_replace({amount}, '^[-+]\\s*', '') as amount,
                coalesce({mapped_kind},
                    case when {related_kind} = 'user' then 'transfer'
                        when {related_kind} = 'system' and {debit} then 'redemption'
                        when {related_kind} = 'system' then 'issuance'
                    end) as kind,
                case when {related_kind} is null or {related_kind} not in ('system', 'user')
                    then 'related_account_kind is neither system nor user' end
                    as adapter_problem
            from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
        return sql, params
    token_problem = "null::varchar"
    if scheme.token is not None and c.get("token") in present:
        params["token"] = scheme.token
        token = _col(c.get("token"), present)
        token_problem = (
            f"case when {token} is distinct from $token then 'token_name is not "
            f"this scheme''s token' end"
        )
    sql = f"""
        select file_index, source_line, {common},
            {_col(c.get("source_id"), present)} as source_id,
            {_col(c.get("target_id"), present)} as target_id,
            {_col(c.get("amount"), present)} as amount,
            coalesce({mapped_kind}, lower({raw_kind})) as kind,
            {token_problem} as adapter_problem
        from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
    return sql, params


def cyclos_api_paths(scheme: SchemeMap, role: str) -> list[str]:
    """Key paths (``column.json.path``) the ``transfers`` layout reads for ``role``.

    ``circulate pull`` keeps only these of each object it writes, so names, e-mail
    addresses and other fields ingestion never reads do not reach the disk.
    """
    if role == "transactions":
        return list(_CYCLOS_TRANSFER_PATHS.values())
    if role == "system_accounts":
        return ["id", "type.internalName"]
    columns = dict(_CYCLOS_API_USER_PATHS)
    columns.update({k: v for k, v in scheme.account_columns.items() if "." in v})
    return list(columns.values())


def _cyclos_api_select(
    scheme: SchemeMap, role: str, present: set[str], params: dict[str, str]
) -> str:
    """The canonical frame of the Cyclos REST API's JSON (``layout = "transfers"``)."""
    if role == "accounts" and "type" in present and "group" not in present:
        # GET /api/system/accounts: every system account is an issuer.
        return f"""
            select file_index, source_line,
                {_col("type.internalName", present, params)} as account_id,
                'issuer' as account_type, null::varchar as sector, null::varchar as area,
                null::varchar as joined_at, null::varchar as adapter_problem
            from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
    if role == "accounts":
        c = dict(_CYCLOS_API_USER_PATHS)
        c.update({k: v for k, v in scheme.account_columns.items() if "." in v})
        raw_type = _col(c["account_type"], present, params)
        mapped_type = _mapping_case(raw_type, scheme.account_types, "type", params)
        joined = _col(c["joined_at"], present, params)
        return f"""
            select file_index, source_line,
                {_col(c["account_id"], present, params)} as account_id,
                coalesce({mapped_type}, lower({raw_type})) as account_type,
                {_col(c["sector"], present, params)} as sector,
                {_col(c["area"], present, params)} as area,
                -- the date as the server wrote it (its own day), not shifted to UTC
                coalesce(cast(try_cast(left({joined}, 10) as date) as varchar), {joined})
                    as joined_at,
                null::varchar as adapter_problem
            from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
    p = {name: _col(spec, present, params) for name, spec in _CYCLOS_TRANSFER_PATHS.items()}
    from_kind, to_kind = f"lower({p['from_kind']})", f"lower({p['to_kind']})"
    transfer_kind = f"lower({p['transfer_kind']})"
    mapped_kind = _mapping_case(p["transfer_type"], scheme.kinds, "kind", params)
    return f"""
        select file_index, source_line,
            coalesce({p["transaction_number"]}, {p["transfer_id"]}) as txn_id,
            {p["occurred_at"]} as occurred_at,
            {p["channel"]} as channel,
            {p["memo"]} as memo,
            case {from_kind} when 'system' then {p["from_system"]}
                when 'user' then {p["from_user"]} end as source_id,
            case {to_kind} when 'system' then {p["to_system"]}
                when 'user' then {p["to_user"]} end as target_id,
            {p["amount"]} as amount,
            case
                when {transfer_kind} = 'chargeback' then 'reversal'
                when {transfer_kind} in ('accountfee', 'transferfee') and {to_kind} = 'system'
                    then 'fee'
                when {mapped_kind} is not null then {mapped_kind}
                when {from_kind} = 'system' and {to_kind} = 'user' then 'issuance'
                when {from_kind} = 'user' and {to_kind} = 'system' then 'redemption'
                when {from_kind} = 'user' and {to_kind} = 'user' then 'transfer'
            end as kind,
            case when {from_kind} is distinct from 'user' and {from_kind} is distinct from 'system'
                    or {to_kind} is distinct from 'user' and {to_kind} is distinct from 'system'
                then 'from.kind or to.kind is neither system nor user'
            end as adapter_problem
        from incoming_raw"""  # noqa: S608 (identifiers quoted, values bound)
