"""The harness of the peer benchmarks: a box in this process, phones in a fresh one.

`Box` serves a PeerService (every phone accepted) and a raw WebSocket endpoint
(the ceiling's) on loopback; `start_in_fresh_process` / `wait_for_child` run the
phones' side in a spawned process so that the figures are the box's alone.
bench_peer.py measures with them; bench_growth.py and bench_restore.py reach
them through bench_peer, which imports every name below.
"""

from __future__ import annotations

import asyncio
import codecs
import gc
import inspect
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

import aiohttp
from aiohttp import web

from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive
from strongroom.config import Limits
from strongroom.gc_settle import settle
from strongroom.identity import derive_box_keys
from strongroom.malloc_tuning import keep_freed_memory
from strongroom.pairing.gate import PairingAttempt, PairingOutcome
from strongroom.peer.server import PeerService

MESSAGE_BYTES = 1024
# Pushes each bench phone keeps in flight when saturating: the box's window
# (Limits.max_in_flight_frames, announced in its hello), as the reference client's
# push_many fills it. Until 2026-12-06 the phones kept 32, half the window: the row
# was then bound by the round trip of the pushes in flight, not by the box's work.
PUSHES_IN_FLIGHT = Limits().max_in_flight_frames
RAW_PATH = "/raw"


def _scratch(work_dir: Path | None) -> tempfile.TemporaryDirectory[str]:
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=work_dir)


class AcceptAll:
    """A pairing gate for benchmarks: every phone is welcome."""

    def qr_secret(self) -> bytes | None:
        return None

    def consume_qr_secret(self) -> None:
        return None

    def note_unknown_contact(self, noise_key: bytes) -> None:
        return None

    async def request(self, attempt: PairingAttempt) -> PairingOutcome:
        return PairingOutcome.accept()


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's live threads, by role: the event
    loop, the group committer, the signature checkers, the archive readers, other."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    roles: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        if int(task) == os.getpid():
            role = "loop"
        else:
            role = _ROLES.get(names.get(int(task), "").split("_")[0], "other")
        roles[role] = roles.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return roles


# Thread names (without a pool's _N suffix) -> the role the thread plays in the box.
_ROLES = {"group-commit": "committer", "ed25519": "signatures", "archive-reader": "readers"}


def cpu_split_note(before: dict[str, float], after: dict[str, float], count: int) -> str:
    """'loop 95, committer 120, ...' µs per record between two `thread_cpu` readings."""
    parts = []
    for role in ("loop", "committer", "signatures", "readers", "other"):
        spent = after.get(role, 0.0) - before.get(role, 0.0)
        if spent > 0:
            parts.append(f"{role} {spent / max(count, 1) * 1e6:.0f}")
    return ", ".join(parts)


async def _raw_sink(request: web.Request) -> web.WebSocketResponse:
    """The ceiling's endpoint: a WebSocket that reads binary messages and answers b"ok"."""
    ws = web.WebSocketResponse(max_msg_size=1 << 17)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) == 1:
            await ws.send_bytes(b"ok")
    return ws


class Box:
    """A box in this process: archive, committer, PeerService, and the raw endpoint."""

    def __init__(self, data_dir: Path, limits: Limits) -> None:
        self.keys = derive_box_keys(os.urandom(32))
        self.archive = Archive.open(
            data_dir, self.keys.archive_key, self.keys.blob_key, self.keys.signing_key
        )
        self.committer = GroupCommitter(self.archive)
        self.service = PeerService(self.archive, self.committer, self.keys, limits, AcceptAll())
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Box:
        self.committer.start()
        if os.environ.get("BENCH_NO_GC_SETTLE") != "1":  # the A/B of gc_settle, by hand
            settle()  # as the box does once started and unlocked (runtime.py)
        keep_freed_memory()  # as the box does once started (runtime.py)
        app = web.Application()
        self.service.add_routes(app)
        app.router.add_get(RAW_PATH, _raw_sink)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self.committer.stop()
        self.archive.close()


# How often wait_for_child looks whether the child is still alive while no result came,
# and how long a dead child's result may still take through the queue's pipe.
POLL_S = 0.5
LAST_WORD_S = 2.0
STDERR_TAIL_LINES = 20
RELAY_S = 0.1  # how often the child's new stderr lines are copied to this console


class _Relay:
    """Copies what the child writes to its stderr file onto this process's stderr as it
    comes (review L3): a bench child's progress ("copying the 5,000,000-record
    archive", then minutes of ingest) shows while it runs, and the file keeps it all
    for the error's tail, even what a crash in C writes to fd 2."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-child-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with open(self._path, "rb") as source:
            while True:
                last = self._stop.is_set()  # before the read: it sees all the child wrote
                text = decode.decode(source.read(), final=last)
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()
                if last:
                    return
                if not text:
                    self._stop.wait(RELAY_S)

    def finish(self) -> None:
        """Copy what is left and stop (once the child has ended)."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Child:
    """A process `start_in_fresh_process` started: where its result and stderr go."""

    queue: Any
    process: Any
    stderr: Path  # the child's stderr (its tail in an error), copied here as it comes
    relay: _Relay


def start_in_fresh_process(target: Callable[..., Any], *args: Any, **kwargs: Any) -> Child:
    """Run `target(*args, **kwargs)` (a coroutine result is run to its end) in a fresh
    spawned process; returns the handle `wait_for_child` takes."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    fd, name = tempfile.mkstemp(prefix="bench-child-", suffix=".stderr")
    os.close(fd)
    process = context.Process(target=_child_main, args=(queue, name, target, args, kwargs))
    process.start()
    return Child(queue, process, Path(name), _Relay(Path(name)))


def _child_main(
    queue: Any,
    stderr: str,
    target: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    # Its stderr in a file the parent copies to its console as it grows (and reads the
    # tail of when the child dies).
    with open(stderr, "w", encoding="utf-8") as out:
        sys.stderr.flush()
        os.dup2(out.fileno(), 2)
    try:
        result = target(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        queue.put(("ok", result))
    except BaseException as exc:
        traceback.print_exc()
        queue.put(("error", repr(exc)))


def wait_for_child(child: Child, who: str = "the child process") -> Any:
    """Block until the process of `start_in_fresh_process` ends; its result, or RuntimeError.

    A child that dies without a word (killed, out of memory, a crash in C) used to
    leave this waiting forever on its queue: it is looked at every POLL_S, and its
    death is an error with its exit status and the tail of its stderr. What the child
    writes on stderr meanwhile reaches this console as it comes (`_Relay`)."""
    try:
        status, value = _result(child, who)
        child.process.join()
    finally:
        child.relay.finish()
        child.stderr.unlink(missing_ok=True)
    if status != "ok":
        raise RuntimeError(f"{who} failed: {value}")
    return value


def _result(child: Child, who: str) -> tuple[str, Any]:
    while True:
        try:
            found: tuple[str, Any] = child.queue.get(timeout=POLL_S)
            return found
        except Empty:
            if child.process.is_alive():
                continue
        try:  # dead: a result put just before it ended may still be in the pipe
            late: tuple[str, Any] = child.queue.get(timeout=LAST_WORD_S)
            return late
        except Empty:
            child.process.join()
            tail = _read(child.stderr).splitlines()[-STDERR_TAIL_LINES:]
            said = "\n".join(tail) if tail else "(nothing on stderr)"
            raise RuntimeError(
                f"{who} died without a result (exit status {child.process.exitcode});"
                f" its stderr ends:\n{said}"
            ) from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


async def _phones(target: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run the phones' side in their own process while this loop serves them."""
    child = start_in_fresh_process(target, *args)
    return await asyncio.to_thread(wait_for_child, child, "the phones' process")


def _message(n: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "message",
        "id": f"bench-{n}-{os.urandom(4).hex()}",
        "conv": f"conv-{n % 50}",
        "dir": "out",
        "from": "Bench",
        "at": 1_700_000_000_000 + n,
        "text": "x" * MESSAGE_BYTES,
    }


class GcPauses:
    """How long each full (generation 2) garbage collection of this process took.

    The event loop stops for the whole pass: under ingest it is the longest pause
    the phones see that is not the machine's own scheduling."""

    def __init__(self) -> None:
        self.full_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)
