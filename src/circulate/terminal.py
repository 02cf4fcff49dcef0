"""What a command prints to the terminal: progress lines and one closing message.

The nightly flow's progress reaches the terminal through Prefect's console log handler,
together with Prefect's own account of a failure (a traceback from the task, another from
the flow, the failed states) and other libraries' chatter. An operator needs the progress
and then circulate's message, which says what happened and what to do next; tracebacks
stay in Prefect's logs (its API log handler is left alone) and behind ``--debug``.
"""

from __future__ import annotations

import logging

#: The loggers the flow's own progress lines come from (``get_run_logger``).
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
#: Prefect's closing words on a failed task or flow (the CLI's message replaces them) and
#: its link to the run in a temporary server's UI, which is gone when the command ends.
_NOT_FOR_THE_TERMINAL = ("Finished in state Failed", "Finished in state Crashed", "View at ")


class ProgressOnly(logging.Filter):
    """Let through the run's progress lines only.

    >>> keep = ProgressOnly().filter
    >>> def record(name, level, message, exc_info=None):
    ...     return logging.LogRecord(name, level, "", 0, message, None, exc_info)
    >>> keep(record("prefect.task_runs", logging.INFO, "building marts.network_nodes"))
    True
    >>> keep(record("prefect.task_runs", logging.ERROR, "Task run failed with exception"))
    False
    >>> keep(record("prefect.flow_runs", logging.INFO, "Finished in state Failed('x')"))
    False
    >>> keep(record("great_expectations.data_context", logging.INFO, "Created directory"))
    False
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.exc_info:
            return False
        if not record.name.startswith(_RUN_LOGGERS):
            return False
        return not record.getMessage().startswith(_NOT_FOR_THE_TERMINAL)


def quiet_console_logs() -> None:
    """Filter every handler that writes to the terminal with :class:`ProgressOnly`.

    Call it after Prefect has configured logging (on import); handlers that write
    elsewhere (Prefect's API log, files) keep every record, tracebacks included.
    """
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            terminal = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if terminal and not any(isinstance(f, ProgressOnly) for f in handler.filters):
                handler.addFilter(ProgressOnly())
