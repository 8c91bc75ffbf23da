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
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cbor2

from strongroom.archive.record import sign_record
from strongroom.client.link import (
    BoxError,
    ConnectionLost,
    HandshakeRefused,
    Link,
    LinkError,
    open_link,
)
from strongroom.client.proofs import Ack, AckVerifier, ProofError, record_id
from strongroom.client.state import DeviceState
from strongroom.identity import compute_fingerprint
from strongroom.pairing.codes import committed_comparison_code, verify_code_commitment
from strongroom.pairing.qr import parse_offer
from strongroom.peer.frames import BLOB_PIECE_BYTES, Frame
from strongroom.peer.handshake import HandshakeKind, pair_message
from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead, verify_tree_head

Progress = Callable[[int, int], None]


class NotPaired(LinkError):
    """This phone has no pairing yet: pair_button or pair_qr first."""


@dataclass(frozen=True)
class Paired:
    device_id: int
    fingerprint: str
    comparison_code: str
    tree_head: SignedTreeHead


@dataclass(frozen=True)
class Mail:
    mail_id: bytes
    sender_owner: str
    sender_device: int
    at: int
    payload: bytes


@dataclass(frozen=True)
class DeliveryNotice:
    mail_id: bytes
    device: int
    at: int


@dataclass(frozen=True)
class HistoryItem:
    record: bytes
    sig: bytes
    log_index: int
    device: int

    @property
    def fields(self) -> dict[str, Any]:
        value = cbor2.loads(self.record)
        return value if isinstance(value, dict) else {}


def _kind_of(record: bytes) -> str:
    try:
        fields = cbor2.loads(record)
    except Exception as exc:  # cbor2 raises several types on garbage
        raise ValueError("the record is not CBOR") from exc
    kind = fields.get("kind") if isinstance(fields, dict) else None
    if not isinstance(kind, str):
        raise ValueError("the record has no kind")
    return kind


log = logging.getLogger(__name__)

# Mail delivered but not yet taken by receive_mail. The box keeps at most 32
# deliveries unacknowledged per session; this leaves room for two sessions.
INBOX_LIMIT = 64


class PhoneClient:
    def __init__(
        self,
        state: DeviceState,
        *,
        state_path: Path | None = None,
        http: aiohttp.ClientSession | None = None,
        keepalive: bool = True,
        inbox_limit: int = INBOX_LIMIT,
    ) -> None:
        self.state = state
        self.keepalive = keepalive
        self.state_path = state_path
        self._http = http
        self._own_http = http is None
        self._link: Link | None = None
        self._verifier: AckVerifier | None = None
        self._outbox: dict[bytes, tuple[bytes, bytes]] = {
            record_id(raw): (raw, sig) for raw, sig in state.outbox
        }
        # Bounded: a box (honest or not) cannot fill the phone's memory with mail.
        self._inbox: asyncio.Queue[Mail] = asyncio.Queue(max(1, inbox_limit))
        self._seen_mail: set[bytes] = set()
        self.delivered: dict[bytes, DeliveryNotice] = {}
        self._delivered_event = asyncio.Event()
        self._reveal: asyncio.Future[bytes] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.box_hello: Mapping[str, Any] = {}
        self.box_errors: list[BoxError] = []  # error frames not tied to a request

    # -- connection management -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.closed.is_set()

    @property
    def outbox(self) -> list[tuple[bytes, bytes]]:
        """Signed records pushed but not acknowledged yet, oldest first."""
        return list(self._outbox.values())

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    def _require_link(self) -> Link:
        if self._link is None or self._link.closed.is_set():
            raise ConnectionLost("not connected")
        return self._link

    def save(self) -> None:
        """Write the device state (keys, pairing, outbox) if this client has a state file."""
        self.state.outbox = self.outbox
        if self.state_path is not None:
            self.state.save(self.state_path)

    async def close(self) -> None:
        """Close the session (the state file keeps the outbox)."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        for task in list(self._tasks):
            task.cancel()
        self.save()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    def drop_connection(self) -> None:
        """Cut the connection abruptly, as a phone losing its network would."""
        if self._link is not None:
            self._link.drop()

    async def __aenter__(self) -> PhoneClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, url: str | None = None) -> None:
        """Reconnect to the paired box with Noise IK, then push the outbox again."""
        state = self.state
        if not state.paired or state.box_sign_public is None:
            raise NotPaired("pair this phone first")
        url = url or state.url
        if url is None:
            raise NotPaired("no box address known")
        if self._link is not None:
            await self._link.close()
        self._link = await open_link(
            self._session(),
            url,
            HandshakeKind.IK,
            state.noise_private,
            self._on_frame,
            box_noise_public=state.box_noise_public,
        )
        if self._link.handshake.box_sign_public != state.box_sign_public:
            await self._link.close()
            raise ProofError("the box presented another signing key than at pairing")
        state.url = url
        self._verifier = AckVerifier(state.box_sign_public)
        await self._hello()
        if self._outbox:
            await self.push_many_signed(self.outbox)

    async def _hello(self) -> None:
        link = self._require_link()
        reply = await link.request(
            "hello",
            {"name": self.state.name, "app": "strongroom-reference/1", "caps": ["bundles", "mail"]},
        )
        self.box_hello = reply.body
        # Frames ready together (a burst of pushes) may now share transport messages.
        link.outbox.bundling = "bundles" in reply.body["caps"]
        limits = reply.body["limits"]
        link.set_window(int(limits["max_in_flight"]))
        if self.keepalive:
            self._spawn(self._keep_alive(link, int(limits["idle_timeout_ms"]) / 3000))

    async def _keep_alive(self, link: Link, every_s: float) -> None:
        """Ping when idle so the box's idle timeout does not close a quiet session."""
        with contextlib.suppress(LinkError):
            while not link.closed.is_set():
                await asyncio.sleep(every_s)
                await link.request("ping", {})

    # -- pairing ---------------------------------------------------------------------------------

    async def pair_button(
        self,
        url: str,
        box_fingerprint: str | None,
        name: str | None = None,
        owner: str | None = None,
        *,
        on_code: Callable[[str], None] | None = None,
    ) -> Paired:
        """Pair during an open PAIR window (Noise XX). Show the code from `on_code` to the
        user, who compares it with the one on the box before the admin confirms.

        `box_fingerprint` (from the mDNS TXT record) is checked when given.
        """
        return await self._pair(url, HandshakeKind.XX, None, box_fingerprint, name, owner, on_code)

    async def pair_qr(
        self,
        url: str | None,
        qr_payload: str,
        name: str | None = None,
        owner: str | None = None,
        *,
        on_code: Callable[[str], None] | None = None,
    ) -> Paired:
        """Pair with the box's QR code (Noise XXpsk3 with its one-time secret)."""
        offer = parse_offer(qr_payload)
        url = url or f"wss://{offer.host}:{offer.port}/peer"
        return await self._pair(
            url, HandshakeKind.XXPSK3, offer.secret, offer.fingerprint, name, owner, on_code
        )

    async def _pair(
        self,
        url: str,
        kind: HandshakeKind,
        psk: bytes | None,
        fingerprint: str | None,
        name: str | None,
        owner: str | None,
        on_code: Callable[[str], None] | None,
    ) -> Paired:
        state = self.state
        state.name = name or state.name
        state.owner = owner or state.owner
        self._reveal = asyncio.get_running_loop().create_future()
        link = await open_link(
            self._session(),
            url,
            kind,
            state.noise_private,
            self._on_frame,
            psk=psk,
            expected_fingerprint=fingerprint,
        )
        self._link = link
        try:
            return await self._pair_over(link, url, on_code)
        except BaseException:
            self._link = None
            await link.close()
            raise

    async def _pair_over(
        self, link: Link, url: str, on_code: Callable[[str], None] | None
    ) -> Paired:
        state = self.state
        handshake = link.handshake
        assert self._reveal is not None
        # The box's first frame reveals the nonce it committed to in handshake message 2.
        closed: asyncio.Future[Any] = asyncio.ensure_future(link.closed.wait())
        reveal: asyncio.Future[Any] = self._reveal
        await asyncio.wait([reveal, closed], return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        if not self._reveal.done():
            raise HandshakeRefused(link.ws.close_code, link.close_reason or "handshake failed")
        box_nonce = self._reveal.result()
        commitment, phone_nonce = handshake.code_commitment, handshake.phone_code_nonce
        if commitment is None or phone_nonce is None:
            raise ProofError("the box sent no comparison-code commitment")
        if not verify_code_commitment(commitment, box_nonce):
            raise ProofError("the box revealed a nonce it had not committed to")
        code = committed_comparison_code(handshake.handshake_hash, phone_nonce, box_nonce)
        if on_code is not None:
            on_code(code)
        signing_key = state.signing_key
        body = {
            "name": state.name,
            "owner": state.owner,
            "sign_key": bytes(signing_key.verify_key),
            "sig": signing_key.sign(pair_message(handshake.handshake_hash)).signature,
        }
        reply = await link.request("pair", body)
        paired = reply.body
        fingerprint = compute_fingerprint(handshake.box_noise_public, handshake.box_sign_public)
        if paired["sign_key"] != handshake.box_sign_public or paired["fingerprint"] != fingerprint:
            raise ProofError("the paired frame names another box")
        try:
            head = SignedTreeHead.from_dict(paired["tree_head"])
        except MalformedTreeHeadError as exc:
            raise ProofError(str(exc)) from exc
        if not verify_tree_head(head, handshake.box_sign_public):
            raise ProofError("the box's tree head signature does not verify")
        state.device_id = int(paired["device_id"])
        state.box_noise_public = handshake.box_noise_public
        state.box_sign_public = handshake.box_sign_public
        state.box_fingerprint = fingerprint
        state.url = url
        reach = paired.get("reach")  # the box's remote reach: see protocol.md
        state.onion, state.onion_auth = (reach["onion"], reach["auth"]) if reach else (None, None)
        self._verifier = AckVerifier(handshake.box_sign_public)
        self.save()
        # The same session continues as the newly paired device.
        await self._hello()
        return Paired(state.device_id, fingerprint, code, head)

    # -- frames the box sends on its own ---------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        body = frame.body
        if frame.type == "reveal":
            if self._reveal is not None and not self._reveal.done():
                self._reveal.set_result(body["nonce"])
        elif frame.type == "mail":
            mail_id = body["mail_id"]
            if mail_id in self._seen_mail:
                return
            if self._inbox.full():
                # Not taken, so not acknowledged: the box keeps it and delivers it
                # again in a later session, once receive_mail has made room.
                log.warning("inbox full (%d): mail left at the box", self._inbox.maxsize)
                return
            self._seen_mail.add(mail_id)
            self._inbox.put_nowait(
                Mail(mail_id, body["from"], body["device"], body["at"], body["payload"])
            )
        elif frame.type == "mail_ack":
            notice = DeliveryNotice(body["mail_id"], body["device"], body["at"])
            self.delivered[notice.mail_id] = notice
            self._delivered_event.set()
            # Acknowledge the notice so the box can forget the mail.
            self._spawn(self._send_quietly(Frame("mail_ack", 0, {"mail_id": notice.mail_id})))
        elif frame.type == "ping":
            self._spawn(self._send_quietly(Frame("pong", frame.id)))
        elif frame.type == "error":
            self.box_errors.append(
                BoxError(str(body["code"]), str(body["message"]), body.get("reason"))
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_quietly(self, frame: Frame) -> None:
        with contextlib.suppress(LinkError):
            await self._require_link().send(frame)

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
        kind = _kind_of(raw)
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

    async def send_mail(self, to_owner: str, payload: bytes, *, device: int | None = None) -> bytes:
        """Leave `payload` (already end-to-end encrypted by the app) for another owner's
        devices, or one device; returns the mail id once the box holds it durably."""
        mail_id = os.urandom(16)
        body: dict[str, Any] = {"mail_id": mail_id, "to": to_owner, "payload": payload}
        if device is not None:
            body["device"] = device
        reply = await self._require_link().request("mail", body)
        if reply.type != "ack" or reply.body.get("ref") != mail_id:
            raise ProofError("the box acknowledged other mail")
        return mail_id

    async def receive_mail(self, *, count: int | None = None, wait_s: float = 2.0) -> list[Mail]:
        """Mail delivered so far (waiting up to `wait_s` for `count` of them, or for the
        first one); each is acknowledged to the box, which then tells its sender."""
        received: list[Mail] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        want = count if count is not None else 1
        while True:
            while not self._inbox.empty():
                received.append(self._inbox.get_nowait())
            remaining = deadline - loop.time()
            if len(received) >= want or remaining <= 0:
                break
            try:
                received.append(await asyncio.wait_for(self._inbox.get(), remaining))
            except TimeoutError:
                break
        link = self._require_link()
        for mail in received:  # a real app stores each one durably before acknowledging it
            await link.send(Frame("mail_ack", 0, {"mail_id": mail.mail_id}))
        return received

    async def wait_delivered(self, mail_id: bytes) -> DeliveryNotice:
        """Wait for the box's notice that a recipient device took this mail (wrap it in
        asyncio.timeout: the recipient may stay offline for days)."""
        while mail_id not in self.delivered:
            self._delivered_event.clear()
            await self._delivered_event.wait()
        return self.delivered[mail_id]

    # -- history ---------------------------------------------------------------------------------

    async def restore_history(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        attachments_dir: Path | None = None,
    ) -> list[HistoryItem]:
        """Every record of this phone's owner (all their devices), oldest first; with
        `attachments_dir`, every attachment blob is downloaded there too (named by hash)."""
        link = self._require_link()
        items: list[HistoryItem] = []
        cursor = 0
        while True:
            page = (await link.request("history", {"cursor": cursor})).body
            if page["items"] and "tree_head" not in page:
                # A box that leaves the proofs out would escape the check below.
                raise ProofError("the box sent history without its signed tree head")
            for item in page["items"]:
                self._check_in_log(item, page["tree_head"])
                items.append(
                    HistoryItem(item["record"], item["sig"], item["log_index"], item["device"])
                )
            cursor = page["cursor"]
            if progress is not None:
                progress(len(items))
            if page["done"]:
                break
        if attachments_dir is not None:
            await asyncio.to_thread(attachments_dir.mkdir, parents=True, exist_ok=True)
            for item in items:
                blob = item.fields.get("blob")
                if item.fields.get("kind") == "attachment" and isinstance(blob, dict):
                    sha = blob["sha256"]
                    target = attachments_dir / sha.hex()
                    if not target.exists():
                        await self.download_blob(sha, target)
        return items

    def _check_in_log(self, item: Mapping[str, Any], tree_head: Any) -> None:
        """A restored record is in the box's signed log: its proof leads to the page's
        tree head (signature checked by the same verifier as acks). ProofError if not."""
        assert self._verifier is not None
        proof = {
            "kind": "record",
            "ref": record_id(item["record"]),
            "log_index": item["log_index"],
            "at": item.get("at"),
            "tree_head": tree_head,
            "proof": item.get("proof"),
        }
        try:
            kind = _kind_of(item["record"])
        except ValueError as exc:
            raise ProofError(f"a restored record is unreadable: {exc}") from exc
        self._verifier.verify(proof, kind="record", leaf_kind=kind, ref=proof["ref"])

    # -- attachments -----------------------------------------------------------------------------

    async def upload_attachment(
        self, source: Path | bytes, *, progress: Progress | None = None
    ) -> Ack:
        """Upload an attachment's bytes, resuming where the box's durable copy stops.

        `progress(offset, size)` is called first with the offset the upload resumes
        from, then after every piece. Push the attachment record after this returns.
        """
        sha256, size = await asyncio.to_thread(_digest, source)
        link = self._require_link()
        reply = await link.request("blob_begin", {"sha256": sha256, "size": size})
        assert self._verifier is not None
        if reply.type == "ack":  # the box already holds this blob
            return self._verifier.verify(reply.body, kind="blob", leaf_kind="blob", ref=sha256)
        offset = int(reply.body["offset"])
        if progress is not None:
            progress(offset, size)
        chunk_id, failure = link.watch()
        try:
            for piece in _pieces(source, offset):
                if failure.done():
                    await failure  # raises the box's error
                await link.send(Frame("blob_chunk", chunk_id, {"offset": offset, "data": piece}))
                offset += len(piece)
                if progress is not None:
                    progress(offset, size)
            end = await link.request("blob_end", {"sha256": sha256})
        finally:
            link.unwatch(chunk_id)
        return self._verifier.verify(end.body, kind="blob", leaf_kind="blob", ref=sha256)

    async def download_blob(self, sha256: bytes, dest: Path | None = None) -> bytes:
        """Download an attachment of this owner; verify its hash; optionally write `dest`.

        Returns the bytes when `dest` is None, else b"" (the file holds them). With
        `dest`, bytes go to `<dest>.partial` first and the file appears only once its
        hash is verified; a download cut off (dropped link, app killed) resumes from
        the partial file's size: the box streams only what is missing.
        """
        partial = dest.with_name(dest.name + ".partial") if dest is not None else None
        try:
            return await self._download(sha256, partial, dest)
        except BoxError as exc:
            if partial is None or exc.code != "bad-offset":
                raise
            # The partial file is longer than the blob (not this blob's): start over.
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            return await self._download(sha256, partial, dest)

    async def _download(self, sha256: bytes, partial: Path | None, dest: Path | None) -> bytes:
        link = self._require_link()
        digest = hashlib.sha256()
        parts: list[bytes] = []
        offset = 0
        if partial is not None:
            offset = await asyncio.to_thread(_hash_partial, partial, digest)
        handle = partial.open("ab") if partial is not None else None
        frames = link.stream("blob_get", {"sha256": sha256, "offset": offset})
        try:
            # The link buffers only a few frames of the stream (back-pressure on the box);
            # aclosing releases the stream as soon as this loop ends, even on an error.
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    if frame.body["offset"] != offset:
                        raise ProofError("the box sent the attachment's bytes out of order")
                    data: bytes = frame.body["data"]
                    digest.update(data)
                    offset += len(data)
                    if handle is not None:
                        await asyncio.to_thread(_write_flushed, handle, data)
                    else:
                        parts.append(data)
                    if frame.body["end"]:
                        break
        finally:
            if handle is not None:
                handle.close()
        if digest.digest() != sha256:
            if partial is not None:
                await asyncio.to_thread(partial.unlink, missing_ok=True)  # start over next time
            raise ProofError("the downloaded attachment does not match its hash")
        if partial is not None and dest is not None:
            await asyncio.to_thread(os.replace, partial, dest)
        return b"".join(parts)


def _hash_into(path: Path, digest: Any) -> int:
    """Feed a file to `digest` in 1 MiB blocks; return its size."""
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size


def _hash_partial(path: Path, digest: Any) -> int:
    """An earlier cut-off download's bytes into `digest`; its size, 0 if there is none."""
    try:
        return _hash_into(path, digest)
    except FileNotFoundError:
        return 0


def _write_flushed(handle: Any, data: bytes) -> None:
    # Flushed per piece: what a killed app leaves behind is what a resume counts on.
    handle.write(data)
    handle.flush()


def _digest(source: Path | bytes) -> tuple[bytes, int]:
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest(), len(source)
    digest = hashlib.sha256()
    size = _hash_into(source, digest)
    return digest.digest(), size


def _pieces(source: Path | bytes, offset: int) -> Iterable[bytes]:
    if isinstance(source, bytes):
        for start in range(offset, len(source), BLOB_PIECE_BYTES):
            yield source[start : start + BLOB_PIECE_BYTES]
        return
    with source.open("rb") as handle:
        handle.seek(offset)
        while piece := handle.read(BLOB_PIECE_BYTES):
            yield piece
