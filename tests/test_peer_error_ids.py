"""A fault while the box answers a request names that request (protocol.md §10.1).

Real sockets on loopback, real Noise sessions, a real SQLCipher archive and the
reference client; the one fault is injected where the box would meet it (a read
of the archive that fails, the signature workers gone). Before, the box's
`internal` error frame carried id 0: the phone's request waited for a reply that
never came, until the phone's own timeout. Now the phone fails that request at once
and the session carries on, with nothing lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from typing import Any

import pytest

from peer_helpers import RunningBox, attachment_record, message, paired_phone, running_box
from strongroom.client.link import BoxError
from strongroom.peer import history

box = pytest.fixture(running_box)

# Far below any timeout a phone would set: the answer comes with the error frame, not
# after waiting. The old code never answered, so this deadline failed it.
ANSWER_S = 10


async def test_a_failed_archive_read_fails_the_history_request_at_once(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    phone = await paired_phone(box, "claire")
    await phone.push(message("avant la panne"))
    real_page = history.history_page
    failures: list[int] = []

    def damaged_read(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise sqlite3.DatabaseError("database disk image is malformed")
        return real_page(*args, **kwargs)

    monkeypatch.setattr(history, "history_page", damaged_read)
    link = phone._require_link()
    with pytest.raises(BoxError) as failed:
        await asyncio.wait_for(link.request("history", {"cursor": 0}), ANSWER_S)
    assert failed.value.code == "internal"
    assert "peer action Query failed" in caplog.text
    # Not an error about nothing in particular: the phone kept no stray error.
    assert phone.box_errors == []
    # The session carries on and the archive lost nothing.
    page = await asyncio.wait_for(link.request("history", {"cursor": 0}), ANSWER_S)
    assert len(page.body["items"]) == 1
    await phone.close()


async def test_a_push_whose_check_fails_in_the_box_is_failed_at_once_and_can_be_retried(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await paired_phone(box, "claire")
    real_check = box.service.signatures.check_then
    failures: list[int] = []

    def workers_gone(*args: Any) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("cannot schedule new futures after shutdown")
        real_check(*args)

    # The connection asks for a push's check with check_then (peer/chain.py).
    monkeypatch.setattr(box.service.signatures, "check_then", workers_gone)
    record = message("le rendez-vous est confirmé")
    with pytest.raises(BoxError) as failed:
        await asyncio.wait_for(phone.push(record), ANSWER_S)
    assert failed.value.code == "internal"
    assert box.count("SELECT count(*) FROM records") == 0  # nothing half-stored
    # "The request may be retried" (§10.1): the same record goes in, once.
    ack = await asyncio.wait_for(phone.push(record), ANSWER_S)
    assert not ack.duplicate
    assert box.count("SELECT count(*) FROM records") == 1
    await phone.close()


async def test_a_failed_read_fails_the_attachment_download_at_once(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await paired_phone(box, "claire")
    data = os.urandom(70_000)
    sha256 = hashlib.sha256(data).digest()
    await phone.upload_attachment(data)
    await phone.push(attachment_record("m-1", sha256, len(data)))
    real_owner_has_blob = history.owner_has_blob

    def damaged_read(*args: Any) -> bool:
        monkeypatch.setattr(history, "owner_has_blob", real_owner_has_blob)
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(history, "owner_has_blob", damaged_read)
    with pytest.raises(BoxError) as failed:
        await asyncio.wait_for(phone.download_blob(sha256), ANSWER_S)
    assert failed.value.code == "internal"
    assert await asyncio.wait_for(phone.download_blob(sha256), ANSWER_S) == data
    await phone.close()
