"""Just enough of tor's control protocol to show an office manager tor's state.

Cookie authentication over tor's control socket; two questions: how far has
tor bootstrapped, and has it built the onion service's descriptor (tor uploads
a descriptor as soon as it has built it and has introduction points).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 5.0
_PROGRESS = re.compile(r"PROGRESS=(\d+)")
_SUMMARY = re.compile(r'SUMMARY="([^"]*)"')


class TorControlError(Exception):
    """tor's control socket is absent, refused us or answered something unexpected."""


class TorNotRunning(TorControlError):
    """Nothing listens on tor's control socket: tor is stopped (on the appliance it runs
    only while remote reach is on) or not installed."""


@dataclass(frozen=True)
class TorState:
    bootstrap_percent: int
    bootstrap_summary: str
    descriptor_built: bool


class TorControl:
    def __init__(self, socket_path: Path, cookie_path: Path) -> None:
        self.socket_path = socket_path
        self.cookie_path = cookie_path

    async def _reply(self, reader: asyncio.StreamReader) -> tuple[str, list[str]]:
        """One reply: (status code, its lines, data blocks included)."""
        lines: list[str] = []
        while True:
            raw = await reader.readline()
            if not raw:
                raise TorControlError("tor closed the control connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            code, sep, rest = line[:3], line[3:4], line[4:]
            lines.append(rest)
            if sep == "+":  # a data block, ended by a lone "."
                while (data := (await reader.readline()).decode("utf-8", "replace")) not in (
                    ".\r\n",
                    "",
                ):
                    lines.append(data.rstrip("\r\n"))
            elif sep == " ":
                return code, lines

    async def state(self, onion: str | None) -> TorState:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.socket_path)), TIMEOUT_S
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise TorNotRunning(f"tor is not running ({self.socket_path}: {exc})") from exc
        except (OSError, TimeoutError) as exc:
            raise TorControlError(f"tor's control socket is unreachable: {exc}") from exc
        try:
            cookie = self.cookie_path.read_bytes()
        except OSError as exc:
            writer.close()
            raise TorControlError(f"cannot read tor's control cookie: {exc}") from exc
        try:
            return await asyncio.wait_for(self._ask(reader, writer, cookie, onion), TIMEOUT_S)
        except TimeoutError as exc:
            raise TorControlError("tor did not answer in time") from exc
        finally:
            writer.close()

    async def _ask(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cookie: bytes,
        onion: str | None,
    ) -> TorState:
        writer.write(f"AUTHENTICATE {cookie.hex()}\r\n".encode())
        code, lines = await self._reply(reader)
        if code != "250":
            raise TorControlError(f"tor refused the control cookie: {' '.join(lines)}")
        writer.write(b"GETINFO status/bootstrap-phase\r\n")
        code, lines = await self._reply(reader)
        if code != "250":
            raise TorControlError(f"tor did not give its bootstrap phase: {' '.join(lines)}")
        phase = lines[0]
        progress = _PROGRESS.search(phase)
        summary = _SUMMARY.search(phase)
        built = False
        if onion:
            name = onion.removesuffix(".onion")
            writer.write(f"GETINFO hs/service/desc/id/{name}\r\n".encode())
            code, lines = await self._reply(reader)
            built = code == "250" and any(line.startswith("hs-descriptor") for line in lines)
        writer.write(b"QUIT\r\n")
        return TorState(
            int(progress.group(1)) if progress else 0,
            summary.group(1) if summary else phase,
            built,
        )
