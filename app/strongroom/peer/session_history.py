"""A phone's `history` requests inside its session (protocol.md §8): pages of the
owner's records, with each record's device key and (if asked) a consistency proof."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.peer import history
from strongroom.peer.actions import Action, Query, Send
from strongroom.peer.device_keys import device_keys
from strongroom.peer.frames import Frame
from strongroom.peer.head_chain import CONSISTENCY_ROOM

if TYPE_CHECKING:
    from strongroom.peer.session import PeerSession


class HistoryFlow:
    def __init__(self, session: PeerSession) -> None:
        self.session = session

    def request(self, frame: Frame) -> list[Action]:
        session = self.session
        assert session.device is not None
        owner = session.device.owner
        cursor: int = frame.body["cursor"]
        limit = min(
            frame.body.get("limit", session.limits.history_page_size),
            session.limits.history_page_size,
        )
        limit = max(limit, 1)
        # Leave room in the frame for the page's own CBOR around the records, and for
        # the key of each device its items name (at most one per item, ~50 bytes each).
        budget = max(session.limits.max_frame_bytes - 4096 - 50 * limit, 1)
        if session.heads.wanted:  # and for its consistency proof: at most 128 nodes of 34 bytes
            budget = max(budget - CONSISTENCY_ROOM, 1)

        def read(conn: Any) -> tuple[history.HistoryPage, list[dict[str, Any]]]:
            result = history.history_page(conn, owner, cursor, limit, budget)
            return result, device_keys(conn, (item["device"] for item in result.items))

        def page(found: tuple[history.HistoryPage, list[dict[str, Any]]]) -> list[Action]:
            result, keys = found
            body: dict[str, Any] = {
                "items": result.items,
                "devices": keys,  # so the phone can check every record's signature
                "cursor": result.cursor,
                "done": result.done,
            }
            if result.tree_head is not None:
                body["tree_head"] = result.tree_head
            return [Send(Frame("history_page", frame.id, body))]

        return [Query(read, page, frame.id)]
