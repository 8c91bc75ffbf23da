"""What docs/operations.md says an older release finds in tree_head.latest after going
back: the layout before this one read its two slots from the first 1 KiB, so it reads
only the first slot, which holds the newest head or the one before it (a lagging head
that verify accepts), never a head the log does not hold."""

from __future__ import annotations

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.kept_head import decode, encode_slot
from strongroom.archive.store import Archive
from strongroom.archive.verify_runs import run_verification
from strongroom.proof.sth import SignedTreeHead

OWNER = "maitre.durand"
OLD_FILE_BYTES = 1024  # the layout before: two 512-byte slots side by side


def as_the_older_release_reads(content: bytes) -> SignedTreeHead | None:
    # Its reader took the slots at 0 and 512; decode() reads a 1024-byte file so.
    found = decode(content[:OLD_FILE_BYTES])
    return None if found is None else found[1]


def test_an_older_release_reads_the_first_slot_the_newest_head_or_the_one_before(
    archive: Archive,
) -> None:
    device, key = new_phone(archive, owner=OWNER)
    before = archive.latest_tree_head()
    assert before is not None
    heads = [before]
    seen: list[SignedTreeHead | None] = []
    for n in range(4):
        batch = archive.write_batch([writes.store_record(message(key, f"lot {n}"), device, OWNER)])
        assert batch.tree_head is not None
        heads.append(batch.tree_head)
        seen.append(as_the_older_release_reads(archive.witness_path.read_bytes()))
        assert seen[-1] in heads[-2:], n
    # The newest after one write, the one before after the next: it lags by a commit.
    assert heads[-1] in seen and any(s != h for s, h in zip(seen, heads[1:], strict=True))
    # Converted to its layout from that slot (what its first open does): verify accepts it.
    lagging = seen[-1]
    assert lagging is not None
    archive.witness_path.write_bytes(encode_slot(1, lagging).ljust(OLD_FILE_BYTES, b"\0"))
    assert archive.witness_head() == lagging
    report, _ = run_verification(archive, "full")
    assert report.ok, report.problems
