"""Redact personal data from free-text columns: e-mail addresses, UK phone numbers, postcodes.

The patterns are RE2 (DuckDB's regex engine) and Python ``re`` compatible, so the same
text is redacted inside DuckDB at ingestion and in the doctests below. They favour
recall: a false hit costs a redacted word, a miss leaks a person.
"""

from __future__ import annotations

import re

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# +44 or 0, then 9-10 digits in any grouping of spaces, dashes or brackets.
PHONE = r"(\+44\s?\(?0?\)?|\(?0)\d([\s()-]?\d){8,9}"
POSTCODE = r"\b[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s?[0-9][A-Za-z]{2}\b"

# Applied in this order: an e-mail address may contain digits that look like a phone.
PATTERNS: tuple[tuple[str, str], ...] = (
    ("email", EMAIL),
    ("phone", PHONE),
    ("postcode", POSTCODE),
)


def redact(text: str) -> tuple[str, int]:
    """Redact one string with Python's ``re``; return the text and the number of hits.

    >>> redact("call 07700 900123 or mail jo.bloggs@example.org, BS1 4DJ")
    ('call [redacted phone] or mail [redacted email], [redacted postcode]', 3)
    >>> redact("+44 (0)117 496 0000")
    ('[redacted phone]', 1)
    >>> redact("Hartcliffe & Withywood")
    ('Hartcliffe & Withywood', 0)
    """
    hits = 0
    for name, pattern in PATTERNS:
        text, n = re.subn(pattern, f"[redacted {name}]", text)
        hits += n
    return text, hits


def redaction_sql(column: str) -> tuple[str, str]:
    """SQL expressions (redacted text, hit count) for a quoted column name.

    One ``regexp_matches`` with all patterns guards the replacements, so the common clean
    value costs a single regex scan.

    >>> expr, hits = redaction_sql('"memo"')
    >>> expr.count("regexp_replace"), hits.count("regexp_extract_all")
    (3, 3)
    """
    redacted = column
    counts = []
    for name, pattern in PATTERNS:
        literal = _literal(pattern)
        counts.append(f"len(regexp_extract_all({column}, {literal}))")
        redacted = f"regexp_replace({redacted}, {literal}, '[redacted {name}]', 'g')"
    combined = _literal("|".join(f"({pattern})" for _, pattern in PATTERNS))
    guard = f"{column} is not null and regexp_matches({column}, {combined})"
    return (
        f"case when {guard} then {redacted} else {column} end",
        f"case when {guard} then {' + '.join(counts)} else 0 end",
    )


def _literal(pattern: str) -> str:
    return "'" + pattern.replace("'", "''") + "'"
