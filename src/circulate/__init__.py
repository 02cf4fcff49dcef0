"""circulate: nightly evidence that a local currency keeps money circulating."""

__version__ = "0.1.0"
