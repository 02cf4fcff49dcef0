"""Errors that circulate reports to people: each says what went wrong and how to fix it.

Every expected outcome that stops a command is one of these. The CLI prints its message
(what happened and the next step) without a traceback and exits with the class's
``exit_code``; the codes are documented in README "Exit codes" and docs/operations.md.

======  ===========================================================================
code    meaning
======  ===========================================================================
0       done (published, or nothing new to publish)
1       ``circulate validate``: warnings only; ``circulate docs --check``: stale
2       bad input or settings: a file, folder, option or environment variable
3       the night is blocked by a critical data check (``circulate review`` says why)
4       a warehouse assertion failed: a defect in circulate, please report it
5       another circulate run holds the lock
70      an unexpected error (a defect): the traceback is in the log, or use ``--debug``
======  ===========================================================================
"""

#: Exit code of an error that is not a :class:`CirculateError` (BSD's EX_SOFTWARE).
UNEXPECTED_ERROR_EXIT_CODE = 70


class CirculateError(Exception):
    """Base class; the CLI prints the message without a traceback and exits non-zero."""

    exit_code = 2


class ConfigurationError(CirculateError):
    """A setting or environment variable is wrong."""


class InputError(CirculateError):
    """An input file or folder cannot be used."""


class ValidationFailed(CirculateError):
    """A critical expectation failed on the new batch; nothing was published."""

    exit_code = 3


class AssertionsFailed(CirculateError):
    """Warehouse assertions returned offending rows; nothing was published.

    Bad input is caught at ingest or validation first, so this means a defect in circulate.
    """

    exit_code = 4


class RunLocked(CirculateError):
    """Another run holds the lock."""

    exit_code = 5
