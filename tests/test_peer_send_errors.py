"""A bug while sending is a bug, not a phone that went away (peer/connection.py).

Real sockets on loopback, real Noise, a real archive; the one fault is injected in
the box's frame encoder, where a programming error would surface.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from peer_helpers import RunningBox, message, paired_phone, running_box
from strongroom.client.link import BoxError
from strongroom.peer import connection
from strongroom.peer.frames import Frame, encode_frame

box = pytest.fixture(running_box)


async def test_a_runtime_error_while_answering_is_logged_and_the_phone_told(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    phone = await paired_phone(box, "claire")
    await phone.push(message("avant la panne"))
    real_encode = encode_frame
    broken: list[str] = []

    def encode_with_a_bug(frame: Frame) -> Any:
        if frame.type == "history_page" and not broken:
            broken.append(frame.type)
            raise RuntimeError("injected encoder bug")
        return real_encode(frame)

    monkeypatch.setattr(connection, "encode_frame", encode_with_a_bug)
    # Taken for a closed connection, the bug left no trace and the connection was
    # given up at the phone's next frame. The failed page's request is failed at once
    # (the box's "internal" error frame names it: protocol.md §10.1).
    with pytest.raises(BoxError) as failed:
        await asyncio.wait_for(phone._require_link().request("history", {"cursor": 0}), 10)
    assert failed.value.code == "internal"
    assert "injected encoder bug" in caplog.text
    assert broken == ["history_page"]
    assert "peer action Query failed" in caplog.text
    # The connection was not given up for closed: the phone carries on.
    ack = await asyncio.wait_for(phone.push(message("après la panne")), 10)
    assert ack.log_index >= 0
    page = await asyncio.wait_for(phone._require_link().request("history", {"cursor": 0}), 10)
    assert len(page.body["items"]) == 2
    await phone.close()
