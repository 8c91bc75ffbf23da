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
from typing import Any

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
        # (frame, future, soon): `put`'s future gets the write's future; `put_soon`'s
        # (soon) ends as the write itself does.
        self._waiting: deque[tuple[Frame, asyncio.Future[Any], bool]] = deque()
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
        placed: asyncio.Future[asyncio.Future[None]] = self._wait(frame, soon=False)
        return await asyncio.shield(placed)

    def put_soon(self, frame: Frame) -> asyncio.Future[None]:
        """`put` without a coroutine: the frame takes its place in line now; the future
        ends once it is written (or fails as its write did, or if it never left)."""
        written = self.put_now(frame)
        if written is not None:
            return written
        done: asyncio.Future[None] = self._wait(frame, soon=True)
        return done

    def _wait(self, frame: Frame, *, soon: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((frame, waiter, soon))
        if self._drain is None:
            self._drain = loop.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        try:
            while self._waiting:
                frame, waiter, soon = self._waiting[0]
                # Behind the frame that read its proof, the rest of a commit's acks
                # need none: stamped here, without a coroutine each.
                stamped = self._heads.stamp_now(frame)
                if stamped is None:
                    try:
                        stamped = await self._heads.stamp(frame, self._run_read)
                    except Exception:  # sent without its proof: the phone will not trust it
                        log.exception("no consistency proof for a %s", frame.type)
                        stamped = frame
                self._waiting.popleft()
                self._stamped()
                written = self._queue(stamped)
                if soon:
                    written.add_done_callback(functools.partial(_copy_outcome, waiter))
                elif not waiter.done():
                    waiter.set_result(written)
        finally:
            self._drain = None
            while self._waiting:  # cancelled (the connection is going): nothing more leaves
                _, waiter, _ = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(ConnectionResetError("the connection closed"))
                    waiter.exception()


def _copy_outcome(done: asyncio.Future[None], written: asyncio.Future[None]) -> None:
    if done.done():
        return
    failure = ConnectionResetError("cancelled") if written.cancelled() else written.exception()
    if failure is not None:
        done.set_exception(failure)
    else:
        done.set_result(None)
