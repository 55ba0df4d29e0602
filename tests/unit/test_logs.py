"""logs.JsonFormatter writes exactly the line python-json-logger's formatter writes."""

from __future__ import annotations

import logging
import sys

import pytest
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from logs import json_formatter


def reference() -> OrjsonFormatter:
    return OrjsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "asctime": "time"},
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def record(msg, args=(), exc_info=None, created=1_800_000_000.123, **extra) -> logging.LogRecord:
    """A record made at `created` (both formatters must see the same time)."""
    r = logging.LogRecord("ffb.access", logging.INFO, "edge.py", 1, msg, args, exc_info)
    r.created, r.msecs = created, (created - int(created)) * 1000
    r.__dict__.update(extra)
    return r


def failing() -> tuple:
    try:
        raise ValueError("boom")
    except ValueError:
        return sys.exc_info()


@pytest.mark.parametrize(
    "make",
    [
        lambda: record("request"),
        lambda: record(
            "request",
            method="GET",
            path="/api/expenses",
            status=200,
            duration_ms=1.25,
            request_id="abc",
            user_id=None,
            client="127.0.0.1",
        ),
        lambda: record("PostgREST unreachable: %s", ("TimeoutError",)),
        lambda: record("uvicorn says %s", ("hi",), color_message="\x1b[1mhi\x1b[0m", _hidden=1),
        lambda: record("unhandled error", exc_info=failing(), request_id="r1"),
        lambda: record({"event": "dict message", "n": 1}),
        lambda: record("tick", created=1_800_000_000.999),
        lambda: record("tick", created=1_800_000_001.001),
    ],
)
def test_the_fast_formatter_writes_the_reference_line(make):
    fast, slow = json_formatter(), reference()
    first, second = make(), make()
    assert fast.format(first) == slow.format(second)


def test_the_cached_time_stamp_follows_the_clock():
    fast, slow = json_formatter(), reference()
    for created in (1_800_000_000.5, 1_800_000_000.75, 1_800_000_001.0, 1_800_003_600.25):
        assert fast.format(record("t", created=created)) == slow.format(
            record("t", created=created)
        )
