"""Logging set-up: one JSON object per line on stderr, for our loggers and the servers'."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, for our loggers and uvicorn's."""
    # Record attributes no line contains (RESERVED_ATTRS skips them): not collecting them
    # saves a stack walk and three look-ups per record, i.e. per request's access line
    # (the logging HOWTO's "Optimization" section names these switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OrjsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time"},
            # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ffb.access replaces it
    logging.getLogger("httpx").setLevel(logging.WARNING)
