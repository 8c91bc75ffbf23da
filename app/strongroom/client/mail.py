"""Mail on the phone's side (protocol.md §7): send, take deliveries, delivery notices.

The inbox is bounded: a box (honest or not) cannot fill the phone's memory with
mail. Mail not taken is not acknowledged, so the box keeps it and delivers it
again later. Deliveries are deduplicated on their mail id.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.client.link import Link
from strongroom.client.proofs import ProofError
from strongroom.peer.frames import Frame

log = logging.getLogger(__name__)

# Mail delivered but not yet taken by receive_mail. The box keeps at most 32
# deliveries unacknowledged per session; this leaves room for two sessions.
INBOX_LIMIT = 64


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


async def send_mail(link: Link, to_owner: str, payload: bytes, device: int | None) -> bytes:
    """Leave `payload` for another owner (or one device); the mail id once held durably."""
    mail_id = os.urandom(16)
    body: dict[str, Any] = {"mail_id": mail_id, "to": to_owner, "payload": payload}
    if device is not None:
        body["device"] = device
    reply = await link.request("mail", body)
    if reply.type != "ack" or reply.body.get("ref") != mail_id:
        raise ProofError("the box acknowledged other mail")
    return mail_id


class MailBox:
    """Deliveries waiting for `receive`, and the delivery notices seen so far."""

    def __init__(self, inbox_limit: int = INBOX_LIMIT) -> None:
        self._inbox: asyncio.Queue[Mail] = asyncio.Queue(max(1, inbox_limit))
        self._seen: set[bytes] = set()
        self.delivered: dict[bytes, DeliveryNotice] = {}
        self._delivered_event = asyncio.Event()

    def on_mail(self, body: Mapping[str, Any]) -> None:
        """A `mail` frame from the box."""
        mail_id = body["mail_id"]
        if mail_id in self._seen:
            return
        if self._inbox.full():
            # Not taken, so not acknowledged: the box keeps it and delivers it
            # again in a later session, once receive_mail has made room.
            log.warning("inbox full (%d): mail left at the box", self._inbox.maxsize)
            return
        self._seen.add(mail_id)
        self._inbox.put_nowait(
            Mail(mail_id, body["from"], body["device"], body["at"], body["payload"])
        )

    def on_notice(self, body: Mapping[str, Any]) -> DeliveryNotice:
        """A delivery notice (`mail_ack` from the box); acknowledge it back."""
        notice = DeliveryNotice(body["mail_id"], body["device"], body["at"])
        self.delivered[notice.mail_id] = notice
        self._delivered_event.set()
        return notice

    async def receive(self, link: Link, count: int | None, wait_s: float) -> list[Mail]:
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
        for mail in received:  # a real app stores each one durably before acknowledging it
            await link.send(Frame("mail_ack", 0, {"mail_id": mail.mail_id}))
        return received

    async def wait_delivered(self, mail_id: bytes) -> DeliveryNotice:
        while mail_id not in self.delivered:
            self._delivered_event.clear()
            await self._delivered_event.wait()
        return self.delivered[mail_id]
