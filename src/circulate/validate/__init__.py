"""Validation of each new batch (Great Expectations) and of the warehouse (SQL assertions).

``circulate.validate.run.validate_batch`` runs both and returns a
:class:`~circulate.validate.store.ValidationReport`; the nightly pipeline stores it in
``audit.validation_results`` and blocks publishing on a critical failure;
``circulate validate`` re-runs it read-only on the published warehouse. This package
module imports nothing, so reading stored results never pays for importing GX.
"""
