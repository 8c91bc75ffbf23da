"""After a restore from an older backup, the dashboard names the phones that must pair again.

Real boxes on loopback, real Noise sessions, real SQLCipher files and a real backup
set: a phone that pushed after the backup saw a longer log, refuses the restored box
(protocol.md §6.3), and the box, told the size it saw (`known`), lists it on the
dashboard; a phone that did not talk to the old box after the backup is not listed.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from e2e_helpers import Clock, WebAdmin, message, pair_by_qr, start_box, until
from strongroom.box import Box
from strongroom.client import DeviceState, PhoneClient
from strongroom.client.heads import ForkedLog
from strongroom.config import BoxConfig
from strongroom.identity import Keystore, derive_box_keys, new_entropy
from strongroom.office import backup, restore
from strongroom.web.users import create_user
from web_helpers import ADMIN_PASSWORD, CHEAP_HASHER, CHEAP_LIMITS


async def test_the_dashboard_names_the_phones_that_saw_a_longer_log(tmp_path: Path) -> None:
    entropy = new_entropy()
    old = BoxConfig(data_dir=tmp_path / "old-box", port=0)
    setup = Box(old)
    setup.initialise(entropy, ADMIN_PASSWORD, **CHEAP_LIMITS)
    create_user(setup, "admin", ADMIN_PASSWORD, "admin", hasher=CHEAP_HASHER)
    await setup.stop()

    running = await start_box(old, clock=Clock())
    states = {"pixel": tmp_path / "pixel.json", "iphone": tmp_path / "iphone.json"}
    pixel, _ = await pair_by_qr(running, "Pixel de Maître Durand", "maitre.durand")
    iphone, _ = await pair_by_qr(running, "iPhone du Dr Martin", "dr.martin")
    pixel.state_path, iphone.state_path = states["pixel"], states["iphone"]
    await pixel.push(message("avant la sauvegarde", conv="c", sender="Me", n=1))
    await iphone.push(message("bonjour", conv="d", sender="Dr", n=1))
    await iphone.close()
    usb = tmp_path / "usb"
    usb.mkdir()
    archive = running.box.require_archive()
    made = await asyncio.to_thread(backup.run, archive, usb, derive_box_keys(entropy).backup_key)
    # Only the Pixel goes on with the old box: it sees a log longer than the backup's.
    for n in range(2, 12):
        await pixel.push(message(f"après la sauvegarde {n}", conv="c", sender="Me", n=n))
    await pixel.close()
    await running.stop()
    pixel_saw = DeviceState.load(states["pixel"]).last_head
    assert pixel_saw is not None and int(pixel_saw["tree_size"]) > made.tree_size + 10

    # The old box is lost; a new one is rebuilt from the words and the backup.
    new = BoxConfig(data_dir=tmp_path / "new-box", port=0)
    await asyncio.to_thread(restore.run, usb, entropy, new.data_dir)
    Keystore.create(new.keystore_path, entropy, ADMIN_PASSWORD, **CHEAP_LIMITS)
    restored = await start_box(new, clock=Clock())
    admin = WebAdmin(restored.url)
    try:
        refused = PhoneClient(DeviceState.load(states["pixel"]), keepalive=False)
        await refused.connect(restored.peer_url)
        with pytest.raises(ForkedLog):
            await refused.push(message("perdu ?", conv="c", sender="Me", n=20))
        await refused.close()
        fine = PhoneClient(DeviceState.load(states["iphone"]), keepalive=False)
        await fine.connect(restored.peer_url)
        await fine.push(message("toujours là", conv="d", sender="Dr", n=2))
        await fine.close()
        await until(
            lambda: "device.log_ahead" in restored.audit_actions("device."),
            what="the box noting the phone that saw a longer log",
        )

        await admin.login()
        status, page = await admin.get("/dashboard")
        assert status == 200
        notice = re.search(r'<section class="card" id="restore-notice".*?</section>', page, re.S)
        assert notice is not None, "no restore notice on the dashboard"
        assert f'data-tree-size="{made.tree_size}"' in notice.group(0)
        assert made.set_dir.name in notice.group(0)
        ahead = re.search(r'<ul id="restore-ahead">(.*?)</ul>', notice.group(0), re.S)
        assert ahead is not None
        assert "Pixel de Maître Durand" in ahead.group(1)
        assert f"it saw a log of size {pixel_saw['tree_size']}" in ahead.group(1)
        assert "iPhone du Dr Martin" not in notice.group(0)

        status, _, location = await admin.post_form(
            "/restore-notice/dismiss", {}, form_page="/dashboard"
        )
        assert (status, location) == (303, "/dashboard")
        _, page = await admin.get("/dashboard")
        assert 'id="restore-notice"' not in page
    finally:
        await admin.close()
        await restored.stop()
