"""A scheme's ``[source]`` (in its ``scheme.toml``) and the credentials to reach it.

The credentials never come from the command line or ``scheme.toml``: the environment
variable ``CIRCULATE_SOURCE_TOKEN`` or the file ``CIRCULATE_SOURCE_TOKEN_FILE`` names
(:attr:`circulate.settings.Settings.source_token_file`, readable by its owner only).
"""

from __future__ import annotations

import base64
import os
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from circulate.errors import ConfigurationError
from circulate.ingest.adapters import SCHEME_FILE
from circulate.pull.http import check_base_url

PLATFORMS = ("cyclos",)
AUTH_KINDS = ("token", "basic")
TOKEN_VARIABLE = "CIRCULATE_SOURCE_TOKEN"
TOKEN_FILE_VARIABLE = "CIRCULATE_SOURCE_TOKEN_FILE"


@dataclass(frozen=True)
class Source:
    """Where a scheme's transfers come from (``[source]`` of its ``scheme.toml``).

    Attributes
    ----------
    platform
        ``cyclos``.
    base_url
        The platform's root; requests go to ``<base_url>/api/…``.
    auth
        ``token``: an access-client token in the ``Access-Client-Token`` header; ``basic``:
        ``user:password`` sent as HTTP basic authentication.
    page_size
        Objects asked for per page.
    user_groups
        Groups (internal names) whose users are listed; empty: every user the token sees.
    first_day
        Where the first pull starts when none is on record (otherwise ``--since``).
    """

    platform: str
    base_url: str
    auth: str = "token"
    page_size: int = 500
    user_groups: tuple[str, ...] = ()
    first_day: date | None = None


class Secret:
    """A credential that never shows in a repr, a message or a log line."""

    def __init__(self, value: str, origin: str) -> None:
        self._value = value
        #: Where it came from (a variable or file name), for messages.
        self.origin = origin

    def __repr__(self) -> str:
        return f"Secret(from {self.origin})"

    __str__ = __repr__

    def headers(self, auth: str) -> dict[str, str]:
        """The request headers that carry it."""
        if auth == "basic":
            encoded = base64.b64encode(self._value.encode("utf-8")).decode("ascii")
            return {"Authorization": f"Basic {encoded}"}
        return {"Access-Client-Token": self._value}


def read_source(inbox: Path) -> Source | None:
    """The ``[source]`` table of ``inbox/scheme.toml``; None when there is none.

    Raises
    ------
    ConfigurationError
        Naming the file, the key and the values it takes.
    """
    path = inbox / SCHEME_FILE
    if not path.is_file():
        return None
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("source")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path}: is not valid TOML ({error}); fix the syntax") from error
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigurationError(f'{path}: [source] must be a table, e.g. base_url = "https://…"')
    return _source(path, table)


def _source(path: Path, table: dict[str, Any]) -> Source:
    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(f"{path}: [source] {message}")

    platform = str(table.get("platform", "cyclos")).lower()
    if platform not in PLATFORMS:
        raise fail(f"platform = {platform!r} is unknown; use one of {', '.join(PLATFORMS)}")
    base_url = table.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        raise fail('needs base_url = "https://…", the platform\'s root address')
    auth = str(table.get("auth", "token")).lower()
    if auth not in AUTH_KINDS:
        raise fail(f"auth = {auth!r} is unknown; use token or basic")
    page_size = table.get("page_size", 500)
    if not isinstance(page_size, int) or not 1 <= page_size <= 10_000:
        raise fail(f"page_size = {page_size!r} must be a whole number from 1 to 10000")
    groups = table.get("user_groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise fail('user_groups must be a list of group internal names, e.g. ["consumers"]')
    first_day = table.get("first_day")
    if first_day is not None and not isinstance(first_day, date):
        try:
            first_day = date.fromisoformat(str(first_day))
        except ValueError as error:
            raise fail(f"first_day = {first_day!r} is not a date such as 2025-01-01") from error
    return Source(
        platform=platform,
        base_url=check_base_url(base_url),
        auth=auth,
        page_size=page_size,
        user_groups=tuple(groups),
        first_day=first_day,
    )


def load_secret(token_file: Path | None) -> Secret:
    """The credential: ``CIRCULATE_SOURCE_TOKEN``, else the file ``token_file``.

    Raises
    ------
    ConfigurationError
        When neither is set, the file is missing or empty, or others may read it.
    """
    value = os.environ.get(TOKEN_VARIABLE, "").strip()
    if value:
        return Secret(value, TOKEN_VARIABLE)
    if token_file is None:
        raise ConfigurationError(
            f"No credentials for the platform: put the access token in a file readable only "
            f"by the service's user (chmod 600) and set {TOKEN_FILE_VARIABLE} to its path, "
            f"or set {TOKEN_VARIABLE}; never pass it on the command line"
        )
    try:
        mode = token_file.stat().st_mode
        text = token_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigurationError(
            f"{TOKEN_FILE_VARIABLE} names {token_file}, which cannot be read "
            f"({error.strerror}); create it with the access token and chmod 600"
        ) from error
    if mode & 0o077:
        raise ConfigurationError(
            f"{token_file} may be read by other users (mode {mode & 0o777:o}); "
            f"run chmod 600 {token_file}"
        )
    if not text:
        raise ConfigurationError(f"{token_file} is empty; write the access token into it")
    return Secret(text, str(token_file))
