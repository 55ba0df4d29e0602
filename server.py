"""The HTTP server side of the Procfile's gunicorn (`worker_class` in gunicorn.conf.py).

uvicorn's worker as gunicorn runs it, with three changes for a service that may face the
internet without a proxy in front:

- no `server: uvicorn` header (it only tells a prober what to try);
- no X-Forwarded-* handling by uvicorn: the app decides the client address itself from
  TRUSTED_PROXY_HOPS (main.forwarded_client), so FORWARDED_ALLOW_IPS no longer matters;
- a header timeout: a connection must finish each request's headers within
  `header_timeout` seconds of opening (or of the first byte of a keep-alive request),
  else it is closed. uvicorn has none: a client sending one header byte now and then
  (slowloris) held its connection forever. gunicorn's `worker_connections` becomes
  uvicorn's `limit_concurrency`: past it, new requests get 503 instead of more memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.workers import UvicornWorker

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools protocol that closes connections whose request headers are too slow."""

    header_timeout = DEFAULT_HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(
                self.header_timeout, self._headers_too_slow
            )

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()  # a connection that never sends a request is closed too

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_deadline()  # the next request on a keep-alive connection

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def worker_class(header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS) -> type[UvicornWorker]:
    """The gunicorn worker class, with `header_timeout` seconds for request headers."""
    protocol = type(
        "HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout}
    )

    class Worker(UvicornWorker):
        CONFIG_KWARGS = {
            **UvicornWorker.CONFIG_KWARGS,
            "http": protocol,
            "server_header": False,
            "proxy_headers": False,
        }

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.limit_concurrency = self.cfg.worker_connections

    return Worker
