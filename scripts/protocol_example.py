"""Generate the hex-dumped example sessions of docs/protocol.md.

Everything is fixed (box entropy, phone keys, Noise ephemerals, nonces, times),
so the output is byte-for-byte reproducible and a phone implementation can
replay it as a test vector:

    python scripts/protocol_example.py            # print the Markdown section
    python scripts/protocol_example.py --write docs/protocol.md   # refresh the doc

The section sits between the BEGIN/END markers in docs/protocol.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import cbor2
from nacl.bindings import crypto_scalarmult_base
from nacl.signing import SigningKey

from strongroom.archive.record import leaf_data, sign_record
from strongroom.identity import derive_box_keys
from strongroom.noise import HandshakeState, TransportSession
from strongroom.pairing.codes import code_commitment, committed_comparison_code
from strongroom.peer.channel import SecureChannel
from strongroom.peer.frames import Frame, encode_frame
from strongroom.peer.handshake import (
    HandshakeKind,
    box_payload,
    pair_message,
    phone_payload,
)
from strongroom.peer.session import CAPABILITIES
from strongroom.proof.merkle import leaf_hash, root_from_leaf_hashes
from strongroom.proof.sth import sign_tree_head

BEGIN = "<!-- BEGIN GENERATED EXAMPLE (scripts/protocol_example.py) -->"
END = "<!-- END GENERATED EXAMPLE -->"

BOX_ENTROPY = bytes(range(32))
PHONE_NOISE = bytes([0x11] * 32)
PHONE_SIGN_SEED = bytes([0x22] * 32)
PHONE_EPHEMERAL = bytes([0x33] * 32)
BOX_EPHEMERAL = bytes([0x44] * 32)
PHONE_CODE_NONCE = bytes([0x55] * 32)
BOX_CODE_NONCE = bytes([0x66] * 32)
AT_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# Leaf 0 of the example log: the pairing event (its content hash is a stand-in here).
DEVICE_LEAF = leaf_hash(leaf_data("device", bytes(32), AT_MS))


def diag(value: Any) -> str:
    """CBOR diagnostic notation (RFC 8949 section 8) of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(diag(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{diag(k)}: {diag(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        row = data[offset : offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset:04x}  {row.hex(' '):<47}  |{text}|")
    return "\n".join(lines) if lines else "(empty)"


class Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, line: str) -> None:
        self.parts.append(line + "\n")

    def block(self, title: str, data: bytes) -> None:
        self.parts.append(f"{title} ({len(data)} bytes):\n\n```\n{hexdump(data)}\n```\n\n")

    def frame(self, who: str, frame: Frame, channel: SecureChannel) -> None:
        raw = encode_frame(frame)
        decoded = cbor2.loads(raw)
        self.parts.append(f"**{who}: `{frame.type}`**\n\n```\n{diag(decoded)}\n```\n\n")
        self.block("Frame, canonical CBOR", raw)
        [message] = channel.seal(raw)
        self.block("WebSocket binary message (Noise transport message of 0x00 || frame)", message)


def _handshake(
    kind: HandshakeKind, box_private: bytes, box_public: bytes
) -> tuple[HandshakeState, HandshakeState]:
    phone = HandshakeState.initialize(
        kind.protocol_name,
        True,
        kind.prologue,
        s=PHONE_NOISE,
        e=PHONE_EPHEMERAL,
        rs=box_public if kind is HandshakeKind.IK else None,
    )
    box = HandshakeState.initialize(
        kind.protocol_name, False, kind.prologue, s=box_private, e=BOX_EPHEMERAL
    )
    return phone, box


def _channels(phone: HandshakeState, box: HandshakeState) -> tuple[SecureChannel, SecureChannel]:
    return (
        SecureChannel(TransportSession.from_handshake(phone), 1 << 20),
        SecureChannel(TransportSession.from_handshake(box), 1 << 20),
    )


def generate() -> str:
    keys = derive_box_keys(BOX_ENTROPY)
    phone_sign = SigningKey(PHONE_SIGN_SEED)
    out = Writer()
    out.text("### Keys used in the examples\n")
    out.text(f"- box identity entropy: `{BOX_ENTROPY.hex()}`")
    out.text(f"- box Noise static public key: `{keys.noise_static_public.hex()}`")
    out.text(f"- box Ed25519 public key: `{keys.signing_public.hex()}`")
    out.text(f"- box fingerprint: `{keys.fingerprint}`")
    out.text(f"- phone Noise static private key: `{PHONE_NOISE.hex()}`")
    out.text(f"- phone Noise static public key: `{crypto_scalarmult_base(PHONE_NOISE).hex()}`")
    out.text(f"- phone Ed25519 seed: `{PHONE_SIGN_SEED.hex()}`")
    out.text(
        f"- phone / box Noise ephemeral private keys: `{PHONE_EPHEMERAL.hex()}` / "
        f"`{BOX_EPHEMERAL.hex()}` (fixed here only; always random in real sessions)"
    )
    out.text(
        f"- comparison-code nonces, phone / box: `{PHONE_CODE_NONCE.hex()}` / "
        f"`{BOX_CODE_NONCE.hex()}`\n"
    )

    # -- button pairing over XX -------------------------------------------------------------
    out.text("### Example 1: button pairing (Noise XX, selector 0x01)\n")
    kind = HandshakeKind.XX
    phone, box = _handshake(kind, keys.noise_static_private, keys.noise_static_public)
    message1 = bytes([kind.value]) + phone.write_message(b"")
    out.block(
        "Phone → box, first WebSocket message: selector 0x01 || Noise message 1 (e)", message1
    )
    box.read_message(message1[1:])
    payload2 = box_payload(keys.signing_public, code_commitment(BOX_CODE_NONCE))
    out.text(f"Box handshake payload (CBOR): `{diag(cbor2.loads(payload2))}`\n")
    message2 = box.write_message(payload2)
    out.block("Box → phone: Noise message 2 (e, ee, s, es + payload)", message2)
    phone.read_message(message2)
    payload3 = phone_payload(PHONE_CODE_NONCE)
    out.text(f"Phone handshake payload (CBOR): `{diag(cbor2.loads(payload3))}`\n")
    message3 = phone.write_message(payload3)
    out.block("Phone → box: Noise message 3 (s, se + payload)", message3)
    box.read_message(message3)
    h = phone.handshake_hash
    out.text(f"Handshake hash h: `{h.hex()}`\n")
    code = committed_comparison_code(h, PHONE_CODE_NONCE, BOX_CODE_NONCE)
    out.text(f"Comparison code shown on both sides: **{code}**\n")
    phone_ch, box_ch = _channels(phone, box)
    out.frame("Box → phone", Frame("reveal", 0, {"nonce": BOX_CODE_NONCE}), box_ch)
    pair = {
        "name": "Pixel de Claire",
        "owner": "claire",
        "sign_key": bytes(phone_sign.verify_key),
        "sig": phone_sign.sign(pair_message(h)).signature,
    }
    out.frame("Phone → box", Frame("pair", 1, pair), phone_ch)
    head = sign_tree_head(keys.signing_key, 1, root_from_leaf_hashes([DEVICE_LEAF]), AT_MS)
    paired = {
        "device_id": 1,
        "owner": "claire",
        "fingerprint": keys.fingerprint,
        "sign_key": keys.signing_public,
        "tree_head": head.to_dict(),
    }
    out.frame("Box → phone (after the admin confirmed)", Frame("paired", 1, paired), box_ch)

    # -- reconnect over IK and push a record -------------------------------------------------
    out.text("### Example 2: a paired phone reconnects (Noise IK, selector 0x02) and pushes\n")
    kind = HandshakeKind.IK
    phone, box = _handshake(kind, keys.noise_static_private, keys.noise_static_public)
    message1 = bytes([kind.value]) + phone.write_message(b"")
    out.block("Phone → box: selector 0x02 || Noise message 1 (e, es, s, ss)", message1)
    box.read_message(message1[1:])
    payload2 = box_payload(keys.signing_public, None)
    message2 = box.write_message(payload2)
    out.block("Box → phone: Noise message 2 (e, ee, se + payload)", message2)
    phone.read_message(message2)
    phone_ch, box_ch = _channels(phone, box)
    hello = {"name": "Pixel de Claire", "app": "exemple/1.0", "caps": ["mail"]}
    out.frame("Phone → box", Frame("hello", 1, hello), phone_ch)
    box_hello = {
        "box": "Cabinet Durand",
        "fingerprint": keys.fingerprint,
        "caps": CAPABILITIES,
        "limits": {
            "max_frame_bytes": 262144,
            "max_in_flight": 64,
            "max_attachment_bytes": 536870912,
            "idle_timeout_ms": 120000,
            "blob_piece_bytes": 65280,
        },
        "device": 1,
        "owner": "claire",
    }
    out.frame("Box → phone", Frame("hello", 1, box_hello), box_ch)
    fields = {
        "v": 1,
        "kind": "message",
        "id": "7f9c2ba4-0001",
        "conv": "client-martin",
        "dir": "out",
        "from": "Maître Durand",
        "at": AT_MS,
        "text": "Bonjour, votre rendez-vous est confirmé.",
    }
    raw, sig = sign_record(phone_sign, fields)
    out.text(f"The record (canonical CBOR, signed by the phone): `{diag(cbor2.loads(raw))}`\n")
    out.frame("Phone → box", Frame("push", 2, {"record": raw, "sig": sig}), phone_ch)
    record_id = hashlib.sha256(raw).digest()
    leaves = [DEVICE_LEAF, leaf_hash(leaf_data("message", record_id, AT_MS + 5))]
    head = sign_tree_head(keys.signing_key, 2, root_from_leaf_hashes(leaves), AT_MS + 5)
    ack = {
        "kind": "record",
        "ref": record_id,
        "log_index": 1,
        "at": AT_MS + 5,
        "tree_head": head.to_dict(),
        "proof": [leaves[0]],
        "duplicate": False,
    }
    out.frame("Box → phone (once the record is on disk)", Frame("ack", 2, ack), box_ch)
    out.text(
        'The phone checks: leaf = CBOR `[1, "message", record_id, at]` = '
        f"`{leaf_data('message', record_id, AT_MS + 5).hex()}`; "
        f"leaf hash = SHA-256(0x00 || leaf) = `{leaves[1].hex()}`; "
        "root = SHA-256(0x01 || proof[0] || leaf hash) = "
        f"`{head.root_hash.hex()}`; signature over\n\n```\n{head.signed_message().decode()}```\n"
        "verifies with the box's Ed25519 key.\n"
    )
    return "".join(out.parts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, help="replace the generated section of this file")
    args = parser.parse_args(argv)
    section = generate()
    if args.write is None:
        sys.stdout.write(section)
        return 0
    text = args.write.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    args.write.write_text(text[:start] + "\n\n" + section + "\n" + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
