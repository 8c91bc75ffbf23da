"""The box as a real process (tests/box_child.py) and what the fault and abuse tests check after.

`BoxProcess` starts the box, waits for its URL, and stops it cleanly (SIGTERM)
or as a power cut would (SIGKILL). `open_archive` reopens the data dir with
the unattended key file, as the box itself does at boot, so a test can look
at what survived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from strongroom.archive.store import Archive
from strongroom.archive.verify import VerifyReport, verify_archive
from strongroom.client import DeviceState, PhoneClient
from strongroom.client.link import HandshakeRefused
from strongroom.config import load_config
from strongroom.noise import TransportSession
from strongroom.peer.channel import SecureChannel
from strongroom.peer.frames import Direction, Frame, decode_frame, encode_frame
from strongroom.peer.handshake import HandshakeKind, initiator
from strongroom.unlock import keys_from_keyfile
from support.records import message_fields

CHILD = Path(__file__).with_name("box_child.py")
START_TIMEOUT_S = 20.0


@dataclass
class BoxProcess:
    """One run of the box process on `data_dir` (restart = a new BoxProcess, same dir)."""

    data_dir: Path
    limits: dict[str, Any] = field(default_factory=dict)
    auto_pair: bool = True
    host: str = "127.0.0.1"
    prefix: Sequence[str] = ()  # e.g. ("ip", "netns", "exec", "box-ns")
    extra_args: Sequence[str] = ()
    proc: asyncio.subprocess.Process | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def peer_url(self) -> str:
        return str(self.info["peer"])

    @property
    def fingerprint(self) -> str:
        return str(self.info["fingerprint"])

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-box.log"

    async def start(self) -> BoxProcess:
        args = [*self.prefix, sys.executable, str(CHILD), str(self.data_dir), "--host", self.host]
        args += ["--limits", json.dumps(self.limits), *self.extra_args]
        if self.auto_pair:
            args.append("--auto-pair")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line:
            await self.kill()
            raise AssertionError(f"the box did not start: {self.log_text()[-3000:]}")
        self.info = json.loads(line)
        return self

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def exit_report(self) -> str:
        """How the box process ended (a signal by name) and its log's tail, for a failure."""
        code = None if self.proc is None else self.proc.returncode
        if code is None:
            state = "the box process is running"
        elif code < 0:
            state = f"the box process died of {signal.Signals(-code).name}"
        else:
            state = f"the box process exited with status {code}"
        return f"{state}; its log ({self.log_path}) ends:\n{self.log_text()[-3000:]}"

    async def kill(self) -> None:
        """A power cut: SIGKILL, nothing flushed or closed by the box."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        """A clean stop (SIGTERM), falling back to SIGKILL."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10.0)
            except TimeoutError:
                await self.kill()

    def rss_kib(self) -> int:
        """Resident memory of the box process now (from /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")


def open_archive(data_dir: Path) -> Archive:
    """Open the box's archive as the box does at boot (unattended key file)."""
    config = load_config(data_dir)
    keys = keys_from_keyfile(config)
    return Archive.open(data_dir, keys.archive_key, keys.blob_key, keys.signing_key)


def verify_data_dir(data_dir: Path) -> VerifyReport:
    archive = open_archive(data_dir)
    try:
        reader = archive.reader()
        try:
            return verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
        finally:
            reader.close()
    finally:
        archive.close()


def count(data_dir: Path, sql: str, *args: object) -> int:
    archive = open_archive(data_dir)
    try:
        return int(archive.conn.execute(sql, args).fetchone()[0])
    finally:
        archive.close()


async def pair_phone(
    box: BoxProcess, owner: str, name: str = "Pixel", *, keepalive: bool = True
) -> PhoneClient:
    """A phone paired with the box process (its test gate accepts everyone), left connected."""
    phone = PhoneClient(DeviceState.generate(name, owner), keepalive=keepalive)
    try:
        await phone.pair_button(box.peer_url, box.fingerprint)
    except aiohttp.ClientConnectorError as exc:
        raise AssertionError(f"cannot reach the box: {box.exit_report()}") from exc
    return phone


def message(n: int, text: str, *, conv: str = "client-martin") -> dict[str, Any]:
    return message_fields(text, conv=conv, sender="Me", n=n)


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def web_login(url: str, data_dir: Path) -> aiohttp.ClientSession:
    """A browser-like session logged in as the dev box's admin (cookies on an IP address)."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        page = await (await session.get(f"{url}/login")).text()
        match = _CSRF.search(page)
        assert match, "no CSRF token on the login page"
        passphrase = (data_dir / "admin-passphrase.txt").read_text().strip()
        response = await session.post(
            f"{url}/login",
            data={"username": "admin", "password": passphrase, "csrf_token": match.group(1)},
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()
    except BaseException:
        await session.close()
        raise
    return session


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def flip_byte(path: Path, offset: int, mask: int = 0x01) -> None:
    """Flip bits of one byte in place, as a failing SD card would."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ mask]))


ABUSE_LIMITS: dict[str, Any] = {
    "idle_timeout_s": 2.0,
    "handshake_timeout_s": 1.0,
    "max_connections": 8,
    "max_connections_per_device": 2,
    "max_in_flight_frames": 8,
    "max_frame_bytes": 64 * 1024,
}
# An answer within this bound means "still served"; it is a liveness bound, not a benchmark.
SERVED_WITHIN_S = 5.0


async def abuse_box(tmp_path: Path) -> AsyncIterator[BoxProcess]:
    """For a fixture, `box = pytest.fixture(abuse_box)`: a box process under ABUSE_LIMITS."""
    running = await BoxProcess(tmp_path / "box", limits=ABUSE_LIMITS).start()
    try:
        yield running
        # Whatever a phone sent, the box is still there: a dead box (a connection
        # refused in the test) is reported with how it ended and its log.
        assert running.running, running.exit_report()
    finally:
        await running.stop()


async def still_served(phone: PhoneClient, n: int) -> None:
    """The box still acks this phone's push, within SERVED_WITHIN_S."""
    ack = await asyncio.wait_for(phone.push(message(n, f"still here {n}")), SERVED_WITHIN_S)
    assert ack.log_index >= 0


@dataclass
class RawSession:
    """A phone's IK session driven by hand, so a test can capture, replay and forge messages."""

    ws: aiohttp.ClientWebSocketResponse
    channel: SecureChannel
    first_message: bytes
    next_id: int = 1
    unread: list[bytes] = field(default_factory=list)  # frames opened, not yet returned

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        url: str,
        state: DeviceState,
        *,
        first_message: bytes | None = None,
    ) -> RawSession:
        """IK handshake; with `first_message`, replay that captured message 1 instead."""
        assert state.box_noise_public is not None
        ws = await http.ws_connect(url, max_msg_size=0, autoping=True)
        hs = initiator(HandshakeKind.IK, state.noise_private, state.box_noise_public)
        first = bytes([HandshakeKind.IK.value]) + hs.write_message(b"")
        await ws.send_bytes(first_message or first)
        reply = await ws.receive(timeout=10)
        if reply.type != aiohttp.WSMsgType.BINARY:
            await ws.close()
            raise HandshakeRefused(ws.close_code, str(reply.extra))
        if first_message is not None:
            # A replayed message 1 carries someone else's ephemeral key: we cannot read
            # the box's answer. Keep a channel that will never authenticate.
            return cls(ws, _DeadChannel(), first_message)  # type: ignore[arg-type]
        hs.read_message(bytes(reply.data))
        channel = SecureChannel(TransportSession.from_handshake(hs), 1 << 20)
        return cls(ws, channel, first)

    def seal(self, frame_type: str, body: dict[str, Any]) -> list[bytes]:
        frame = Frame(frame_type, self.next_id, body)
        self.next_id += 1
        return self.channel.seal(encode_frame(frame))

    async def send_all(self, messages: list[bytes]) -> None:
        for raw in messages:
            await self.ws.send_bytes(raw)

    async def receive_frame(self, wait_s: float = 10.0) -> Frame | None:
        """The next frame from the box, or None once it closed the connection."""
        while not self.unread:
            msg = await self.ws.receive(timeout=wait_s)
            if msg.type != aiohttp.WSMsgType.BINARY:
                return None
            self.unread += self.channel.open(bytes(msg.data))  # a bundle brings several
        return decode_frame(self.unread.pop(0), Direction.TO_PHONE, max_bytes=1 << 20)

    async def wait_closed(self, wait_s: float = 10.0) -> int | None:
        """Read until the box closes the connection; return its close code."""
        while True:
            msg = await self.ws.receive(timeout=wait_s)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return self.ws.close_code


class _DeadChannel:
    def seal(self, frame: bytes) -> list[bytes]:
        raise AssertionError("a replayed handshake has no usable channel")
