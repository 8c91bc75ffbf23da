"""A probe, not a `make bench` row: the conversation index as an LSM (issue #20 item 1).

On a copy of a cached corpus, replaces `records_conversation` (every new row lands
on its conversation's own leaf: at 5M one page per conversation per commit) with
`conv_recent`, filled by a trigger in arrival order (appends only), folded in one
sorted INSERT into `conv_folded` (conversation, sent_at, record) after the ingest.
Measured as the growth row measures: bytes this process hands to write() for
`count` records from ten phones through the GroupCommitter, the fold and a final
checkpoint. `index` runs the same ingest on the schema as it is. Readers are not
changed: it says what the writes would be, not that the box works that way.

    .venv/bin/python scripts/bench_lsm_probe.py var/bench/archive-5000000-v8/data \
        40000 20000 lsm|lsm-idx|index
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

import bench_archive as ba

from strongroom.archive import db as archive_db
from strongroom.archive.committer import GroupCommitter

LSM = """
BEGIN;
CREATE TABLE conv_folded (conversation_id INTEGER, sent_at INTEGER, record_id INTEGER,
    PRIMARY KEY (conversation_id, sent_at, record_id)) WITHOUT ROWID;
INSERT INTO conv_folded SELECT conversation_id, sent_at, id
    FROM records INDEXED BY records_conversation ORDER BY conversation_id, sent_at, id;
DROP INDEX records_conversation;
CREATE TABLE conv_recent (record_id INTEGER PRIMARY KEY, conversation_id INTEGER,
    sent_at INTEGER);
CREATE TRIGGER conv_recent_ai AFTER INSERT ON records BEGIN
    INSERT INTO conv_recent VALUES (new.id, new.conversation_id, new.sent_at);
END;
COMMIT;
"""
FOLD = """
BEGIN IMMEDIATE;
INSERT INTO conv_folded SELECT conversation_id, sent_at, record_id FROM conv_recent
    ORDER BY 1, 2, 3;
DELETE FROM conv_recent;
COMMIT;
"""


def main() -> None:
    src, interval, count, mode = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    archive_db.WAL_AUTOCHECKPOINT_PAGES = interval
    work = src.parent.parent / "lsm-scratch"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work)
    os.sync()
    archive = ba.open_archive(work)
    try:
        conn = archive.conn
        if mode.startswith("lsm"):
            t, w = time.perf_counter(), ba.written_bytes()
            conn.executescript(LSM)
            if mode == "lsm-idx":  # readers of one conversation would want this
                conn.execute(
                    "CREATE INDEX conv_recent_conv ON conv_recent(conversation_id, sent_at)"
                )
            archive.checkpoint()
            mib = (ba.written_bytes() - w) / 2**20
            print(
                f"conv_folded built from the index (a migration's share): "
                f"{time.perf_counter() - t:.1f} s, {mib:.0f} MiB written"
            )
        archive.checkpoint()
        committer = GroupCommitter(archive)
        phones = ba.add_phones(archive, 10)
        per = count // 10
        records = [
            ba.make_records(key, 80_000_000 + i * per, per, size=ba.MESSAGE_BYTES, seed=400 + i)
            for i, (_, _, key) in enumerate(phones)
        ]
        committer.start()
        latencies: list[float] = []

        async def run() -> None:
            await asyncio.gather(
                *(
                    ba._produce(committer, recs, device, owner, 64, latencies, None)
                    for recs, (device, owner, _) in zip(records, phones, strict=True)
                )
            )

        w0, t0 = ba.written_bytes(), time.perf_counter()
        try:
            asyncio.run(run())
        finally:
            committer.stop()
        elapsed = time.perf_counter() - t0
        w1 = ba.written_bytes()
        t = time.perf_counter()
        if mode.startswith("lsm"):
            conn.executescript(FOLD)
        fold_ms = (time.perf_counter() - t) * 1000
        w2 = ba.written_bytes()
        archive.checkpoint()
        w3 = ba.written_bytes()
        kib = 1024 * count
        print(
            f"{mode}, checkpoint every {interval:,} pages: ingest {(w1 - w0) / kib:.2f} KiB/record,"
            f" fold {(w2 - w1) / kib:.2f} ({fold_ms:.0f} ms), final checkpoint"
            f" {(w3 - w2) / kib:.2f}; total {(w3 - w0) / kib:.2f} KiB/record;"
            f" {count / elapsed:.0f} records/s, load {os.getloadavg()[0]:.2f}"
        )
    finally:
        archive.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
