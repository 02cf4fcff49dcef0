"""Pull a night's transfers from Cyclos 4's REST API into the inbox as JSON Lines.

``GET /api/transfers`` (an administrator's view: one object per transfer, chargebacks as
their own transfers) is read page by page for whole local days, from where the last pull
ended up to the end of yesterday, then written as ``exports/YYYY-MM-DD.jsonl``, one file
per local day of the scheme's timezone, in the API's own shape, keeping only the fields
ingestion reads (:func:`circulate.ingest.adapters.cyclos_api_paths`): no names, no
e-mail addresses. ``users.jsonl`` (``GET /api/users``) and ``system-accounts.jsonl``
(``GET /api/system/accounts``, the issuer's accounts) are rewritten beside them.

Files are written only after every page has arrived, byte for byte the same for the same
answers (objects in date and id order, keys sorted), and only when their content changed:
re-pulling a window leaves the files as they were and the manifest skips them, while a
transfer edited upstream changes its day's file, which ingestion then loads as a new
version whose edited row is quarantined as a conflict, never overwriting the loaded one.
A day without transfers gets a header-only CSV (an empty file is rejected as unreadable,
and the ``export_day_present`` check needs a file for every day).
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from circulate.errors import CirculateError, ConfigurationError
from circulate.ingest.adapters import SCHEME_FILE, SchemeMap, cyclos_api_paths, load_scheme_map
from circulate.pull.http import RetryPolicy, UnexpectedResponse, check_base_url, get_json
from circulate.pull.source import Secret, Source
from circulate.pull.state import PullRecord, append_pull, last_pulled_until

Progress = Callable[[str], None]
EXPORTS = "exports"
USERS_FILE = "users.jsonl"
SYSTEM_ACCOUNTS_FILE = "system-accounts.jsonl"
#: Header of a day without transfers: the transfer objects' top-level keys.
EMPTY_DAY_HEADER = "id,transactionNumber,date,amount,from,to,type,kind,description,channel\n"
_TRANSFER_KEYS = ("id", "date", "amount", "from", "to", "type")

SCHEME_TOML = """# Written by `circulate pull cyclos`: the Cyclos 4 REST API's JSON,
# pulled night by night (README "Pulling from the platform").
adapter = "cyclos"
layout = "transfers"

[source]
platform = "cyclos"
base_url = {base_url}
"""


def _quiet(_message: str) -> None:
    return None


@dataclass
class PullResult:
    """What one pull fetched and wrote."""

    base_url: str
    first_day: date | None = None
    last_day: date | None = None
    transfers: int = 0
    pages: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One summary line, then each file written."""
        if self.first_day is None:
            return [f"{self.base_url}: already pulled up to {self.last_day}; nothing to pull"]
        return [
            f"pulled {self.transfers:,} transfers of {self.first_day} to {self.last_day} from "
            f"{self.base_url} in {self.pages} page(s): {len(self.written)} file(s) written, "
            f"{len(self.unchanged)} unchanged",
            *(f"  wrote {name}" for name in self.written),
        ]


def _query(url: str, params: Mapping[str, object]) -> str:
    return f"{url}?{urlencode(params)}"


def _fetch_pages(
    url: str,
    params: Mapping[str, object],
    *,
    page_size: int,
    headers: Mapping[str, str],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    progress: Progress,
) -> tuple[list[dict[str, Any]], int]:
    """Every object of a paged listing, each id once; returns them and the page count.

    A page shorter than ``page_size`` (or ``X-Has-Next-Page: false``) ends the listing;
    ``X-Total-Count``, when sent, must equal what arrived.
    """
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    total: int | None = None
    page = 0
    while True:
        response = get_json(
            _query(url, {**params, "page": page, "pageSize": page_size}),
            headers,
            policy=policy,
            sleep=sleep,
            progress=progress,
        )
        body = response.body
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and "id" in item for item in body
        ):
            raise UnexpectedResponse(
                f"{response.url} answered JSON that is not a list of objects with an id, "
                "as Cyclos 4 lists are; check the base URL points at a Cyclos 4 server and "
                "this token's user may list it"
            )
        if total is None and response.headers.get("x-total-count", "").isdigit():
            total = int(response.headers["x-total-count"])
        fresh = [item for item in body if str(item["id"]) not in seen]
        seen.update(str(item["id"]) for item in fresh)
        items += fresh
        page += 1
        if len(body) < page_size or response.headers.get("x-has-next-page") == "false":
            break
        if not fresh:
            raise UnexpectedResponse(
                f"{response.url} repeats the previous page: the server ignores the page "
                "parameter, so the listing cannot be read whole; check the Cyclos version"
            )
    if total is not None and total != len(items):
        raise UnexpectedResponse(
            f"{url}: the server counted {total:,} objects (X-Total-Count) but {len(items):,} "
            "arrived over the pages: the listing changed while it was read; run the pull again"
        )
    return items, page


def _transfer_instant(item: Mapping[str, Any], url: str) -> datetime:
    """The transfer's date, checking the fields ingestion needs are there."""
    missing = [key for key in _TRANSFER_KEYS if key not in item]
    bad = [key for key in ("from", "to") if key in item and not isinstance(item[key], dict)]
    text = item.get("date")
    instant: datetime | None = None
    if isinstance(text, str):
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            instant = None
    if missing or bad or instant is None or instant.tzinfo is None:
        problem = (
            f"lacks {', '.join(missing)}"
            if missing
            else f"has {', '.join(bad)} that is not an object"
            if bad
            else f"has date {text!r}, not an ISO time with an offset"
        )
        raise UnexpectedResponse(
            f"{url}: transfer {item.get('id')!r} {problem}; this is not the shape of Cyclos "
            "4's GET /api/transfers (README 'Pulling from the platform'): check the server's "
            "Cyclos version, or report it with this message"
        )
    return instant


def project(item: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """Only the key paths ``paths`` of ``item`` (the first key matched case-insensitively).

    >>> project({"id": 1, "from": {"kind": "user", "user": {"id": "A", "display": "Ann"}},
    ...          "Extra": 2}, ["id", "from.kind", "from.user.id", "missing.x"])
    {'id': 1, 'from': {'kind': 'user', 'user': {'id': 'A'}}}
    """
    out: dict[str, Any] = {}
    for path in paths:
        head, *rest = path.split(".")
        key = next((k for k in item if k.lower() == head.lower()), None)
        if key is None:
            continue
        value: Any = item[key]
        for part in rest:
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            *parents, leaf = [key, *rest]
            target = out
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = copy.deepcopy(value)
    return out


def _jsonl(items: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(
        json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        for item in items
    ).encode("utf-8")


def _write_if_changed(path: Path, content: bytes) -> bool:
    """Write ``content`` atomically unless the file already holds exactly it."""
    if path.is_file() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
    return True


def ensure_scheme_file(inbox: Path, base_url: str) -> SchemeMap:
    """The inbox's scheme map, writing a pulled folder's ``scheme.toml`` when it has none.

    Raises
    ------
    ConfigurationError
        When the folder's ``scheme.toml`` is for another adapter or layout.
    """
    path = inbox / SCHEME_FILE
    if not path.exists():
        inbox.mkdir(parents=True, exist_ok=True)
        path.write_text(SCHEME_TOML.format(base_url=json.dumps(base_url)), encoding="utf-8")
    scheme = load_scheme_map(inbox)
    if scheme.adapter != "cyclos" or scheme.layout != "transfers":
        raise ConfigurationError(
            f"{path} says adapter = {scheme.adapter!r}, layout = {scheme.layout!r}; pulled "
            'files need adapter = "cyclos" and layout = "transfers": pull into a folder of '
            "their own (--input) or change that file"
        )
    return scheme


def pull_window(
    *,
    zone: ZoneInfo,
    now: datetime,
    since: date | None,
    until: date | None,
    pulled_until: datetime | None,
    first_day: date | None,
    base_url: str,
) -> tuple[date, date]:
    """First and last local day to pull (the first after the last may mean none).

    >>> london = ZoneInfo("Europe/London")
    >>> now = datetime(2025, 3, 31, 1, 30, tzinfo=UTC)
    >>> pull_window(zone=london, now=now, since=None, until=None, first_day=None,
    ...     pulled_until=datetime(2025, 3, 29, tzinfo=london), base_url="u")
    (datetime.date(2025, 3, 29), datetime.date(2025, 3, 30))
    """
    today = now.astimezone(zone).date()
    last = until or today - timedelta(days=1)
    if last >= today:
        raise ConfigurationError(
            f"--until {last} is not before today ({today} in {zone.key}): a day still under "
            "way would be pulled half; pull up to yesterday"
        )
    if since is not None:
        return since, last
    if pulled_until is not None:
        return pulled_until.astimezone(zone).date(), last
    if first_day is not None:
        return first_day, last
    raise ConfigurationError(
        f"No earlier pull from {base_url} is on record, so circulate does not know where to "
        f"start: run `circulate pull cyclos --base-url {base_url} --since YYYY-MM-DD` once "
        "(the scheme's first day), or set first_day in scheme.toml [source]"
    )


def pull_cyclos(
    inbox: Path,
    source: Source,
    secret: Secret,
    *,
    timezone: str,
    log: Path,
    warehouse: Path,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress = _quiet,
) -> PullResult:
    """Pull whole local days of transfers, the users and the system accounts into ``inbox``.

    Parameters
    ----------
    inbox
        The scheme's input folder; gets ``scheme.toml`` when it has none.
    source
        Base URL, authentication, page size and user groups (``[source]``).
    secret
        The access token, or ``user:password`` for basic authentication.
    timezone
        The scheme's timezone: files are per local day of it.
    log, warehouse
        ``pulls.jsonl`` and the published warehouse: where the last pull ended.
    since, until
        First and last local day to pull; by default from where the last pull ended up
        to yesterday.
    now
        The clock (tests).
    """
    # Requests go to <root>/api/…: a base URL given with its /api is taken as the root.
    base_url = check_base_url(source.base_url).removesuffix("/api")
    source = replace(source, base_url=base_url)
    zone = ZoneInfo(timezone)
    started = datetime.now(UTC) if now is None else now
    scheme = ensure_scheme_file(inbox, base_url)
    first, last = pull_window(
        zone=zone,
        now=started,
        since=since,
        until=until,
        pulled_until=None if since else last_pulled_until(log, warehouse, base_url),
        first_day=source.first_day,
        base_url=base_url,
    )
    result = PullResult(base_url, last_day=last)
    if first > last:
        return result
    begin = datetime.combine(first, clock_time(), zone)
    end = datetime.combine(last + timedelta(days=1), clock_time(), zone)
    record = PullRecord(
        pull_id=f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}",
        platform="cyclos",
        base_url=base_url,
        started_at=started.isoformat(),
        finished_at="",
        status="failed",
        window_begin=begin.isoformat(),
        window_end=end.isoformat(),
    )
    try:
        _pull(inbox, scheme, source, secret, zone, begin, end, result, policy, sleep, progress)
    except CirculateError as error:
        append_pull(log, _finish(record, result, "failed", str(error)))
        raise
    append_pull(log, _finish(record, result, "success", ""))
    return result


def _finish(record: PullRecord, result: PullResult, status: str, message: str) -> PullRecord:
    return PullRecord(
        **{
            **record.__dict__,
            "finished_at": datetime.now(UTC).isoformat(),
            "status": status,
            "transfers": result.transfers,
            "pages": result.pages,
            "files_written": len(result.written),
            "files_unchanged": len(result.unchanged),
            "message": message,
        }
    )


def _pull(
    inbox: Path,
    scheme: SchemeMap,
    source: Source,
    secret: Secret,
    zone: ZoneInfo,
    begin: datetime,
    end: datetime,
    result: PullResult,
    policy: RetryPolicy | None,
    sleep: Callable[[float], None],
    progress: Progress,
) -> None:
    fetch: dict[str, Any] = {
        "page_size": source.page_size,
        "headers": secret.headers(source.auth),
        "policy": policy or RetryPolicy(),
        "sleep": sleep,
        "progress": progress,
    }
    api = f"{source.base_url}/api"
    period = f"{begin.isoformat()},{end.isoformat()}"
    transfers, pages = _fetch_pages(
        f"{api}/transfers", {"datePeriod": period, "orderBy": "dateAsc"}, **fetch
    )
    groups = {"groups": ",".join(source.user_groups)} if source.user_groups else {}
    users, user_pages = _fetch_pages(f"{api}/users", {**groups, "includeGroup": "true"}, **fetch)
    system = get_json(
        f"{api}/system/accounts",
        fetch["headers"],
        policy=fetch["policy"],
        sleep=sleep,
        progress=progress,
    )
    if not isinstance(system.body, list) or not all(isinstance(a, dict) for a in system.body):
        raise UnexpectedResponse(
            f"{system.url} answered JSON that is not a list of accounts; check the token's "
            "user may view system accounts (an administrator)"
        )
    result.pages = pages + user_pages + 1
    days: dict[date, list[tuple[datetime, str, dict[str, Any]]]] = {}
    for item in transfers:
        instant = _transfer_instant(item, f"{api}/transfers")
        if begin <= instant < end:  # whichever way the server reads the period's ends
            days.setdefault(instant.astimezone(zone).date(), []).append(
                (instant, str(item["id"]), item)
            )
    result.transfers = sum(len(entries) for entries in days.values())
    result.first_day = begin.date()
    paths = cyclos_api_paths(scheme, "transactions")
    outputs: list[tuple[Path, bytes, Path | None]] = []
    day = begin.date()
    while day < end.astimezone(zone).date():
        entries = sorted(days.get(day, []), key=lambda entry: (entry[0], entry[1]))
        jsonl = inbox / EXPORTS / f"{day.isoformat()}.jsonl"
        empty = jsonl.with_suffix(".csv")
        if entries:
            outputs.append((jsonl, _jsonl(project(e[2], paths) for e in entries), empty))
        else:
            outputs.append((empty, EMPTY_DAY_HEADER.encode("ascii"), jsonl))
        day += timedelta(days=1)
    outputs.append((inbox / USERS_FILE, _by_id(users, cyclos_api_paths(scheme, "accounts")), None))
    system_paths = cyclos_api_paths(scheme, "system_accounts")
    outputs.append((inbox / SYSTEM_ACCOUNTS_FILE, _by_id(system.body, system_paths), None))
    for path, content, replaced in outputs:
        name = path.relative_to(inbox).as_posix()
        (result.written if _write_if_changed(path, content) else result.unchanged).append(name)
        if replaced is not None and replaced.exists():
            replaced.unlink()  # the day's other form; what it loaded stays in the warehouse


def _by_id(items: Sequence[Mapping[str, Any]], paths: Sequence[str]) -> bytes:
    return _jsonl(project(item, paths) for item in sorted(items, key=lambda i: str(i.get("id"))))
