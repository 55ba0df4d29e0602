"""Password hashes: bcrypt (the `bcrypt` package), off the event loop.

Every hash the legacy and earlier versions of this service wrote stays valid: `$2a$`
(bcryptjs, the legacy's Node code), `$2b$` (passlib/bcrypt) and `$2y$` (PHP, htpasswd)
all verify, at whatever cost they were made with. New hashes are `$2b$` at BCRYPT_ROUNDS.

bcrypt reads only the first 72 bytes of a password. passlib and bcryptjs cut longer ones
silently while bcrypt 5 refuses them, so `_secret` cuts them the same way: a password of
up to 128 characters that worked before still works.

`PasswordHasher` runs bcrypt in a small niced process pool: a burst of logins never blocks
the event loop and leaves CPU for everything else.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import bcrypt

import metrics

BCRYPT_MAX_BYTES = 72
T = TypeVar("T")


def _secret(password: str) -> bytes:
    return password.encode("utf-8")[:BCRYPT_MAX_BYTES]


def hash_password(password: str, rounds: int) -> str:
    """A new `$2b$` hash at cost `rounds` (blocking: call it off the event loop)."""
    return bcrypt.hashpw(_secret(password), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches; a malformed stored hash is a failed login, not a 500."""
    try:
        return bcrypt.checkpw(_secret(password), password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


def _init_worker(nice: int) -> None:
    if nice:
        os.nice(nice)
    # A worker killed outright (SIGKILL, gunicorn's timeout) never shuts its pool down;
    # this process then leaves with it instead of waiting for work forever.
    owner = multiprocessing.parent_process()
    if owner is not None:
        threading.Thread(target=_exit_after, args=(owner,), daemon=True).start()


def _exit_after(owner: multiprocessing.process.BaseProcess) -> None:
    owner.join()
    os._exit(0)


class PasswordHasher:
    """bcrypt off the event loop, at most `concurrency` hashes at once per worker, in
    processes with a lower CPU priority so request handling keeps the CPU under a storm."""

    NICE = 10

    def __init__(self, rounds: int, concurrency: int):
        # forkserver with this module preloaded: a new bcrypt process is a cheap fork, not a
        # fresh interpreter importing the app's modules (0.4 s per worker start)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self._pool = ProcessPoolExecutor(
            max_workers=concurrency,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.NICE,),
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._rounds = rounds
        self._dummy_hash: str | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        metrics.BCRYPT_QUEUE.inc()
        try:
            async with self._slots:
                return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            metrics.BCRYPT_QUEUE.dec()

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password, self._rounds)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Unknown users are checked against a dummy hash: same answer, same time."""
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(uuid.uuid4().hex)
            await self._run(verify_password, password, self._dummy_hash)
            return False
        return await self._run(verify_password, password, password_hash)

    async def warm_up(self) -> None:
        self._dummy_hash = await self.hash(uuid.uuid4().hex)

    async def close(self) -> None:
        """Stop the bcrypt processes and wait for them. uvicorn ends a gunicorn worker by
        re-raising SIGTERM, which skips atexit: a pool left to stop in the background
        outlived its worker, keeping the forkserver and resource tracker alive too."""
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
