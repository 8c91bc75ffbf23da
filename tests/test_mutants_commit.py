"""A write the archive could not commit is never acknowledged to the phone.

Without root (no size-limited tmpfs), the writer connection of the real
SQLCipher archive is capped with `PRAGMA max_page_count` at its current size:
the next record that needs a new page fails with SQLITE_FULL inside the
commit's transaction, exactly as a full disk does. The phone pushes through
the real Noise session and group committer: it must get "storage-full"
(retry later), not an ack; nothing may be stored; once space is back, the same
record is acked once, and everything acked survives a restart.
"""

from __future__ import annotations

import hashlib

import pytest

from peer_helpers import RunningBox, message, paired_phone, running_box
from strongroom.archive.store import Txn
from strongroom.archive.verify import verify_archive
from strongroom.client import BoxError

box = pytest.fixture(running_box)

# Text large enough that its record cannot fit in the free space of existing pages
# (nor in the few free pages a young archive may have): it needs a dozen new ones.
PADDING = "x" * 60_000


async def cap_pages(box: RunningBox, extra: int | None) -> None:
    """Cap the archive at its current page count (+extra), or lift the cap (None)."""

    def op(txn: Txn) -> None:
        (free,) = txn.conn.execute("PRAGMA freelist_count").fetchone()
        assert extra is None or int(free) < 8, f"{free} free pages: a cap would not bite"
        (pages,) = txn.conn.execute("PRAGMA page_count").fetchone()
        limit = 1_000_000_000 if extra is None else int(pages) + extra
        txn.conn.execute(f"PRAGMA max_page_count = {limit}")

    # Through the committer: the cap applies to its writer connection, on its thread.
    await box.committer.submit(op)


def stored(box: RunningBox, record_id: bytes) -> int:
    return box.count("SELECT count(*) FROM records WHERE record_id = ?", record_id)


def verified(box: RunningBox) -> None:
    reader = box.archive.reader()
    try:
        report = verify_archive(reader, box.archive.blobs, box.keys.signing_public)
    finally:
        reader.close()
    assert report.ok, report.problems


async def test_a_full_archive_answers_storage_full_and_never_acks(box: RunningBox) -> None:
    phone = await paired_phone(box, "claire")
    async with phone:  # closed even when an assertion fails
        before = await phone.push(message("avant le plein"))
        records_before = box.count("SELECT count(*) FROM records")
        leaves_before = box.count("SELECT count(*) FROM log_leaves")

        await cap_pages(box, 0)
        raw, sig = phone.sign(message("pendant le plein " + PADDING))
        with pytest.raises(BoxError) as refused:
            await phone.push_signed(raw, sig)

        assert refused.value.code == "storage-full", refused.value
        assert "retry later" in refused.value.message
        # Not acked: still in the phone's outbox; nothing of it reached the archive or its log.
        assert [r for r, _ in phone.outbox] == [raw]
        assert stored(box, hashlib.sha256(raw).digest()) == 0
        assert box.count("SELECT count(*) FROM records") == records_before
        assert box.count("SELECT count(*) FROM log_leaves") == leaves_before
        verified(box)

        # Space comes back: the very same record is now stored once and acked, no restart.
        await cap_pages(box, None)
        ack = await phone.push_signed(raw, sig)
        assert not ack.duplicate and ack.log_index > before.log_index
        assert not phone.outbox
        assert stored(box, hashlib.sha256(raw).digest()) == 1

    await box.restart()
    assert box.count("SELECT count(*) FROM records") == records_before + 1
    assert box.count("SELECT count(*) FROM log_leaves") == leaves_before + 1
    verified(box)
