"""PhoneClient: the reference implementation of a phone talking to the box.

Phone app teams read this as the normative example of docs/protocol.md:

    phone = PhoneClient(DeviceState.generate("Pixel de Claire", "claire"))
    await phone.pair_button("ws://box:8080/peer", fingerprint_from_mdns, on_code=show)
    ack = await phone.push({...record fields...})   # verified inclusion proof
    await phone.close()
    await phone.connect()                            # later: Noise IK, outbox re-pushed

Every ack is verified (inclusion proof up to a tree head signed by the box).
Records pushed but not acknowledged stay in the outbox and are pushed again
after the next connect; the box stores a record once however often it comes.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from strongroom.archive.record import sign_record
from strongroom.client import attachments, restore_files
from strongroom.client.attachments import Progress
from strongroom.client.mail import DeliveryNotice, Mail, send_mail
from strongroom.client.phone_session import NotPaired, PhoneSession
from strongroom.client.proofs import Ack, record_id
from strongroom.client.restore import (
    Checker,
    HistoryItem,
    HistoryStore,
    record_kind,
    restore,
)

__all__ = ["NotPaired", "PhoneClient"]


class PhoneClient(PhoneSession):
    """A phone of the box (the session's connection, pairing and frames: PhoneSession)."""

    async def _connected(self) -> None:
        if self._outbox:  # records pushed but never acknowledged: push them again
            await self.push_many_signed(self.outbox)

    # -- records ---------------------------------------------------------------------------------

    def sign(self, fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """Canonical CBOR record bytes and the device's signature over them."""
        return sign_record(self.state.signing_key, dict(fields))

    async def push(self, fields: Mapping[str, Any]) -> Ack:
        """Sign and push one record; returns once the box proved it durable and logged."""
        raw, sig = self.sign(fields)
        return await self.push_signed(raw, sig)

    async def push_signed(self, raw: bytes, sig: bytes) -> Ack:
        rid = record_id(raw)
        kind = record_kind(raw)
        self._outbox.setdefault(rid, (raw, sig))
        link = self._require_link()
        reply = await link.request("push", {"record": raw, "sig": sig})
        assert self._verifier is not None
        ack = self._verifier.verify(reply.body, kind="record", leaf_kind=kind, ref=rid)
        self._outbox.pop(rid, None)
        return ack

    async def push_many(self, records: Iterable[Mapping[str, Any]]) -> list[Ack]:
        """Push many records pipelined (up to the box's in-flight window at once)."""
        return await self.push_many_signed([self.sign(fields) for fields in records])

    async def push_many_signed(self, records: Iterable[tuple[bytes, bytes]]) -> list[Ack]:
        return list(await asyncio.gather(*(self.push_signed(r, s) for r, s in records)))

    # -- mail ------------------------------------------------------------------------------------

    @property
    def delivered(self) -> dict[bytes, DeliveryNotice]:
        """Delivery notices received: mail id -> which device took it, when."""
        return self.mailbox.delivered

    async def send_mail(self, to_owner: str, payload: bytes, *, device: int | None = None) -> bytes:
        """Leave `payload` (already end-to-end encrypted by the app) for another owner's
        devices, or one device; returns the mail id once the box holds it durably."""
        return await send_mail(self._require_link(), to_owner, payload, device)

    async def receive_mail(self, *, count: int | None = None, wait_s: float = 2.0) -> list[Mail]:
        """Mail delivered so far (waiting up to `wait_s` for `count` of them, or for the
        first one); each is acknowledged to the box, which then tells its sender."""
        return await self.mailbox.receive(self._require_link(), count, wait_s)

    async def wait_delivered(self, mail_id: bytes) -> DeliveryNotice:
        """Wait for the box's notice that a recipient device took this mail (wrap it in
        asyncio.timeout: the recipient may stay offline for days)."""
        return await self.mailbox.wait_delivered(mail_id)

    # -- history ---------------------------------------------------------------------------------

    async def restore_to(
        self,
        directory: Path,
        progress: Callable[[int], None] | None = None,
        *,
        attachments_dir: Path | None = None,
    ) -> int:
        """Restore every record of this phone's owner (all their devices) into the
        HistoryStore at `directory`, checking each one (client/restore.py); returns how
        many it holds. Memory holds at most three pages. Run it again after a cut-off:
        it resumes after the last stored page (and fetches records pushed since).
        With `attachments_dir`, every attachment blob is downloaded there too (named by
        hash, several at once: client/restore_files.py; a cut-off download resumes from
        its partial file)."""
        link = self._require_link()
        assert self._verifier is not None and self.state.device_id is not None
        own_key = bytes(self.state.signing_key.verify_key)
        checker = Checker(self._verifier, self.state.device_id, own_key)
        store = HistoryStore(directory)
        done = await restore(link, checker, store, progress)
        if attachments_dir is not None:
            await restore_files.download_all(link, store, attachments_dir)
        return done.count

    async def restore_history(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        attachments_dir: Path | None = None,
    ) -> list[HistoryItem]:
        """`restore_to` into a temporary store, returned as a list (small histories,
        tests): a phone app restores into its storage with `restore_to`."""
        with tempfile.TemporaryDirectory(prefix="strongroom-restore-") as directory:
            await self.restore_to(Path(directory), progress, attachments_dir=attachments_dir)
            return list(HistoryStore(Path(directory)).items())

    # -- attachments (client/attachments.py) ---------------------------------------------------

    async def upload_attachment(
        self, source: Path | bytes, *, progress: Progress | None = None
    ) -> Ack:
        """Upload an attachment's bytes, resuming where the box's durable copy stops.

        `progress(offset, size)` is called first with the offset the upload resumes
        from, then after every piece. Push the attachment record after this returns.
        """
        link = self._require_link()
        assert self._verifier is not None
        return await attachments.upload(link, self._verifier, source, progress)

    async def download_blob(self, sha256: bytes, dest: Path | None = None) -> bytes:
        """Download an attachment of this owner and verify its hash (see attachments.download:
        with `dest`, a cut-off download resumes from its partial file)."""
        return await attachments.download(self._require_link(), sha256, dest)
