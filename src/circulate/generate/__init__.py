"""Synthetic local-currency schemes with exact ground truth.

``generate_scheme(out_dir, seed=…, transactions=…)`` writes daily export files, accounts
and areas for a Bristol-Pound-like city and returns the :class:`GroundTruth` it booked.
"""

from circulate.generate.scheme import generate_scheme
from circulate.generate.truth import GroundTruth, PeriodTotals

__all__ = ["GroundTruth", "PeriodTotals", "generate_scheme"]
