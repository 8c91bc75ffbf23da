"""Verify's fast parse of stored, authenticated record bytes (parse_stored_record)
accepts exactly what the strict parse accepts, gives the same record, and refuses
everything else with the strict parse's own reason."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import Record, encode_record, parse_record, parse_stored_record
from test_archive_records import _cbor_value, _record_keys, fields

MAX_BLOB = 1 << 30
SIG = bytes(64)


def outcome(parse: Any, raw: bytes, sig: bytes = SIG) -> Record | str:
    try:
        result: Record = parse(raw, sig, max_blob_size=MAX_BLOB)
    except RecordRejected as exc:
        return f"rejected: {exc}"
    return result


def same_as_strict(raw: bytes, sig: bytes = SIG) -> Record | str:
    strict = outcome(parse_record, raw, sig)
    assert outcome(parse_stored_record, raw, sig) == strict
    return strict


BLOB = {"sha256": bytes(range(32)), "size": 5, "name": "a.pdf", "mime": "application/pdf"}
VALID = [
    fields("message", "m1", dir="out", text="Bonjour"),
    fields("message", "m2", dir="in", text="", dev="pixel-7"),
    fields("edit", "e1", dir="out", text="Bonjour !", ref="m1"),
    fields("deletion", "d1", dir="out", ref="m1"),
    fields("receipt", "r1", ref="m1", receipt="read"),
    fields("attachment", "a1", dir="out", ref="m1", blob=BLOB),
]


@pytest.mark.parametrize("body", VALID, ids=lambda b: str(b["kind"]))
def test_every_kind_parses_to_the_same_record(body: dict[str, Any]) -> None:
    assert isinstance(same_as_strict(encode_record(body)), Record)


def _long_head(raw: bytes) -> bytes:
    """The map's head in a two-byte form: same items, not the shortest encoding."""
    count = raw[0] & 0x1F
    return bytes([0xB8, count]) + raw[1:]


@pytest.mark.parametrize("body", VALID, ids=lambda b: str(b["kind"]))
def test_non_canonical_encodings_are_refused_for_the_strict_reason(body: dict[str, Any]) -> None:
    canonical = encode_record(body)
    reordered = cbor2.dumps(dict(reversed(list(body.items()))))  # keys out of order
    indefinite = b"\xbf" + canonical[1:] + b"\xff"  # an indefinite-length map
    # A repeated key: the map says one more pair, the last key written again.
    last_key = cbor2.dumps(sorted(body, key=lambda k: (len(k), k))[-1])
    repeated = bytes([canonical[0] + 1]) + canonical[1:] + last_key + cbor2.dumps("x")
    tagged = cbor2.dumps({**body, "id": cbor2.CBORTag(32, "m")}, canonical=True)
    for raw in (reordered, _long_head(canonical), indefinite, repeated, tagged):
        result = same_as_strict(raw)
        assert isinstance(result, str), raw.hex()
    if body["kind"] == "attachment":
        blob = dict(reversed(list(BLOB.items())))
        inner = cbor2.dumps({**body, "blob": blob})
        assert isinstance(same_as_strict(inner), str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_record_keys, _cbor_value, max_size=12),
    st.sampled_from(["message", "edit", "deletion", "receipt", "attachment"]),
)
def test_hostile_maps_get_the_strict_outcome(body: dict[str, Any], kind: str) -> None:
    body = {**body, "kind": kind}
    for raw in (encode_record(body), cbor2.dumps(body)):
        same_as_strict(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.binary(min_size=0, max_size=70))
def test_random_bytes_get_the_strict_outcome(raw: bytes, sig: bytes) -> None:
    same_as_strict(raw, sig)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_one_changed_byte_gets_the_strict_outcome(body: dict[str, Any], data: Any) -> None:
    raw = bytearray(encode_record(body))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] = data.draw(st.integers(0, 255))
    same_as_strict(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x81" * 90_000 + b"\x00",  # nested 90,000 deep (cbor2 sees it before any walk)
        b"\xa1\x61a" * 30_000 + b"\x00",
        b"\x9b" + (2**40).to_bytes(8, "big"),  # an array claiming 2^40 items
        b"\x5b" + (2**40).to_bytes(8, "big"),  # a byte string claiming 1 TiB
        cbor2.dumps({"kind": "message", "text": cbor2.CBORTag(35, "(a+)+$")}),  # a regex
    ],
    ids=["deep-arrays", "deep-maps", "huge-array", "huge-bytes", "regex-tag"],
)
def test_hostile_bytes_are_refused_without_harm(raw: bytes) -> None:
    assert isinstance(same_as_strict(raw), str)
