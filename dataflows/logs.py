"""structlog, configured once: JSON lines on stderr. Never log account numbers,
names or amounts; log ids of rules, packs and counts."""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure(level: str = "info") -> None:
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
