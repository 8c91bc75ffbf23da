"""A push's waiting steps run by done-callbacks, not by a task of its own.

A push is three waits: its signature check, its group commit, the write of its
ack. Run as a task, each record cost a task, four task steps, a shield and the
futures between them on the event loop (py-spy: ~7 loop callbacks per record).
Here the session's CheckSignature and Commit actions are started at once and
their `then` is called from the future's done-callback; the ack takes its place
in line in the same callback (HeadSender.put_soon: at once, or behind an ack
that waits for its consistency proof). The slot the action holds (Connection's
back-pressure) is released once the last frame it sent is written, as the task
released it once its `send` returned.

Anything else the continuation asks for (a read, the pairing gate, a close) is
handed to the connection's own `execute` in a task, as before, which then
releases the slot. Order is kept: the
checker's verdicts and the committer's outcomes arrive in the order asked, and
done-callbacks run in the order their futures finish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from strongroom.archive.committer import Committed, GroupCommitter
from strongroom.peer.actions import Action, CheckSignature, Commit, Send, request_of
from strongroom.peer.frames import ErrorCode, Frame, error_frame
from strongroom.peer.signatures import SignatureChecker

log = logging.getLogger(__name__)

Step = CheckSignature | Commit


class Glue(Protocol):
    """What the chain needs of its Connection."""

    def send_now(self, frame: Frame) -> asyncio.Future[None]: ...
    def finish_in_task(self, actions: list[Action], release: Callable[[], None]) -> None: ...
    def after_actions(self) -> None: ...


class ActionChain:
    def __init__(
        self,
        glue: Glue,
        signatures: SignatureChecker,
        committer: GroupCommitter,
        release: Callable[[], None],
    ) -> None:
        self._glue = glue
        self._signatures = signatures
        self._committer = committer
        self._release = release  # gives back one of the connection's slots
        # Writes the outbox has yet to finish -> slots to give back once each is done.
        self._held: dict[asyncio.Future[None], int] = {}
        # The connection's event loop, for the committer (asked once, not per push).
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, action: Step) -> None:
        """Run `action` and what follows it; the caller has taken a slot for it."""
        try:
            if isinstance(action, CheckSignature):
                then = functools.partial(self._checked, action)
                self._signatures.check_then(
                    action.public_key, action.message, action.signature, then
                )
            else:
                done = functools.partial(self._committed, action)
                loop = self._loop
                if loop is None:
                    loop = self._loop = asyncio.get_running_loop()
                self._committer.submit_then(
                    action.op, done, log_index_of=action.log_index_of, loop=loop
                )
        except Exception as exc:
            if isinstance(action, Commit):  # CommitterStopped: the session says what to tell
                self._follow(action, exc)
            else:
                log.exception("peer action %s failed", type(action).__name__)
                self._failed(action)

    def _checked(self, action: CheckSignature, holds: bool | None) -> None:
        if holds is None:  # the checker closed: the box is stopping
            self._release()
        else:
            self._follow(action, holds)

    def _committed(self, action: Commit, outcome: Committed | BaseException) -> None:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            log.error("peer action Commit failed", exc_info=outcome)
            self._failed(action)
        else:  # a Committed, or what the op raised: the session says what to tell
            self._follow(action, outcome)

    def _follow(self, action: Step, outcome: Any) -> None:
        try:
            actions = action.then(outcome)
            self._run(actions)
        except Exception:
            log.exception("peer action %s failed", type(action).__name__)
            self._failed(action)

    def _run(self, actions: list[Action]) -> None:
        """The continuation's actions: another step, sends, or the rest in a task."""
        if len(actions) == 1 and isinstance(actions[0], CheckSignature | Commit):
            self.start(actions[0])
            return
        sends = [action.frame for action in actions if isinstance(action, Send)]
        if len(sends) != len(actions):
            self._glue.finish_in_task(actions, self._release)
            return
        written = [self._glue.send_now(frame) for frame in sends]
        self._glue.after_actions()
        if not written:
            self._release()
            return
        if len(written) == 1:  # an ack: one callback per write of the outbox, not per ack
            count = self._held.get(written[0])
            if count is None:
                self._held[written[0]] = 1
                written[0].add_done_callback(self._written)
            else:
                self._held[written[0]] = count + 1
            return
        waiting = [len(written)]

        def one_written(_: asyncio.Future[None]) -> None:
            waiting[0] -= 1
            if not waiting[0]:
                self._release()

        for future in written:
            future.add_done_callback(one_written)

    def _written(self, written: asyncio.Future[None]) -> None:
        for _ in range(self._held.pop(written, 0)):
            self._release()

    def _failed(self, action: Action) -> None:
        """A fault in the box (not an outcome the session handles): name the request
        in an `internal` error frame, so the phone fails it at once."""
        frame = error_frame(ErrorCode.INTERNAL, "internal error", request_of(action))
        self._glue.finish_in_task([Send(frame)], self._release)


def run_in_task(
    tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """Start `work` as a task kept in `tasks` until it ends."""
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
