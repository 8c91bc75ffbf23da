"""Restoring a history (protocol.md §8): every MUST a phone checks, from the
reference client against a box on loopback (real Noise, real SQLCipher), the
restore streamed to storage with bounded memory, and resumed after a cut."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from peer_helpers import RunningBox, message, paired_phone, running_box, start_box
from protocol_doc import rule
from strongroom.archive.record import sign_record
from strongroom.client import ConnectionLost, HistoryStore, ProofError
from strongroom.client.proofs import AckVerifier
from strongroom.client.restore import Checker, RestoreProgress
from strongroom.config import Limits
from strongroom.peer import device_keys, history, session_history

box = pytest.fixture(running_box)


async def _history(box: RunningBox, count: int, text_bytes: int = 40) -> list[str]:
    """`count` records from two devices of claire; returns their texts in order."""
    phones = [await paired_phone(box, "claire", name) for name in ("cabinet", "mobile")]
    texts = [f"{n:06d} " + "x" * text_bytes for n in range(count)]
    half = count // 2
    await phones[0].push_many([message(t) for t in texts[:half]])
    await phones[1].push_many([message(t) for t in texts[half:]])
    for phone in phones:
        await phone.close()
    return texts


def _texts(directory: Path) -> list[str]:
    return [item.fields["text"] for item in HistoryStore(directory).items()]


async def test_every_restored_record_is_checked_against_its_devices_key(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rule("with the `sign_key` the page lists for the item's `device`")
    texts = await _history(box, 40)
    new = await paired_phone(box, "claire", "nouveau")
    assert _texts_of(await new.restore_history()) == texts

    # A box that swaps a record's signature for another (valid-looking) one.
    real_keys = device_keys.device_keys

    real_page = history.history_page

    def resigned(*args: Any) -> Any:
        page = real_page(*args)
        if page.items:
            page.items[5]["sig"] = SigningKey.generate().sign(page.items[5]["record"]).signature
        return page

    monkeypatch.setattr(history, "history_page", resigned)
    with pytest.raises(ProofError, match="signature of the record at log index"):
        await new.restore_to(tmp_path / "a")
    monkeypatch.undo()

    # A box that names another key for a device (and leaves a device out).
    def other_key(conn: Any, ids: Any) -> Any:
        keys = real_keys(conn, ids)
        keys[0]["sign_key"] = bytes(SigningKey.generate().verify_key)
        return keys

    monkeypatch.setattr(session_history, "device_keys", other_key)
    with pytest.raises(ProofError, match="does not verify"):
        await new.restore_to(tmp_path / "b")
    monkeypatch.setattr(session_history, "device_keys", lambda conn, ids: real_keys(conn, ids)[1:])
    with pytest.raises(ProofError, match="lists no key for device"):
        await new.restore_to(tmp_path / "c")
    await new.close()
    for name in "abc":  # nothing of a refused page was stored
        assert _texts(tmp_path / name) == []


def _texts_of(items: Any) -> list[str]:
    return [item.fields["text"] for item in items]


def test_a_device_keeps_one_key_and_the_phone_its_own() -> None:
    rule("hold each device to one key: the same key on every page of the restore")
    box_key = SigningKey.generate()
    own = SigningKey.generate()
    attacker = SigningKey.generate()
    raw, sig = sign_record(attacker, message("forged"))
    checker = Checker(AckVerifier(bytes(box_key.verify_key)), 7, bytes(own.verify_key))
    head = {"tree_size": 1, "timestamp_ms": 1, "root_hash": "00" * 32, "signature": "00" * 64}
    item = {"record": raw, "sig": sig, "log_index": 0, "device": 7, "at": 1, "proof": []}
    page = {
        "items": [item],
        "devices": [{"device": 7, "sign_key": bytes(attacker.verify_key)}],
        "cursor": 1,
        "done": True,
        "tree_head": head,
    }
    # A record "of this phone" signed by a key the box made up: refused on the key.
    with pytest.raises(ProofError, match="another key for device 7"):
        checker.page(page, RestoreProgress())
    # Another device whose key changed since an earlier page: refused on the key too.
    other = Checker(checker.verifier, 8, bytes(own.verify_key))
    pinned = RestoreProgress(keys={7: bytes(SigningKey.generate().verify_key)})
    with pytest.raises(ProofError, match="another key for device 7"):
        other.page(page, pinned)
    # The same page for a device with no earlier key passes the signature check and
    # stops only at the (here absent) inclusion proof: the key rules are what refused.
    with pytest.raises(ProofError, match=r"inclusion proof|tree head"):
        other.page(page, RestoreProgress())


async def test_a_large_restore_streams_to_storage_with_bounded_memory(tmp_path: Path) -> None:
    rule("at most three pages in memory, progress written after the page's records are on disk")
    box = await start_box(tmp_path / "box", limits=Limits(history_page_size=25))
    try:
        texts = await _history(box, 2500, text_bytes=2000)  # ~5 MB of records
        new = await paired_phone(box, "claire", "nouveau")
        tracemalloc.start()
        try:
            count = await new.restore_to(tmp_path / "store")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == len(texts)
        assert _texts(tmp_path / "store") == texts
        # The box's page and the phone's page (25 records, ~50 KB each) and their
        # decoding, never the 5 MB history.
        assert peak < 1_500_000, peak
        await new.close()
    finally:
        await box.stop()


async def test_an_interrupted_restore_resumes_after_the_last_stored_page(tmp_path: Path) -> None:
    rule("a restore cut off at any moment resumes with `history {cursor}`")
    box = await start_box(tmp_path / "box", limits=Limits(history_page_size=50))
    try:
        texts = await _history(box, 600)
        new = await paired_phone(box, "claire", "nouveau")
        store = tmp_path / "store"

        def cut_after_three_pages(count: int) -> None:
            if count >= 150:
                new.drop_connection()

        with pytest.raises(ConnectionLost):
            await new.restore_to(store, cut_after_three_pages)
        stored = len(_texts(store))
        assert 150 <= stored < 600
        # An app killed while writing a page leaves a torn tail: it is dropped.
        with (store / "records.bin").open("ab") as handle:
            handle.write(os.urandom(100))
        await new.connect(box.url)
        cursors: list[int] = []
        request = new._require_link().request

        async def noting(frame_type: str, body: Any) -> Any:
            if frame_type == "history":
                cursors.append(body["cursor"])
            return await request(frame_type, body)

        new._require_link().request = noting  # type: ignore[method-assign]
        assert await new.restore_to(store) == 600
        assert cursors[0] > 0 and len(cursors) <= (600 - stored) // 50 + 1
        assert _texts(store) == texts  # every record once, in order
        await new.close()
    finally:
        await box.stop()


async def test_a_restore_run_again_fetches_only_what_was_pushed_since(
    box: RunningBox, tmp_path: Path
) -> None:
    texts = await _history(box, 30)
    new = await paired_phone(box, "claire", "nouveau")
    assert await new.restore_to(tmp_path / "store") == 30
    later = await new.push(message("plus tard"))
    assert await new.restore_to(tmp_path / "store") == 31
    assert _texts(tmp_path / "store") == [*texts, "plus tard"]
    assert later.log_index > 0
    await new.close()


async def test_a_box_whose_history_goes_backwards_or_stalls_is_refused(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rule("refuse a tree head smaller than one it already saw in this restore")
    rule("a page whose `cursor` did not move forward, and an empty page")
    await _history(box, 10)
    new = await paired_phone(box, "claire", "nouveau")
    real_page = history.history_page

    def stalled(*args: Any) -> Any:
        page = real_page(*args)
        return history.HistoryPage(page.items, 0, False, page.tree_head)

    monkeypatch.setattr(history, "history_page", stalled)
    with pytest.raises(ProofError, match="cursor did not move forward"):
        await new.restore_to(tmp_path / "a")

    def empty_forever(*args: Any) -> Any:
        page = real_page(*args)
        return history.HistoryPage([], page.cursor, False, page.tree_head)

    monkeypatch.setattr(history, "history_page", empty_forever)
    with pytest.raises(ProofError, match="empty history page that is not the last"):
        await new.restore_to(tmp_path / "b")
    monkeypatch.undo()
    # A restore that already saw a larger log (its stored progress says so).
    store = HistoryStore(tmp_path / "c")
    progress = store.load()
    progress.tree_size = 10_000
    store.append([], progress)
    with pytest.raises(ProofError, match="log shrank"):
        await new.restore_to(tmp_path / "c")
    await new.close()


async def test_a_forged_proof_on_a_later_page_is_refused_and_earlier_pages_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule("check each item's inclusion proof up to that head")
    box = await start_box(tmp_path / "box", limits=Limits(history_page_size=20))
    try:
        texts = await _history(box, 100)
        real_page = history.history_page
        pages = 0

        def forged(*args: Any) -> Any:
            # The third page: its 8th record's path is altered at the node its
            # neighbours share, so the page's earlier proofs cannot stand in for it.
            nonlocal pages
            page = real_page(*args)
            pages += 1
            if pages == 3:
                proof = page.items[7]["proof"]
                proof[1] = bytes(32)
            return page

        monkeypatch.setattr(history, "history_page", forged)
        new = await paired_phone(box, "claire", "nouveau")
        with pytest.raises(ProofError, match="inclusion proof for log index"):
            await new.restore_to(tmp_path / "store")
        assert _texts(tmp_path / "store") == texts[:40]  # the two pages that passed
        monkeypatch.undo()
        await new.connect(box.url)
        assert await new.restore_to(tmp_path / "store") == 100
        assert _texts(tmp_path / "store") == texts
        await new.close()
    finally:
        await box.stop()


async def test_the_next_page_is_asked_for_before_this_one_is_stored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The phone never waits a round trip: while a page is checked and written, the
    # box already reads the next one (protocol.md §8, pipelining).
    box = await start_box(tmp_path / "box", limits=Limits(history_page_size=10))
    try:
        await _history(box, 60)
        new = await paired_phone(box, "claire", "nouveau")
        asked: list[int] = []
        request = new._require_link().request

        async def noting(frame_type: str, body: Any) -> Any:
            if frame_type == "history":
                asked.append(body["cursor"])
            return await request(frame_type, body)

        stored_when: list[int] = []
        real_append = HistoryStore.append

        def append(self: HistoryStore, items: Any, progress: Any) -> None:
            stored_when.append(len(asked))  # requests sent when this page is written
            real_append(self, items, progress)

        monkeypatch.setattr(HistoryStore, "append", append)
        new._require_link().request = noting  # type: ignore[method-assign]
        assert await new.restore_to(tmp_path / "store") == 60
        # Page n (from 1) is written only once page n+1 was asked for; the last has no next.
        assert len(stored_when) == 6  # six full pages, the last one says done
        assert all(sent >= page + 1 for page, sent in enumerate(stored_when[:-1], start=1))
        await new.close()
    finally:
        await box.stop()
