"""Signed records in, the same records out; bad records rejected one by one."""

from __future__ import annotations

import hashlib
import os
from contextlib import closing
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from archive_helpers import SELECT_TEXTS, message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import counts
from strongroom.archive.errors import RecordRejected
from strongroom.archive.listings import (
    attachments_for,
    get_record,
    list_conversations,
    receipts_for,
)
from strongroom.archive.record import (
    MAX_TEXT_CHARS,
    Record,
    encode_record,
    parse_record,
    sign_record,
    verify_record_signature,
)
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive, Txn
from strongroom.archive.verify import verify_archive
from strongroom.archive.writes import StoredRecord

OWNER = "maitre.durand"
MAX_BLOB = 1 << 30


def fields(kind: str, client_id: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "kind": kind,
        "id": client_id,
        "conv": "client-martin",
        "from": "Maître Durand",
        "at": 1_700_000_000_000,
        "peer": "M. Martin",
    }
    base.update(extra)
    return base


def signed(key: SigningKey, f: dict[str, Any]) -> Record:
    raw, sig = sign_record(key, f)
    return parse_record(raw, sig, max_blob_size=MAX_BLOB)


def push_op(raw: bytes, sig: bytes, device_id: int, device_key: bytes) -> Any:
    """What the peer layer does with a pushed record, inside the batch."""

    def op(txn: Txn) -> StoredRecord:
        record = parse_record(raw, sig, max_blob_size=MAX_BLOB)
        verify_record_signature(record, device_key)
        result: StoredRecord = writes.store_record(record, device_id, OWNER)(txn)
        return result

    return op


def test_every_kind_reads_back_through_the_queries(archive: Archive) -> None:
    device_id, key = new_phone(archive, owner=OWNER, name="Pixel de Maître Durand")
    blob_sha = hashlib.sha256(b"scan").digest()
    records = [
        signed(key, fields("message", "m1", dir="out", text="Bonjour, la réunion est à 10h")),
        signed(
            key, fields("message", "m2", dir="in", text="Merci, à demain", **{"from": "Martin"})
        ),
        signed(key, fields("edit", "e1", dir="out", text="la réunion est à 11h", ref="m1")),
        signed(key, fields("deletion", "d1", dir="in", ref="m2", **{"from": "Martin"})),
        signed(key, fields("receipt", "r1", ref="m1", receipt="delivered", at=1_700_000_000_500)),
        signed(key, fields("receipt", "r2", ref="m1", receipt="read", at=1_700_000_000_900)),
        signed(
            key,
            fields(
                "attachment",
                "a1",
                dir="out",
                ref="m1",
                blob={"sha256": blob_sha, "size": 4, "name": "scan.pdf", "mime": "application/pdf"},
            ),
        ),
    ]
    batch = archive.write_batch([writes.store_record(r, device_id, OWNER) for r in records])
    stored = batch.results
    assert all(isinstance(s, StoredRecord) and not s.duplicate for s in stored)
    assert [s.log_index for s in stored] == list(range(1, 8))  # leaf 0 is the pairing
    assert batch.tree_head is not None and batch.tree_head.tree_size == 8

    conn = archive.reader()
    (conv,) = list_conversations(conn, owner=OWNER)
    assert (conv.ref, conv.peer, conv.messages) == ("client-martin", "M. Martin", 4)
    assert list_conversations(conn, owner="someone.else") == []

    hits = {h.text: h for h in search_messages(conn, filters=SearchFilters())}
    assert set(hits) == {
        "Bonjour, la réunion est à 10h",
        "Merci, à demain",
        "la réunion est à 11h",
        None,
    }
    assert hits["Merci, à demain"].direction == "in"
    assert hits["Bonjour, la réunion est à 10h"].has_attachment
    assert hits["Bonjour, la réunion est à 10h"].device_name == "Pixel de Maître Durand"

    for record, result in zip(records, stored, strict=True):
        row = conn.execute(
            "SELECT id FROM records WHERE log_index = ?", (result.log_index,)
        ).fetchone()
        view = get_record(conn, int(row[0]))
        assert view is not None
        assert view.body == record.raw and view.signature == record.signature
        assert view.record_id == record.record_id == hashlib.sha256(record.raw).digest()
        assert view.kind == record.kind and view.client_id == record.client_id
        assert view.log_index == result.log_index and view.owner == OWNER
        assert cbor2.loads(view.leaf_data)[2] == record.record_id  # leaf commits to the hash
    assert get_record(conn, 10_000) is None

    receipts = receipts_for(conn, conv.id, "m1")
    assert [(r.receipt, r.at, r.log_index) for r in receipts] == [
        ("delivered", 1_700_000_000_500, 5),
        ("read", 1_700_000_000_900, 6),
    ]
    (att,) = attachments_for(conn, conv.id, "m1")
    assert (att.blob_sha256, att.size, att.name, att.mime) == (
        blob_sha,
        4,
        "scan.pdf",
        "application/pdf",
    )
    assert att.stored is False  # the manifest arrived, the blob not yet
    assert counts(conn)["records"] == 7
    conn.close()


def test_attachment_pushed_before_its_message_still_flags_it(archive: Archive) -> None:
    device_id, key = new_phone(archive, owner=OWNER)
    blob = {"sha256": bytes(32), "size": 1, "name": "a.jpg", "mime": "image/jpeg"}
    attachment = signed(key, fields("attachment", "a9", dir="in", ref="m9", blob=blob))
    msg = signed(key, fields("message", "m9", dir="in", text="voici la photo"))
    archive.write(writes.store_record(attachment, device_id, OWNER))
    archive.write(writes.store_record(msg, device_id, OWNER))
    (hit,) = search_messages(archive.conn, "photo")
    assert hit.has_attachment


def test_pushing_the_same_record_twice_stores_it_once(archive: Archive) -> None:
    device_id, key = new_phone(archive, owner=OWNER)
    record = message(key, "une seule fois")
    first = archive.write(writes.store_record(record, device_id, OWNER))
    again = archive.write(writes.store_record(record, device_id, OWNER))
    same_batch = archive.write_batch([writes.store_record(record, device_id, OWNER)] * 3)
    assert not first.duplicate
    assert again.duplicate and again.log_index == first.log_index
    assert [r.log_index for r in same_batch.results] == [first.log_index] * 3
    assert archive.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    assert archive.log.size == 2  # the pairing and the record, nothing more


def test_a_rejected_record_rolls_back_alone(
    archive: Archive, archive_keys: dict[str, bytes]
) -> None:
    device_id, key = new_phone(archive, owner=OWNER)
    revoked_id, revoked_key = new_phone(archive, owner=OWNER, name="lost phone")
    archive.write(writes.revoke_device(revoked_id, "lost"))
    pub = bytes(key.verify_key)

    def good(text: str) -> tuple[bytes, bytes]:
        return sign_record(key, fields("message", os.urandom(6).hex(), dir="out", text=text))

    raw, _ = good("signed by someone else")
    forged_sig = SigningKey.generate().sign(b"strongroom-record-v1\x00" + raw).signature
    # Reorder the map so it is valid CBOR but not canonical.
    as_map = fields("message", "nc2", dir="out", text="x")
    reordered = cbor2.dumps(dict(reversed(list(as_map.items()))))
    assert reordered != encode_record(as_map)
    unknown = encode_record({**fields("message", "u", dir="out", text="x"), "admin": True})
    too_long = encode_record(fields("message", "big", dir="out", text="x" * (MAX_TEXT_CHARS + 1)))

    def stored_then_rejected(txn: Txn) -> None:
        record = signed(key, fields("message", "late", dir="out", text="écrit puis refusé"))
        writes.store_record(record, device_id, OWNER)(txn)
        raise RecordRejected("refused after writing")

    cases: list[tuple[str, Any]] = [
        ("good 1", push_op(*good("premier"), device_id, pub)),
        ("bad signature", push_op(raw, forged_sig, device_id, pub)),
        (
            "revoked device",
            writes.store_record(message(revoked_key, "trop tard"), revoked_id, OWNER),
        ),
        ("malformed CBOR", push_op(b"\xa1\x61", bytes(64), device_id, pub)),
        ("non-canonical", push_op(reordered, key.sign(reordered).signature, device_id, pub)),
        ("unknown field", push_op(unknown, bytes(64), device_id, pub)),
        ("oversized text", push_op(too_long, bytes(64), device_id, pub)),
        ("late rejection", stored_then_rejected),
        ("good 2", push_op(*good("second"), device_id, pub)),
    ]
    size_before = archive.log.size
    batch = archive.write_batch([op for _, op in cases])
    outcome = dict(zip([name for name, _ in cases], batch.results, strict=True))
    for name, result in outcome.items():
        if name.startswith("good"):
            assert isinstance(result, StoredRecord), name
        else:
            assert isinstance(result, RecordRejected), name
    assert outcome["good 1"].log_index == size_before
    assert outcome["good 2"].log_index == size_before + 1
    assert archive.log.size == size_before + 2
    texts = {r[0] for r in archive.conn.execute(SELECT_TEXTS)}
    assert texts == {"premier", "second"}
    assert archive.conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == 1
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.ok, report.problems
    assert report.records == 2


def test_records_from_a_revoked_device_are_refused_but_old_ones_stay(archive: Archive) -> None:
    device_id, key = new_phone(archive, owner=OWNER)
    before = message(key, "avant")
    kept = archive.write(writes.store_record(before, device_id, OWNER))
    archive.write(writes.revoke_device(device_id, "vol"))
    with pytest.raises(RecordRejected, match="revoked"):
        archive.write(writes.store_record(message(key, "après"), device_id, OWNER))
    # A record stored before the revocation is still answered with its old index.
    again = archive.write(writes.store_record(before, device_id, OWNER))
    assert again.duplicate and again.log_index == kept.log_index == 1
    assert archive.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    assert archive.log.size == 3  # pairing, record, revocation


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512), st.binary(min_size=0, max_size=70))
def test_random_bytes_only_ever_raise_record_rejected(raw: bytes, sig: bytes) -> None:
    try:
        parse_record(raw, sig, max_blob_size=MAX_BLOB)
    except RecordRejected:
        pass


_cbor_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=40),
)
_cbor_value = st.recursive(
    _cbor_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_record_keys = st.sampled_from(
    [
        "v",
        "kind",
        "id",
        "conv",
        "dir",
        "from",
        "at",
        "text",
        "ref",
        "receipt",
        "blob",
        "peer",
        "dev",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_record_keys, _cbor_value, max_size=12),
    st.sampled_from(["message", "edit", "deletion", "receipt", "attachment", "other"]),
)
def test_hostile_but_well_formed_maps_only_raise_record_rejected(
    body: dict[str, Any], kind: str
) -> None:
    body = {**body, "kind": kind}
    for raw in (encode_record(body), cbor2.dumps(body)):
        try:
            record = parse_record(raw, bytes(64), max_blob_size=MAX_BLOB)
        except RecordRejected:
            continue
        # Anything accepted must be exactly what a canonical encoder produces.
        assert record.raw == encode_record(cbor2.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        # Shared-reference tags make a cyclic structure that cannot be re-encoded.
        bytes.fromhex("d81c81d81d00"),
        bytes.fromhex("d81ca16176d81d00"),
        # A MIME tag (36) decodes to an email.message.Message cbor2 cannot encode back.
        bytes.fromhex("a16176d8246178"),
    ],
)
def test_cbor_that_decodes_but_cannot_be_reencoded_is_rejected(raw: bytes) -> None:
    with pytest.raises(RecordRejected):
        parse_record(raw, bytes(64), max_blob_size=MAX_BLOB)


@pytest.mark.parametrize(
    ("tagged", "why"),
    [
        (cbor2.CBORTag(35, "(a+)+$"), "tags"),  # a regular expression cbor2 would compile
        (cbor2.CBORTag(2, b"\xff" * 4000), "tags"),  # a 32,000-bit bignum
        (1.5, "floats"),
    ],
)
def test_record_bytes_outside_the_subset_never_reach_the_decoder(
    tagged: Any, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = cbor2.dumps({**fields("message", "m", dir="out"), "text": tagged}, canonical=True)

    def decoder_must_not_run(_raw: bytes) -> Any:
        raise AssertionError("cbor2 decoded bytes the pre-check should have refused")

    monkeypatch.setattr(cbor2, "loads", decoder_must_not_run)
    with pytest.raises(RecordRejected, match=why):
        parse_record(raw, bytes(64), max_blob_size=MAX_BLOB)


def test_tagged_or_boolean_values_in_optional_fields_are_rejected() -> None:
    key = SigningKey.generate()
    base = fields("message", "m", dir="out", text="x")
    for extra in ({"dev": {"nested": [1, 2]}}, {"dev": 7}, {"v": True}):
        raw, sig = sign_record(key, {**base, **extra})
        with pytest.raises(RecordRejected):
            parse_record(raw, sig, max_blob_size=MAX_BLOB)
    raw, sig = sign_record(key, {**base, "dev": "pixel-7"})
    assert parse_record(raw, sig, max_blob_size=MAX_BLOB).client_id == "m"


def test_signature_check_binds_the_device_key(tmp_path: Path) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    record = signed(key, fields("message", "m", dir="out", text="x"))
    verify_record_signature(record, bytes(key.verify_key))
    with pytest.raises(RecordRejected, match="signature"):
        verify_record_signature(record, bytes(other.verify_key))
    with pytest.raises(RecordRejected, match="signature"):
        verify_record_signature(record, b"short")


def test_a_conversation_keeps_its_first_time_newest_time_and_first_known_contact(
    archive: Archive,
) -> None:
    device_id, key = new_phone(archive, owner=OWNER, name="Pixel de Maître Durand")
    t0 = 1_700_000_000_000
    late_first = [
        # Phones push out of order (an offline backlog): the newest message comes first.
        signed(key, fields("message", "m3", dir="in", text="c", at=t0 + 3_000, peer="")),
        signed(key, fields("message", "m1", dir="in", text="a", at=t0 + 1_000, peer="")),
        signed(key, fields("message", "m2", dir="in", text="b", at=t0 + 2_000)),
        signed(key, fields("message", "m4", dir="in", text="d", at=t0 + 500, peer="Mme Autre")),
    ]
    for record in late_first:  # one transaction each, as separate pushes would be
        archive.write(writes.store_record(record, device_id, OWNER))
    (conv,) = list_conversations(archive.reader(), owner=OWNER)
    # Created when first seen (at m3's time); last_at never goes back; the contact's
    # name fills in once known and is not overwritten by a later different one.
    assert (conv.created_at, conv.last_at) == (t0 + 3_000, t0 + 3_000)
    assert conv.peer == "M. Martin"
    assert conv.messages == 4


def _attachment_steps(archive: Archive, device_id: int, key: SigningKey, n: int) -> int:
    """SQLite VM steps storing an attachment for message `m{n}`, already archived."""
    blob = {"sha256": bytes(32), "size": 1, "name": "a.jpg", "mime": "image/jpeg"}
    record = signed(key, fields("attachment", f"a{n}", dir="in", ref=f"m{n}", blob=blob))
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    archive.conn.set_progress_handler(tick, 1)
    try:
        archive.write(writes.store_record(record, device_id, OWNER))
    finally:
        archive.conn.set_progress_handler(None, 0)
    return steps[0]


def test_an_attachment_costs_the_same_in_a_long_conversation(archive: Archive) -> None:
    """Flagging an attachment's message reads no other record of its conversation."""
    device_id, key = new_phone(archive, owner=OWNER)

    def talk(start: int, count: int) -> None:
        archive.write_batch(
            [
                writes.store_record(
                    signed(
                        key,
                        fields(
                            "message", f"m{n}", dir="out", text=f"n{n}", at=1_700_000_000_000 + n
                        ),
                    ),
                    device_id,
                    OWNER,
                )
                for n in range(start, start + count)
            ]
        )

    talk(0, 10)
    short = _attachment_steps(archive, device_id, key, 5)
    talk(10, 600)
    long = _attachment_steps(archive, device_id, key, 300)
    # Reading each of 600 more records takes thousands of steps; the log's tree
    # growing from ~12 to ~612 leaves adds a few levels of hashing only.
    assert long < short + 1000, (short, long)  # was 659 and 4208, now ~530 and ~480
    hits = search_messages(archive.conn, filters=SearchFilters(has_attachment=True))
    assert sorted(h.record_row for h in hits) == sorted(
        int(r[0])
        for r in archive.conn.execute("SELECT id FROM records WHERE client_id IN ('m5', 'm300')")
    )
