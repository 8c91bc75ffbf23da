"""QR pairing: a one-time 256-bit secret shown as a QR code, used as the psk of Noise XXpsk3.

The QR code holds one URI (version 1)::

    strongroom://pair?h=<host>&p=<port>&fp=<fingerprint>&k=<secret>&v=1

    h   the box's address: an IPv4 or IPv6 literal or a DNS name (e.g. strongroom.local)
    p   the TCP port, decimal, 1..65535, no leading zero
    fp  the box fingerprint (docs/identity.md): 8 groups of 4 lowercase hex digits, "-"
    k   the 32-byte secret, base64url without padding (43 characters)
    v   1

No percent-encoding, no "+", no other parameter, each parameter once, any order;
the scheme is compared case-insensitively (RFC 3986). A phone that parses anything
else (`parse_offer` is the reference) refuses the code: a QR code is input from
anybody's printer.

The box side (`QrPairing`) keeps at most one live offer: issuing a new one
withdraws the old, the secret dies after `ttl_s` (120 s) or at first use,
whichever comes first, so a photo of the screen taken later is worthless.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import nacl.utils
import segno

from strongroom.pairing.errors import InvalidQrOffer

QR_SCHEME_AND_HOST = "strongroom://pair"
QR_VERSION = "1"
SECRET_BYTES = 32
DEFAULT_QR_TTL_S = 120.0
MAX_URI_CHARS = 512

_FINGERPRINT = re.compile(r"[0-9a-f]{4}(?:-[0-9a-f]{4}){7}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PARAMS = frozenset({"h", "p", "fp", "k", "v"})


def _check_host(host: str) -> str:
    """The canonical spelling of a box address, or InvalidQrOffer."""
    if not host or not host.isascii():
        raise InvalidQrOffer("the box address is empty or not ASCII")
    if ":" in host:
        if "%" in host:
            raise InvalidQrOffer("an IPv6 zone index only means something on one machine")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise InvalidQrOffer(f"bad IPv6 address: {exc}") from None
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if labels[-1].isdigit():
        # Only a full dotted quad is an address; "10.1" or "1.2.3" would be read as
        # an address by some resolvers and as a name by others.
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError as exc:
            raise InvalidQrOffer(f"bad IPv4 address: {exc}") from None
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidQrOffer("the box address is not a valid host name")
    return name


def _check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidQrOffer("the port must be 1..65535")
    return port


def _check_fingerprint(fingerprint: str) -> str:
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise InvalidQrOffer("the fingerprint is not 8 groups of 4 lowercase hex digits")
    return fingerprint


def _encode_secret(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


def _decode_secret(text: str) -> bytes:
    if not _SECRET.fullmatch(text):
        raise InvalidQrOffer("the secret is not 43 base64url characters")
    secret = base64.urlsafe_b64decode(text + "=")
    if _encode_secret(secret) != text:  # unused low bits set: a second spelling
        raise InvalidQrOffer("the secret is not canonically encoded")
    return secret


@dataclass(frozen=True)
class QrOffer:
    """What a pairing QR code says. `expires_at` is known only on the box (its clock)."""

    host: str
    port: int
    fingerprint: str
    secret: bytes = field(repr=False)
    expires_at: float | None = None

    @property
    def uri(self) -> str:
        return (
            f"{QR_SCHEME_AND_HOST}?h={self.host}&p={self.port}&fp={self.fingerprint}"
            f"&k={_encode_secret(self.secret)}&v={QR_VERSION}"
        )

    def _qr(self) -> Any:
        # Medium error correction survives a glare on a screen; the URI fits in a
        # version 7-8 code that a phone reads from arm's length.
        return segno.make_qr(self.uri, error="m")

    def svg(self, scale: int = 4) -> str:
        """The QR code as an inline <svg> element (for the web UI, no JavaScript)."""
        return str(self._qr().svg_inline(scale=scale))

    def png_data_uri(self, scale: int = 4) -> str:
        """The QR code as a data:image/png;base64 URI (for an <img>)."""
        return str(self._qr().png_data_uri(scale=scale))

    def terminal(self, out: TextIO) -> None:
        """Draw the QR code in a terminal (`strongroom pair --qr`), 57 columns wide.

        Half-block characters, two modules per line, with the quiet zone around;
        a phone reads it off the screen like the web UI's. A terminal that cannot
        show them (no UTF-8) gets segno's ANSI-colour drawing instead."""
        drawing = io.StringIO()
        self._qr().terminal(out=drawing, compact=True)
        text = drawing.getvalue()
        try:
            text.encode(getattr(out, "encoding", None) or "utf-8")
        except (UnicodeEncodeError, LookupError):
            drawing = io.StringIO()
            self._qr().terminal(out=drawing)
            text = drawing.getvalue()
        out.write(text)


def make_offer(
    host: str, port: int, fingerprint: str, secret: bytes, expires_at: float | None = None
) -> QrOffer:
    """A validated offer (raises InvalidQrOffer, also a ValueError)."""
    if not isinstance(secret, bytes) or len(secret) != SECRET_BYTES:
        raise InvalidQrOffer(f"the secret must be {SECRET_BYTES} bytes")
    if not isinstance(host, str):
        raise InvalidQrOffer("the box address must be text")
    return QrOffer(
        _check_host(host), _check_port(port), _check_fingerprint(fingerprint), secret, expires_at
    )


def parse_offer(uri: str) -> QrOffer:
    """Parse and validate a scanned pairing URI (the phone side); InvalidQrOffer if not valid."""
    if not isinstance(uri, str) or len(uri) > MAX_URI_CHARS:
        raise InvalidQrOffer("not a pairing code (too long)")
    if not uri.isascii() or not all("!" <= c <= "~" for c in uri):
        raise InvalidQrOffer("not a pairing code (spaces, control or non-ASCII characters)")
    head, sep, query = uri.partition("?")
    if not sep or head.lower() != QR_SCHEME_AND_HOST:
        raise InvalidQrOffer("not a Strongroom pairing code")
    if any(c in query for c in "#%+?"):
        raise InvalidQrOffer("unexpected character in the pairing code")
    params: dict[str, str] = {}
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        if not eq or name not in _PARAMS or name in params:
            raise InvalidQrOffer(f"unexpected or repeated parameter {name!r}")
        params[name] = value
    if params.keys() != _PARAMS:
        raise InvalidQrOffer(f"missing parameters: {sorted(_PARAMS - params.keys())}")
    if params["v"] != QR_VERSION:
        raise InvalidQrOffer(f"unsupported pairing code version {params['v']!r}")
    if not _PORT.fullmatch(params["p"]):
        raise InvalidQrOffer("the port is not a decimal number")
    return make_offer(params["h"], int(params["p"]), params["fp"], _decode_secret(params["k"]))


class QrPairing:
    """The box's live QR offer: one at a time, one use, `ttl_s` seconds."""

    def __init__(self, clock: Callable[[], float], ttl_s: float = DEFAULT_QR_TTL_S) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._clock = clock
        self._ttl_s = ttl_s
        self._offer: QrOffer | None = None

    def issue(self, box_address: str, port: int, fingerprint: str) -> QrOffer:
        """A fresh offer with a new random secret; any earlier offer is dead from now on."""
        secret = nacl.utils.random(SECRET_BYTES)
        offer = make_offer(box_address, port, fingerprint, secret, self._clock() + self._ttl_s)
        self._offer = offer
        return offer

    @property
    def offer(self) -> QrOffer | None:
        """The live offer (unused, unexpired), if any."""
        offer = self._offer
        if offer is None or offer.expires_at is None or self._clock() >= offer.expires_at:
            return None
        return offer

    def seconds_left(self) -> float:
        offer = self.offer
        return (
            0.0 if offer is None or offer.expires_at is None else offer.expires_at - self._clock()
        )

    def current_secret(self) -> bytes | None:
        """The secret a handshake may use now; None if none was issued, expired or used."""
        offer = self.offer
        return None if offer is None else offer.secret

    def consume(self) -> bool:
        """Burn the secret (one use, successful or not); True if a live one was burnt."""
        if self.offer is None:
            return False  # nothing live; an expired offer stays for `expire_due` to report
        self._offer = None
        return True

    def withdraw(self) -> bool:
        """Cancel the offer (the admin closed the QR dialog); True if one was live."""
        return self.consume()

    def expire_due(self) -> QrOffer | None:
        """Drop an offer whose time is up, returning it once (for the audit); else None."""
        offer = self._offer
        if offer is not None and self.offer is None:
            self._offer = None
            return offer
        return None
