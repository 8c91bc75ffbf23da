"""Ed25519 signature checks off the event loop, a batch per worker trip.

Checking a record's signature is the box's most expensive step per push
(about 80-200 µs of libsodium). PyNaCl's cffi calls release the GIL, so a
couple of worker threads check signatures on the other core while the event
loop decrypts and decodes the next frames. Requests that arrive while the
workers are busy wait together and go to a worker as one batch, so the cost
of a thread hop is paid per batch, not per record; each worker has its next
batch queued behind the one it checks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import nacl.bindings
from nacl.exceptions import BadSignatureError

_Request = tuple[bytes, bytes, bytes]  # public key, message, signature
# Called with the verdict, in the order the checks were asked; None: never checked
# (the checker closed first).
Verdict = Callable[[bool | None], None]
log = logging.getLogger(__name__)

MAX_BATCH = 256
# Batches handed to the pool per worker. With one each, a worker that finished
# waited for the event loop to hear of it before it got the next batch, and under
# load a loop turn takes milliseconds: records waited ~23 ms for their check in the
# ingest benchmark, ~19 ms with two (docs/benchmarks.md).
BATCHES_PER_WORKER = 2


def signature_holds(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is `public_key`'s Ed25519 signature of `message`."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def _check_all(requests: list[_Request]) -> list[bool]:
    return [signature_holds(*request) for request in requests]


class _Batch:
    def __init__(self, items: list[tuple[_Request, Verdict]]) -> None:
        self.items = items
        self.results: list[bool] | None = None


class SignatureChecker:
    """Checks signatures in `workers` threads; `check` is awaited from one event loop.

    Answers come back in the order the checks were asked for, whichever worker
    finishes first: pushes of one connection then reach the committer, and the
    log, in the order the phone sent them.
    """

    def __init__(self, workers: int = 2) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._waiting: list[tuple[_Request, Verdict]] = []
        self._running: deque[_Batch] = deque()  # oldest first
        self._dispatch_soon = False

    async def check(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return await self.check_soon(public_key, message, signature)

    def check_soon(
        self, public_key: bytes, message: bytes, signature: bytes
    ) -> asyncio.Future[bool]:
        """`check` without a coroutine: asked now, the future gets the verdict (in the
        order asked, as `check`'s)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.check_then(public_key, message, signature, functools.partial(_settle, future))
        return future

    def check_then(
        self, public_key: bytes, message: bytes, signature: bytes, then: Verdict
    ) -> None:
        """Ask for a check now; `then` is called on the event loop with the verdict, in
        the order asked, straight from the batch's own callback (no loop turn, no
        future per check: the push path, peer/chain.py)."""
        self._waiting.append(((public_key, message, signature), then))
        if not self._dispatch_soon:
            # Once per loop turn, after every check asked in it (the pushes of one
            # bundle arrive in one turn): one batch per worker, not one thread hop
            # per record while the workers happen to be idle.
            self._dispatch_soon = True
            asyncio.get_running_loop().call_soon(self._dispatch_now)

    def _dispatch_now(self) -> None:
        self._dispatch_soon = False
        self._dispatch()

    def _dispatch(self) -> None:
        limit = self._workers * BATCHES_PER_WORKER
        while self._waiting and len(self._running) < limit:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ed25519")
            # Share what waits among the idle workers; with none idle, among the
            # places in the pool's queue (a worker's next batch, started as soon as
            # the worker is done).
            running = len(self._running)
            idle = self._workers - running if running < self._workers else limit - running
            size = min(MAX_BATCH, -(-len(self._waiting) // idle))
            batch = _Batch(self._waiting[:size])
            self._waiting = self._waiting[size:]
            self._running.append(batch)
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(self._pool, _check_all, [r for r, _ in batch.items])
            done.add_done_callback(functools.partial(self._finished, batch))

    def _finished(self, batch: _Batch, outcome: asyncio.Future[list[bool]]) -> None:
        if outcome.cancelled() or outcome.exception() is not None:
            batch.results = [False] * len(batch.items)  # a failed check is not a valid signature
        else:
            batch.results = outcome.result()
        while self._running and self._running[0].results is not None:
            head = self._running.popleft()
            assert head.results is not None
            for (_, then), holds in zip(head.items, head.results, strict=True):
                _tell(then, holds)
        self._dispatch()

    def close(self) -> None:
        waiting, self._waiting = self._waiting, []
        for _, then in waiting:
            _tell(then, None)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _tell(then: Verdict, holds: bool | None) -> None:
    try:
        then(holds)
    except Exception:  # one asker's fault: the others still get their verdicts
        log.exception("a signature verdict's callback failed")


def _settle(future: asyncio.Future[bool], holds: bool | None) -> None:
    if future.done():
        return
    if holds is None:
        future.cancel()
    else:
        future.set_result(holds)
