"""An archive a newer release has migrated, unlocked by an older one (the software
was rolled back with `install.sh --rollback --force`): the unlock page says what to
do, the box stays locked and keeps serving, nothing is written."""

from __future__ import annotations

import hashlib
from pathlib import Path

from e2e_helpers import Clock, WebAdmin, prepare_data_dir, start_box
from strongroom.archive.db import connect, schema_version
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.box import Box
from strongroom.unlock import BoxPhase
from web_helpers import ADMIN_PASSWORD


async def test_unlocking_an_archive_from_a_newer_release_says_so_and_stays_locked(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    key = Box(config).keys_for(ADMIN_PASSWORD).archive_key
    db = config.data_dir / "archive.db"
    conn = connect(db, key)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # what the newer one left
    conn.close()
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    box = await start_box(config, clock=Clock(), unlock=False)
    admin = WebAdmin(box.url)
    try:
        status, page, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 409, page[-2000:]
        assert "migrated by a newer release of Strongroom" in page
        assert "restore the backup taken before the upgrade" in page
        assert box.phase() is BoxPhase.LOCKED
        # Still serving: the unlock page answers, and the same error comes again.
        status, page, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 409 and "migrated by a newer release" in page
    finally:
        await admin.close()
        await box.stop()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    conn = connect(db, key)
    assert schema_version(conn) == SCHEMA_VERSION + 1
    conn.close()
