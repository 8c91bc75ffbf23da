"""A real box on loopback for peer-protocol tests: SQLCipher archive, group committer,
PeerService mounted at /peer on 127.0.0.1 (random port), and a pairing gate that
accepts (or refuses) on demand."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive
from strongroom.client import DeviceState, PhoneClient
from strongroom.config import Limits
from strongroom.identity import BoxKeys, derive_box_keys
from strongroom.pairing.gate import PairingAttempt, PairingOutcome, Refusal
from strongroom.peer.server import PeerService
from support.records import attachment_fields, message_fields

_counter = itertools.count()


class TestGate:
    """Accepts every pairing unless told otherwise; remembers what it saw."""

    __test__ = False

    def __init__(self) -> None:
        self.refusal: Refusal | None = None
        self.attempts: list[PairingAttempt] = []
        self.unknown_contacts: list[bytes] = []
        self.qr: bytes | None = None
        self.consumed = 0

    def qr_secret(self) -> bytes | None:
        return self.qr

    def consume_qr_secret(self) -> None:
        self.qr = None
        self.consumed += 1

    def note_unknown_contact(self, noise_key: bytes) -> None:
        self.unknown_contacts.append(noise_key)

    async def request(self, attempt: PairingAttempt) -> PairingOutcome:
        self.attempts.append(attempt)
        if self.refusal is not None:
            return PairingOutcome.refuse(self.refusal)
        return PairingOutcome.accept()


@dataclass
class RunningBox:
    data_dir: Path
    keys: BoxKeys
    limits: Limits
    gate: TestGate
    archive: Archive = field(init=False)
    committer: GroupCommitter = field(init=False)
    service: PeerService = field(init=False)
    runner: web.AppRunner = field(init=False)
    url: str = ""

    async def start(self) -> RunningBox:
        keys = self.keys
        self.archive = Archive.open(
            self.data_dir, keys.archive_key, keys.blob_key, keys.signing_key
        )
        self.committer = GroupCommitter(self.archive)
        self.committer.start()
        self.service = PeerService(self.archive, self.committer, keys, self.limits, self.gate)
        app = web.Application()
        self.service.add_routes(app)
        # As the box runs it (runtime.py): aiohttp cancels a handler whose socket is gone.
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}/peer"
        return self

    async def stop(self) -> None:
        await self.service.close_all()
        await self.runner.cleanup()
        self.committer.stop()
        self.archive.close()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def count(self, sql: str, *args: Any) -> int:
        conn = self.archive.reader()
        try:
            return int(conn.execute(sql, args).fetchone()[0])
        finally:
            conn.close()


async def start_box(
    data_dir: Path, *, limits: Limits | None = None, gate: TestGate | None = None
) -> RunningBox:
    box = RunningBox(
        data_dir, derive_box_keys(os.urandom(32)), limits or Limits(), gate or TestGate()
    )
    return await box.start()


async def running_box(tmp_path: Path) -> AsyncIterator[RunningBox]:
    """For a fixture: `box = pytest.fixture(running_box)` in the test module."""
    running = await start_box(tmp_path / "box")
    yield running
    await running.stop()


async def paired_phone(
    box: RunningBox, owner: str, name: str = "Pixel", *, keepalive: bool = True
) -> PhoneClient:
    """A phone paired over button pairing (XX), its session left open."""
    phone = PhoneClient(DeviceState.generate(name, owner), keepalive=keepalive)
    await phone.pair_button(box.url, box.keys.fingerprint)
    return phone


def message(
    text: str, *, conv: str = "client-martin", direction: str = "out", sender: str = "Me"
) -> dict[str, Any]:
    return message_fields(text, conv=conv, direction=direction, sender=sender)


def attachment_record(message_id: str, sha256: bytes, size: int) -> dict[str, Any]:
    return attachment_fields(message_id, sha256, size, sender="Me")
