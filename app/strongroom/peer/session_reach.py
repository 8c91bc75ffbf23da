"""Remote reach inside a phone session (protocol.md §12.2): `reach` and `reach_changed`.

A paired phone whose hello lists the "reach" capability asks the box for its
current onion address (on every LAN connection, and when told `reach_changed`),
naming the public half of the onion-auth key it holds. The box answers whether
reach is on and, if so, the onion, plus a new private key when the phone holds
none. Only READY sessions get here: a revoked phone never finishes its handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strongroom.peer.actions import Action, RefreshReach, Send
from strongroom.peer.frames import ErrorCode, Frame
from strongroom.peer.session_common import error
from strongroom.reach.helper import HelperUnavailable
from strongroom.reach.keys import ReachKeyError, unb32

if TYPE_CHECKING:
    from strongroom.peer.session import PeerSession

CAPABILITY = "reach"
REACH_OFF: Mapping[str, Any] = {"on": False}


class ReachFlow:
    def __init__(self, session: PeerSession) -> None:
        self.session = session
        self.wanted = False  # the phone listed "reach" in its hello: it reads reach_changed

    def request(self, frame: Frame) -> list[Action]:
        device = self.session.device
        assert device is not None
        auth_pub: str | None = frame.body.get("auth_pub")
        if auth_pub is not None:
            try:
                unb32(auth_pub)
            except ReachKeyError as exc:
                return [error(ErrorCode.MALFORMED, f"auth_pub: {exc}", frame.id)]
        if self.session.box.reach_refresh is None:
            return [Send(Frame("reach", frame.id, dict(REACH_OFF)))]

        def answered(result: Mapping[str, Any] | Exception) -> list[Action]:
            if isinstance(result, HelperUnavailable):
                # tor could not be told about a key: give none; the phone asks again later.
                message = "remote reach cannot issue keys right now; retry later"
                return [error(ErrorCode.UNAVAILABLE, message, frame.id)]
            if isinstance(result, Exception):
                return [error(ErrorCode.INTERNAL, "internal error", frame.id)]
            return [Send(Frame("reach", frame.id, dict(result)))]

        return [RefreshReach(device.id, auth_pub, answered, frame.id)]

    def changed(self) -> list[Action]:
        """The box's reach changed: tell a phone that reads it to ask again."""
        if not self.wanted or self.session.device is None:
            return []
        return [Send(Frame("reach_changed", 0, {}))]
