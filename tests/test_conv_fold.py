"""The conversation index's fold runs after a group commit's acks (review L7).

A fold (conv_keys.fold, ~50-175 ms at 5M) used to run inside the commit of the batch
that crossed conv_keys.FOLD_AT, so that batch's phones waited for it. It now runs in
a transaction of its own on the committer's thread, once the batch's acks are sent:
a phone is acked while the fold is still running, and a box killed in the middle of
the fold keeps every acked record, each key in exactly one of the two tables.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import keys_once_each, open_with_keys
from strongroom.archive import conv_keys, writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive, Txn, WriteOp
from support.records import signed_message

OWNER = "maitre.durand"
T0 = 1_760_000_000_000
PHONE_SEED = b"fold committer phone"


def pair_phone(archive: Archive) -> int:
    key = SigningKey(hashlib.sha256(PHONE_SEED).digest())
    new = writes.NewDevice(bytes(key.verify_key), os.urandom(32), "Pixel", OWNER, "staff", "t")
    return int(archive.write(writes.add_device(new)))


def _phone(archive: Archive) -> int:
    return int(archive.conn.execute("SELECT max(id) FROM devices").fetchone()[0])


def messages_op(phone: int, start: int, count: int) -> WriteOp:
    """`count` messages stored by ONE op: one submit is one batch, whatever the timing."""
    key = SigningKey(hashlib.sha256(PHONE_SEED).digest())
    ops = [
        writes.store_record(
            signed_message(key, f"message {n}", conv=f"client-{n % 3}", at=T0 + n, n=n),
            phone,
            OWNER,
        )
        for n in range(start, start + count)
    ]

    def op(txn: Txn) -> int:
        return len([store(txn) for store in ops])

    return op


def counts(archive: Archive) -> tuple[int, int, int]:
    conn = archive.conn
    return (
        int(conn.execute("SELECT count(*) FROM records").fetchone()[0]),
        int(conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0]),
        int(conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0]),
    )


def test_a_phone_is_acked_while_the_fold_its_batch_started_still_runs(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = pair_phone(archive)
    archive.write(messages_op(phone, 0, 40))
    monkeypatch.setattr(conv_keys, "FOLD_AT", 50)
    folding, release = threading.Event(), threading.Event()

    def trace(sql: str) -> None:
        # The fold's second statement: its INSERT into conv_folded has run.
        if sql.startswith("DELETE FROM conv_recent"):
            folding.set()
            release.wait(30)

    archive.conn.set_trace_callback(trace)
    committer = GroupCommitter(archive)
    committer.start()
    try:

        async def push() -> int:
            # The batch crossing FOLD_AT: acked within the deadline although its fold
            # is held until after the ack arrived.
            done = await asyncio.wait_for(committer.submit(messages_op(phone, 40, 15)), 20)
            return int(done.result)

        # Acked while the fold cannot have finished (it waits for `release`, set
        # below); the fold then runs, held at its DELETE.
        assert asyncio.run(push()) == 15
        assert folding.wait(20)
    finally:
        release.set()
        committer.stop()  # joins the committer thread: the fold has finished
        archive.conn.set_trace_callback(None)
    assert counts(archive) == (55, 0, 55)
    assert archive.last_fold is not None and archive.last_fold.keys == 55
    keys_once_each(archive.conn)


def _ack_then_die_in_fold(data: Path, keys: dict[str, bytes], said: Path) -> None:
    """In a child: a GroupCommitter batch crosses FOLD_AT; once its phone has the ack,
    the box is SIGKILLed inside the fold (its INSERT ran, its COMMIT did not)."""
    conv_keys.FOLD_AT = 50
    archive = open_with_keys(data, keys)
    phone = _phone(archive)
    acked = threading.Event()

    def trace(sql: str) -> None:
        if sql.startswith("DELETE FROM conv_recent"):
            said.write_text("acked" if acked.wait(20) else "not acked before the fold")
            os.kill(os.getpid(), signal.SIGKILL)

    archive.conn.set_trace_callback(trace)
    committer = GroupCommitter(archive)
    committer.start()

    async def push() -> None:
        await committer.submit(messages_op(phone, 40, 15))
        acked.set()
        await asyncio.sleep(30)  # the fold kills the process meanwhile

    asyncio.run(push())
    os._exit(3)  # not reached


def test_a_box_killed_in_the_fold_keeps_every_acked_record_once(
    tmp_path: Path, archive_keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    archive = open_with_keys(data, archive_keys)
    archive.write(messages_op(pair_phone(archive), 0, 40))
    archive.close()
    said = tmp_path / "said"
    child = multiprocessing.get_context("fork").Process(
        target=_ack_then_die_in_fold, args=(data, archive_keys, said)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert said.read_text() == "acked"
    archive = open_with_keys(data, archive_keys)
    try:
        # The acked batch is all there; the fold rolled back whole: every key recent.
        assert counts(archive) == (55, 55, 0)
        keys_once_each(archive.conn)
        # The next commit past FOLD_AT folds them, with its own.
        monkeypatch.setattr(conv_keys, "FOLD_AT", 50)
        archive.write(messages_op(_phone(archive), 55, 1))
        assert counts(archive) == (56, 0, 56)
        keys_once_each(archive.conn)
    finally:
        archive.close()


def test_a_fold_runs_in_steps_of_whole_conversations(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A step per call (the committer: one per commit, more while no push waits), each
    # moving whole conversations: a push arriving meanwhile waits for one step only.
    phone = pair_phone(archive)
    monkeypatch.setattr(conv_keys, "FOLD_AT", 50)
    monkeypatch.setattr(conv_keys, "FOLD_STEP", 10)
    archive.write_batch([messages_op(phone, 0, 60)], fold=False)  # 3 conversations x 20
    conn = archive.conn
    convs = [int(c) for (c,) in conn.execute("SELECT id FROM conversations ORDER BY id")]

    def per_conversation(table: str) -> list[int]:
        sql = f"SELECT count(*) FROM {table} WHERE conversation_id = ?"
        return [int(conn.execute(sql, (c,)).fetchone()[0]) for c in convs]

    steps = []
    while (step := archive.fold_if_due()) is not None:
        steps.append(step)
        # The first conversations are folded whole, the others still wait whole.
        assert per_conversation("conv_folded") == [20] * len(steps) + [0] * (3 - len(steps))
        assert per_conversation("conv_recent") == [0] * len(steps) + [20] * (3 - len(steps))
        keys_once_each(conn)
        if not archive.folding:
            break
    assert [s.keys for s in steps] == [20, 20, 20]
    # A record of a conversation already folded, written during a fold, waits for the
    # next fold in conv_recent.
    archive.write_batch([messages_op(phone, 99, 1)], fold=False)  # 99 % 3: the first
    assert archive.fold_if_due() is None
    assert per_conversation("conv_recent") == [1, 0, 0]
    keys_once_each(conn)
