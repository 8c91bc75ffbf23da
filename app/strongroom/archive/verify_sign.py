"""The device-signature checks of verify, on both cores.

Why processes and not threads: PyNaCl releases the GIL inside libsodium, but
each check must take the GIL back to return, and the thread reading and
checking rows holds it for whole chunks of pure Python, so the signature
threads wait on it. Full verify of the 100k bench corpus, runs alternated on
the shared 2-core bench machine at load 2 to 3: threads 1.26 to 2.05 times
the one-core crypto ceiling, processes 1.05 to 1.40 (docs/benchmarks.md).
Worker processes have a GIL each. They are started fresh (`python -P -m
strongroom.archive.verify_sign`, in the package's directory, so nothing in the
caller's working directory is imported: no copy of the service's memory, threads or
locks, nothing but the devices' public keys handed over), import only this
module and PyNaCl, and talk pickles over their stdin and stdout.

Small runs (an incremental verify, a new box) stay on threads: starting the
processes costs more than they would save.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

# Bytes a device signs before its record body (record.RECORD_SIGNING_CONTEXT; a
# copy so the worker processes need not import the archive package).
SIGNING_CONTEXT = b"strongroom-record-v1\x00"
# Records from which verify starts worker processes (fewer: threads).
PROCESS_THRESHOLD = 20_000

Signed = bool | None | Exception
# What a worker needs of a record row: device id, body, signature, destroyed_at.
SignatureJob = tuple[object, object, object, object]

# In a worker process: the devices' keys, loaded once by the pool's initializer.
_process_keys: dict[int, VerifyKey] = {}


def verify_keys(keys: dict[int, bytes]) -> dict[int, VerifyKey]:
    return {device: VerifyKey(key) for device, key in keys.items()}


def _load_keys(keys: dict[int, bytes]) -> None:
    _process_keys.clear()
    _process_keys.update(verify_keys(keys))


def check_signatures(
    rows: Sequence[SignatureJob], keys: dict[int, VerifyKey] | None = None
) -> list[Signed]:
    """For each row: does its device's signature verify (None: nothing to check; an
    exception: the row is malformed, reported by the caller under its name).
    `keys`: on a thread; in a worker process, those its initializer loaded."""
    known = _process_keys if keys is None else keys
    out: list[Signed] = []
    for device_id, body, signature, gone in rows:
        try:
            if gone is not None or body is None:
                out.append(None)
                continue
            key = known.get(int(device_id))  # type: ignore[call-overload]
            try:
                if key is None:
                    raise BadSignatureError("unknown device")
                key.verify(SIGNING_CONTEXT + bytes(body), bytes(signature))  # type: ignore[call-overload]
                out.append(True)
            except (BadSignatureError, ValueError, TypeError):
                out.append(False)
        except Exception as exc:
            out.append(exc)
    return out


class _Worker:
    """One `python -P -m strongroom.archive.verify_sign` process: pickled chunks in on
    stdin, their verdicts out on stdout, in order. A feeder thread writes the chunks
    so the reading thread never waits on a full pipe."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        self.process = subprocess.Popen(
            # -P (safe path): `-m` would otherwise put the working directory first
            # on sys.path, and a `nacl/` or `strongroom/` there would run in the
            # worker. Started in the package's own directory too, so a relative
            # PYTHONPATH entry cannot name the caller's directory either.
            [sys.executable, "-P", "-m", "strongroom.archive.verify_sign"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_package_dir(),
            env={**os.environ, "PYTHONPATH": _package_root()},
        )
        self.outstanding = 0  # chunks sent, verdicts not yet read
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queue.put(keys)  # the first message: the keys
        self._feeder = threading.Thread(target=self._feed, name="verify-feed", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while (item := self._queue.get()) is not None:
                pickle.dump(item, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except OSError:
            pass  # the worker died: its verdict read fails and says so
        finally:
            stdin.close()

    def send(self, rows: list[SignatureJob]) -> None:
        self.outstanding += 1
        self._queue.put(rows)

    def receive(self) -> list[Signed]:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            result: list[Signed] = pickle.load(stdout)  # noqa: S301  (our own child)
        except EOFError:
            raise RuntimeError("a signature worker process stopped") from None
        self.outstanding -= 1
        return result

    def close(self) -> None:
        self._queue.put(None)
        self._feeder.join()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Pending:
    """A chunk's verdicts: from a thread's future, or the next answer of a process."""

    def __init__(self, future: Future[list[Signed]] | None, worker: _Worker | None) -> None:
        self._future, self._worker = future, worker

    def result(self) -> list[Signed]:
        if self._future is not None:
            return self._future.result()
        assert self._worker is not None
        return self._worker.receive()


class SignaturePool:
    """Checks chunks of rows on two worker processes (big runs) or two threads.
    Verdicts must be taken (`result()`) in the order the chunks were submitted."""

    def __init__(self, keys: dict[int, bytes], records: int) -> None:
        self.workers = workers()
        self._threads: ThreadPoolExecutor | None = None
        self._processes: list[_Worker] = []
        self._keys: dict[int, VerifyKey] = {}
        if self.workers > 1 and records >= PROCESS_THRESHOLD:
            self._processes = [_Worker(keys) for _ in range(self.workers)]
        else:
            self._keys = verify_keys(keys)
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="verify-sign")

    @property
    def processes(self) -> bool:
        return bool(self._processes)

    def submit(self, rows: list[SignatureJob]) -> Pending:
        if self._threads is not None:
            return Pending(self._threads.submit(check_signatures, rows, self._keys), None)
        # The worker with the least work queued, not turn by turn: one that lost its
        # core for a while gets no more until it catches up. Verdicts still come
        # back in order: each worker answers its own chunks in the order sent.
        worker = min(self._processes, key=lambda w: w.outstanding)
        worker.send(rows)
        return Pending(None, worker)

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in self._processes:
            worker.close()


def _package_dir() -> str:
    """The directory holding the `strongroom` package."""
    return str(Path(__file__).resolve().parents[2])


def _package_root() -> str:
    """The worker's PYTHONPATH: the package's directory first, then the caller's."""
    return os.pathsep.join(p for p in (_package_dir(), os.environ.get("PYTHONPATH", "")) if p)


def _serve() -> None:
    """The worker process: keys first, then chunk after chunk until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _load_keys(pickle.load(stdin))  # noqa: S301  (from the verify that started us)
    while True:
        try:
            rows = pickle.load(stdin)  # noqa: S301
        except EOFError:
            return
        pickle.dump(check_signatures(rows), stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


def workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


__all__ = [
    "PROCESS_THRESHOLD",
    "SIGNING_CONTEXT",
    "Pending",
    "SignaturePool",
    "Signed",
    "check_signatures",
    "workers",
]


if __name__ == "__main__":
    _serve()
