"""GET JSON from a platform's REST API with the standard library, retrying what may pass.

Retried, with back-off: network errors (refused, reset, timed out, a body cut short) and
the answers 408, 429 and 5xx, waiting what ``Retry-After`` asks when the server says so.
Not retried: 401 and 403 (the credentials; :class:`~circulate.errors.ConfigurationError`),
other 4xx, redirects (a redirect would carry the credentials to another address), and a
complete answer that is not JSON (:class:`UnexpectedResponse`). Every message names the
URL and the fix and never holds the credentials, which travel in request headers only.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from circulate.errors import ConfigurationError, InputError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class SourceUnavailable(InputError):
    """The platform did not answer after every retry; nothing of this pull was kept."""


class UnexpectedResponse(InputError):
    """The platform answered, but not in the shape circulate reads."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request.

    Attributes
    ----------
    attempts
        Tries per request, the first included.
    backoff_seconds
        Wait before the second try; doubled before each further one.
    max_wait_seconds
        Longest wait, also for a ``Retry-After`` that asks for more.
    timeout_seconds
        Socket timeout of one try.
    """

    attempts: int = 5
    backoff_seconds: float = 2.0
    max_wait_seconds: float = 300.0
    timeout_seconds: float = 60.0

    def wait(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based).

        >>> policy = RetryPolicy(backoff_seconds=2, max_wait_seconds=10)
        >>> [policy.wait(n) for n in (1, 2, 3, 4)], policy.wait(1, "7"), policy.wait(1, "60")
        ([2.0, 4.0, 8.0, 10.0], 7.0, 10.0)
        """
        asked = _retry_after_seconds(retry_after)
        chosen = asked if asked is not None else self.backoff_seconds * 2 ** (attempt - 1)
        return float(min(max(chosen, 0.0), self.max_wait_seconds))


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None if absent."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


@dataclass(frozen=True)
class JsonResponse:
    """A decoded answer and its headers (names lower-cased)."""

    url: str
    body: Any
    headers: Mapping[str, str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        raise InputError(
            f"{req.full_url} redirects ({code}) to {newurl}; circulate does not follow "
            "redirects, so credentials never go to another address: use the final address "
            "as the base URL (--base-url, or base_url in scheme.toml [source])"
        )


_OPENER = urllib.request.build_opener(_NoRedirect)


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing ``/``; plain http only to this machine.

    >>> check_base_url("https://bristol.example.org/")
    'https://bristol.example.org'
    >>> check_base_url("http://127.0.0.1:8080")
    'http://127.0.0.1:8080'
    """
    parts = urlsplit(base_url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"base URL {base_url!r} is not an http(s) address; give the platform's root, "
            "such as https://bristol.cyclos.example"
        )
    if parts.scheme == "http" and not local:
        raise ConfigurationError(
            f"base URL {base_url} is plain http: the access token would cross the network "
            "unencrypted; use its https:// address"
        )
    return base_url.rstrip("/")


def get_json(
    url: str,
    headers: Mapping[str, str],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> JsonResponse:
    """GET ``url`` and decode its JSON, retrying network errors, 408, 429 and 5xx.

    Raises
    ------
    ConfigurationError
        401 or 403: the credentials were refused.
    SourceUnavailable
        Still failing after ``policy.attempts`` tries.
    UnexpectedResponse
        Another 4xx, or an answer that is not JSON.
    """
    last = ""
    for attempt in range(1, policy.attempts + 1):
        retry_after: str | None = None
        request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
        try:
            with _OPENER.open(request, timeout=policy.timeout_seconds) as response:
                raw = response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            status = error.code
            error.close()
            if status in (401, 403):
                raise ConfigurationError(
                    f"{url} answered {status} {error.reason}: the credentials were refused. "
                    "Check the token (CIRCULATE_SOURCE_TOKEN_FILE or CIRCULATE_SOURCE_TOKEN) "
                    "is current, its access client is active, and its user may view every "
                    "transfer and user (an administrator); then run again"
                ) from None
            if status not in RETRY_STATUSES:
                raise UnexpectedResponse(
                    f"{url} answered {status} {error.reason}; check the base URL is the "
                    "platform's root (requests go to <base URL>/api/…) and that this "
                    "Cyclos version serves that path"
                ) from None
            retry_after = error.headers.get("Retry-After") if error.headers else None
            last = f"{status} {error.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            # Refused, reset, timed out, or a body shorter than its Content-Length.
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            last = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
            if isinstance(reason, socket.timeout | TimeoutError):
                last = f"no answer within {policy.timeout_seconds:g} s"
        else:
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise UnexpectedResponse(
                    f"{url} answered {len(raw):,} bytes that are not complete JSON "
                    f"({error.__class__.__name__} at byte {getattr(error, 'pos', '?')}); a proxy "
                    "or another service may be answering, or the body was cut short. Check "
                    "the base URL in a browser, then run again"
                ) from None
            return JsonResponse(url, body, answer_headers)
        if attempt < policy.attempts:
            wait = policy.wait(attempt, retry_after)
            if progress is not None:
                progress(f"{url}: {last}; try {attempt + 1} of {policy.attempts} in {wait:g} s")
            sleep(wait)
    raise SourceUnavailable(
        f"{url} did not answer after {policy.attempts} tries (last: {last}). Check the "
        "platform is up and reachable from this machine, then run again; nothing of this "
        "pull was kept, the next pull starts where the last complete one ended"
    )
