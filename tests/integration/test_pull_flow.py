"""The nightly flow's first task pulls when the inbox's scheme.toml names a [source].

A generated scheme ending yesterday is served by the in-process Cyclos server; the real
Prefect flow pulls it, ingests, checks and publishes. A refused token stops the night at
the pull, once (not retried), with the URL in the message and the token nowhere.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circulate.errors import ConfigurationError
from circulate.generate import generate_scheme
from circulate.generate.cyclos_api import cyclos_api_records
from circulate.settings import Settings
from circulate.warehouse.connection import connect
from tests.unit.cyclos_server import TOKEN, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS = 4


def _run_flow(settings: Settings) -> str:
    from flows.nightly import nightly

    return nightly(
        inbox=str(settings.inbox), warehouse=str(settings.warehouse), reports=str(settings.reports)
    )


def _source_inbox(settings: Settings, base_url: str, first_day: str, areas: Path) -> None:
    (settings.inbox / "scheme.toml").write_text(
        'adapter = "cyclos"\nlayout = "transfers"\n\n[source]\n'
        f'base_url = "{base_url}"\npage_size = 50\nfirst_day = "{first_day}"\n',
        encoding="utf-8",
    )
    shutil.copy(areas, settings.inbox / "areas.csv")


def test_the_night_pulls_then_publishes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC).date() - timedelta(days=DAYS + 1)
    scheme = tmp_path / "scheme"
    truth = generate_scheme(scheme, seed=3, transactions=400, days=DAYS, start=start)
    monkeypatch.setenv("CIRCULATE_SOURCE_TOKEN", TOKEN)
    with serve(cyclos_api_records(scheme)) as server:
        _source_inbox(settings, server.url, start.isoformat(), scheme / "areas.csv")
        report = Path(_run_flow(settings))
    assert report.is_file()
    con = connect(settings.warehouse, read_only=True)
    issued = con.execute("select sum(issued) from marts.daily_circulation").fetchone()
    assert issued == (truth.totals.issued,)
    pulls = con.execute("select status, transfers from audit.pulls").fetchall()
    assert pulls == [("success", 400)]


def test_a_refused_token_stops_the_night_at_the_pull(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme = tmp_path / "scheme"
    start = datetime.now(UTC).date() - timedelta(days=3)
    generate_scheme(scheme, seed=3, transactions=50, days=2, start=start)
    monkeypatch.setenv("CIRCULATE_SOURCE_TOKEN", "not-the-token-77")
    with serve(cyclos_api_records(scheme)) as server:
        _source_inbox(settings, server.url, start.isoformat(), scheme / "areas.csv")
        with pytest.raises(ConfigurationError, match="401"):
            _run_flow(settings)
        assert len(server.requests) == 1
    [run] = [json.loads(line) for line in (settings.warehouse.parent / "runs.jsonl").open()]
    assert (run["status"], run["stage"]) == ("failed", "pull")
    assert f"{server.url}/api/transfers?" in run["message"]
    for path in settings.warehouse.parent.rglob("*"):
        if path.is_file():
            assert "not-the-token-77" not in path.read_text(encoding="utf-8")
    assert not settings.warehouse.exists()
