"""End to end on loopback: real sockets, real Noise, a real SQLCipher archive."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from archive_helpers import COUNT_BY_TEXT
from peer_helpers import (
    RunningBox,
    attachment_record,
    message,
    paired_phone,
    running_box,
    start_box,
)
from strongroom.archive import writes
from strongroom.archive.verify import verify_archive
from strongroom.client import (
    BoxError,
    ConnectionLost,
    DeviceState,
    FingerprintMismatch,
    HandshakeRefused,
    PhoneClient,
    ProofError,
)
from strongroom.config import Limits
from strongroom.pairing.gate import Refusal
from strongroom.pairing.qr import make_offer
from strongroom.peer import history
from strongroom.peer.frames import CloseCode, Frame
from support.wait import until

box = pytest.fixture(running_box)


def _verified(box: RunningBox) -> None:
    report = verify_archive(box.archive.reader(), box.archive.blobs, box.keys.signing_public)
    assert report.ok, report.problems


async def _push_both_ways(box: RunningBox, count: int) -> None:
    claire = await paired_phone(box, "claire")
    paul = await paired_phone(box, "paul")
    out = [message(f"à Paul {i}", conv="paul", sender="Claire") for i in range(count)]
    back = [message(f"à Claire {i}", conv="claire", sender="Paul") for i in range(count)]
    acks_a, acks_b = await asyncio.gather(claire.push_many(out), paul.push_many(back))
    # Every ack was checked by the client: inclusion proof + box-signed tree head.
    indexes = {ack.log_index for ack in acks_a + acks_b}
    assert len(indexes) == 2 * count
    assert not claire.outbox and not paul.outbox
    assert box.count("SELECT count(*) FROM records") == 2 * count
    assert box.count(COUNT_BY_TEXT + " LIKE 'à Paul %'") == count
    assert box.count("SELECT max(idx) FROM log_leaves") >= max(indexes)
    await claire.close()
    await paul.close()
    _verified(box)


async def test_two_phones_push_both_ways_all_acked_and_logged(box: RunningBox) -> None:
    await _push_both_ways(box, 1000)


@pytest.mark.slow
async def test_ten_thousand_messages_both_ways(box: RunningBox) -> None:
    await _push_both_ways(box, 5000)


async def test_same_record_twice_is_stored_once_and_acked_with_one_index(
    box: RunningBox,
) -> None:
    phone = await paired_phone(box, "claire")
    raw, sig = phone.sign(message("une seule fois"))
    first = await phone.push_signed(raw, sig)
    again, third = await asyncio.gather(phone.push_signed(raw, sig), phone.push_signed(raw, sig))
    assert first.log_index == again.log_index == third.log_index
    assert not first.duplicate and again.duplicate and third.duplicate
    assert box.count("SELECT count(*) FROM records") == 1
    await phone.close()


async def test_unacked_records_are_pushed_again_after_reconnect(box: RunningBox) -> None:
    phone = await paired_phone(box, "claire")
    await phone.push(message("avant"))
    # A record signed and queued while the link is down stays in the outbox...
    phone.drop_connection()
    with pytest.raises(ConnectionLost):
        await phone.push(message("pendant la coupure"))
    assert len(phone.outbox) == 1
    # ...and reaches the box once, on reconnect.
    await phone.connect()
    assert not phone.outbox
    assert box.count(COUNT_BY_TEXT + " = 'pendant la coupure'") == 1
    await phone.close()


async def test_mail_is_held_for_an_offline_phone_and_delivered_on_reconnect(
    box: RunningBox,
) -> None:
    claire = await paired_phone(box, "claire")
    paul = await paired_phone(box, "paul")
    await paul.close()
    ids = [await claire.send_mail("paul", f"secret {i}".encode()) for i in range(5)]
    assert box.count("SELECT count(*) FROM mail WHERE acked_at IS NULL") == 5

    await paul.connect()
    mails = await paul.receive_mail(count=5, wait_s=10)
    assert sorted(m.payload for m in mails) == [f"secret {i}".encode() for i in range(5)]
    assert {m.sender_owner for m in mails} == {"claire"}
    async with asyncio.timeout(10):
        notices = [await claire.wait_delivered(mail_id) for mail_id in ids]
    assert {n.device for n in notices} == {paul.state.device_id}
    # Once the sender has its notices, the box forgets the mail.
    await until(lambda: box.count("SELECT count(*) FROM mail") == 0, 10, "the mail to be forgotten")
    await claire.close()
    await paul.close()


async def test_a_full_inbox_leaves_mail_at_the_box_until_there_is_room(
    box: RunningBox, caplog: pytest.LogCaptureFixture
) -> None:
    claire = await paired_phone(box, "claire")
    paul = await paired_phone(box, "paul")
    await paul.close()
    for i in range(5):
        await claire.send_mail("paul", f"dossier {i}".encode())
    small = PhoneClient(paul.state, inbox_limit=3)
    await small.connect(box.url)
    # All five are offered; the last two find the inbox full (the phone logs each).
    await until(lambda: caplog.text.count("inbox full (3)") == 2, 10, "two mails refused")
    first = await small.receive_mail(count=3, wait_s=10)
    assert len(first) == 3
    assert await small.receive_mail(wait_s=0.3) == []  # not offered again in this session
    assert box.count("SELECT count(*) FROM mail WHERE acked_at IS NULL") == 2
    await small.close()
    await small.connect(box.url)  # a later session delivers what was left
    rest = await small.receive_mail(count=2, wait_s=10)
    payloads = sorted(m.payload for m in first + rest)
    assert payloads == [f"dossier {i}".encode() for i in range(5)]
    await small.close()
    await claire.close()


async def test_mail_to_an_online_phone_arrives_at_once_and_unknown_owner_is_refused(
    box: RunningBox,
) -> None:
    claire = await paired_phone(box, "claire")
    paul = await paired_phone(box, "paul")
    await claire.send_mail("paul", b"tout de suite", device=paul.state.device_id)
    [mail] = await paul.receive_mail(count=1, wait_s=10)
    assert mail.payload == b"tout de suite"
    with pytest.raises(BoxError) as refused:
        await claire.send_mail("personne", b"?")
    assert refused.value.code == "unknown-recipient"
    await claire.close()
    await paul.close()


async def test_a_wiped_phone_restores_the_owners_whole_history(
    box: RunningBox, tmp_path: Path
) -> None:
    old = await paired_phone(box, "claire", "vieux téléphone")
    other = await paired_phone(box, "claire", "tablette")
    stranger = await paired_phone(box, "paul")
    texts = [f"dossier {i}" for i in range(450)]  # more than two history pages
    await old.push_many([message(t) for t in texts[:300]])
    await other.push_many([message(t) for t in texts[300:]])
    await stranger.push(message("pas pour Claire"))
    attachment = os.urandom(300_000)
    blob_ack = await old.upload_attachment(attachment)
    await old.push(attachment_record("m-1", blob_ack.ref, len(attachment)))
    await old.close()

    new = await paired_phone(box, "claire", "nouveau téléphone")
    seen: list[int] = []
    items = await new.restore_history(seen.append, attachments_dir=tmp_path / "restored")
    restored = [i.fields.get("text") for i in items if i.fields["kind"] == "message"]
    assert restored == texts
    assert seen[-1] == len(items) == len(texts) + 1
    assert (tmp_path / "restored" / blob_ack.ref.hex()).read_bytes() == attachment
    with pytest.raises(BoxError) as foreign:
        await stranger.download_blob(blob_ack.ref)
    assert foreign.value.code == "not-found"
    for phone in (new, other, stranger):
        await phone.close()


async def test_restored_history_is_proven_in_the_log_and_a_lying_box_is_caught(
    box: RunningBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await paired_phone(box, "claire", "vieux téléphone")
    await old.push_many([message(f"note {i}") for i in range(30)])
    await old.close()
    new = await paired_phone(box, "claire", "nouveau téléphone")
    items = await new.restore_history()  # every item's proof checked against the page's head
    assert len(items) == 30

    real_page = history.history_page

    def shifted_page(*args: Any) -> history.HistoryPage:
        page = real_page(*args)
        # A box that claims a record sits at another place in its log.
        page.items[3]["log_index"] += 1
        return page

    monkeypatch.setattr(history, "history_page", shifted_page)
    with pytest.raises(ProofError, match="inclusion proof"):
        await new.restore_history()

    def unproven_page(*args: Any) -> history.HistoryPage:
        page = real_page(*args)
        return history.HistoryPage(page.items, page.cursor, page.done, None)

    monkeypatch.setattr(history, "history_page", unproven_page)
    with pytest.raises(ProofError, match="without its signed tree head"):
        await new.restore_history()
    await new.close()


async def _upload_with_a_drop(box: RunningBox, tmp_path: Path, size: int) -> None:
    path = tmp_path / "scan.bin"
    with path.open("wb") as handle:
        for _ in range(size // (1 << 20)):
            handle.write(os.urandom(1 << 20))
    sha = hashlib.sha256(path.read_bytes()).digest()
    phone = await paired_phone(box, "claire")

    def drop_halfway(offset: int, total: int) -> None:
        if offset >= total // 2:
            phone.drop_connection()

    with pytest.raises(ConnectionLost):
        await phone.upload_attachment(path, progress=drop_halfway)
    # The box kept what it had made durable; the upload goes on from there.
    await phone.connect()
    starts: list[int] = []

    def note_start(offset: int, total: int) -> None:
        if not starts:
            starts.append(offset)

    ack = await phone.upload_attachment(path, progress=note_start)
    assert ack.ref == sha
    assert 0 < starts[0] < size
    assert box.count("SELECT count(*) FROM blobs") == 1
    assert box.count("SELECT count(*) FROM uploads") == 0
    _verified(box)
    await phone.close()


async def test_attachment_upload_resumes_after_a_dropped_connection(
    box: RunningBox, tmp_path: Path
) -> None:
    await _upload_with_a_drop(box, tmp_path, 20 << 20)


@pytest.mark.slow
async def test_200_mib_attachment_resumes_after_a_dropped_connection(
    box: RunningBox, tmp_path: Path
) -> None:
    await _upload_with_a_drop(box, tmp_path, 200 << 20)


async def test_an_upload_cut_by_a_dropped_link_leaves_no_unretrieved_error(
    box: RunningBox,
) -> None:
    phone = await paired_phone(box, "claire")
    link = phone._require_link()
    send = link.send

    async def drop_before_the_first_chunk(frame: Frame) -> None:
        if frame.type == "blob_chunk":
            # The link is gone before the chunk goes out: every watch gets ConnectionLost.
            link.drop()
            await link.closed.wait()
        await send(frame)

    link.send = drop_before_the_first_chunk  # type: ignore[method-assign]
    reported: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    try:
        with pytest.raises(ConnectionLost):
            await phone.upload_attachment(os.urandom(1000))
        await phone.close()
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_a_corrupted_upload_is_refused_by_hash(box: RunningBox) -> None:
    phone = await paired_phone(box, "claire")
    link = phone._require_link()
    data = os.urandom(100_000)
    reply = await link.request("blob_begin", {"sha256": bytes(32), "size": len(data)})
    assert reply.type == "blob_status" and reply.body["offset"] == 0
    await link.send(Frame("blob_chunk", 0, {"offset": 0, "data": data[:60_000]}))
    await link.send(Frame("blob_chunk", 0, {"offset": 60_000, "data": data[60_000:]}))
    with pytest.raises(BoxError) as mismatch:
        await link.request("blob_end", {"sha256": bytes(32)})
    assert mismatch.value.code == "hash-mismatch"
    assert box.count("SELECT count(*) FROM blobs") == 0
    await phone.close()


async def test_ik_from_an_unknown_key_is_refused_before_any_record(box: RunningBox) -> None:
    known = await paired_phone(box, "claire")
    await known.close()
    stranger = DeviceState.generate("intrus", "claire")
    # It knows the box's keys (they are public) but was never paired.
    stranger.device_id = 99
    stranger.box_noise_public = known.state.box_noise_public
    stranger.box_sign_public = known.state.box_sign_public
    stranger.url = box.url
    phone = PhoneClient(stranger)
    with pytest.raises(HandshakeRefused) as refused:
        await phone.connect()
    assert refused.value.code == CloseCode.UNKNOWN_DEVICE
    assert box.count("SELECT count(*) FROM records") == 0
    await phone.close()


async def test_revoking_closes_the_open_session_and_refuses_reconnects(box: RunningBox) -> None:
    phone = await paired_phone(box, "claire")
    bystander = await paired_phone(box, "paul")
    device_id = phone.state.device_id
    assert device_id is not None
    assert box.service.online_devices() == {device_id, bystander.state.device_id}
    box.archive.write(writes.revoke_device(device_id, "perdu"))
    box.service.revoke(device_id)
    link = phone._require_link()
    await asyncio.wait_for(link.closed.wait(), 1.0)
    assert link.ws.close_code == CloseCode.REFUSED
    with pytest.raises(HandshakeRefused) as refused:
        await phone.connect()
    assert refused.value.code == CloseCode.REFUSED
    await bystander.push(message("toujours là"))  # others are unaffected
    assert box.service.online_devices() == {bystander.state.device_id}
    await phone.close()
    await bystander.close()


async def test_unknown_frame_type_gets_an_error_and_the_session_continues(
    box: RunningBox,
) -> None:
    phone = await paired_phone(box, "claire")
    with pytest.raises(BoxError) as unknown:
        await phone._require_link().request("teleport", {"where": "ailleurs"})
    assert unknown.value.code == "unknown-type"
    with pytest.raises(BoxError) as malformed:
        await phone._require_link().request("push", {"record": "not bytes"})
    assert malformed.value.code == "malformed"
    ack = await phone.push(message("toujours connecté"))
    assert ack.log_index >= 0
    await phone.close()


async def test_unpaired_session_cannot_touch_the_archive(box: RunningBox) -> None:
    box.gate.refusal = Refusal.NO_WINDOW
    phone = PhoneClient(DeviceState.generate("Pixel", "claire"))
    with pytest.raises(BoxError) as refused:
        await phone.pair_button(box.url, box.keys.fingerprint)
    assert refused.value.code == "pairing-refused"
    assert refused.value.reason == "no-window"
    assert box.count("SELECT count(*) FROM devices") == 0
    assert box.gate.unknown_contacts == [phone.state.noise_public]
    await phone.close()


async def test_button_pairing_codes_match_and_wrong_fingerprint_is_caught(
    box: RunningBox,
) -> None:
    codes: list[str] = []
    phone = PhoneClient(DeviceState.generate("Pixel", "claire"))
    paired = await phone.pair_button(box.url, box.keys.fingerprint, on_code=codes.append)
    assert codes == [paired.comparison_code] == [box.gate.attempts[0].comparison_code]
    assert box.gate.attempts[0].owner == "claire"
    await phone.push(message("dans la même session"))
    await phone.close()

    impostor_check = PhoneClient(DeviceState.generate("Pixel 2", "claire"))
    with pytest.raises(FingerprintMismatch):
        await impostor_check.pair_button(box.url, "0000-0000-0000-0000-0000-0000-0000-0000")
    assert box.count("SELECT count(*) FROM devices") == 1
    await impostor_check.close()


async def test_qr_pairing_uses_the_one_time_secret_once(box: RunningBox) -> None:
    secret = os.urandom(32)
    offer = make_offer("127.0.0.1", 8080, box.keys.fingerprint, secret).uri
    box.gate.qr = secret
    phone = PhoneClient(DeviceState.generate("Pixel", "claire"))
    await phone.pair_qr(box.url, offer)
    assert box.gate.attempts[0].method == "qr"
    await phone.close()

    again = PhoneClient(DeviceState.generate("Pixel 2", "claire"))
    with pytest.raises(HandshakeRefused) as used:
        await again.pair_qr(box.url, offer)
    assert used.value.code == CloseCode.REFUSED

    box.gate.qr = os.urandom(32)  # a new offer; the phone holds the old one
    with pytest.raises(HandshakeRefused) as wrong:
        await again.pair_qr(box.url, offer)
    assert wrong.value.code == CloseCode.PROTOCOL
    assert box.gate.qr is None  # the failed attempt burnt it
    assert box.count("SELECT count(*) FROM devices") == 1
    await again.close()


async def test_connection_cap_per_device(tmp_path: Path) -> None:
    box = await start_box(tmp_path / "box", limits=Limits(max_connections_per_device=1))
    try:
        phone = await paired_phone(box, "claire")
        twin = PhoneClient(phone.state)
        with pytest.raises(HandshakeRefused) as refused:
            await twin.connect()
        assert refused.value.code == CloseCode.TOO_MANY
        await twin.close()
        await phone.close()
    finally:
        await box.stop()


async def test_the_device_cap_holds_when_its_connections_race(tmp_path: Path) -> None:
    box = await start_box(tmp_path / "box", limits=Limits(max_connections_per_device=2))
    try:
        phone = await paired_phone(box, "claire")
        await phone.close()
        twins = [PhoneClient(phone.state) for _ in range(6)]
        outcomes = await asyncio.gather(*(t.connect() for t in twins), return_exceptions=True)
        accepted = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, HandshakeRefused)]
        assert len(accepted) == 2, outcomes
        assert len(refused) == 4 and {r.code for r in refused} == {CloseCode.TOO_MANY}
        for twin in twins:
            await twin.close()
        # Closed connections give their slots back.
        again = PhoneClient(phone.state)
        await again.connect()
        await again.close()
    finally:
        await box.stop()


async def test_idle_and_handshake_timeouts_close_the_connection(tmp_path: Path) -> None:
    limits = Limits(idle_timeout_s=0.3, handshake_timeout_s=0.3)
    box = await start_box(tmp_path / "box", limits=limits)
    try:
        quiet = await paired_phone(box, "claire", keepalive=False)
        link = quiet._require_link()
        await asyncio.wait_for(link.closed.wait(), 10)
        assert link.ws.close_code == CloseCode.TIMEOUT
        await quiet.close()
        # A phone that pings stays connected through several idle periods.
        phone = await paired_phone(box, "paul")
        pinging = phone._require_link()
        with pytest.raises(TimeoutError):  # over three idle periods, the link is never closed
            await asyncio.wait_for(pinging.closed.wait(), 1.0)
        await phone.push(message("toujours là"))
        async with aiohttp.ClientSession() as http, http.ws_connect(box.url) as ws:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == CloseCode.TIMEOUT
        await phone.close()
    finally:
        await box.stop()


@pytest.mark.parametrize(
    "first",
    [b"", b"\x09" + bytes(32), b"\x02" + bytes(10), b"\x01" + b"\x00" * 31, b"\x02" + bytes(96)],
)
async def test_garbage_handshakes_are_closed_as_protocol_errors(
    box: RunningBox, first: bytes
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(box.url) as ws:
        await ws.send_bytes(first)
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == CloseCode.PROTOCOL
    assert box.count("SELECT count(*) FROM devices") == 0
