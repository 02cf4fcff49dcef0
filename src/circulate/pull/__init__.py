"""Pull a scheme's transactions from its platform's REST API into the inbox.

``circulate pull cyclos --base-url URL`` and the nightly flow's first task (when the
inbox's ``scheme.toml`` names a ``[source]``) call :func:`pull_into_inbox`; the files it
writes are then ingested like any export. Modules: :mod:`.source` (the ``[source]``
table and the credentials), :mod:`.http` (GET JSON with retries), :mod:`.cyclos` (paging,
day files), :mod:`.state` (where pulls left off: ``pulls.jsonl`` and ``audit.pulls``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

from circulate.pull.cyclos import PullResult, pull_cyclos
from circulate.pull.http import RetryPolicy
from circulate.pull.source import Source, load_secret, read_source
from circulate.pull.state import pull_log_path
from circulate.settings import Settings

__all__ = ["PullResult", "pull_configured_source", "pull_into_inbox"]


def pull_into_inbox(
    settings: Settings,
    *,
    base_url: str | None = None,
    since: date | None = None,
    until: date | None = None,
    policy: RetryPolicy | None = None,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PullResult:
    """Pull from ``base_url`` (else the inbox's ``[source]``) into ``settings.inbox``.

    The caller holds the run lock: pulled files must not change under an ingest.
    ``now`` and ``sleep`` stand in for the clock in tests.

    Raises
    ------
    ConfigurationError
        No base URL, no credentials, or credentials refused (401/403).
    InputError
        The platform stayed unreachable, or answered in another shape.
    """
    from circulate.errors import ConfigurationError

    source = read_source(settings.inbox)
    if base_url is not None:
        source = replace(source, base_url=base_url) if source else Source("cyclos", base_url)
    if source is None:
        raise ConfigurationError(
            f"Nothing to pull from: give --base-url, or add a [source] table with base_url "
            f"to {settings.inbox / 'scheme.toml'}"
        )
    return pull_cyclos(
        settings.inbox,
        source,
        load_secret(settings.source_token_file),
        timezone=settings.timezone,
        log=pull_log_path(settings.warehouse),
        warehouse=settings.warehouse,
        since=since,
        until=until,
        policy=policy,
        progress=progress or (lambda _message: None),
        now=now,
        sleep=sleep,
    )


def pull_configured_source(
    settings: Settings, progress: Callable[[str], None] | None = None
) -> PullResult | None:
    """The night's pull when the inbox's ``scheme.toml`` names a ``[source]``, else None."""
    if read_source(settings.inbox) is None:
        return None
    result = pull_into_inbox(settings, progress=progress)
    for line in result.lines():
        if progress is not None:
            progress(line)
    return result
