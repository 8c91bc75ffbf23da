"""Backups and restore through the web UI: the backups page and its job, then the
first-run wizard bringing a backup back onto a fresh box from the 24 words."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import audit_events
from strongroom.archive.verify import verify_open_archive
from strongroom.box import Box
from strongroom.identity import entropy_to_words, new_entropy
from strongroom.office.backup import list_sets
from strongroom.unlock import BoxPhase, read_unlock_choice
from strongroom.web.jobs import Job, JobState
from strongroom.web.state import STATE
from strongroom.web.users import create_user
from web_helpers import (
    ADMIN_PASSWORD,
    ARCHIVIST_PASSWORD,
    CHEAP_HASHER,
    CHEAP_LIMITS,
    Client,
    attach_file,
    csrf_of,
    login,
    new_box,
    phase_of,
    web_app,
)

SECRET_TEXT = "Compte rendu de l'audience du tribunal, confidentiel"
BOX_PASSPHRASE = "Nouvelle phrase du boîtier 2025"
LAST_BACKUP = re.compile(r'Last backup</span><span class="value small">([^<]*)</span>')


@dataclass
class Source:
    box: Box
    words: str
    usb: Path
    client: Client


@pytest.fixture
async def source(tmp_path: Path, aiohttp_client) -> AsyncIterator[Source]:  # type: ignore[no-untyped-def]
    """A box in service with records and an attachment, and an empty USB drive."""
    entropy = new_entropy()
    box = new_box(tmp_path / "old-box", ready=False)
    box.initialise(entropy, ADMIN_PASSWORD, **CHEAP_LIMITS)
    create_user(box, "admin", ADMIN_PASSWORD, "admin", hasher=CHEAP_HASHER)
    create_user(box, "archiviste", ARCHIVIST_PASSWORD, "archivist", hasher=CHEAP_HASHER)
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand")
    record = message(key, SECRET_TEXT)
    archive.write(writes.store_record(record, device_id, "maitre.durand"))
    attach_file(box, device_id, key, record, "conclusions.pdf", b"%PDF-1.4 " + bytes(range(256)))
    usb = tmp_path / "usb"
    usb.mkdir()
    client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    yield Source(box, " ".join(entropy_to_words(entropy, "english")), usb, client)
    await box.stop()


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[Box]:
    """A new box, never set up; its data dir already holds what an appliance puts there."""
    box = new_box(tmp_path / "new-box", ready=False)
    tls = box.config.data_dir / "tls"
    tls.mkdir(parents=True)
    (tls / "cert.pem").write_text("not the archive")
    yield box
    await box.stop()


def files_under(root: Path) -> dict[str, int]:
    """Every entry under root with its size (-1 for a directory)."""
    return {
        str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1 for p in root.rglob("*")
    }


async def post(client: Client, path: str, token: str | None, **fields: str) -> object:
    data = dict(fields) if token is None else {**fields, "csrf_token": token}
    return await client.post(path, data=data, allow_redirects=False)


async def back_up(source: Source) -> Job:
    """Through the page: choose the USB drive, press "Back up now", wait for the job."""
    client = source.client
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/backups")).text())
    saved = await post(client, "/backups/target", token, target=str(source.usb))
    assert saved.headers["Location"] == "/backups"  # type: ignore[attr-defined]
    started = await post(client, "/backups", token)
    location = started.headers["Location"]  # type: ignore[attr-defined]
    assert location.startswith("/jobs/")
    return await client.app[STATE].jobs.wait(location.removeprefix("/jobs/"))


async def start_wizard(client: Client, language: str = "en") -> str:
    page = await client.get("/setup")
    token = csrf_of(await page.text())
    await post(client, "/setup/language", token, language=language)
    return token


async def restore_through_wizard(
    client: Client, words: str, backup_dir: Path, language: str = "en"
) -> Job:
    token = await start_wizard(client, language)
    form = await post(client, "/setup/restore", token, words=words, backup_dir=str(backup_dir))
    assert form.headers["Location"] == "/setup/restore/passphrase"  # type: ignore[attr-defined]
    page = await (await client.get("/setup/restore/passphrase")).text()
    assert str(backup_dir) in page
    started = await post(
        client,
        "/setup/restore/passphrase",
        token,
        password=BOX_PASSPHRASE,
        password_again=BOX_PASSPHRASE,
    )
    assert started.headers["Location"] == "/setup/restored"  # type: ignore[attr-defined]
    status = await (await client.get("/setup/restored/status")).json()
    return await client.app[STATE].jobs.wait(status["id"])


async def test_back_up_from_the_page_then_restore_a_fresh_box_in_the_wizard(
    source: Source, fresh: Box, aiohttp_client: AiohttpClient
) -> None:
    client = source.client
    job = await back_up(source)
    assert job.state is JobState.DONE, job.error
    assert job.percent == 100
    job_page = await (await client.get(f"/jobs/{job.id}")).text()
    assert "The backup set is written." in job_page

    (set_dir,) = list_sets(source.usb)
    page = await (await client.get("/backups")).text()
    assert set_dir.name in page and "succeeded" in page
    conn = source.box.require_archive().reader()
    (done,) = audit_events(conn, action="backup.done")
    conn.close()
    details = json.loads(done.details)
    assert details["set"] == set_dir.name and details["blobs"] == 1
    backed_up = source.box.require_archive().log
    backed_up_root = backed_up.root(details["tree_size"])
    dashboard = await (await client.get("/dashboard")).text()
    last = LAST_BACKUP.search(dashboard)
    assert last is not None and last.group(1) not in ("", "never")
    fingerprint = source.box.fingerprint

    # A new box, same words, same drive: the wizard brings everything back.
    new_client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": "en"})
    restored = await restore_through_wizard(new_client, source.words, source.usb)
    assert restored.state is JobState.DONE, restored.error
    outcome = await (await new_client.get("/setup/restored")).text()
    assert "The archive is restored." in outcome and 'href="/login"' in outcome
    assert fresh.phase is BoxPhase.READY and fresh.fingerprint == fingerprint

    # As in the create path, the restored box can be told to unlock itself at boot.
    assert 'name="unlock_mode" value="unattended"' in outcome
    assert "Box passphrase you have just chosen" in outcome  # not the admin's: none is chosen
    token = csrf_of(outcome)
    usb_key = fresh.config.data_dir.parent / "usb-key"
    usb_key.mkdir()
    wrong = await post(
        new_client,
        "/setup/restored/unlock",
        token,
        unlock_mode="unattended",
        keyfile=str(usb_key / "unlock.key"),
        unlock_passphrase="not the passphrase",
    )
    assert wrong.status == 400  # type: ignore[attr-defined]
    assert "Wrong passphrase." in await wrong.text()  # type: ignore[attr-defined]
    chosen = await post(
        new_client,
        "/setup/restored/unlock",
        token,
        unlock_mode="unattended",
        keyfile=str(usb_key / "unlock.key"),
        unlock_passphrase=BOX_PASSPHRASE,
    )
    assert chosen.headers["Location"] == "/login"  # type: ignore[attr-defined]
    assert read_unlock_choice(fresh.config).mode == "unattended"
    assert (usb_key / "unlock.key").exists()
    assert (fresh.config.data_dir / "tls" / "cert.pem").read_text() == "not the archive"
    assert not list(fresh.config.data_dir.glob("*restore*"))  # no staging dir left behind
    archive = fresh.require_archive()
    report = verify_open_archive(archive)
    assert report.ok, report.problems
    # Same log up to the backed-up head, continued by the restore's own audit event.
    assert archive.log.root(details["tree_size"]) == backed_up_root
    assert archive.log.size > details["tree_size"]

    # The accounts came back with the archive: log in as before, find the records.
    await login(new_client, "archiviste", ARCHIVIST_PASSWORD)
    hits = await (await new_client.get("/archive", params={"q": "audience tribunal"})).text()
    assert hits.count('class="hit"') == 1
    conn = archive.reader()
    assert [e.action for e in audit_events(conn, action="setup.restore")] == ["setup.restore"]
    conn.close()
    # The new passphrase seals the identity on this box, and the key file opens it too.
    rebooted = Box(fresh.config)
    assert rebooted.phase is BoxPhase.LOCKED
    rebooted.unlock(BOX_PASSPHRASE)
    assert rebooted.fingerprint == fingerprint
    await rebooted.stop()
    at_boot = Box(fresh.config)
    at_boot.unlock_unattended()
    assert at_boot.fingerprint == fingerprint
    await at_boot.stop()


async def test_backups_need_an_admin_and_a_csrf_token(source: Source) -> None:
    client = source.client
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    assert (await client.get("/backups")).status == 403
    token = csrf_of(await (await client.get("/archive")).text())
    assert (await post(client, "/backups", token)).status == 403  # type: ignore[attr-defined]
    assert (await post(client, "/backups/target", token, target=str(source.usb))).status == 403  # type: ignore[attr-defined]

    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/backups")).text())
    await post(client, "/backups/target", token, target=str(source.usb))
    assert (await post(client, "/backups", None)).status == 403  # type: ignore[attr-defined]
    assert (await post(client, "/backups", "forged-token")).status == 403  # type: ignore[attr-defined]
    assert client.app[STATE].jobs.for_owner() == []
    assert list_sets(source.usb) == []


async def test_a_target_that_is_not_mounted_is_refused(source: Source, tmp_path: Path) -> None:
    client = source.client
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/backups")).text())
    for target, message_text in (
        (str(tmp_path / "unplugged"), "Nothing is mounted there"),
        ("usb", "Give an absolute path"),
        (f"{source.usb}/../usb", "Give an absolute path"),
    ):
        response = await client.post(
            "/backups/target", data={"target": target, "csrf_token": token}
        )
        assert message_text in await response.text(), target
    page = await (await client.get("/backups")).text()
    assert "No backup directory is chosen yet." in page and 'id="start-backup"' not in page

    # A drive chosen, then unplugged: the page says so and offers no "Back up now".
    await post(client, "/backups/target", token, target=str(source.usb))
    source.usb.rmdir()
    page = await (await client.get("/backups")).text()
    assert "Nothing is mounted there" in page and 'id="start-backup"' not in page
    forced = await client.post("/backups", data={"csrf_token": token})
    assert "Nothing is mounted there" in await forced.text()
    assert client.app[STATE].jobs.for_owner() == []


async def test_wrong_words_leave_the_new_box_untouched_and_the_wizard_can_be_retried(
    source: Source, fresh: Box, aiohttp_client: AiohttpClient
) -> None:
    assert (await back_up(source)).state is JobState.DONE
    before = files_under(fresh.config.data_dir)
    client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": "en"})
    other_words = " ".join(entropy_to_words(new_entropy(), "english"))
    # Refused on the form already: the words must open the backup's manifest to show
    # what it holds before the admin confirms.
    token = await start_wizard(client)
    refused = await post(
        client, "/setup/restore", token, words=other_words, backup_dir=str(source.usb)
    )
    assert refused.status == 400  # type: ignore[attr-defined]
    page = await refused.text()  # type: ignore[attr-defined]
    assert "These 24 words do not open this backup" in page
    assert fresh.phase is BoxPhase.UNINITIALISED
    assert files_under(fresh.config.data_dir) == before

    retried = await restore_through_wizard(client, source.words, source.usb)
    assert retried.state is JobState.DONE, retried.error
    assert phase_of(fresh) is BoxPhase.READY and fresh.fingerprint == source.box.fingerprint


async def test_a_directory_that_is_not_a_backup_is_refused_on_the_form(
    source: Source, fresh: Box, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    before = files_under(fresh.config.data_dir)
    client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": "en"})
    token = await start_wizard(client)
    holiday_photos = tmp_path / "photos"
    holiday_photos.mkdir()
    (holiday_photos / "plage.jpg").write_bytes(b"\xff\xd8 not a backup")
    for backup_dir, expected in (
        (holiday_photos, "This directory holds no Strongroom backup."),
        (tmp_path / "unplugged", "Nothing is mounted there"),
    ):
        response = await post(
            client, "/setup/restore", token, words=source.words, backup_dir=str(backup_dir)
        )
        assert response.status == 400  # type: ignore[attr-defined]
        html = await response.text()  # type: ignore[attr-defined]
        assert expected in html and str(backup_dir) in html
    # The words are checked first, with their position, as without a backup.
    words = source.words.split()
    words[3] = "zzzzbogus"
    response = await post(
        client, "/setup/restore", token, words=" ".join(words), backup_dir=str(source.usb)
    )
    assert "Word 4" in await response.text()  # type: ignore[attr-defined]
    assert (await client.get("/setup/restore/passphrase", allow_redirects=False)).status == 303
    assert fresh.phase is BoxPhase.UNINITIALISED
    assert files_under(fresh.config.data_dir) == before


async def test_a_truncated_backup_fails_cleanly_in_french(
    source: Source, fresh: Box, aiohttp_client: AiohttpClient
) -> None:
    assert (await back_up(source)).state is JobState.DONE
    (set_dir,) = list_sets(source.usb)
    database = set_dir / "archive.db.enc"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    before = files_under(fresh.config.data_dir)
    client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": "fr"})
    failed = await restore_through_wizard(client, source.words, source.usb, "fr")
    assert failed.state is JobState.FAILED
    page = await (await client.get("/setup/restored")).text()
    assert "La sauvegarde est endommagée ou incomplète" in page
    assert fresh.phase is BoxPhase.UNINITIALISED
    assert files_under(fresh.config.data_dir) == before


async def test_a_failed_backup_is_reported_and_not_counted_as_the_last_backup(
    source: Source,
) -> None:
    archive = source.box.require_archive()
    (file_name,) = [row[0] for row in archive.conn.execute("SELECT file_name FROM blobs")]
    archive.blobs.path_for(file_name).unlink()  # a damaged card lost an attachment file
    job = await back_up(source)
    assert job.state is JobState.FAILED
    client = source.client
    page = await (await client.get("/backups")).text()
    assert "FAILED" in page and "is missing from the archive" in page
    assert list_sets(source.usb) == [] and not list(source.usb.iterdir())
    conn = archive.reader()
    (failed,) = audit_events(conn, action="backup.failed")
    conn.close()
    assert file_name in json.loads(failed.details)["reason"]
    dashboard = await (await client.get("/dashboard")).text()
    last = LAST_BACKUP.search(dashboard)
    assert last is not None and last.group(1) == "never"
    french = await (await client.get("/backups", headers={"Accept-Language": "fr"})).text()
    assert "ÉCHEC" in french


async def test_the_wizard_shows_the_backups_signed_head_and_warns_before_restoring(
    source: Source, fresh: Box, aiohttp_client: AiohttpClient
) -> None:
    """Before the admin confirms: the set, its log size and head time, and that phones used
    after the backup must pair again (protocol.md §6.3), in English and in French."""
    assert (await back_up(source)).state is JobState.DONE
    # The head the backup's manifest carries: the log just before the backup's own audit
    # event, the first leaf written after the snapshot.
    [backup_event] = audit_events(source.box.require_archive().conn, action="backup")
    backed_size = backup_event.log_index
    [set_dir] = list_sets(source.usb)
    for language, warning in (
        ("en", "Phones will have to be paired again if they were used after this backup."),
        ("fr", "Les téléphones utilisés après cette sauvegarde devront être appairés de nouveau."),
    ):
        client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": language})
        token = await start_wizard(client, language)
        form = await post(
            client, "/setup/restore", token, words=source.words, backup_dir=str(source.usb)
        )
        assert form.headers["Location"] == "/setup/restore/passphrase"  # type: ignore[attr-defined]
        page = await (await client.get("/setup/restore/passphrase")).text()
        assert warning in page
        assert set_dir.name in page
        assert f'data-tree-size="{backed_size}"' in page
        assert 'id="restore-warning"' in page and fresh.phase is BoxPhase.UNINITIALISED
