"""Remote reach without a Tor network: what tests/test_reach*.py share.

Tor is replaced by what it does at the edges: the helper's "reload" is counted
(`TorStandIn`) instead of signalling tor, tor's `hostname` file is written here,
and a phone reaches the onion socket directly (aiohttp's Unix connector) where
tor would carry it. The helper app on its Unix socket and the box are real.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from e2e_helpers import E2EBox, pair_by_qr, prepare_data_dir, start_box, until
from strongroom.client import PhoneClient
from strongroom.client.pairing import Paired
from strongroom.reach.helper import helper_app, serve_helper
from strongroom.reach.settings import ReachSettings, save_settings
from strongroom.reach.tor_files import TorFiles
from strongroom.reach.torrc import ServiceConfig

ONION = "a" * 56 + ".onion"


class TorStandIn:
    """What tor does on SIGHUP that the helper relies on: count it, and make the
    service's key (its `hostname`) when the configuration names a service without one."""

    def __init__(self, hs: Path, conf: Path) -> None:
        self.hs, self.conf, self.count = hs, conf, 0

    def __call__(self) -> None:
        self.count += 1
        hostname = self.hs / "hostname"
        if "HiddenServiceDir" in self.conf.read_text() and not hostname.exists():
            hostname.write_text(base64.b32encode(os.urandom(35)).decode().lower() + ".onion\n")


def tor_files(tmp_path: Path) -> tuple[TorFiles, TorStandIn]:
    hs = tmp_path / "hs"
    hs.mkdir(mode=0o700)
    (hs / "hostname").write_text(ONION + "\n")  # the key tor made when first asked
    reload = TorStandIn(hs, tmp_path / "reach.conf")
    files = TorFiles(ServiceConfig(hs, tmp_path / "peer.sock"), tmp_path / "reach.conf", reload)
    return files, reload


@contextlib.asynccontextmanager
async def box_with_reach_stand_in(
    tmp_path: Path, files: TorFiles | None = None
) -> AsyncIterator[tuple[E2EBox, TorFiles]]:
    """A running box (reach off) whose helper is a real helper app writing `files`
    (by default the stand-in tor of `tor_files`)."""
    if files is None:
        files, _ = tor_files(tmp_path)
    helper_socket = tmp_path / "helper.sock"
    runner = await serve_helper(helper_app(files, None), helper_socket)
    config = await prepare_data_dir(tmp_path / "box")
    save_settings(
        config.data_dir,
        ReachSettings(False, onion_socket=files.service.onion_socket, helper_socket=helper_socket),
    )
    box = await start_box(config)
    try:
        yield box, files
    finally:
        await box.stop()
        await runner.cleanup()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[E2EBox, TorFiles]]:
    async with box_with_reach_stand_in(tmp_path) as started:
        yield started


async def granted(box: E2EBox, *device_ids: int) -> None:
    """The key handed out at pairing is authorised with tor, then recorded, in the
    background just after `paired`: wait for the record."""
    rows = [f"reach_phone:{d}" for d in device_ids]
    query = f"SELECT count(*) FROM settings WHERE key IN ({','.join('?' * len(rows))})"
    await until(lambda: box.count(query, *rows) == len(rows), what="the phones' reach records")


def auth_file(files: TorFiles, device_id: int) -> str | None:
    """The phone's line in tor's authorized_clients/, None when it has none."""
    path = files.clients_dir / f"device-{device_id}.auth"
    return path.read_text() if path.exists() else None


async def paired_with_reach(box: E2EBox, name: str, owner: str) -> tuple[PhoneClient, Paired]:
    """Reach turned on, a phone paired by QR (then gone), its key granted."""
    await box.reach.turn_on("test")
    phone, paired = await pair_by_qr(box, name, owner)
    await phone.close()
    await granted(box, paired.device_id)
    return phone, paired


async def cli(*argv: str) -> tuple[int, str]:
    from strongroom.cli import main

    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return main(list(argv))

    return await asyncio.to_thread(run), out.getvalue()


def through_onion_socket(path: Path) -> aiohttp.ClientSession:
    """Where tor would carry the phone: straight to the socket HiddenServicePort targets."""
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path)))
