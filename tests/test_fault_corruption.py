"""Corruption at rest is found by the periodic integrity check, reported, and never served as good.

One populated dev box (a phone's 200 messages and an attachment) is built
once; each test damages a copy (a flipped byte in a records page, in a blob,
in the WAL, or a log leaf rewritten with the key), starts the box on it, runs
the integrity check and looks at what an admin and a phone would see: the
panel, the audit trail, the record page, the download.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fault_helpers import (
    BoxProcess,
    flip_byte,
    message,
    open_archive,
    pair_phone,
    web_login,
)
from strongroom.client import DeviceState, PhoneClient
from strongroom.client.link import BoxError
from strongroom.config import load_config
from strongroom.integrity import AUDIT_FAILED, IntegrityStatus
from strongroom.runtime import BoxRuntime
from strongroom_panel.state import BoxState

PAGE = 4096
MESSAGES = 200


@dataclass(frozen=True)
class Template:
    data_dir: Path
    phone: DeviceState
    blob_sha: bytes
    blob: bytes


async def _populate(data_dir: Path) -> Template:
    box = await BoxProcess(data_dir).start()
    phone = await pair_phone(box, "maitre.durand")
    try:
        await phone.push_many(
            [message(i, f"dossier {i} secret médical " + "x" * 400) for i in range(MESSAGES)]
        )
        blob = random.Random(7).randbytes(300_000)
        ack = await phone.upload_attachment(blob)
        note = message(MESSAGES, "scan attached")
        await phone.push(note)
        fields = dict(message(MESSAGES + 1, ""))
        del fields["text"]
        fields.update(
            kind="attachment",
            ref=note["id"],
            blob={
                "sha256": ack.ref,
                "size": len(blob),
                "name": "scan.pdf",
                "mime": "application/pdf",
            },
        )
        await phone.push(fields)
    finally:
        await phone.close()
        await box.stop()
    return Template(data_dir, phone.state, ack.ref, blob)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return asyncio.run(_populate(tmp_path_factory.mktemp("template") / "box"))


@pytest.fixture
def data_dir(template: Template, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "box"
    shutil.copytree(template.data_dir, copy, ignore=shutil.ignore_patterns("control.sock"))
    yield copy


@asynccontextmanager
async def live_box(data_dir: Path, *, interval_s: float | None = None) -> AsyncIterator[BoxRuntime]:
    """The box in this process on an ephemeral port (so the test can look at its panel)."""
    runtime = BoxRuntime(load_config(data_dir).with_overrides(port=0))
    if interval_s is not None:
        runtime.integrity_interval_s = interval_s
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


def audit_actions(data_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    archive = open_archive(data_dir)
    try:
        rows = archive.conn.execute("SELECT action, details FROM audit_events ORDER BY id")
        return [(str(a), json.loads(d) if d else {}) for a, d in rows]
    finally:
        archive.close()


def assert_reported(runtime: BoxRuntime, status: IntegrityStatus | None, place: str) -> None:
    assert status is not None and not status.ok
    assert any(place in problem for problem in status.problems), status.problems
    assert runtime.integrity_ok is False
    assert runtime.integrity is status
    assert getattr(runtime.box, "integrity", None) is status  # what the dashboard reads
    assert runtime.panel is not None and runtime.panel.state is BoxState.INTEGRITY_FAILURE


def record_row(data_dir: Path, offset: int = 10) -> tuple[int, int]:
    """(row id, log index) of one stored message."""
    archive = open_archive(data_dir)
    try:
        row = archive.conn.execute(
            "SELECT id, log_index FROM records WHERE kind = 'message' ORDER BY id LIMIT 1 OFFSET ?",
            (offset,),
        ).fetchone()
        return int(row[0]), int(row[1])
    finally:
        archive.close()


async def test_an_intact_archive_passes_and_the_check_is_audited(data_dir: Path) -> None:
    async with live_box(data_dir) as runtime:
        status = await runtime.check_integrity_now()
        assert status is not None
        assert status.ok, status.problems
        assert runtime.integrity_ok and runtime.panel is not None
        assert runtime.panel.state is not BoxState.INTEGRITY_FAILURE
    assert ("integrity.ok", status.audit_details()) in [
        (a, d) for a, d in audit_actions(data_dir) if a == "integrity.ok"
    ]


async def test_a_flipped_byte_in_a_records_page_is_reported_and_the_record_not_served(
    data_dir: Path,
) -> None:
    row_id, _ = record_row(data_dir)
    archive = open_archive(data_dir)
    root_page = int(
        archive.conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'records'"
        ).fetchone()[0]
    )
    archive.close()
    flip_byte(data_dir / "archive.db", (root_page - 1) * PAGE + PAGE // 2)
    async with live_box(data_dir) as runtime:
        status = await runtime.check_integrity_now()
        assert_reported(runtime, status, "database file")
        session = await web_login(runtime.url, data_dir)
        async with session:
            response = await session.get(f"{runtime.url}/archive/records/{row_id}")
            assert response.status >= 500, "a record on a damaged page was served as good"


async def test_a_flipped_byte_in_a_blob_is_found_by_the_periodic_check_and_never_served(
    data_dir: Path, template: Template
) -> None:
    blob_files = [
        p for p in (data_dir / "blobs").rglob("*") if p.is_file() and "partial" not in p.parts
    ]
    assert len(blob_files) == 1
    flip_byte(blob_files[0], blob_files[0].stat().st_size // 2)
    async with live_box(data_dir, interval_s=0.2) as runtime:
        for _ in range(100):  # the periodic task, not a test trigger, finds it
            if runtime.integrity is not None:
                break
            await asyncio.sleep(0.1)
        assert_reported(runtime, runtime.integrity, f"blob {template.blob_sha.hex()[:16]}")
        phone = PhoneClient(template.phone, keepalive=False)
        try:
            await phone.connect(runtime.url.replace("http", "ws", 1) + "/peer")
            with pytest.raises(BoxError):
                await phone.download_blob(template.blob_sha)
        finally:
            await phone.close()
        session = await web_login(runtime.url, data_dir)
        async with session:
            response = await session.get(
                f"{runtime.url}/archive/attachments/{template.blob_sha.hex()}"
            )
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    failed = [d for a, d in audit_actions(data_dir) if a == AUDIT_FAILED]
    assert failed and failed[-1]["ok"] is False and failed[-1]["problems"] >= 1


async def test_a_flipped_byte_in_the_wal_is_reported_not_silently_dropped(
    data_dir: Path, template: Template
) -> None:
    # Records acked by the box while it ran, still in the WAL when the power went.
    box = await BoxProcess(data_dir).start()
    phone = PhoneClient(template.phone, keepalive=False)
    try:
        await phone.connect(box.peer_url)
        acks = await phone.push_many(
            [message(1000 + i, f"après coupure {i} " + "y" * 400) for i in range(120)]
        )
        await box.kill()
    finally:
        await phone.close()
        await box.kill()  # idempotent; never leave a box process behind a failed connect
    wal = data_dir / "archive.db-wal"
    assert wal.stat().st_size > 32 * PAGE, "nothing in the WAL: the test proves nothing"
    flip_byte(wal, wal.stat().st_size // 3)
    async with live_box(data_dir) as runtime:
        status = await runtime.check_integrity_now()
        stored = {
            bytes(r)
            for (r,) in runtime.box.require_archive().conn.execute("SELECT record_id FROM records")
        }
        lost = [ack for ack in acks if ack.ref not in stored]
        # Either nothing acked was lost, or the loss is reported; never a silent shorter log.
        if lost:
            assert status is not None and not status.ok, (
                f"{len(lost)} acked records vanished with the damaged WAL and the integrity"
                " check still passes"
            )
            assert runtime.panel is not None and runtime.panel.state is BoxState.INTEGRITY_FAILURE
        else:
            assert_reported(runtime, status, "database file")


async def test_a_log_leaf_rewritten_with_the_key_is_reported_and_the_record_shown_unverified(
    data_dir: Path,
) -> None:
    row_id, index = record_row(data_dir)
    archive = open_archive(data_dir)
    try:
        (data,) = archive.conn.execute(
            "SELECT leaf_data FROM log_leaves WHERE idx = ?", (index,)
        ).fetchone()
        forged = bytearray(data)
        forged[-1] ^= 0x01
        archive.conn.execute(
            "UPDATE log_leaves SET leaf_data = ? WHERE idx = ?", (bytes(forged), index)
        )
        # And a message row rewritten behind its signature.
        archive.conn.execute(
            "UPDATE messages SET text = 'texte falsifié' WHERE record_id = ?", (row_id + 1,)
        )
    finally:
        archive.close()
    async with live_box(data_dir) as runtime:
        status = await runtime.check_integrity_now()
        assert_reported(runtime, status, f"log leaf {index}")
        assert status is not None
        assert any(
            f"record {row_id + 1} " in p and "differs from the signed record" in p
            for p in status.problems
        ), status.problems
        session = await web_login(runtime.url, data_dir)
        async with session:
            page = await (await session.get(f"{runtime.url}/archive/records/{row_id}")).text()
            assert 'class="badge failed" id="proof-badge"' in page
            page = await (await session.get(f"{runtime.url}/archive/records/{row_id + 1}")).text()
            assert "texte falsifié" not in page, "the record page shows the forged text"


async def test_a_box_whose_log_pages_are_damaged_starts_showing_integrity_failure(
    data_dir: Path,
) -> None:
    archive = open_archive(data_dir)
    root_page = int(
        archive.conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'log_nodes'"
        ).fetchone()[0]
    )
    archive.close()
    flip_byte(data_dir / "archive.db", (root_page - 1) * PAGE + PAGE // 2)
    async with live_box(data_dir) as runtime:
        # The log is read at unlock: the box cannot open, and must not merely say "locked".
        assert runtime.box.archive is None
        assert runtime.integrity is not None and not runtime.integrity.ok
        assert "database file" in runtime.integrity.problems[0]
        assert runtime.panel is not None and runtime.panel.state is BoxState.INTEGRITY_FAILURE
