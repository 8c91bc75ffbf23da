"""Mail in a peer session (protocol.md §7): hold, deliver in a window, notices back.

Sans-I/O like the session it belongs to: each method returns actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.archive.committer import Committed
from strongroom.peer import history, mailbox
from strongroom.peer.actions import Action, Commit, Query, Send, WakeMail, WakeNotices
from strongroom.peer.frames import Frame
from strongroom.peer.session_common import State, error, error_for

if TYPE_CHECKING:
    from strongroom.peer.session import PeerSession

MAIL_WINDOW = 32  # deliveries (and notices) sent but not yet acknowledged, per session


class MailFlow:
    def __init__(self, session: PeerSession) -> None:
        self._session = session
        self._mail_out: set[bytes] = set()  # delivered in this session, not yet acknowledged
        self._notices_out: set[bytes] = set()
        self._mail_query = False
        self._notice_query = False

    def mail(self, frame: Frame) -> list[Action]:
        assert self._session.device is not None
        body = frame.body
        mail_id: bytes = body["mail_id"]
        device = body.get("device")
        op = mailbox.hold_mail(
            mail_id, self._session.device.id, body["to"], device, body["payload"]
        )

        def held(result: Committed | Exception) -> list[Action]:
            if isinstance(result, Exception):
                code, message = error_for(result)
                return [error(code, message, frame.id)]
            ack = Frame("ack", frame.id, {"kind": "mail", "ref": mail_id})
            return [Send(ack), WakeMail(body["to"], device)]

        return [Commit(op, None, held, frame.id)]

    def mail_ack(self, frame: Frame) -> list[Action]:
        assert self._session.device is not None
        mail_id: bytes = frame.body["mail_id"]

        def recorded(result: Committed | Exception) -> list[Action]:
            if isinstance(result, Exception):
                code, message = error_for(result)
                return [error(code, message, frame.id)]
            actions: list[Action] = []
            outcome = result.result
            if isinstance(outcome, mailbox.Delivered):
                actions.append(WakeNotices(outcome.sender_device))
            if mail_id in self._mail_out:
                self._mail_out.discard(mail_id)
                actions += self.wake_mail()
            if mail_id in self._notices_out:
                self._notices_out.discard(mail_id)
                actions += self.wake_notices()
            return actions

        return [
            Commit(
                mailbox.ack_mail(mail_id, self._session.device.id, self._session.device.owner),
                None,
                recorded,
                frame.id,
            )
        ]

    def wake_mail(self) -> list[Action]:
        """Fetch and deliver waiting mail, keeping at most MAIL_WINDOW unacknowledged."""
        if (
            self._session.state is not State.READY
            or self._mail_query
            or self._session.device is None
        ):
            return []
        room = MAIL_WINDOW - len(self._mail_out)
        if room <= 0:
            return []
        self._mail_query = True
        device = self._session.device
        limit = room + len(self._mail_out)

        def deliver(items: list[history.MailItem]) -> list[Action]:
            self._mail_query = False
            if self._session.state is not State.READY:
                return []
            actions: list[Action] = []
            for item in items:
                if item.mail_id in self._mail_out or len(self._mail_out) >= MAIL_WINDOW:
                    continue
                self._mail_out.add(item.mail_id)
                body = {
                    "mail_id": item.mail_id,
                    "from": item.sender_owner,
                    "device": item.sender_device,
                    "at": item.at,
                    "payload": item.payload,
                }
                actions.append(Send(Frame("mail", 0, body)))
            return actions

        return [Query(lambda c: history.pending_mail(c, device.id, device.owner, limit), deliver)]

    def wake_notices(self) -> list[Action]:
        """Send delivery notices for this device's mail that its recipients took."""
        if (
            self._session.state is not State.READY
            or self._notice_query
            or self._session.device is None
        ):
            return []
        if len(self._notices_out) >= MAIL_WINDOW:
            return []
        self._notice_query = True
        device_id = self._session.device.id
        limit = MAIL_WINDOW + len(self._notices_out)

        def notify(items: list[history.Notice]) -> list[Action]:
            self._notice_query = False
            if self._session.state is not State.READY:
                return []
            actions: list[Action] = []
            for item in items:
                if item.mail_id in self._notices_out or len(self._notices_out) >= MAIL_WINDOW:
                    continue
                self._notices_out.add(item.mail_id)
                body = {"mail_id": item.mail_id, "device": item.device, "at": item.at}
                actions.append(Send(Frame("mail_ack", 0, body)))
            return actions

        return [Query(lambda c: history.pending_notices(c, device_id, limit), notify)]
