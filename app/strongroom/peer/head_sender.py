"""Head-bearing frames (acks, history pages) leave a connection in chain order.

Each such frame carries a consistency proof from the head sent before it on
the session (head_chain.py), so the order the frames are stamped in must be
the order they reach the outbox. Most need no read of the log: every ack of a
group commit after the first carries the same head. Those are stamped and
queued at once, in the caller's turn of the event loop, so the acks of one
commit leave together in one bundle. A frame whose proof must be read waits
for it in a drain task; frames arriving meanwhile wait behind it in order and
are stamped together once it has its proof (one read per commit, not one loop
turn per frame behind a lock).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable

from strongroom.peer.frames import Frame
from strongroom.peer.head_chain import HeadChain
from strongroom.peer.log_proofs import RunRead

log = logging.getLogger(__name__)

Queue = Callable[[Frame], "asyncio.Future[None]"]


class HeadSender:
    def __init__(
        self,
        heads: HeadChain,
        run_read: RunRead,
        queue: Queue,
        stamped: Callable[[], None],
    ) -> None:
        """`queue` puts a frame in the outbox at once and returns its write's future;
        `stamped` is called after each frame is stamped (the phone-ahead check)."""
        self._heads = heads
        self._run_read = run_read
        self._queue = queue
        self._stamped = stamped
        self._waiting: deque[tuple[Frame, asyncio.Future[asyncio.Future[None]]]] = deque()
        self._drain: asyncio.Task[None] | None = None

    def put_now(self, frame: Frame) -> asyncio.Future[None] | None:
        """`put` when it need not wait: the frame stamped and queued, its write's
        future returned; None (nothing done) when it must wait for a proof."""
        if self._drain is None:
            stamped = self._heads.stamp_now(frame)
            if stamped is not None:
                self._stamped()
                return self._queue(stamped)
        return None

    async def put(self, frame: Frame) -> asyncio.Future[None]:
        """Stamp `frame` and queue it behind every head frame put before it; returns
        the future of its write."""
        written = self.put_now(frame)
        if written is not None:
            return written
        return await asyncio.shield(self._wait(frame))

    def put_soon(self, frame: Frame) -> asyncio.Future[None]:
        """`put` without a coroutine: the frame takes its place in line now; the future
        ends once it is written (or fails as its write did, or if it never left)."""
        written = self.put_now(frame)
        if written is not None:
            return written
        placed = self._wait(frame)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        placed.add_done_callback(functools.partial(_when_written, done))
        return done

    def _wait(self, frame: Frame) -> asyncio.Future[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        placed: asyncio.Future[asyncio.Future[None]] = loop.create_future()
        self._waiting.append((frame, placed))
        if self._drain is None:
            self._drain = loop.create_task(self._run())
        return placed

    async def _run(self) -> None:
        try:
            while self._waiting:
                frame, placed = self._waiting[0]
                try:
                    frame = await self._heads.stamp(frame, self._run_read)
                except Exception:  # sent without its proof: the phone will not trust it
                    log.exception("no consistency proof for a %s", frame.type)
                self._waiting.popleft()
                self._stamped()
                written = self._queue(frame)
                if not placed.done():
                    placed.set_result(written)
        finally:
            self._drain = None
            while self._waiting:  # cancelled (the connection is going): nothing more leaves
                _, placed = self._waiting.popleft()
                if not placed.done():
                    placed.set_exception(ConnectionResetError("the connection closed"))
                    placed.exception()


def _when_written(done: asyncio.Future[None], placed: asyncio.Future[asyncio.Future[None]]) -> None:
    """`done` ends as the write of the frame `placed` queued (or as `placed` failed)."""
    failure: BaseException | None
    if placed.cancelled():
        failure = ConnectionResetError("the connection closed")
    else:
        failure = placed.exception()
    if failure is not None:
        if not done.done():
            done.set_exception(failure)
        return
    placed.result().add_done_callback(functools.partial(_copy_outcome, done))


def _copy_outcome(done: asyncio.Future[None], written: asyncio.Future[None]) -> None:
    if done.done():
        return
    failure = ConnectionResetError("cancelled") if written.cancelled() else written.exception()
    if failure is not None:
        done.set_exception(failure)
    else:
        done.set_result(None)
