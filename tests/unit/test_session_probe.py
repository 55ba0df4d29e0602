"""migrate.keeps_its_session tells a transaction pooler from a session (no database: the
pooler is simulated, one backend pid per transaction)."""

from __future__ import annotations

import itertools
from collections import deque
from contextlib import contextmanager

import pytest

import migrate


class Pool:
    """Backends handed to client connections: per session, or per transaction in some order."""

    def __init__(self, mode: str, backends: int = 2):
        self.mode = mode
        self.idle = deque(range(100, 100 + backends))
        self.sessions = itertools.count(200)

    def backend_for(self, conn: FakeConn) -> int:
        if self.mode == "session":
            return conn.session_pid
        if self.mode == "lifo":
            pid = self.idle.pop()
            self.idle.append(pid)
        else:  # fifo / round robin: take the head, give it back at the tail
            pid = self.idle.popleft()
            self.idle.append(pid)
        return pid


class FakeConn:
    def __init__(self, pool: Pool):
        self.pool = pool
        self.session_pid = next(pool.sessions)
        self.result = 0

    def cursor(self):
        conn = self

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, statement):
                assert statement == "select pg_backend_pid()"
                conn.result = conn.pool.backend_for(conn)

            def fetchone(self):
                return (conn.result,)

        return Cursor()


def simulate(monkeypatch, pool: Pool) -> bool:
    @contextmanager
    def fake_connect(dsn, **kwargs):
        assert kwargs["autocommit"] is True  # each probe is its own transaction
        yield FakeConn(pool)

    monkeypatch.setattr(migrate, "connect", fake_connect)
    return migrate.keeps_its_session("postgresql://x")


def test_a_session_keeps_its_backend(monkeypatch):
    assert simulate(monkeypatch, Pool("session"))


@pytest.mark.parametrize("order", ["lifo", "fifo"])
@pytest.mark.parametrize("backends", [1, 2, 3, 5])
def test_a_transaction_pooler_is_recognised_whatever_its_pool_order(monkeypatch, order, backends):
    assert not simulate(monkeypatch, Pool(order, backends))
