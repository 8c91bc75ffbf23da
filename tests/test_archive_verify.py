"""`verify_archive` passes on an honest archive and names every kind of tampering."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cbor2
import pytest
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import db, writes
from strongroom.archive.blobs import CHUNK_BYTES, SEALED_CHUNK_BYTES, BlobLocation, BlobStore
from strongroom.archive.errors import WrongArchiveKey
from strongroom.archive.record import parse_record, sign_record
from strongroom.archive.store import Archive
from strongroom.archive.verify import VerifyReport, verify_archive

OWNER = "maitre.durand"
RECORDS = 300


@dataclass
class Populated:
    archive: Archive
    keys: dict[str, bytes]
    big_blob: BlobLocation
    big_sha: bytes
    big_size: int
    receipt_index: int
    attachment_index: int

    @property
    def path(self) -> Path:
        return self.archive.path

    def sql(self, statement: str, args: tuple[Any, ...] = ()) -> int:
        """Tamper as someone holding the key would: straight SQL on the file."""
        conn = db.connect(self.path, self.keys["archive"])
        changed = conn.execute(statement, args).rowcount
        conn.close()
        return changed

    def verify(self) -> VerifyReport:
        conn = db.connect(self.path, self.keys["archive"])
        try:
            return verify_archive(
                conn, self.archive.blobs, bytes(self.archive.signing_key.verify_key)
            )
        finally:
            conn.close()


def put_blob(archive: Archive, data: bytes) -> tuple[BlobLocation, bytes]:
    sha = hashlib.sha256(data).digest()
    location = archive.write(writes.begin_upload(sha, len(data), archive.blobs.new_location()))
    upload = archive.blobs.start_upload(location, len(data), sha)
    upload.write(data)
    upload.finish()
    archive.blobs.complete(upload, location)
    archive.write(writes.register_blob(sha, len(data), location))
    return location, sha


def _open(data_dir: Path, keys: dict[str, bytes]) -> Archive:
    return Archive.open(data_dir, keys["archive"], keys["blob"], SigningKey(keys["sign_seed"]))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Populated]:
    """Built once per module, closed (WAL checkpointed), then copied for each test."""
    keys = {"archive": os.urandom(32), "blob": os.urandom(32), "sign_seed": os.urandom(32)}
    data_dir = tmp_path_factory.mktemp("template") / "data"
    archive = _open(data_dir, keys)
    built = _populate(archive, keys)
    archive.close()
    return data_dir, built


@pytest.fixture
def populated(template: tuple[Path, Populated], tmp_path: Path) -> Iterator[Populated]:
    source, built = template
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    archive = _open(data_dir, built.keys)
    yield replace(built, archive=archive)
    archive.close()


def _populate(archive: Archive, archive_keys: dict[str, bytes]) -> Populated:
    phone, key = new_phone(archive, owner=OWNER, name="Pixel")
    lost, lost_key = new_phone(archive, owner=OWNER, name="Vieux téléphone")
    archive.write(writes.store_record(message(lost_key, "avant la perte"), lost, OWNER))
    archive.write(writes.revoke_device(lost, "perdu dans le train"))
    archive.write_batch(
        [
            writes.store_record(
                message(key, f"Message {i} du dossier", direction="in" if i % 3 else "out"),
                phone,
                OWNER,
            )
            for i in range(RECORDS)
        ]
        + [writes.audit("admin", "export", f"conv-{i}", {"why": "tribunal"}) for i in range(5)]
    )
    first_client_id = archive.conn.execute(
        "SELECT client_id FROM records ORDER BY id LIMIT 1 OFFSET 1"
    ).fetchone()[0]
    big = os.urandom(2 * CHUNK_BYTES + 1234)  # three chunks, the last one short
    big_location, big_sha = put_blob(archive, big)
    put_blob(archive, b"petit fichier")
    put_blob(archive, b"")
    base: dict[str, Any] = {"v": 1, "conv": "client-martin", "from": "Martin", "at": 1}
    receipt = sign_record(
        key, {**base, "kind": "receipt", "id": "r1", "ref": first_client_id, "receipt": "read"}
    )
    attachment = sign_record(
        key,
        {
            **base,
            "kind": "attachment",
            "id": "a1",
            "dir": "in",
            "ref": first_client_id,
            "blob": {"sha256": big_sha, "size": len(big), "name": "scan.pdf", "mime": "a/b"},
        },
    )
    stored = archive.write_batch(
        [
            writes.store_record(parse_record(*pair, max_blob_size=1 << 30), phone, OWNER)
            for pair in (receipt, attachment)
        ]
    ).results
    return Populated(
        archive,
        archive_keys,
        big_location,
        big_sha,
        len(big),
        stored[0].log_index,
        stored[1].log_index,
    )


def assert_detected(report: VerifyReport, *fragments: str) -> None:
    assert not report.ok, "tampering went unnoticed"
    joined = "\n".join(report.problems)
    for fragment in fragments:
        assert fragment in joined, f"{fragment!r} not named in:\n{joined}"


def test_an_honest_archive_verifies(populated: Populated) -> None:
    report = populated.verify()
    assert report.ok, report.problems
    assert report.records == RECORDS + 3
    assert report.audit_events == 5
    assert report.device_events == 3  # two pairings, one revocation
    assert report.blobs == 3
    assert report.leaves == RECORDS + 3 + 5 + 3 + 3
    assert report.tree_head is not None and report.tree_head.tree_size == report.leaves


def _record_at(populated: Populated, offset: int) -> tuple[int, int, bytes]:
    conn = db.connect(populated.path, populated.keys["archive"])
    row = conn.execute(
        "SELECT id, log_index, body FROM records ORDER BY id LIMIT 1 OFFSET ?", (offset,)
    ).fetchone()
    conn.close()
    return int(row[0]), int(row[1]), bytes(row[2])


def test_changed_record_body_is_named(populated: Populated) -> None:
    row, index, body = _record_at(populated, 120)
    forged = body.replace(b"Message", b"Messagf")
    assert populated.sql("UPDATE records SET body = ? WHERE id = ?", (forged, row)) == 1
    assert_detected(populated.verify(), f"record {row} (log {index})", "does not match its hash")


def test_recomputed_hashes_do_not_hide_a_changed_body(populated: Populated) -> None:
    """Even fixing record_id and content_sha256 to the new body, the leaf and signature object."""
    row, index, body = _record_at(populated, 50)
    forged = body.replace(b"Message", b"Messagf")
    digest = hashlib.sha256(forged).digest()
    populated.sql(
        "UPDATE records SET body = ?, record_id = ?, content_sha256 = ? WHERE id = ?",
        (forged, digest, digest, row),
    )
    assert_detected(
        populated.verify(),
        f"record {row} (log {index}): the device signature does not verify",
        f"record {row} (log {index}): content does not match log leaf {index}",
    )


def test_changed_signature_is_named(populated: Populated) -> None:
    row, index, _ = _record_at(populated, 7)
    populated.sql(
        "UPDATE records SET signature = substr(signature, 1, 63) || x'00' WHERE id = ?", (row,)
    )
    assert_detected(populated.verify(), f"record {row} (log {index})", "signature")


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE messages SET text = 'Message 999 du dossier' WHERE record_id = ?", "message row"),
        ("UPDATE messages SET direction = 'out' WHERE record_id = ?", "message row"),
        ("UPDATE messages SET sent_at = sent_at + 1 WHERE record_id = ?", "message row"),
        ("DELETE FROM messages WHERE record_id = ?", "message row is missing"),
        ("UPDATE records SET client_id = 'autre' WHERE id = ?", "differs from the signed"),
    ],
)
def test_what_the_ui_shows_must_match_the_signed_record(
    populated: Populated, statement: str, what: str
) -> None:
    row, index, _ = _record_at(populated, 30)
    assert populated.sql(statement, (row,)) == 1
    assert_detected(populated.verify(), f"record {row} (log {index})", what)


def test_changed_receipt_and_attachment_rows_are_named(populated: Populated) -> None:
    populated.sql("UPDATE receipts SET receipt = 'delivered'")
    populated.sql("UPDATE attachments SET name = 'autre.pdf'")
    report = populated.verify()
    assert_detected(
        report,
        f"(log {populated.receipt_index}): its receipt row differs",
        f"(log {populated.attachment_index}): its attachment row differs",
    )


def test_wrongly_typed_values_are_named_and_the_rest_still_checked(populated: Populated) -> None:
    row, index, _ = _record_at(populated, 60)
    populated.sql("UPDATE records SET content_sha256 = 'pas un hash' WHERE id = ?", (row,))
    populated.sql("UPDATE audit_events SET details = CAST(x'ff00fe' AS TEXT) WHERE id = 1")
    report = populated.verify()
    assert_detected(report, f"record {row} (log {index}): malformed entry", "audit event at log")
    assert report.records == RECORDS + 3 and report.blobs == 3  # it went on to the end
    assert not any("unreadable page" in p for p in report.problems)


def test_changed_leaf_data_is_named(populated: Populated) -> None:
    _, index, _ = _record_at(populated, 200)
    conn = db.connect(populated.path, populated.keys["archive"])
    leaf = cbor2.loads(
        bytes(
            conn.execute("SELECT leaf_data FROM log_leaves WHERE idx = ?", (index,)).fetchone()[0]
        )
    )
    conn.close()
    leaf[3] += 1  # claim another time
    populated.sql("UPDATE log_leaves SET leaf_data = ? WHERE idx = ?", (cbor2.dumps(leaf), index))
    assert_detected(populated.verify(), f"log leaf {index}: stored hash does not match")


def test_deleted_leaf_is_named(populated: Populated) -> None:
    _, index, _ = _record_at(populated, 100)
    assert populated.sql("DELETE FROM log_leaves WHERE idx = ?", (index,)) == 1
    assert_detected(
        populated.verify(), f"leaf {index} is missing", f"its log leaf {index} is missing"
    )


@pytest.mark.parametrize("level", [0, 1, 3, 7])
def test_changed_log_node_is_named(populated: Populated, level: int) -> None:
    """Inclusion proofs are served from log_nodes: a forged node must not pass."""
    index = 1
    changed = populated.sql(
        "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = ? AND idx = ?", (level, index)
    )
    assert changed == 1
    name = f"log leaf {index}" if level == 0 else f"log node (level {level}, {index})"
    assert_detected(populated.verify(), name)


def test_deleted_interior_node_is_named(populated: Populated) -> None:
    populated.sql("DELETE FROM log_nodes WHERE level = 2 AND idx = 5")
    assert_detected(populated.verify(), "log node (level 2, 5) is missing")


def test_changed_tree_head_root_is_named(populated: Populated) -> None:
    populated.sql(
        "UPDATE tree_heads SET root_hash = zeroblob(32)"
        " WHERE tree_size = (SELECT max(tree_size) FROM tree_heads)"
    )
    assert_detected(populated.verify(), "differs from the signed tree head", "signature")


def test_changed_tree_head_signature_is_named(populated: Populated) -> None:
    populated.sql(
        "UPDATE tree_heads SET signature = zeroblob(64)"
        " WHERE tree_size = (SELECT max(tree_size) FROM tree_heads)"
    )
    report = populated.verify()
    assert report.tree_head is not None
    assert_detected(
        report, f"the signature of the tree head of size {report.tree_head.tree_size} is invalid"
    )


def test_tree_head_signed_by_another_key_is_refused(populated: Populated) -> None:
    conn = db.connect(populated.path, populated.keys["archive"])
    report = verify_archive(conn, populated.archive.blobs, bytes(SigningKey.generate().verify_key))
    conn.close()
    assert_detected(report, "signature of the tree head")


@pytest.mark.parametrize("column", ["action", "actor", "target", "details", "at"])
def test_changed_audit_event_is_named(populated: Populated, column: str) -> None:
    value: object = 1 if column == "at" else "effacé"
    conn = db.connect(populated.path, populated.keys["archive"])
    index = conn.execute(
        "SELECT log_index FROM audit_events ORDER BY id LIMIT 1 OFFSET 2"
    ).fetchone()[0]
    conn.close()
    populated.sql(f"UPDATE audit_events SET {column} = ? WHERE log_index = ?", (value, index))
    assert_detected(populated.verify(), f"audit event at log {index}")


def test_device_tampering_is_named(populated: Populated) -> None:
    populated.sql("UPDATE devices SET name = 'Autre' WHERE name = 'Pixel'")
    assert_detected(populated.verify(), "device event at log 0", "its pairing is not in the log")


def test_unlogged_revocation_and_unrevocation_are_named(populated: Populated) -> None:
    populated.sql("UPDATE devices SET revoked_at = 5, revoked_reason = 'x' WHERE name = 'Pixel'")
    populated.sql("UPDATE devices SET revoked_at = NULL WHERE name = 'Vieux téléphone'")
    assert_detected(
        populated.verify(), "(Pixel): its revocation is not in the log", "no device matches it"
    )


def _big_blob_path(populated: Populated) -> Path:
    return populated.archive.blobs.path_for(populated.big_blob.file_name)


@pytest.mark.parametrize(
    "offset",
    [0, 40, SEALED_CHUNK_BYTES - 1, SEALED_CHUNK_BYTES + 7, 2 * SEALED_CHUNK_BYTES + 3, -1],
    ids=["chunk0-first", "chunk0", "chunk0-tag", "chunk1", "chunk2-last", "last-byte"],
)
def test_flipped_blob_byte_is_named(populated: Populated, offset: int) -> None:
    path = _big_blob_path(populated)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    chunk = (offset % len(data)) // SEALED_CHUNK_BYTES
    assert_detected(
        populated.verify(),
        f"blob {populated.big_sha.hex()[:16]}",
        f"chunk {chunk} fails to authenticate",
    )


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda b: b[:-1], "truncated at chunk 2"),
        (lambda b: b[: 2 * SEALED_CHUNK_BYTES], "truncated at chunk 2"),
        (lambda b: b[:10], "truncated at chunk 0"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b + b[-SEALED_CHUNK_BYTES:], "trailing bytes"),
        # Swapping two whole chunks: each authenticates only at its own index.
        (
            lambda b: (
                b[SEALED_CHUNK_BYTES : 2 * SEALED_CHUNK_BYTES]
                + b[:SEALED_CHUNK_BYTES]
                + b[2 * SEALED_CHUNK_BYTES :]
            ),
            "chunk 0 fails to authenticate",
        ),
    ],
    ids=["minus-one", "last-chunk-dropped", "stub", "plus-one", "chunk-appended", "swapped"],
)
def test_cut_or_extended_blob_is_named(
    populated: Populated, mutate: Callable[[bytes], bytes], why: str
) -> None:
    path = _big_blob_path(populated)
    path.write_bytes(mutate(path.read_bytes()))
    assert_detected(populated.verify(), f"blob {populated.big_sha.hex()[:16]}", why)


def test_missing_blob_file_is_named(populated: Populated) -> None:
    _big_blob_path(populated).unlink()
    assert_detected(populated.verify(), f"blob {populated.big_sha.hex()[:16]}", "missing")


def test_blob_read_with_another_blob_key_fails(populated: Populated) -> None:
    other = BlobStore(populated.archive.blobs.root, os.urandom(32))
    conn = db.connect(populated.path, populated.keys["archive"])
    report = verify_archive(conn, other, bytes(populated.archive.signing_key.verify_key))
    conn.close()
    assert_detected(report, "fails to authenticate")


def _copy_and_flip(populated: Populated, tmp: Path, page: int, offset: int) -> Path:
    target = tmp / f"p{page}-{offset}"
    target.mkdir()
    dest = target / "archive.db"
    shutil.copyfile(populated.path, dest)
    with dest.open("r+b") as handle:
        handle.seek(page * 4096 + offset)
        byte = handle.read(1)
        handle.seek(page * 4096 + offset)
        handle.write(bytes([byte[0] ^ 0x40]))
    return dest


def test_flipped_bytes_in_the_database_file_are_detected(
    populated: Populated, tmp_path: Path
) -> None:
    populated.archive.close()  # checkpoint: everything is in the main file now
    assert not populated.path.with_name("archive.db-wal").exists()
    key = populated.keys["archive"]
    conn = db.connect(populated.path, key)
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # every page is in use
    records_root = conn.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'records'"
    ).fetchone()[0]
    conn.close()
    assert page_size == 4096
    rng = random.Random(1234)
    # The records table's root page, its neighbours, the last page, and a spread of others.
    chosen = {records_root - 1, records_root, records_root + 1, pages - 1}
    chosen |= {rng.randrange(1, pages) for _ in range(6)}
    for page_number in sorted(chosen):
        page = page_number - 1  # 0-based in the file
        if page == 0:
            continue
        offset = rng.randrange(0, page_size)
        damaged = _copy_and_flip(populated, tmp_path, page, offset)
        conn = db.connect(damaged, key)
        report = verify_archive(
            conn, populated.archive.blobs, bytes(populated.archive.signing_key.verify_key)
        )
        conn.close()
        assert not report.ok, f"flip at page {page_number} offset {offset} unnoticed"
        assert any("database file" in p for p in report.problems), report.problems


def test_flipped_header_page_prevents_opening(populated: Populated, tmp_path: Path) -> None:
    populated.archive.close()
    for offset in (20, 1000, 4000):
        damaged = _copy_and_flip(populated, tmp_path, 0, offset)
        with pytest.raises(WrongArchiveKey):
            db.connect(damaged, populated.keys["archive"])
