"""docs/protocol.md's example sessions are generated from the real code and kept current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cbor2

from strongroom.identity import derive_box_keys
from strongroom.noise import HandshakeState
from strongroom.peer.handshake import HandshakeKind, parse_box_payload

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> Any:  # the script is loaded from its file: its module type is dynamic
    spec = importlib.util.spec_from_file_location(
        "protocol_example", ROOT / "scripts/protocol_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_example_is_what_the_code_produces() -> None:
    gen = _generator()
    doc = (ROOT / "docs/protocol.md").read_text(encoding="utf-8")
    section = doc[doc.index(gen.BEGIN) + len(gen.BEGIN) : doc.index(gen.END)]
    assert section.strip() == gen.generate().strip(), "run scripts/protocol_example.py --write"


def test_the_documented_ik_message_opens_with_the_box_key() -> None:
    # A second implementation's view: take message 1 and 2 from the example and run the box side.
    gen = _generator()
    keys = derive_box_keys(gen.BOX_ENTROPY)
    kind = HandshakeKind.IK
    phone = HandshakeState.initialize(
        kind.protocol_name,
        True,
        kind.prologue,
        s=gen.PHONE_NOISE,
        e=gen.PHONE_EPHEMERAL,
        rs=keys.noise_static_public,
    )
    box = HandshakeState.initialize(
        kind.protocol_name, False, kind.prologue, s=keys.noise_static_private, e=gen.BOX_EPHEMERAL
    )
    box.read_message(phone.write_message(b""))
    assert box.remote_static is not None
    payload = phone.read_message(
        box.write_message(cbor2.dumps({"v": 1, "sign_key": keys.signing_public}, canonical=True))
    )
    assert parse_box_payload(payload) == (keys.signing_public, None)
