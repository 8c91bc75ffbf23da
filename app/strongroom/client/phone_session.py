"""The phone's session with its box: connecting, pairing, and what the box sends unasked.

`PhoneSession` holds the device state and the Link (client/link.py): it pairs
(Noise XX or XXpsk3), reconnects (Noise IK), says hello, keeps the session alive,
follows the box's signed heads, and handles the frames the box sends on its own
(reveal, mail, delivery notices, pings, reach changes). `PhoneClient`
(client/phone.py) builds what a phone does on top of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp

from strongroom.client.heads import CAPABILITY as CONSISTENCY_CAP
from strongroom.client.heads import HeadChain, watch_heads
from strongroom.client.link import (
    BoxError,
    ConnectionLost,
    Link,
    LinkError,
    open_link,
)
from strongroom.client.mail import INBOX_LIMIT, MailBox
from strongroom.client.pairing import Paired, pair_over
from strongroom.client.proofs import AckVerifier, ProofError, record_id
from strongroom.client.reach import CAPABILITY as REACH_CAP
from strongroom.client.reach import ReachUpdate, on_lan, refresh_reach
from strongroom.client.state import DeviceState
from strongroom.pairing.qr import parse_offer
from strongroom.peer.frames import Frame
from strongroom.peer.handshake import HandshakeKind
from strongroom.proof.sth import SignedTreeHead

# What the reference client announces in its hello (the bench's load-generator phones,
# scripts/bench_phones.py, announce the same, so the box does for them what it does
# for a phone: bundled acks, consistency proofs).
HELLO_CAPS = ("bundles", CONSISTENCY_CAP, "mail", REACH_CAP)


class NotPaired(LinkError):
    """This phone has no pairing yet: pair_button or pair_qr first."""


class PhoneSession:
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
        self.heads: HeadChain | None = None  # the last verified head (client/heads.py)
        self._outbox: dict[bytes, tuple[bytes, bytes]] = {
            record_id(raw): (raw, sig) for raw, sig in state.outbox
        }
        self.mailbox = MailBox(inbox_limit)  # bounded: see client/mail.py
        self._reveal: asyncio.Future[bytes] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.box_hello: Mapping[str, Any] = {}
        self.box_errors: list[BoxError] = []  # error frames not tied to a request
        # Called after each reach refresh (an app reinstalls its tor's key line here).
        self.reach_updated: Callable[[ReachUpdate], None] | None = None

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
        if self.heads is not None and self.heads.refused is not None:
            raise self.heads.refused  # a forked log: nothing this box says is trusted now
        if self._link is None or self._link.closed.is_set():
            raise ConnectionLost("not connected")
        return self._link

    def save(self) -> None:
        """Write the device state (keys, pairing, outbox) if this client has a state file."""
        self.state.outbox = self.outbox
        if self.heads is not None and self.heads.trusted is not None:
            self.state.last_head = self.heads.trusted.to_dict()
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

    async def __aenter__(self) -> Self:
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
        if self.heads is None:
            last = state.last_head
            trusted = None if last is None else SignedTreeHead.from_dict(last)
            self.heads = HeadChain(state.box_sign_public, trusted)
        # One cache of checked head signatures for the chain and the acks.
        self._verifier = AckVerifier(state.box_sign_public, self.heads.verified)
        watch_heads(self._link, self.heads)
        await self._hello()
        if on_lan(url) and REACH_CAP in self.box_hello.get("caps", ()):
            # Every LAN connection: learn reach turned on, or a new address (§12.2).
            with contextlib.suppress(BoxError, ValueError):  # helper down: next time
                await self.refresh_reach()
        await self._connected()

    async def _connected(self) -> None:
        """After each connect (PhoneClient pushes its outbox again here)."""

    async def _hello(self) -> None:
        link = self._require_link()
        reply = await link.request(
            "hello",
            {
                "name": self.state.name,
                "app": "strongroom-reference/1",
                "caps": list(HELLO_CAPS),
            },
        )
        self.box_hello = reply.body
        if self.heads is not None:
            # A box that offers consistency proofs must give one with every later head.
            self.heads.active = CONSISTENCY_CAP in reply.body["caps"]
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
        assert self._reveal is not None
        paired = await pair_over(link, self.state, url, self._reveal, on_code)
        assert self.state.box_sign_public is not None
        # A new pairing starts a new chain: the head in `paired` is the first one seen.
        self.heads = HeadChain(self.state.box_sign_public, paired.tree_head)
        self._verifier = AckVerifier(self.state.box_sign_public, self.heads.verified)
        watch_heads(link, self.heads)
        self.save()
        # The same session continues as the newly paired device.
        await self._hello()
        return paired

    # -- frames the box sends on its own ---------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        body = frame.body
        if frame.type == "reveal":
            if self._reveal is not None and not self._reveal.done():
                self._reveal.set_result(body["nonce"])
        elif frame.type == "mail":
            self.mailbox.on_mail(body)
        elif frame.type == "mail_ack":
            notice = self.mailbox.on_notice(body)
            # Acknowledge the notice so the box can forget the mail.
            self._spawn(self._send_quietly(Frame("mail_ack", 0, {"mail_id": notice.mail_id})))
        elif frame.type == "ping":
            self._spawn(self._send_quietly(Frame("pong", frame.id)))
        elif frame.type == "reach_changed":
            self._spawn(self._refresh_quietly())
        elif frame.type == "error":
            self.box_errors.append(
                BoxError(str(body["code"]), str(body["message"]), body.get("reason"))
            )

    async def refresh_reach(self) -> ReachUpdate:
        """Ask the box for its current remote reach and keep it (client/reach.py)."""
        update = await refresh_reach(self._require_link(), self.state)
        self.save()
        if self.reach_updated is not None:
            self.reach_updated(update)
        return update

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(LinkError):
            await self.refresh_reach()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_quietly(self, frame: Frame) -> None:
        with contextlib.suppress(LinkError):
            await self._require_link().send(frame)
