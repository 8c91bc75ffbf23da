"""Restoring an owner's history into the phone's storage (protocol.md §8).

A wiped or new phone asks for `history` pages and checks every record as it
checks a live ack, and more: the record's Ed25519 signature with the key the
page lists for its device (a device's key never changes; the phone's own
records must verify with its own key), the inclusion proof up to the page's
tree head, the box's signature on that head, and a log that never shrinks.

Records go to a `HistoryStore` page by page: memory holds at most three pages
(one asked for, one being checked, one being written), whatever the size of
the history. The store's progress (cursor, count, pinned device
keys) is written after the page's records are on disk, so a restore cut off
at any moment (dropped link, app killed) resumes after the last stored page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT, leaf_data
from strongroom.client.link import Link
from strongroom.client.proofs import AckVerifier, PageProofs, ProofError, record_id
from strongroom.peer.frames import Frame
from strongroom.proof.merkle import leaf_hash

RECORDS = "records.bin"
PROGRESS = "progress.json"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class HistoryItem:
    record: bytes
    sig: bytes
    log_index: int
    device: int
    at: int = 0

    @property
    def fields(self) -> dict[str, Any]:
        value = cbor2.loads(self.record)
        return value if isinstance(value, dict) else {}


@dataclass
class RestoreProgress:
    """What is safely stored: everything before `cursor`, `count` records in
    `stored_bytes` bytes of the records file."""

    cursor: int = 0
    count: int = 0
    stored_bytes: int = 0
    tree_size: int = 0  # the largest tree head seen: the log never shrinks
    keys: dict[int, bytes] = field(default_factory=dict)  # device -> its Ed25519 key
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "count": self.count,
            "stored_bytes": self.stored_bytes,
            "tree_size": self.tree_size,
            "keys": {str(d): k.hex() for d, k in self.keys.items()},
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RestoreProgress:
        keys = {int(d): bytes.fromhex(k) for d, k in data["keys"].items()}
        return cls(
            int(data["cursor"]),
            int(data["count"]),
            int(data["stored_bytes"]),
            int(data["tree_size"]),
            keys,
            bool(data["done"]),
        )


class HistoryStore:
    """A directory holding restored records (length-prefixed CBOR) and the progress."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> RestoreProgress:
        """The stored progress; bytes a cut-off page left past it are dropped."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads((self.directory / PROGRESS).read_text(encoding="utf-8"))
            progress = RestoreProgress.from_json(data)
        except FileNotFoundError:
            progress = RestoreProgress()
        with (self.directory / RECORDS).open("ab") as handle:
            handle.truncate(progress.stored_bytes)
        return progress

    def append(self, items: list[HistoryItem], progress: RestoreProgress) -> None:
        """Store a checked page, then (durably, atomically) the progress that covers it."""
        with (self.directory / RECORDS).open("ab") as handle:
            for item in items:
                entry = cbor2.dumps([item.record, item.sig, item.log_index, item.device, item.at])
                handle.write(_LENGTH.pack(len(entry)) + entry)
            handle.flush()
            os.fsync(handle.fileno())
            progress.stored_bytes = handle.tell()
        temporary = self.directory / (PROGRESS + ".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(progress.to_json(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / PROGRESS)

    def items(self) -> Iterator[HistoryItem]:
        """The stored records, oldest first, read one at a time."""
        try:
            handle = (self.directory / RECORDS).open("rb")
        except FileNotFoundError:
            return
        with handle:
            while head := handle.read(_LENGTH.size):
                (length,) = _LENGTH.unpack(head)
                record, sig, log_index, device, at = cbor2.loads(handle.read(length))
                yield HistoryItem(record, sig, log_index, device, at)


@dataclass(frozen=True)
class Checker:
    """Everything a phone MUST check on a history page (protocol.md §8)."""

    verifier: AckVerifier
    own_device: int | None
    own_key: bytes

    def page(self, body: Mapping[str, Any], progress: RestoreProgress) -> list[HistoryItem]:
        raw_items = body["items"]
        if raw_items and "tree_head" not in body:
            # A box that leaves the proofs out would escape the checks below.
            raise ProofError("the box sent history without its signed tree head")
        if raw_items and int(body["cursor"]) <= progress.cursor:
            raise ProofError("the box's history cursor did not move forward")
        if not raw_items and not body["done"]:
            raise ProofError("the box sent an empty history page that is not the last")
        if raw_items:
            size = int(body["tree_head"]["tree_size"])
            if size < progress.tree_size:
                raise ProofError("the box's log shrank between two history pages")
        keys = {int(d["device"]): bytes(d["sign_key"]) for d in body.get("devices", ())}
        verify_keys: dict[int, VerifyKey] = {}
        proofs: PageProofs | None = None  # the head is checked once per page, after a key
        items = []
        for raw in raw_items:
            item = HistoryItem(
                raw["record"], raw["sig"], raw["log_index"], raw["device"], raw.get("at", 0)
            )
            self._signed(item, keys, verify_keys, progress)
            if proofs is None:
                proofs = PageProofs(self.verifier.tree_head(body["tree_head"]))
            self._in_log(item, raw.get("proof"), proofs)
            items.append(item)
        if raw_items:
            progress.tree_size = int(body["tree_head"]["tree_size"])
        return items

    def _signed(
        self,
        item: HistoryItem,
        keys: Mapping[int, bytes],
        verify_keys: dict[int, VerifyKey],
        progress: RestoreProgress,
    ) -> None:
        verify_key = verify_keys.get(item.device)
        if verify_key is None:  # once per device and page: the key checks, then its VerifyKey
            key = keys.get(item.device)
            if key is None:
                raise ProofError(f"the history page lists no key for device {item.device}")
            pinned = progress.keys.setdefault(item.device, key)
            if pinned != key or (item.device == self.own_device and key != self.own_key):
                raise ProofError(f"the box names another key for device {item.device}")
            try:
                verify_key = verify_keys[item.device] = VerifyKey(key)
            except (TypeError, ValueError) as exc:
                raise ProofError(f"the key of device {item.device} is not an Ed25519 key") from exc
        try:
            verify_key.verify(RECORD_SIGNING_CONTEXT + item.record, item.sig)
        except (BadSignatureError, ValueError) as exc:
            raise ProofError(
                f"the signature of the record at log index {item.log_index} does not verify"
            ) from exc

    def _in_log(self, item: HistoryItem, proof: Any, proofs: PageProofs) -> None:
        try:
            kind = record_kind(item.record)
            at, index = int(item.at), int(item.log_index)
        except (TypeError, ValueError) as exc:
            raise ProofError(f"a restored record is unreadable: {exc}") from exc
        leaf = leaf_hash(leaf_data(kind, record_id(item.record), at))
        if not isinstance(proof, list) or not proofs.verify(leaf, index, proof):
            raise ProofError(f"the inclusion proof for log index {index} does not verify")


async def restore(
    link: Link,
    checker: Checker,
    store: HistoryStore,
    progress: Callable[[int], None] | None = None,
) -> RestoreProgress:
    """Fetch, check and store every page after the stored cursor; the final progress.

    Three pages move at once, so the phone never waits a round trip and its CPU
    is never idle on a disk flush: page n+1 is asked for as soon as page n
    arrives (the box reads it meanwhile), page n is checked on a worker thread
    (Ed25519 and SHA-256 release the GIL, so the link keeps reading), and page
    n-1 is being written and flushed on another. Pages are stored in order,
    each only after it passed every check; memory holds at most three pages.
    """
    state = await asyncio.to_thread(store.load)

    def ask(cursor: int) -> asyncio.Task[Frame]:
        return asyncio.ensure_future(link.request("history", {"cursor": cursor}))

    async def keep(items: list[HistoryItem], snapshot: RestoreProgress) -> RestoreProgress:
        await asyncio.to_thread(store.append, items, snapshot)
        if progress is not None:
            progress(snapshot.count)
        return snapshot

    pending: asyncio.Task[Frame] | None = ask(state.cursor)
    storing: asyncio.Task[RestoreProgress] | None = None
    try:
        while pending is not None:
            body = (await pending).body
            # The box's cursor is only trusted once the page passes (checker.page
            # refuses one that did not move forward); asking with it costs nothing.
            pending = None if body["done"] else ask(int(body["cursor"]))
            items = await asyncio.to_thread(checker.page, body, state)  # raises: nothing stored
            state.cursor = int(body["cursor"])
            state.count += len(items)
            state.done = bool(body["done"])
            # The writer gets its own copy: the next page's checks update `state`.
            snapshot = dataclasses.replace(state, keys=dict(state.keys))
            if storing is not None:
                await storing
            storing = asyncio.ensure_future(keep(items, snapshot))
        if storing is not None:
            state.stored_bytes = (await storing).stored_bytes
        return state
    finally:
        if pending is not None:
            pending.cancel()  # a refused page: the one asked for after it is not wanted
            await asyncio.gather(pending, return_exceptions=True)
        if storing is not None:  # a page that passed is stored even if a later one fails
            await asyncio.gather(storing, return_exceptions=True)


def attachment_batches(store: HistoryStore, size: int = 512) -> Iterator[list[bytes]]:
    """The SHA-256 of every attachment the stored records name, oldest first, `size` at
    a time: read from disk one record at a time, handed over a batch at a time (one
    thread hop per batch, not per record). Only records whose bytes hold the word
    "attachment" are decoded."""
    batch: list[bytes] = []
    for item in store.items():
        if b"attachment" not in item.record:
            continue
        fields = item.fields
        blob = fields.get("blob")
        if fields.get("kind") == "attachment" and isinstance(blob, dict):
            batch.append(blob["sha256"])
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def record_kind(record: bytes) -> str:
    """The `kind` field of a record's CBOR (ValueError if it has none)."""
    try:
        fields = cbor2.loads(record)
    except Exception as exc:  # cbor2 raises several types on garbage
        raise ValueError("the record is not CBOR") from exc
    kind = fields.get("kind") if isinstance(fields, dict) else None
    if not isinstance(kind, str):
        raise ValueError("the record has no kind")
    return kind
