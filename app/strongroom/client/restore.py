"""Restoring an owner's history into the phone's storage (protocol.md §8).

A wiped or new phone asks for `history` pages and checks every record as it
checks a live ack, and more: the record's Ed25519 signature with the key the
page lists for its device (a device's key never changes; the phone's own
records must verify with its own key), the inclusion proof up to the page's
tree head, the box's signature on that head, and a log that never shrinks.

Records go to a `HistoryStore` page by page: memory holds one page, whatever
the size of the history. The store's progress (cursor, count, pinned device
keys) is written after the page's records are on disk, so a restore cut off
at any moment (dropped link, app killed) resumes after the last stored page.
"""

from __future__ import annotations

import asyncio
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

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.client.link import Link
from strongroom.client.proofs import AckVerifier, ProofError, record_id

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
        items = []
        for raw in raw_items:
            item = HistoryItem(
                raw["record"], raw["sig"], raw["log_index"], raw["device"], raw.get("at", 0)
            )
            self._signed(item, keys, progress)
            self._in_log(raw, body["tree_head"])
            items.append(item)
        if raw_items:
            progress.tree_size = int(body["tree_head"]["tree_size"])
        return items

    def _signed(
        self, item: HistoryItem, keys: Mapping[int, bytes], progress: RestoreProgress
    ) -> None:
        key = keys.get(item.device)
        if key is None:
            raise ProofError(f"the history page lists no key for device {item.device}")
        pinned = progress.keys.setdefault(item.device, key)
        if pinned != key or (item.device == self.own_device and key != self.own_key):
            raise ProofError(f"the box names another key for device {item.device}")
        try:
            VerifyKey(key).verify(RECORD_SIGNING_CONTEXT + item.record, item.sig)
        except (BadSignatureError, ValueError) as exc:
            raise ProofError(
                f"the signature of the record at log index {item.log_index} does not verify"
            ) from exc

    def _in_log(self, item: Mapping[str, Any], tree_head: Any) -> None:
        proof = {
            "kind": "record",
            "ref": record_id(item["record"]),
            "log_index": item["log_index"],
            "at": item.get("at"),
            "tree_head": tree_head,
            "proof": item.get("proof"),
        }
        try:
            kind = record_kind(item["record"])
        except ValueError as exc:
            raise ProofError(f"a restored record is unreadable: {exc}") from exc
        self.verifier.verify(proof, kind="record", leaf_kind=kind, ref=proof["ref"])


async def restore(
    link: Link,
    checker: Checker,
    store: HistoryStore,
    progress: Callable[[int], None] | None = None,
) -> RestoreProgress:
    """Fetch, check and store every page after the stored cursor; the final progress."""
    state = await asyncio.to_thread(store.load)
    while True:
        body = (await link.request("history", {"cursor": state.cursor})).body
        items = checker.page(body, state)  # raises before anything of the page is stored
        state.cursor = int(body["cursor"])
        state.count += len(items)
        state.done = bool(body["done"])
        await asyncio.to_thread(store.append, items, state)
        if progress is not None:
            progress(state.count)
        if state.done:
            return state


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
