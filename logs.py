"""Logging set-up: one JSON object per line on stderr, for our loggers and the servers'."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's orjson formatter, the same line with less work per record.

    Every request writes one access line, so the formatter is on the hot path: a plain
    record (a string message, no exception or stack) is built in one pass over its
    attributes, and the time stamp's text is made once per second instead of once per
    record. Anything else (a dict message, exc_info, stack_info, formatter options this
    fast path does not implement) goes through the library's own `format`.
    tests/unit/test_logs.py checks that both give the same line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: int | None = None
        self._stamp = ""
        self._fields = [(f, self._get_rename(f)) for f in self._required_fields]
        self._simple = not (
            self.defaults
            or self.static_fields
            or self.timestamp
            or self.rename_fields_keep_missing
            or self.prefix
            or self.json_indent
            or self.datefmt
            or type(self).process_log_record is not OrjsonFormatter.process_log_record
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt or not self.default_msec_format:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:  # localtime changes on whole seconds only
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._stamp, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        if (
            not self._simple
            or isinstance(record.msg, dict)
            or record.exc_info
            or record.exc_text
            or record.stack_info
        ):
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        attrs = record.__dict__
        data = {renamed: attrs.get(name) for name, renamed in self._fields}
        skip, rename = self._skip_fields, self.rename_fields
        for key, value in attrs.items():
            if key not in skip and not key.startswith("_"):
                data[rename.get(key, key)] = value
        return self.jsonify_log_record(data)


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "asctime": "time"},
        # uvicorn adds an ANSI-coloured copy of its message; the plain one is enough
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, for our loggers and uvicorn's."""
    # Record attributes no line contains (RESERVED_ATTRS): skipping them saves a stack
    # walk and three look-ups per record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ffb.access replaces it
    logging.getLogger("httpx").setLevel(logging.WARNING)
