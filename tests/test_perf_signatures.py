"""Record signatures checked off the event loop: same verdicts, same order, nothing early.

The box checks push signatures in worker threads (SignatureChecker) when the
session is built with check_signatures_apart. A phone must not notice: forged
records are still rejected before anything reaches the archive, and pushes of
one connection still reach the log in the order they were sent.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading

import pytest
from nacl.signing import SigningKey

from strongroom.archive.record import sign_record
from strongroom.config import Limits
from strongroom.peer import signatures
from strongroom.peer.actions import CheckSignature, Commit, Send
from strongroom.peer.frames import Frame, encode_frame
from strongroom.peer.handshake import HandshakeKind
from strongroom.peer.history import Device
from strongroom.peer.session import BoxInfo, PeerSession
from strongroom.peer.signatures import SignatureChecker

KEY = SigningKey.generate()
PUBLIC = bytes(KEY.verify_key)


def _signed(n: int) -> tuple[bytes, bytes]:
    message = f"record {n}".encode()
    return message, KEY.sign(message).signature


async def test_verdicts_come_back_in_the_order_they_were_asked() -> None:
    checker = SignatureChecker(workers=2)
    try:
        requests = []
        for n in range(300):
            message, signature = _signed(n)
            if n % 7 == 3:
                signature = bytes(64)  # forged
            if n % 11 == 5:
                message += b"!"  # tampered
            requests.append((PUBLIC, message, signature))
        requests.append((PUBLIC[:31], *_signed(1)))  # a malformed key never verifies
        order: list[int] = []

        async def ask(n: int) -> bool:
            holds = await checker.check(*requests[n])
            order.append(n)
            return holds

        verdicts = await asyncio.gather(*(ask(n) for n in range(len(requests))))
    finally:
        checker.close()
    expected = [n % 7 != 3 and n % 11 != 5 for n in range(300)] + [False]
    assert verdicts == expected
    assert order == sorted(order)


async def test_checks_asked_in_one_loop_turn_go_to_the_workers_as_one_batch_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pushes of one bundle reach the checker in one turn of the event loop: each
    # worker thread gets its share at once (one thread hop), not a record at a time.
    batches: list[int] = []
    check_all = signatures._check_all

    def counting(requests: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        batches.append(len(requests))
        return check_all(requests)

    monkeypatch.setattr(signatures, "_check_all", counting)
    checker = SignatureChecker(workers=2)
    try:
        verdicts = await asyncio.gather(*(checker.check(PUBLIC, *_signed(n)) for n in range(40)))
    finally:
        checker.close()
    assert verdicts == [True] * 40
    assert batches == [20, 20]


async def test_a_worker_starts_its_next_batch_without_waiting_for_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under load a turn of the box's event loop takes milliseconds. A worker that
    # finished a batch used to wait for the loop to hear of it before it got the next
    # one; now the next batch waits in the pool's queue behind each running one.
    gate = threading.Event()
    started: list[int] = []
    third = threading.Event()
    both_busy = threading.Event()
    check_all = signatures._check_all

    def held(requests: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        started.append(len(requests))
        if len(started) == 2:
            both_busy.set()
        if len(started) <= 2:
            gate.wait(10)  # the first two batches keep both workers busy
        else:
            third.set()
        return check_all(requests)

    monkeypatch.setattr(signatures, "_check_all", held)
    checker = SignatureChecker(workers=2)
    try:
        first = [asyncio.ensure_future(checker.check(PUBLIC, *_signed(n))) for n in range(40)]
        assert await asyncio.to_thread(both_busy.wait, 10)
        later = [asyncio.ensure_future(checker.check(PUBLIC, *_signed(n))) for n in range(10)]
        for _ in range(100):  # the turns in which the later checks are asked and dispatched
            await asyncio.sleep(0)
        gate.set()
        # The loop is busy (this test holds it): the next batch must start anyway.
        assert third.wait(5), "the next batch waited for the event loop"
        verdicts = await asyncio.gather(*first, *later)
    finally:
        gate.set()
        checker.close()
    assert verdicts == [True] * 50


def _session() -> PeerSession:
    return PeerSession(
        box=BoxInfo("cabinet", "fingerprint", bytes(32)),
        limits=Limits(),
        kind=HandshakeKind.IK,
        remote_static=bytes(32),
        handshake_hash=os.urandom(64),
        device=Device(5, "claire", "Pixel", PUBLIC, bytes(32), False),
        check_signatures_apart=True,
    )


def _push(signature: bytes | None = None) -> bytes:
    fields = {
        "v": 1,
        "kind": "message",
        "id": "m1",
        "conv": "c",
        "dir": "out",
        "from": "C",
        "at": 1,
        "text": "bonjour",
    }
    raw, sig = sign_record(KEY, fields)
    return encode_frame(Frame("push", 9, {"record": raw, "sig": signature or sig}))


def test_a_push_is_committed_only_after_its_signature_holds() -> None:
    session = _session()
    [check] = session.receive(_push())
    assert isinstance(check, CheckSignature)
    assert check.public_key == PUBLIC
    assert KEY.verify_key.verify(check.message, check.signature)
    [commit] = check.then(True)
    assert isinstance(commit, Commit)


def test_a_forged_push_gets_a_rejected_error_and_never_a_commit() -> None:
    session = _session()
    [check] = session.receive(_push(bytes(64)))
    assert isinstance(check, CheckSignature)
    actions = check.then(False)
    assert [a.frame.body["code"] for a in actions if isinstance(a, Send)] == ["rejected"]
    assert not any(isinstance(a, Commit) for a in actions)


async def test_check_then_answers_in_order_and_none_once_closed() -> None:
    """The push path's check (peer/chain.py): verdicts by callback, in the order asked."""
    checker = SignatureChecker(workers=2)
    heard: list[tuple[int, bool | None]] = []

    def hear(n: int, holds: bool | None) -> None:
        heard.append((n, holds))

    try:
        for n in range(100):
            message, signature = _signed(n)
            if n % 5 == 2:
                signature = bytes(64)  # forged
            checker.check_then(PUBLIC, message, signature, functools.partial(hear, n))
        for _ in range(200):
            if len(heard) == 100:
                break
            await asyncio.sleep(0.05)
    finally:
        checker.check_then(PUBLIC, *_signed(1), functools.partial(hear, -1))
        checker.close()  # before the loop turn that would have dispatched it
    assert heard[:100] == [(n, n % 5 != 2) for n in range(100)]
    assert heard[100:] == [(-1, None)]
