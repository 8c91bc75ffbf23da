"""Group commit: many phones share one durable transaction, each gets its own proof."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from archive_helpers import SELECT_TEXTS, message, new_phone
from strongroom.archive import store, tree_heads, writes
from strongroom.archive.committer import Committed, CommittedOf, CommitterStopped, GroupCommitter
from strongroom.archive.errors import RecordRejected, StorageFull
from strongroom.archive.store import Archive, Txn
from strongroom.archive.verify import verify_archive
from strongroom.archive.writes import StoredRecord
from strongroom.proof.merkle import leaf_hash, verify_consistency, verify_inclusion
from strongroom.proof.sth import verify_tree_head

OWNER = "maitre.durand"


def index_of(result: Any) -> int | None:
    return result.log_index if isinstance(result, StoredRecord) else None


def assert_proven(archive: Archive, committed: Committed) -> None:
    head = committed.tree_head
    assert head is not None and committed.inclusion_proof is not None
    assert verify_tree_head(head, bytes(archive.signing_key.verify_key))
    index = committed.result.log_index
    with closing(archive.reader()) as reader:
        query = "SELECT leaf_data FROM log_leaves WHERE idx = ?"
        data = reader.execute(query, (index,)).fetchone()[0]
    assert verify_inclusion(
        leaf_hash(bytes(data)), index, head.tree_size, committed.inclusion_proof, head.root_hash
    )


class Gate:
    """An op that holds the writer until released, so the next ops queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def op(self, txn: Txn) -> None:
        self.entered.set()
        self.release.wait()


async def queue_behind_gate(
    committer: GroupCommitter, ops: list[Callable[[Txn], Any]]
) -> list[Any]:
    gate = Gate()
    blocker = asyncio.create_task(committer.submit(gate.op))
    await asyncio.to_thread(gate.entered.wait)
    tasks = [asyncio.create_task(committer.submit(op, log_index_of=index_of)) for op in ops]
    await asyncio.sleep(0)  # let every task reach the queue (a yield, not a delay)
    gate.release.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_500_concurrent_pushes_share_few_batches_and_all_prove(
    archive: Archive, committer: GroupCommitter
) -> None:
    phone, key = new_phone(archive, owner=OWNER)
    records = [message(key, f"message {i}") for i in range(500)]
    results = await asyncio.gather(
        *(
            committer.submit(writes.store_record(r, phone, OWNER), log_index_of=index_of)
            for r in records
        )
    )
    assert committer.committed == 500
    assert committer.batches < 500
    assert sorted(c.result.log_index for c in results) == list(range(1, 501))
    for committed in results:
        assert_proven(archive, committed)
    # Every head handed out is a prefix of the final log.
    final = archive.latest_tree_head()
    assert final is not None and final.tree_size == 501
    for head in {c.tree_head for c in results}:
        assert head is not None
        proof = archive.consistency_proof(head.tree_size, final.tree_size)
        assert verify_consistency(
            head.tree_size, final.tree_size, head.root_hash, final.root_hash, proof
        )


async def test_ops_queued_while_a_batch_commits_go_in_the_next_one(
    archive: Archive, committer: GroupCommitter
) -> None:
    phone, key = new_phone(archive, owner=OWNER)
    before = committer.batches
    results = await queue_behind_gate(
        committer, [writes.store_record(message(key, f"m{i}"), phone, OWNER) for i in range(300)]
    )
    assert committer.batches - before == 2  # the gate's batch, then all 300 together
    heads = {r.tree_head for r in results}
    assert len(heads) == 1
    for committed in results:
        assert_proven(archive, committed)


async def test_a_failing_op_raises_to_its_own_caller_only(
    archive: Archive, committer: GroupCommitter
) -> None:
    phone, key = new_phone(archive, owner=OWNER)

    def rejected(txn: Txn) -> None:
        raise RecordRejected("not for you")

    def buggy(txn: Txn) -> None:
        txn.conn.execute("INSERT INTO no_such_table VALUES (1)")

    def violates_constraint(txn: Txn) -> None:
        txn.conn.execute("INSERT INTO devices (id) VALUES (NULL)")  # NOT NULL columns

    ops: list[Callable[[Txn], Any]] = [
        writes.store_record(message(key, "a"), phone, OWNER),
        rejected,
        writes.store_record(message(key, "b"), phone, OWNER),
        buggy,
        violates_constraint,
        writes.store_record(message(key, "c"), phone, OWNER),
    ]
    results = await queue_behind_gate(committer, ops)
    assert isinstance(results[1], RecordRejected)
    assert "no_such_table" in str(results[3])
    assert "NOT NULL" in str(results[4])
    good = [results[i] for i in (0, 2, 5)]
    assert all(isinstance(r, CommittedOf) for r in good)
    for committed in good:
        assert_proven(archive, committed)
    reader = archive.reader()  # not the writer's connection: the committer's idle merge uses it
    texts = {row[0] for row in reader.execute(SELECT_TEXTS)}
    reader.close()
    assert texts == {"a", "b", "c"}


async def test_a_faulty_index_function_fails_its_caller_and_nothing_else(
    archive: Archive, committer: GroupCommitter
) -> None:
    phone, key = new_phone(archive, owner=OWNER)

    def broken(result: Any) -> int:
        raise KeyError("log_index")

    with pytest.raises(KeyError):
        await committer.submit(
            writes.store_record(message(key, "x"), phone, OWNER), log_index_of=broken
        )
    after = await committer.submit(
        writes.store_record(message(key, "y"), phone, OWNER), log_index_of=index_of
    )
    assert_proven(archive, after)


async def test_storage_full_is_reported_nothing_half_written_then_recovers(
    archive: Archive, committer: GroupCommitter
) -> None:
    phone, key = new_phone(archive, owner=OWNER)
    first = await committer.submit(
        writes.store_record(message(key, "avant"), phone, OWNER), log_index_of=index_of
    )
    head_before = first.tree_head
    assert head_before is not None
    # Free pages inside the file are space too (migration 4's table copy leaves a few
    # on a new archive): compact them away so the file is really full.
    # The writer's connection is the committer's too (its idle full-text merge runs on
    # it once the queue is empty): the test takes the write lock as every writer does.
    with archive._write_lock:
        archive.conn.execute("VACUUM")
        pages = int(archive.conn.execute("PRAGMA page_count").fetchone()[0])
        # The writer connection may not grow the file: what a full disk looks like.
        archive.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    # Each too big for that one page even alone (~13 KiB: several overflow pages). At
    # ~4 KiB a record that the committer took alone (its thread quicker than the
    # gather's 40 submits, as under load) fitted and was committed (10 out of 10).
    bulky = [message(key, f"{i} " + "texte long " * 1200) for i in range(40)]
    outcomes = await asyncio.gather(
        *(committer.submit(writes.store_record(r, phone, OWNER)) for r in bulky),
        return_exceptions=True,
    )
    assert all(isinstance(o, StorageFull) for o in outcomes), outcomes
    assert archive.log.size == head_before.tree_size
    reader = archive.reader()
    assert reader.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    assert reader.execute("SELECT count(*) FROM log_leaves").fetchone()[0] == 2
    report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.ok, report.problems
    assert report.tree_head == head_before
    reader.close()

    with archive._write_lock:
        archive.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
    retried = await asyncio.gather(
        *(
            committer.submit(writes.store_record(r, phone, OWNER), log_index_of=index_of)
            for r in bulky
        )
    )
    for committed in retried:
        assert_proven(archive, committed)
    head_after = retried[-1].tree_head
    assert head_after is not None and head_after.tree_size == head_before.tree_size + 40
    assert verify_consistency(
        head_before.tree_size,
        head_after.tree_size,
        head_before.root_hash,
        head_after.root_hash,
        archive.consistency_proof(head_before.tree_size, head_after.tree_size),
    )
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.ok, report.problems


async def test_submit_after_stop_is_refused(archive: Archive) -> None:
    c = GroupCommitter(archive)
    with pytest.raises(CommitterStopped):
        await c.submit(writes.audit("admin", "noop"))
    c.start()
    await c.submit(writes.audit("admin", "ok"))
    await asyncio.to_thread(c.stop)
    with pytest.raises(CommitterStopped):
        await c.submit(writes.audit("admin", "late"))


class _SpyQueue(queue.SimpleQueue[Any]):
    """The committer's queue, telling the test when stop() has queued its marker."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.stop_queued = threading.Event()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self.puts += 1
        if self.puts == 2:  # the gate's job, then stop()'s marker
            self.stop_queued.set()


async def test_a_submit_racing_with_stop_is_answered(archive: Archive) -> None:
    c = GroupCommitter(archive)
    spy = _SpyQueue()
    c._queue = spy
    c.start()
    gate = Gate()
    blocker = asyncio.create_task(c.submit(gate.op))
    await asyncio.to_thread(gate.entered.wait)
    stopping = asyncio.create_task(asyncio.to_thread(c.stop))
    await asyncio.to_thread(spy.stop_queued.wait)
    late = asyncio.create_task(c.submit(writes.audit("admin", "late")))
    await asyncio.sleep(0)
    gate.release.set()
    await blocker
    await stopping
    # Without an answer this would hang forever; the guard only bounds a failure.
    with pytest.raises(CommitterStopped):
        await asyncio.wait_for(late, timeout=10)


def test_the_latest_head_never_shows_a_batch_that_is_then_rolled_back(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, key = new_phone(archive, owner=OWNER)
    before = archive.latest_tree_head()
    signed, fail_now = threading.Event(), threading.Event()
    sign_head = tree_heads.sign_head

    def sign_then_fail(*args: Any) -> Any:
        sign_head(*args)  # the new head is in the batch, not yet committed
        signed.set()
        fail_now.wait()
        raise RuntimeError("the batch fails after signing")

    monkeypatch.setattr(store, "sign_head", sign_then_fail)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            archive.write(writes.store_record(message(key, "never kept"), phone, OWNER))
        except RuntimeError as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    signed.wait()
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(archive.latest_tree_head()))
    reader.start()
    reader.join(timeout=0.5)  # give an unlocked read the chance to see the batch
    fail_now.set()
    writer.join()
    reader.join()
    assert len(failures) == 1
    assert seen == [before], "a head was handed out for a batch that never committed"
    assert archive.latest_tree_head() == before


async def test_submit_then_calls_back_in_order_with_each_outcome_once_durable(
    archive: Archive, committer: GroupCommitter
) -> None:
    """The push path's submit (peer/chain.py): no future, the same outcomes as submit."""
    phone, key = new_phone(archive, owner=OWNER)

    def rejected(txn: Txn) -> None:
        raise RecordRejected("not for you")

    ops: list[Callable[[Txn], Any]] = [
        writes.store_record(message(key, f"m{i}"), phone, OWNER) for i in range(3)
    ]
    ops.insert(1, rejected)
    heard: list[Committed | BaseException] = []
    all_heard = asyncio.get_running_loop().create_future()

    def then(outcome: Committed | BaseException) -> None:
        # Called on this loop once the batch is on disk: a fresh reader sees it.
        if isinstance(outcome, CommittedOf):
            with closing(archive.reader()) as reader:
                query = "SELECT count(*) FROM log_leaves WHERE idx = ?"
                assert reader.execute(query, (outcome.result.log_index,)).fetchone()[0] == 1
        heard.append(outcome)
        if len(heard) == len(ops):
            all_heard.set_result(None)

    for op in ops:
        committer.submit_then(op, then, log_index_of=index_of)
    await asyncio.wait_for(all_heard, 30)
    assert isinstance(heard[1], RecordRejected)
    good = [heard[i] for i in (0, 2, 3)]
    assert [c.result.log_index for c in good if isinstance(c, CommittedOf)] == [1, 2, 3]
    for committed in good:
        assert isinstance(committed, CommittedOf)
        assert_proven(archive, committed)
    await asyncio.to_thread(committer.stop)
    with pytest.raises(CommitterStopped):
        committer.submit_then(ops[0], then)
