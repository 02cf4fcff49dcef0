"""Keyed pseudonyms for account ids (HMAC-SHA256), so raw ids never enter the warehouse."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from circulate.errors import ConfigurationError

KEY_ENV = "CIRCULATE_PSEUDONYM_KEY"
PREFIX = "acct_"
DIGEST_CHARS = 20  # 80 bits: collision-free in practice for millions of accounts


def load_key(key_file: Path) -> bytes:
    """Return the pseudonym key from ``CIRCULATE_PSEUDONYM_KEY`` or ``key_file``.

    The key file is created with a random key (mode 0600) on first use. Back it up: losing
    it, or changing it, gives every account a new pseudonym and breaks history.
    """
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        if len(from_env) < 16:
            raise ConfigurationError(f"{KEY_ENV} is shorter than 16 characters: use a long key.")
        return from_env.encode("utf-8")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32))
    key = key_file.read_text(encoding="utf-8").strip()
    if len(key) < 16:
        raise ConfigurationError(f"{key_file}: the key is shorter than 16 characters.")
    return key.encode("utf-8")


def pseudonymise(raw_id: str, key: bytes) -> str:
    """Stable pseudonym of one raw account id.

    >>> key = b"0123456789abcdef"
    >>> pseudonymise("BUS-00042", key) == pseudonymise("BUS-00042", key)
    True
    >>> pseudonymise("BUS-00042", key) == pseudonymise("BUS-00043", key)
    False
    >>> pseudonymise("BUS-00042", key)[:5], len(pseudonymise("BUS-00042", key))
    ('acct_', 25)
    """
    digest = hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:DIGEST_CHARS]
