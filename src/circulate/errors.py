"""Errors that circulate reports to people: each says what went wrong and how to fix it."""


class CirculateError(Exception):
    """Base class; the CLI prints the message without a traceback and exits non-zero."""


class ConfigurationError(CirculateError):
    """A setting or environment variable is wrong."""


class InputError(CirculateError):
    """An input file or folder cannot be used."""


class AssertionsFailed(CirculateError):
    """Warehouse assertions returned offending rows; nothing was published."""


class ValidationFailed(CirculateError):
    """A critical expectation failed on the new batch; nothing was published."""


class RunLocked(CirculateError):
    """Another run holds the lock."""
