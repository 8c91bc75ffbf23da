"""A batch of records inserts its rows a few statements at a time (archive/batch_rows.py)
and writes exactly the rows the same records written one by one write.

Two real SQLCipher archives, the same keys, phone and clock: one takes a mixed
batch (messages in several conversations, an edit, a deletion, a receipt, an
attachment before and one after its message, a record twice) as one group
commit, the other the same ops one commit each. Every table the write path
fills must hold the same rows, ids included.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.record import Record
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive, WriteOp
from strongroom.archive.verify import verify_archive
from strongroom.peer import ingest
from support.records import attachment_fields, message_fields, signed

OWNER = "maitre.durand"
TABLES = {
    "records": "id",
    "messages": "record_id",
    "log_leaves": "idx",
    "conversations": "id",
    "conv_recent": "rowid",
    "receipts": "record_id",
    "attachments": "record_id",
    "fts_state": "rowid",
}


def open_archive(data_dir: Path, keys: dict[str, bytes]) -> Archive:
    # One fixed clock: both archives' leaves and records carry the same time.
    return Archive.open(
        data_dir,
        keys["archive"],
        keys["blob"],
        SigningKey(keys["sign_seed"]),
        clock=lambda: 1_780_000_000.0,
    )


def mixed_records(key: SigningKey) -> list[Record]:
    blob = os.urandom(300)
    sha = hashlib.sha256(blob).digest()
    first = message_fields("bonjour", conv="dossier-a", n=1)
    later = message_fields("la pièce suit", conv="dossier-b", n=9)
    records = [
        signed(key, first),
        signed(key, message_fields("deuxième", conv="dossier-a", n=2, direction="in")),
        signed(key, attachment_fields(later["id"], sha, len(blob), conv="dossier-b", n=3)),
        signed(key, message_fields("corrigé", conv="dossier-a", n=4, kind="edit", ref=first["id"])),
        signed(
            key,
            {
                "v": 1,
                "kind": "receipt",
                "id": "r-5",
                "conv": "dossier-a",
                "from": "M. Martin",
                "at": 1_700_000_000_005,
                "ref": first["id"],
                "receipt": "read",
            },
        ),
        signed(key, message_fields("troisième", conv="dossier-c", n=6, peer="Mme Petit")),
        signed(key, later),
        signed(key, attachment_fields(first["id"], sha, len(blob), conv="dossier-a", n=10)),
        signed(key, deletion(first["id"])),
        # A conversation's peer is its first one given; dossier-e is older than the batch.
        signed(key, message_fields("avec pair", conv="dossier-a", n=12, peer="M. Martin")),
        signed(key, message_fields("autre pair", conv="dossier-a", n=13, peer="Mme Durand")),
        signed(key, message_fields("plus tard", conv="dossier-e", n=14, peer="M. Roy")),
    ]
    records.insert(7, records[1])  # the same record twice in one batch
    records += [
        signed(key, message_fields(f"suite {n}", conv="dossier-d", n=n)) for n in range(20, 100)
    ]
    return records


def deletion(ref: str) -> dict[str, object]:
    fields = message_fields("", conv="dossier-a", n=11, kind="deletion", ref=ref)
    del fields["text"]
    return fields


def dump(archive: Archive) -> dict[str, list[tuple[object, ...]]]:
    with closing(archive.reader()) as conn:
        return {
            table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in TABLES.items()
        }


@pytest.fixture
def pair(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> Iterator[tuple[Archive, Archive, SigningKey]]:
    key = SigningKey.generate()
    noise = os.urandom(32)
    archives = []
    for name in ("batched", "one-by-one"):
        archive = open_archive(tmp_path / name, archive_keys)
        archive.write(
            writes.add_device(
                writes.NewDevice(bytes(key.verify_key), noise, "Pixel", OWNER, "staff", "test")
            )
        )
        archives.append(archive)
    yield archives[0], archives[1], key
    for archive in archives:
        archive.close()


@pytest.mark.parametrize("make_op", [writes.store_record, ingest.push_record])
def test_a_batch_writes_the_rows_the_same_records_write_one_by_one(
    pair: tuple[Archive, Archive, SigningKey], make_op: object
) -> None:
    batched, one_by_one, key = pair
    device = 1
    records = mixed_records(key)
    earlier = signed(key, message_fields("avant", conv="dossier-e", n=0))
    for archive in (batched, one_by_one):
        archive.write_batch([writes.store_record(earlier, device, OWNER)])
    ops: list[WriteOp] = [make_op(r, device, OWNER) for r in records]  # type: ignore[operator]
    together = batched.write_batch(ops).results
    alone = [one_by_one.write_batch([op]).results[0] for op in ops]
    assert together == alone
    assert sum(1 for r in together if getattr(r, "duplicate", False)) == 1
    left, right = dump(batched), dump(one_by_one)
    for table in TABLES:
        assert left[table] == right[table], table
    assert len(left["records"]) == len(records)  # the earlier one, not the twice-sent one
    peers = {row[2]: row[3] for row in left["conversations"]}
    assert peers["dossier-a"] == "M. Martin" and peers["dossier-e"] == "M. Roy", peers
    for archive in (batched, one_by_one):
        with closing(archive.reader()) as conn:
            # Both messages with a piece: the one before it and the one after it.
            flagged = search_messages(conn, filters=SearchFilters(has_attachment=True))
            assert len(flagged) == 2
            report = verify_archive(conn, archive.blobs, bytes(archive.signing_key.verify_key))
        assert report.ok, report.problems
        assert report.records == len(records)


def test_a_rejected_record_in_a_batch_leaves_no_waiting_row_behind(
    pair: tuple[Archive, Archive, SigningKey],
) -> None:
    batched, _, key = pair
    records = [signed(key, message_fields(f"m {n}", conv="dossier-a", n=n)) for n in range(10)]
    ops: list[WriteOp] = [writes.store_record(r, 1, OWNER) for r in records]
    ops.insert(5, writes.store_record(records[0], 99, OWNER))  # an unknown phone
    results = batched.write_batch(ops).results
    assert isinstance(results[5], Exception)
    with closing(batched.reader()) as conn:
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM records ORDER BY id")]
        leaves = int(conn.execute("SELECT count(*) FROM log_leaves").fetchone()[0])
        report = verify_archive(conn, batched.blobs, bytes(batched.signing_key.verify_key))
    assert len(ids) == 10 and ids == list(range(ids[0], ids[0] + 10))
    assert report.ok, report.problems
    assert leaves == report.leaves
