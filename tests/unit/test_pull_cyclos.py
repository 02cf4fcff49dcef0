"""Pulling from Cyclos 4's REST API: a generated scheme served on a local socket, pulled
night by night, publishes exactly the warehouse of the same scheme's CSV exports.

The server (tests/unit/cyclos_server.py) serves the scheme's ground truth in the API's
shape; no test reaches the internet. The scheme spans the switch to summer time
(30 March 2025), so the server's offsets change from +00:00 to +01:00 mid-pull.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from circulate.errors import ConfigurationError
from circulate.generate import generate_scheme
from circulate.generate.cyclos_api import CyclosApiData, cyclos_api_records
from circulate.generate.formats import convert_scheme
from circulate.pull import pull_into_inbox
from circulate.pull.http import RetryPolicy, SourceUnavailable, UnexpectedResponse
from circulate.pull.state import read_pulls
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.unit.cyclos_server import TOKEN, CyclosServer, serve
from tests.unit.ingest_helpers import (
    LEDGER_COLUMNS,
    circulation_sql_dir,
    ingest_and_build,
    ingest_in_memory,
    ingest_only,
)

START = date(2025, 3, 26)
DAYS = 8
ROWS = 900
PAGE_SIZE = 25
MARTS = ("marts.daily_circulation", "marts.monthly_circulation", "marts.account_balances")
# No waiting in tests: the waits asked for are recorded instead.
FAST = RetryPolicy(attempts=3, backoff_seconds=0.5, timeout_seconds=10)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scheme") / "canonical"
    generate_scheme(folder, seed=5, transactions=ROWS, days=DAYS, start=START)
    return folder


@pytest.fixture(scope="module")
def api_data(generated: Path) -> CyclosApiData:
    return cyclos_api_records(generated)


@pytest.fixture
def server(api_data: CyclosApiData) -> Iterator[CyclosServer]:
    fresh = CyclosApiData(
        transfers=[dict(t) for t in api_data.transfers],
        users=list(api_data.users),
        system_accounts=list(api_data.system_accounts),
    )
    with serve(fresh) as running:
        yield running


@pytest.fixture
def pulled_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CIRCULATE_SOURCE_TOKEN", TOKEN)
    (tmp_path / "inbox").mkdir()
    return Settings(
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "warehouse" / "w.duckdb",
        reports=tmp_path / "reports",
        private_dir=tmp_path / "private",
        key_file=tmp_path / "pseudonym.key",
    )


def _scheme_toml(inbox: Path, base_url: str, page_size: int = PAGE_SIZE) -> None:
    (inbox / "scheme.toml").write_text(
        'adapter = "cyclos"\nlayout = "transfers"\n\n[source]\n'
        f'base_url = "{base_url}"\npage_size = {page_size}\n',
        encoding="utf-8",
    )


def _night(day: date) -> datetime:
    """02:00 UTC the morning after ``day``: the nightly run's clock."""
    return datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)


def _pull(settings: Settings, day: date, **kwargs: object) -> list[float]:
    """Pull as the night after ``day`` does; return the waits the retries asked for."""
    waits: list[float] = []
    pull_into_inbox(settings, now=_night(day), sleep=waits.append, policy=FAST, **kwargs)  # type: ignore[arg-type]
    return waits


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[object, ...]]:
    return con.execute(query).fetchall()


def test_pulled_nights_publish_the_warehouse_of_the_csv_exports(
    generated: Path, server: CyclosServer, pulled_settings: Settings, tmp_path: Path
) -> None:
    """Eight nights, each pulled then ingested, with faults on the way: 500 twice on a
    page, 429 with Retry-After, a connection dropped mid-body. The result equals the
    same scheme's Cyclos CSV exports ingested in one go, row for row and mart for mart."""
    sql_dir = circulation_sql_dir(tmp_path / "sql")
    csv_inbox = tmp_path / "csv" / "inbox"
    shutil.copytree(generated, csv_inbox)
    convert_scheme(csv_inbox, "cyclos")
    csv_settings = Settings(
        inbox=csv_inbox,
        warehouse=tmp_path / "csv" / "w.duckdb",
        reports=tmp_path / "csv" / "reports",
        private_dir=tmp_path / "csv" / "private",
        key_file=pulled_settings.key_file,
    )
    ingest_and_build(csv_settings, sql_dir)

    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url)
    shutil.copy(generated / "areas.csv", settings.inbox / "areas.csv")  # not in the API
    server.fail("/api/transfers", page=1, status=500, times=2)
    assert _pull(settings, START + timedelta(days=1), since=START) == [0.5, 1.0]
    ingest_only(settings)
    server.fail("/api/transfers", page=2, status=429, retry_after="3")
    assert _pull(settings, START + timedelta(days=2)) == [3.0]
    ingest_only(settings)
    server.fail("/api/transfers", page=0, status=200, drop_connection=True)
    assert _pull(settings, START + timedelta(days=3)) == [0.5]
    ingest_only(settings)
    for offset in range(4, DAYS - 1):
        assert _pull(settings, START + timedelta(days=offset)) == []
        ingest_only(settings)
    _pull(settings, START + timedelta(days=DAYS - 1))
    ingest_and_build(settings, sql_dir)

    transfer_pages = server.requested("/api/transfers")
    assert {r.query["pageSize"] for r in transfer_pages} == {str(PAGE_SIZE)}
    assert max(int(r.query["page"]) for r in transfer_pages) >= 5
    assert all(r.query["orderBy"] == "dateAsc" for r in transfer_pages)
    want = connect(csv_settings.warehouse, read_only=True)
    got = connect(settings.warehouse, read_only=True)
    ledger = f"select {LEDGER_COLUMNS} from raw.transactions order by txn_id"
    assert len(_rows(got, ledger)) == ROWS
    assert _rows(got, ledger) == _rows(want, ledger)
    assert _rows(got, "select distinct kind from raw.transactions order by 1") == [
        ("fee",),
        ("issuance",),
        ("redemption",),
        ("reversal",),
        ("transfer",),
    ]
    # A system account has no area or start date in the API; all else is the same.
    accounts = (
        "select account_id, account_type, sector, case when account_type <> 'issuer' then "
        "area end, case when account_type <> 'issuer' then joined_at end from raw.accounts "
        "order by 1"
    )
    assert _rows(got, accounts) == _rows(want, accounts)
    for mart in MARTS:
        assert _rows(got, f"from {mart} order by all") == _rows(want, f"from {mart} order by all")
    files = _rows(
        got,
        "select count(*), sum(rows_in), sum(rows_duplicate + rows_quarantined) from audit.files "
        "where file_role = 'transactions'",
    )
    assert files == [(DAYS, ROWS, 0)]
    pulls = _rows(got, "select status, window_begin, window_end from audit.pulls order by 2")
    assert [p[0] for p in pulls] == ["success"] * (DAYS - 1)
    london = ZoneInfo("Europe/London")
    assert [p[1].astimezone(london).date() for p in pulls] == [
        START,
        *(START + timedelta(days=n) for n in range(2, DAYS)),
    ]
    # Windows are whole local days: the one of 30 March (summer time begins) is 23 hours.
    assert [(p[2] - p[1]) / timedelta(hours=1) for p in pulls] == [48, 24, 24, 23, 24, 24, 24]


def test_a_repeated_pull_writes_the_same_files_and_the_manifest_skips_them(
    server: CyclosServer, pulled_settings: Settings
) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url, page_size=200)
    last = START + timedelta(days=2)
    _pull(settings, last, since=START)
    first = {p: p.read_bytes() for p in settings.inbox.rglob("*") if p.is_file()}
    assert ingest_only(settings).files_new == 5  # 3 days, users, system accounts
    _pull(settings, last, since=START)
    again = {p: p.read_bytes() for p in settings.inbox.rglob("*") if p.is_file()}
    assert again == first
    assert ingest_only(settings).files_new == 0
    [*_, repeat] = read_pulls(settings.warehouse.with_name("pulls.jsonl"))
    assert (repeat.files_written, repeat.files_unchanged) == (0, 5)


def test_a_transfer_edited_upstream_is_a_conflict_not_an_overwrite(
    server: CyclosServer, pulled_settings: Settings
) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url, page_size=200)
    _pull(settings, START, since=START)
    ingest_only(settings)
    edited = server.data.transfers[3]
    loaded_amount = edited["amount"]
    edited["amount"] = "999.99"
    _pull(settings, START, since=START)
    summary = ingest_only(settings)
    [day] = [f for f in summary.files if f.role == "transactions"]
    assert day.new_version
    assert (day.rows_loaded, day.rows_quarantined) == (0, 1)
    assert day.rows_duplicate == day.rows_in - 1
    assert day.reasons == {"txn_id already used with different content": 1}
    con = connect(settings.warehouse, read_only=True)
    assert _rows(
        con,
        f"select amount::varchar from raw.transactions where txn_id = "
        f"'{edited['transactionNumber']}'",
    ) == [(loaded_amount,)]


def test_a_refused_token_stops_at_once_naming_the_url_and_never_the_token(
    server: CyclosServer, pulled_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pulled_settings
    wrong = "wrong-token-0a1b2c3d"
    monkeypatch.setenv("CIRCULATE_SOURCE_TOKEN", wrong)
    _scheme_toml(settings.inbox, server.url)
    with pytest.raises(ConfigurationError) as raised:
        _pull(settings, START, since=START)
    message = str(raised.value)
    assert f"{server.url}/api/transfers?" in message
    assert "401" in message and "CIRCULATE_SOURCE_TOKEN_FILE" in message
    assert len(server.requests) == 1  # not retried
    assert [p.name for p in settings.inbox.iterdir()] == ["scheme.toml"]
    [failed] = read_pulls(settings.warehouse.with_name("pulls.jsonl"))
    assert failed.status == "failed" and "401" in failed.message
    assert server.requests[0].headers["Access-Client-Token"] == wrong
    for path in settings.warehouse.parent.rglob("*"):
        assert wrong not in path.read_text(encoding="utf-8")


def test_the_token_is_sent_in_its_header_and_written_nowhere(
    server: CyclosServer, pulled_settings: Settings, tmp_path: Path
) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url, page_size=200)
    _pull(settings, START, since=START)
    ingest_only(settings)
    assert {r.headers.get("Access-Client-Token") for r in server.requests} == {TOKEN}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "2025-03-26.jsonl" for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    users = (settings.inbox / "users.jsonl").read_text(encoding="utf-8")
    assert "@example.org" not in users and "Member " not in users  # e-mails and names
    day = (settings.inbox / "exports" / "2025-03-26.jsonl").read_text(encoding="utf-8")
    assert "display" not in day


def test_truncated_json_stops_the_pull_without_retrying(
    server: CyclosServer, pulled_settings: Settings
) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url)
    server.fail("/api/transfers", page=1, status=200, body=b'[{"id": "1", "date": "20')
    with pytest.raises(UnexpectedResponse) as raised:
        _pull(settings, START, since=START)
    assert "/api/transfers?" in str(raised.value) and "page=1" in str(raised.value)
    assert "not complete JSON" in str(raised.value)
    assert [r.query["page"] for r in server.requested("/api/transfers")] == ["0", "1"]
    assert not (settings.inbox / "exports").exists()


def test_an_unknown_shape_stops_the_pull(server: CyclosServer, pulled_settings: Settings) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url, page_size=200)
    del server.data.transfers[0]["from"]
    with pytest.raises(UnexpectedResponse, match=r"transfer '7000000001' lacks from"):
        _pull(settings, START, since=START)


def test_a_server_that_stays_down_fails_after_every_retry(
    server: CyclosServer, pulled_settings: Settings
) -> None:
    settings = pulled_settings
    _scheme_toml(settings.inbox, server.url)
    server.fail("/api/transfers", status=503, times=10)
    with pytest.raises(SourceUnavailable, match=r"after 3 tries \(last: 503"):
        _pull(settings, START, since=START)
    assert len(server.requested("/api/transfers")) == 3


def test_without_a_record_or_since_the_pull_says_where_to_start(
    server: CyclosServer, pulled_settings: Settings
) -> None:
    _scheme_toml(pulled_settings.inbox, server.url)
    with pytest.raises(ConfigurationError, match="--since YYYY-MM-DD"):
        _pull(pulled_settings, START)
    assert server.requests == []


def test_a_token_file_others_can_read_is_refused(
    pulled_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from circulate.pull.source import load_secret

    monkeypatch.delenv("CIRCULATE_SOURCE_TOKEN")
    token_file = tmp_path / "cyclos.token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {token_file}"):
        load_secret(token_file)
    token_file.chmod(0o600)
    secret = load_secret(token_file)
    assert secret.headers("token") == {"Access-Client-Token": TOKEN}
    assert TOKEN not in repr(secret) and TOKEN not in str(secret)


def test_transfers_layout_by_hand(tmp_path: Path) -> None:
    """Seven lines of the API's transfers, worked out by hand.

    C1 system → ANN, 00:30 UTC           → issuance 50.00
    C2 ANN → SHOP, 10:00 +01:00          → transfer 20.00 at 09:00 UTC, memo and channel
    102 chargeback SHOP → ANN (no number) → reversal 3.00, txn_id = the transfer id
    C4 accountFee ANN → system           → fee 1.50
    C5 SHOP → system                     → redemption 5.00
    C6 from is text, to kind "bank"      → quarantined
    [1, 2]                               → not a JSON object, quarantined
    rows_in 7 = 5 loaded + 2 quarantined. A day without transfers: a header-only CSV.
    """
    inbox = tmp_path / "in"
    (inbox / "exports").mkdir(parents=True)
    (inbox / "scheme.toml").write_text('adapter = "cyclos"\nlayout = "transfers"\n')

    def account(kind: str, name: str) -> dict[str, object]:
        if kind == "system":
            return {"kind": "system", "type": {"internalName": name}}
        return {"kind": "user", "user": {"id": name, "display": "a name"}}

    def transfer(
        number: str | None,
        when: str,
        amount: str,
        payer: dict[str, object],
        payee: dict[str, object],
        kind: str = "payment",
        **more: object,
    ) -> str:
        body = {
            "id": str(100 + len(lines)),
            "date": when,
            "amount": amount,
            "from": payer,
            "to": payee,
            "type": {"internalName": "payment"},
            "kind": kind,
            **more,
        }
        if number:
            body["transactionNumber"] = number
        return json.dumps(body)

    lines: list[str] = []
    ann, shop, debit = account("user", "ANN"), account("user", "SHOP"), account("system", "debit")
    lines.append(transfer("C1", "2025-03-30T00:30:00.000+00:00", "50.00", debit, ann))
    lines.append(
        transfer(
            "C2",
            "2025-03-30T10:00:00.000+01:00",
            "20.00",
            ann,
            shop,
            description="lunch",
            channel={"internalName": "app"},
        )
    )
    lines.append(transfer(None, "2025-03-30T11:00:00.000+01:00", "3.00", shop, ann, "chargeback"))
    lines.append(transfer("C4", "2025-03-30T12:00:00.000+01:00", "1.50", ann, debit, "accountFee"))
    lines.append(transfer("C5", "2025-03-30T13:00:00.000+01:00", "5.00", shop, debit))
    lines.append(
        transfer(
            "C6",
            "2025-03-30T14:00:00.000+01:00",
            "5.00",
            "oops",  # type: ignore[arg-type]
            {"kind": "bank"},
        )
    )
    lines.append("[1, 2]")
    (inbox / "exports" / "2025-03-30.jsonl").write_text("\n".join(lines) + "\n")
    from circulate.pull.cyclos import EMPTY_DAY_HEADER

    (inbox / "exports" / "2025-03-31.csv").write_text(EMPTY_DAY_HEADER)
    (inbox / "users.jsonl").write_text(
        '{"id":"ANN","group":{"internalName":"consumers"},"activationDate":'
        '"2025-01-01T00:00:00.000+00:00","customValues":{"neighbourhood":"Easton"}}\n'
        '{"id":"SHOP","group":{"internalName":"businesses"},"activationDate":'
        '"2025-04-02T00:00:00.000+01:00","customValues":{"category":"food"}}\n'
    )
    (inbox / "system-accounts.jsonl").write_text('{"id":"9","type":{"internalName":"debit"}}\n')
    con, results = ingest_in_memory(inbox, tmp_path / "private")
    counts = {r.file_name: (r.rows_in, r.rows_loaded, r.rows_quarantined) for r in results}
    assert counts == {
        "system-accounts.jsonl": (1, 1, 0),
        "users.jsonl": (2, 2, 0),
        "exports/2025-03-30.jsonl": (7, 5, 2),
        "exports/2025-03-31.csv": (0, 0, 0),
    }
    assert results[2].reasons == {
        "from.kind or to.kind is neither system nor user": 1,
        "not a JSON object": 1,
    }
    assert _rows(
        con,
        "select txn_id, strftime(occurred_at, '%H:%M'), amount::varchar, kind, channel, memo "
        "from raw.transactions order by occurred_at",
    ) == [
        ("C1", "00:30", "50.00", "issuance", None, None),
        ("C2", "09:00", "20.00", "transfer", "app", "lunch"),
        ("102", "10:00", "3.00", "reversal", None, None),
        ("C4", "11:00", "1.50", "fee", None, None),
        ("C5", "12:00", "5.00", "redemption", None, None),
    ]
    assert _rows(
        con, "select account_type, sector, area, joined_at::varchar from raw.accounts order by 1"
    ) == [
        ("business", "food", None, "2025-04-02"),
        ("individual", None, "Easton", "2025-01-01"),
        ("issuer", None, None, None),
    ]
    # The issuer is the system account both the top-up and the fee name.
    assert _rows(
        con,
        "select count(distinct a.account_id) from raw.accounts a join raw.transactions t "
        "on a.account_id in (t.source_id, t.target_id) where a.account_type = 'issuer'",
    ) == [(1,)]


def test_the_command_writes_scheme_toml_and_exits_2_on_a_refused_token(
    server: CyclosServer,
    pulled_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from circulate.cli import main

    settings = pulled_settings
    command = [
        "pull",
        "cyclos",
        "--base-url",
        f"{server.url}/api",
        "--since",
        START.isoformat(),
        "--until",
        (START + timedelta(days=1)).isoformat(),
        "--input",
        str(settings.inbox),
        "--warehouse",
        str(settings.warehouse),
    ]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert f"of 2025-03-26 to 2025-03-27 from {server.url} " in out
    assert "wrote exports/2025-03-27.jsonl" in out
    assert f'base_url = "{server.url}"' in (settings.inbox / "scheme.toml").read_text()
    monkeypatch.setenv("CIRCULATE_SOURCE_TOKEN", "refused-token-123")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{server.url}/api/transfers?" in err and "refused-token-123" not in err
