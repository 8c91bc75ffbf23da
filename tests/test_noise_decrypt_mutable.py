"""primitives.decrypt_mutable: what `decrypt` gives and refuses, by either of its paths.

Its fast path is libsodium's function through PyNaCl's private `nacl._sodium`; when a
PyNaCl release drops that, the fallback (nacl.bindings' public function) takes over.
Both are checked here: the RFC 8439 AEAD vector, the Noise vectors' transport
messages, random messages, and that a forged message gives nothing but zeros.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import nacl.exceptions
import nacl.utils
import pytest

from strongroom.noise import DecryptError, TransportSession, primitives
from test_noise_vectors import VECTORS, _side

PATHS = {"nacl._sodium": primitives._open_into, "nacl.bindings": primitives._open_copied}

# RFC 8439 section 2.8.2 (its nonce does not start with four zero bytes, so it is
# checked through the nonce-taking `open_into` under decrypt_mutable).
RFC_KEY = bytes(range(0x80, 0xA0))
RFC_NONCE = bytes.fromhex("070000004041424344454647")
RFC_AD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
RFC_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for"
    b" the future, sunscreen would be it."
)
RFC_SEALED = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(primitives, "_open_into", PATHS[request.param])
    yield request.param


def test_the_pinned_pynacl_has_the_private_binding() -> None:
    # The speed of the phone's reader depends on it; a PyNaCl bump that loses it
    # still decrypts (the tests below), but this says the fast path is gone.
    assert primitives._bind_private() is not None
    assert primitives._open_into is not primitives._open_copied


@pytest.mark.parametrize(
    "broken",
    [None, types.SimpleNamespace(ffi=types.SimpleNamespace(), lib=types.SimpleNamespace())],
    ids=["ImportError", "AttributeError"],
)
def test_without_the_private_binding_the_public_function_is_used(
    broken: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nacl._sodium", broken)
    assert primitives._bind_private() is None
    chosen = primitives._bind_private() or primitives._open_copied
    monkeypatch.setattr(primitives, "_open_into", chosen)
    key = nacl.utils.random(32)
    sealed = primitives.encrypt(key, 7, b"ad", b"attachment")
    plain = primitives.decrypt_mutable(key, 7, b"ad", sealed)
    assert isinstance(plain, bytearray) and plain == b"attachment"
    with pytest.raises(nacl.exceptions.CryptoError):
        primitives.decrypt_mutable(key, 8, b"ad", sealed)


def test_rfc8439_vector(path: str) -> None:
    plain = bytearray(len(RFC_PLAIN))
    assert primitives._open_into(plain, RFC_KEY, RFC_NONCE, RFC_AD, RFC_SEALED)
    assert plain == RFC_PLAIN


@pytest.mark.parametrize(
    "flip",
    [len(RFC_SEALED) - 1, len(RFC_SEALED) - 16, 0, 57],
    ids=["tag-last", "tag-first", "ciphertext-first", "ciphertext-middle"],
)
def test_a_flipped_byte_leaves_only_zeros(path: str, flip: int) -> None:
    forged = bytearray(RFC_SEALED)
    forged[flip] ^= 0x01
    plain = bytearray(b"\xaa" * len(RFC_PLAIN))  # whatever the buffer held before
    assert not primitives._open_into(plain, RFC_KEY, RFC_NONCE, RFC_AD, bytes(forged))
    assert plain == bytes(len(RFC_PLAIN))


def test_another_nonce_key_or_ad_leaves_only_zeros(path: str) -> None:
    other_nonce = bytes([RFC_NONCE[0] ^ 1]) + RFC_NONCE[1:]
    other_key = bytes([RFC_KEY[0] ^ 1]) + RFC_KEY[1:]
    for key, nonce, ad in (
        (RFC_KEY, other_nonce, RFC_AD),
        (other_key, RFC_NONCE, RFC_AD),
        (RFC_KEY, RFC_NONCE, RFC_AD[:-1]),
        (RFC_KEY, RFC_NONCE, b""),
    ):
        plain = bytearray(b"\xaa" * len(RFC_PLAIN))
        assert not primitives._open_into(plain, key, nonce, ad, RFC_SEALED)
        assert plain == bytes(len(RFC_PLAIN))


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 65535 - 16, 65535])
@pytest.mark.parametrize("ad", [b"", b"h", b"header" * 20])
def test_random_messages_as_decrypt_gives_them(path: str, size: int, ad: bytes) -> None:
    key = nacl.utils.random(32)
    n = int.from_bytes(nacl.utils.random(8), "little") % primitives.MAX_NONCE
    message = nacl.utils.random(size)
    sealed = primitives.encrypt(key, n, ad, message)
    plain = primitives.decrypt_mutable(key, n, ad, sealed)
    assert isinstance(plain, bytearray)
    assert plain == primitives.decrypt(key, n, ad, sealed) == message
    for forged_n, forged_ad, forged in (
        (n + 1, ad, sealed),
        (n, ad + b"x", sealed),
        (n, ad, sealed[:-1] + bytes([sealed[-1] ^ 0x80])),
        (n, ad, bytes([sealed[0] ^ 0x01]) + sealed[1:]),
        (n, ad, sealed[:-1]),
    ):
        with pytest.raises(nacl.exceptions.CryptoError):
            primitives.decrypt(key, forged_n, forged_ad, forged)
        with pytest.raises(nacl.exceptions.CryptoError):
            primitives.decrypt_mutable(key, forged_n, forged_ad, forged)


def test_noise_vectors_transport_messages(path: str) -> None:
    # Every vector's transport messages, opened with decrypt_mutable on the side that
    # receives them (the handshake as test_noise_vectors runs it).
    opened = 0
    for vector in VECTORS:
        initiator, responder = _side(vector, "init", True), _side(vector, "resp", False)
        one_way = initiator.is_one_way
        sessions: tuple[TransportSession, TransportSession] | None = None
        for index, message in enumerate(vector["messages"]):
            payload = bytes.fromhex(message["payload"])
            sealed = bytes.fromhex(message["ciphertext"])
            init_sends = one_way or index % 2 == 0
            if sessions is None:
                writer, reader = (initiator, responder) if init_sends else (responder, initiator)
                writer.write_message(payload)
                reader.read_message(sealed)
                if writer.is_complete:
                    sessions = (
                        TransportSession.from_handshake(initiator),
                        TransportSession.from_handshake(responder),
                    )
                continue
            receiver = sessions[1] if init_sends else sessions[0]
            with pytest.raises(DecryptError):
                receiver.decrypt_mutable(sealed[:-1] + bytes([sealed[-1] ^ 1]))
            plain = receiver.decrypt_mutable(sealed)
            assert isinstance(plain, bytearray) and plain == payload
            opened += 1
    assert opened > 100


def test_the_one_private_call_is_the_one_the_threat_model_names() -> None:
    root = Path(__file__).resolve().parent.parent
    users = sorted(
        str(source.relative_to(root))
        for folder in ("app", "firmware", "scripts")
        for source in (root / folder).rglob("*.py")
        if "nacl._sodium" in source.read_text(encoding="utf-8")
    )
    assert users == ["app/strongroom/noise/primitives.py"]
    threat_model = (root / "docs" / "threat-model.md").read_text(encoding="utf-8")
    assert "`nacl._sodium`" in threat_model and "`_bind_private`" in threat_model
