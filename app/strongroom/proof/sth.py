"""Signed tree heads: the box's Ed25519 signature over (tree size, time, root).

The signed bytes are a fixed ASCII text, so that anyone can rebuild them with
a text editor and check the signature with openssl alone::

    strongroom-sth-v1\\n
    <tree_size>\\n
    <timestamp_ms>\\n
    <root_hash>\\n

* ``tree_size``: number of leaves, decimal, no sign, no leading zeros;
* ``timestamp_ms``: milliseconds since the Unix epoch (UTC), same format;
* ``root_hash``: the RFC 6962 root, 64 lowercase hex digits;
* every line, the last included, ends with a single LF (0x0a); no other bytes.

The signature is plain Ed25519 (RFC 8032, 64 bytes) over exactly those bytes.
With the text in ``sth.txt``, the raw signature in ``sth.sig`` and the box's
public key in ``box.pem``::

    openssl pkeyutl -verify -pubin -inkey box.pem -rawin -in sth.txt -sigfile sth.sig

prints ``Signature Verified Successfully``.

In JSON or CBOR a tree head is the map produced by ``to_dict``: integers for
``tree_size`` and ``timestamp_ms``, lowercase hex strings for ``root_hash``
and ``signature``.
"""

import binascii
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

__all__ = [
    "STH_FORMAT",
    "MalformedTreeHeadError",
    "SignedTreeHead",
    "sign_tree_head",
    "tree_head_message",
    "verify_tree_head",
]

STH_FORMAT = "strongroom-sth-v1"
ROOT_SIZE = 32
SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32

_DICT_KEYS = frozenset({"tree_size", "timestamp_ms", "root_hash", "signature"})


class MalformedTreeHeadError(ValueError):
    """A tree head whose fields are of the wrong type, range or length."""


def _check_count(value: object, what: str) -> int:
    # bool is an int subclass; True must not pass as a tree size of 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedTreeHeadError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _check_bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise MalformedTreeHeadError(f"{what} must be {size} bytes")
    return value


def tree_head_message(tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    """The exact bytes a tree head signature covers (see the module docstring)."""
    _check_count(tree_size, "tree_size")
    _check_count(timestamp_ms, "timestamp_ms")
    _check_bytes(root_hash, ROOT_SIZE, "root_hash")
    return f"{STH_FORMAT}\n{tree_size}\n{timestamp_ms}\n{root_hash.hex()}\n".encode("ascii")


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree head and the box's signature over ``tree_head_message`` of it."""

    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_count(self.tree_size, "tree_size")
        _check_count(self.timestamp_ms, "timestamp_ms")
        _check_bytes(self.root_hash, ROOT_SIZE, "root_hash")
        _check_bytes(self.signature, SIGNATURE_SIZE, "signature")

    def signed_message(self) -> bytes:
        """The text the signature covers, e.g. to write out as ``sth.txt``."""
        return tree_head_message(self.tree_size, self.timestamp_ms, self.root_hash)

    def to_dict(self) -> dict[str, int | str]:
        """JSON/CBOR form: integers stay integers, byte fields become lowercase hex.

        The keys come in canonical CBOR order (shorter first, then bytewise), so an
        `ack` can embed this map and be encoded without sorting (frames.record_ack).
        """
        return {
            "root_hash": self.root_hash.hex(),
            "signature": self.signature.hex(),
            "tree_size": self.tree_size,
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "SignedTreeHead":
        """Parse ``to_dict`` output; anything else raises MalformedTreeHeadError."""
        if not isinstance(data, dict) or set(data) != _DICT_KEYS:
            raise MalformedTreeHeadError(f"a tree head needs exactly the keys {sorted(_DICT_KEYS)}")
        return cls(
            tree_size=_check_count(data["tree_size"], "tree_size"),
            timestamp_ms=_check_count(data["timestamp_ms"], "timestamp_ms"),
            root_hash=_from_hex(data["root_hash"], ROOT_SIZE, "root_hash"),
            signature=_from_hex(data["signature"], SIGNATURE_SIZE, "signature"),
        )


def _from_hex(value: object, size: int, what: str) -> bytes:
    # Lowercase only, so a tree head has one textual form and byte-compares stably.
    if not isinstance(value, str) or len(value) != 2 * size or value != value.lower():
        raise MalformedTreeHeadError(f"{what} must be {2 * size} lowercase hex digits")
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise MalformedTreeHeadError(f"{what} is not hex") from None


def sign_tree_head(
    signing_key: nacl.signing.SigningKey, tree_size: int, root_hash: bytes, timestamp_ms: int
) -> SignedTreeHead:
    """Sign the tree head of a ``tree_size``-leaf log whose root is ``root_hash``."""
    message = tree_head_message(tree_size, timestamp_ms, root_hash)
    signature = signing_key.sign(message).signature
    return SignedTreeHead(tree_size, root_hash, timestamp_ms, signature)


def verify_tree_head(sth: SignedTreeHead, verify_key_bytes: bytes) -> bool:
    """True iff ``sth.signature`` was made over this head by ``verify_key_bytes``'s owner."""
    if not isinstance(verify_key_bytes, bytes) or len(verify_key_bytes) != PUBLIC_KEY_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(verify_key_bytes).verify(sth.signed_message(), sth.signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True
