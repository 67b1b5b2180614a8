"""structlog setup: JSON lines in production, readable console output in a terminal.

Context (service, topic, partition, offset, event_id, run_id, reference) is bound with
structlog.contextvars and cleared after each message by the worker loop.
"""

from __future__ import annotations

import logging
import sys

import structlog


class _StderrLogger:
    """Writes each line to whatever sys.stderr is at that moment. structlog's PrintLogger keeps the
    stream it was created with, which breaks once a test harness swaps and closes stderr."""

    @classmethod
    def factory(cls, *_args) -> _StderrLogger:
        return cls()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(service: str, log_format: str = "auto", level: str = "INFO") -> None:
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"
    renderer = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=_StderrLogger.factory,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # kafka-python logs through the standard library; keep its warnings, drop its chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
