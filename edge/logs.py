"""structlog configured once: JSON lines on stderr (journald keeps them), UTC ISO timestamps;
the libraries' own logging (asyncua, pymodbus, paho) goes out in the same lines.

Every line about a device carries ``device=`` and, where one is involved, ``point=``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_stdlib_handler: logging.Handler | None = None


def configure(*, level: str = "info", json: bool = True) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # The libraries' own logging (asyncua, pymodbus, paho) in the same JSON lines, named by
    # ``logger``: left to Python's last-resort handler their warnings came out as bare text
    # among the JSON. Warnings and above only, whatever the daemon's level: asyncua's and
    # pymodbus's info and debug lines come by the hundred a second.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *processors]))
    global _stdlib_handler
    root = logging.getLogger()
    if _stdlib_handler is not None:       # configured again (tests, bench): one handler
        root.removeHandler(_stdlib_handler)
    _stdlib_handler = handler
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))


def get(name: str) -> Any:
    return structlog.get_logger(name)
