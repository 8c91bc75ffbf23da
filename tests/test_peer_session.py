"""The sans-I/O session: decisions per frame, without sockets or an archive."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from strongroom.archive.record import sign_record
from strongroom.config import Limits
from strongroom.pairing.gate import PairingOutcome, Refusal
from strongroom.peer.actions import Action, AskGate, Close, Commit, Send, UploadOpen
from strongroom.peer.frames import (
    CloseCode,
    Direction,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
)
from strongroom.peer.handshake import HandshakeKind, pair_message
from strongroom.peer.history import Device
from strongroom.peer.session import BoxInfo, PeerSession, State

BOX = BoxInfo("cabinet", "0000-1111-2222-3333-4444-5555-6666-7777", bytes(32))
HASH = os.urandom(64)
PHONE_KEY = SigningKey.generate()


def _session(*, paired: bool, limits: Limits | None = None) -> PeerSession:
    device = Device(5, "claire", "Pixel", bytes(PHONE_KEY.verify_key), bytes(32), False)
    return PeerSession(
        box=BOX,
        limits=limits or Limits(),
        kind=HandshakeKind.XX,
        remote_static=bytes(32),
        handshake_hash=HASH,
        device=device if paired else None,
        code_nonces=(os.urandom(32), os.urandom(32)),
        comparison_code=lambda h, a, b: "123 456",
    )


def _feed(session: PeerSession, frame_type: str, rid: int, body: dict[str, Any]) -> list[Action]:
    return session.receive(encode_frame(Frame(frame_type, rid, body)))


def _errors(actions: list[Action]) -> list[tuple[int, str]]:
    return [
        (a.frame.id, a.frame.body["code"])
        for a in actions
        if isinstance(a, Send) and a.frame.type == "error"
    ]


def _push_body(text: str = "bonjour") -> dict[str, Any]:
    fields = {
        "v": 1,
        "kind": "message",
        "id": "m1",
        "conv": "c",
        "dir": "out",
        "from": "C",
        "at": 1,
        "text": text,
    }
    raw, sig = sign_record(PHONE_KEY, fields)
    return {"record": raw, "sig": sig}


def test_after_xx_the_box_reveals_its_code_nonce_first() -> None:
    session = _session(paired=False)
    first = session.start()[0]
    assert isinstance(first, Send) and first.frame.type == "reveal"
    decode_frame(encode_frame(first.frame), Direction.TO_PHONE, max_bytes=1 << 20)


def test_an_unpaired_phone_reaches_nothing_but_pairing() -> None:
    session = _session(paired=False)
    assert _errors(_feed(session, "push", 3, _push_body())) == [(3, "not-paired")]
    assert _errors(_feed(session, "history", 4, {"cursor": 0})) == [(4, "not-paired")]
    [hello] = _feed(session, "hello", 5, {"name": "P", "app": "a", "caps": []})
    assert isinstance(hello, Send) and "device" not in hello.frame.body
    [pong] = _feed(session, "ping", 6, {})
    assert isinstance(pong, Send) and pong.frame == Frame("pong", 6)


def test_pairing_asks_the_gate_then_registers_the_device() -> None:
    session = _session(paired=False)
    body = {
        "name": "Pixel",
        "owner": "claire",
        "sign_key": bytes(PHONE_KEY.verify_key),
        "sig": PHONE_KEY.sign(pair_message(HASH)).signature,
    }
    [ask] = _feed(session, "pair", 8, body)
    assert isinstance(ask, AskGate)
    assert ask.attempt.comparison_code == "123 456" and ask.attempt.owner == "claire"
    assert session.busy  # no idle timeout while the admin decides
    [register] = ask.then(PairingOutcome.accept())
    assert isinstance(register, Commit)


def test_a_refused_pairing_is_told_and_closed() -> None:
    session = _session(paired=False)
    body = {
        "name": "Pixel",
        "owner": "claire",
        "sign_key": bytes(PHONE_KEY.verify_key),
        "sig": PHONE_KEY.sign(pair_message(HASH)).signature,
    }
    [ask] = _feed(session, "pair", 8, body)
    assert isinstance(ask, AskGate)
    error, close = ask.then(PairingOutcome.refuse(Refusal.OVERLAP))
    assert isinstance(error, Send) and error.frame.body["reason"] == "overlap"
    assert isinstance(close, Close) and close.code == CloseCode.REFUSED
    assert session.state is State.CLOSED
    assert _feed(session, "ping", 9, {}) == []


def test_a_pair_frame_signed_over_another_handshake_is_refused() -> None:
    session = _session(paired=False)
    body = {
        "name": "Pixel",
        "owner": "claire",
        "sign_key": bytes(PHONE_KEY.verify_key),
        "sig": PHONE_KEY.sign(pair_message(os.urandom(64))).signature,
    }
    actions = _feed(session, "pair", 8, body)
    assert _errors(actions) == [(8, "rejected")]
    assert isinstance(actions[-1], Close)


def test_ready_session_requests() -> None:
    session = _session(paired=True, limits=Limits(max_attachment_bytes=1000))
    [commit] = _feed(session, "push", 1, _push_body())
    assert isinstance(commit, Commit)
    forged = _push_body()
    forged["sig"] = bytes(64)
    assert _errors(_feed(session, "push", 2, forged)) == [(2, "rejected")]
    assert _errors(_feed(session, "teleport", 3, {})) == [(3, "unknown-type")]
    assert _errors(_feed(session, "blob_chunk", 4, {"offset": 0, "data": b"x"})) == [
        (4, "no-upload")
    ]
    assert _errors(_feed(session, "blob_begin", 5, {"sha256": bytes(32), "size": 1001})) == [
        (5, "too-large")
    ]
    [opening] = _feed(session, "blob_begin", 6, {"sha256": bytes(32), "size": 10})
    assert isinstance(opening, UploadOpen)
    # Still alive after all those errors.
    assert isinstance(_feed(session, "push", 7, _push_body("encore"))[0], Commit)


def test_revoked_session_refuses_everything_after() -> None:
    session = _session(paired=True)
    error, close = session.revoke()
    assert isinstance(error, Send) and error.frame.body["code"] == "revoked"
    assert isinstance(close, Close)
    assert _feed(session, "push", 1, _push_body()) == []


_valid_body = _push_body()
_valid = encode_frame(Frame("push", 1, _valid_body))


@settings(max_examples=400)
@given(
    st.binary(max_size=300)
    | st.builds(
        lambda i, b: _valid[:i] + bytes([b]) + _valid[i + 1 :],
        st.integers(0, len(_valid) - 1),
        st.integers(0, 255),
    )
)
def test_hostile_input_never_reaches_the_archive(raw: bytes) -> None:
    session = _session(paired=True)
    actions = session.receive(raw)
    try:
        frame = decode_frame(raw, Direction.TO_BOX, max_bytes=1 << 20)
    except FrameError:
        frame = None
    if frame is not None and frame.type == "push" and dict(frame.body) == _valid_body:
        return  # the same signed record under another request id: a genuine push
    # Garbage, or a valid push with one byte changed, yields only an error frame.
    assert all(isinstance(a, Send) and a.frame.type == "error" for a in actions), actions
