"""Metrics computed in Python (tracing money, graph algorithms), run as warehouse models.

Each metrics module exposes ``MODELS``: a list of :class:`PythonModel` that the runner
orders among the SQL models by what they read.
"""

from __future__ import annotations

from circulate.warehouse.runner import PythonModel


def python_models() -> list[PythonModel]:
    """Every table the nightly build makes in Python (the runner decides the order)."""
    models: list[PythonModel] = []
    # Imported here so igraph and numba load only when the warehouse is built.
    from circulate.metrics import flow_cells, network

    models.extend(network.MODELS + flow_cells.MODELS)
    from circulate.metrics import (
        balance_checkpoint,
        circulation,
        impact_build,
        participation,
        period_activity,
    )

    models.extend(
        circulation.MODELS
        + participation.MODELS
        + impact_build.MODELS
        + balance_checkpoint.MODELS
        + period_activity.MODELS
    )
    return models
