"""QR pairing offers: issue, expiry and one-time use on an injected clock, strict parsing of
hostile URIs, and the secret actually authenticating a Noise XXpsk3 handshake."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.noise import HandshakeState, NoiseError, generate_keypair
from strongroom.pairing.errors import InvalidQrOffer
from strongroom.pairing.qr import QrPairing, make_offer, parse_offer
from support.clock import Clock

FP = "16ec-fa3d-fc93-0617-3c9b-4e04-63d0-43e4"
XXPSK3 = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"
SECRET = bytes(range(32))
K = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
GOOD = f"strongroom://pair?h=strongroom.local&p=8443&fp={FP}&k={K}&v=1"


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


def test_issued_offer_round_trips_through_its_uri(clock: Clock) -> None:
    qr = QrPairing(clock)
    offer = qr.issue("192.168.1.20", 443, FP)
    assert len(offer.secret) == 32
    assert offer.uri.startswith("strongroom://pair?h=192.168.1.20&p=443&fp=")
    parsed = parse_offer(offer.uri)
    assert (parsed.host, parsed.port, parsed.fingerprint, parsed.secret) == (
        "192.168.1.20",
        443,
        FP,
        offer.secret,
    )
    assert qr.current_secret() == offer.secret
    assert offer.secret.hex() not in repr(offer)  # never in a log line


def test_each_offer_has_a_fresh_secret_and_replaces_the_last(clock: Clock) -> None:
    qr = QrPairing(clock)
    first = qr.issue("strongroom.local", 443, FP)
    second = qr.issue("strongroom.local", 443, FP)
    assert first.secret != second.secret
    assert qr.current_secret() == second.secret


def test_secret_expires_after_120_seconds(clock: Clock) -> None:
    qr = QrPairing(clock)
    offer = qr.issue("strongroom.local", 443, FP)
    clock.now += 119.9
    assert qr.current_secret() == offer.secret
    assert qr.seconds_left() == pytest.approx(0.1)
    clock.now += 0.1
    assert qr.current_secret() is None
    assert qr.consume() is False
    assert qr.expire_due() == offer
    assert qr.expire_due() is None


def test_secret_is_one_time(clock: Clock) -> None:
    qr = QrPairing(clock)
    qr.issue("strongroom.local", 443, FP)
    assert qr.consume() is True
    assert qr.current_secret() is None
    assert qr.consume() is False
    assert qr.expire_due() is None  # used, not expired


def test_withdraw_kills_the_secret(clock: Clock) -> None:
    qr = QrPairing(clock)
    qr.issue("strongroom.local", 443, FP)
    assert qr.withdraw() is True
    assert qr.current_secret() is None


def _xxpsk3(phone_psk: bytes, box_psk: bytes) -> bool:
    """Run XXpsk3 phone -> box; True if both sides completed."""
    phone = HandshakeState(XXPSK3, True, s=generate_keypair().private, psks=[phone_psk])
    box = HandshakeState(XXPSK3, False, s=generate_keypair().private, psks=[box_psk])
    try:
        box.read_message(phone.write_message())
        phone.read_message(box.write_message())
        box.read_message(phone.write_message())
    except NoiseError:
        return False
    return phone.is_complete and box.is_complete


def test_right_secret_completes_xxpsk3_and_wrong_secret_fails_cleanly(clock: Clock) -> None:
    qr = QrPairing(clock)
    offer = qr.issue("strongroom.local", 443, FP)
    box_secret = qr.current_secret()
    assert box_secret is not None
    assert _xxpsk3(parse_offer(offer.uri).secret, box_secret)
    other = QrPairing(clock).issue("strongroom.local", 443, FP)
    assert not _xxpsk3(other.secret, box_secret)


def test_svg_and_png_renderings(clock: Clock) -> None:
    offer = QrPairing(clock).issue("strongroom.local", 443, FP)
    assert offer.svg().startswith("<svg") and offer.svg().rstrip().endswith("</svg>")
    data_uri = offer.png_data_uri()
    prefix = "data:image/png;base64,"
    assert data_uri.startswith(prefix)
    assert base64.b64decode(data_uri[len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("StrongRoom.Local", "strongroom.local"),
        ("strongroom.local.", "strongroom.local"),
        ("fe80:0:0::1", "fe80::1"),
        ("10.0.0.7", "10.0.0.7"),
    ],
)
def test_hosts_are_canonicalised(host: str, expected: str) -> None:
    assert parse_offer(GOOD.replace("h=strongroom.local", f"h={host}")).host == expected


def test_the_reference_uri_parses_in_any_parameter_order() -> None:
    offer = parse_offer(f"STRONGROOM://PAIR?v=1&k={K}&fp={FP}&p=8443&h=strongroom.local")
    assert (offer.host, offer.port, offer.secret) == ("strongroom.local", 8443, SECRET)


MALFORMED = {
    "other scheme": GOOD.replace("strongroom://", "https://"),
    "other action": GOOD.replace("//pair?", "//unpair?"),
    "path": GOOD.replace("//pair?", "//pair/x?"),
    "no query": "strongroom://pair",
    "fragment": GOOD + "#x",
    "version 2": GOOD.replace("v=1", "v=2"),
    "missing version": GOOD.replace("&v=1", ""),
    "missing secret": GOOD.replace(f"&k={K}", ""),
    "repeated port": GOOD + "&p=1",
    "unknown parameter": GOOD + "&x=1",
    "empty item": GOOD + "&",
    "no equals": GOOD + "&v",
    "percent-encoding": GOOD.replace("strongroom.local", "strongroom%2Elocal"),
    "plus": GOOD.replace("strongroom.local", "strong+room.local"),
    "space": GOOD.replace("strongroom.local", "strong room.local"),
    "newline": GOOD + "\n",
    "non-ascii host": GOOD.replace("strongroom.local", "strongrööm.local"),
    "port 0": GOOD.replace("p=8443", "p=0"),
    "port too big": GOOD.replace("p=8443", "p=65536"),
    "port leading zero": GOOD.replace("p=8443", "p=08443"),
    "port sign": GOOD.replace("p=8443", "p=-1"),
    "port hex": GOOD.replace("p=8443", "p=0x20"),
    "empty host": GOOD.replace("h=strongroom.local", "h="),
    "bad label": GOOD.replace("strongroom.local", "-strongroom.local"),
    "empty label": GOOD.replace("strongroom.local", "strongroom..local"),
    "underscore": GOOD.replace("strongroom.local", "strong_room.local"),
    "short ipv4": GOOD.replace("strongroom.local", "10.1"),
    "ipv4 leading zero": GOOD.replace("strongroom.local", "010.0.0.1"),
    "ipv4 out of range": GOOD.replace("strongroom.local", "10.0.0.256"),
    "ipv6 zone": GOOD.replace("strongroom.local", "fe80::1%eth0"),
    "ipv6 brackets": GOOD.replace("strongroom.local", "[fe80::1]"),
    "bad ipv6": GOOD.replace("strongroom.local", "fe80:::1"),
    "fingerprint upper": GOOD.replace(FP, FP.upper()),
    "fingerprint short": GOOD.replace(FP, FP[:-5]),
    "fingerprint no dashes": GOOD.replace(FP, FP.replace("-", "")),
    "secret short": GOOD.replace(K, K[:-1]),
    "secret long": GOOD.replace(K, K + "A"),
    "secret padded": GOOD.replace(K, K + "="),
    "secret standard base64": GOOD.replace(K, "+" + K[1:]),
    "secret non-canonical": GOOD.replace(K, K[:-1] + chr(ord(K[-1]) + 1)),
    "too long": GOOD + "&" + "a" * 600,
}


@pytest.mark.parametrize("uri", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidQrOffer):
        parse_offer(uri)


@given(st.text(max_size=300))
def test_random_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(InvalidQrOffer):
        parse_offer(text)


@given(st.lists(st.sampled_from(list(GOOD)), max_size=200).map("".join))
def test_shuffled_pieces_of_a_good_uri_never_raise_anything_else(text: str) -> None:
    try:
        offer = parse_offer(text)
    except InvalidQrOffer:
        return
    assert parse_offer(offer.uri) == offer


@pytest.mark.parametrize(
    ("host", "port", "fingerprint", "secret"),
    [
        ("strongroom.local", 443, FP, b"short"),
        ("strongroom.local", 0, FP, SECRET),
        ("strongroom.local", True, FP, SECRET),
        ("strong room", 443, FP, SECRET),
        ("strongroom.local", 443, "not-a-fingerprint", SECRET),
    ],
)
def test_the_box_cannot_issue_an_invalid_offer(
    host: str, port: int, fingerprint: str, secret: bytes
) -> None:
    with pytest.raises(ValueError):
        make_offer(host, port, fingerprint, secret)
