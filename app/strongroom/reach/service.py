"""The box's side of remote reach: on/off, the onion listener, per-phone grants.

The box never touches tor's files itself: it asks the privileged helper
(`reach.helper`) over a Unix socket, and only listens on the Unix socket that
tor's `HiddenServicePort` targets. Every change is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from strongroom.reach.helper import HelperUnavailable, call_helper
from strongroom.reach.keys import ClientAuthKey, check_onion, device_client_name
from strongroom.reach.listener import Endpoint, OnionListener
from strongroom.reach.settings import (
    ReachSettings,
    ReachSettingsError,
    load_settings,
    save_settings,
)

log = logging.getLogger(__name__)

Audit = Callable[[str, str, str, dict[str, Any] | None], Awaitable[None]]


class KeyKeeper(Protocol):
    """Where the box keeps the onion service's secret key (reach.archived_key)."""

    async def load(self) -> str | None: ...

    async def store(self, value: str) -> None: ...


@dataclass(frozen=True)
class ReachGrant:
    """What a phone receives at pairing: where the box is on Tor and its own key."""

    onion: str
    auth_private: str  # x25519, base32: only this phone and its tor ever hold it

    def to_frame(self) -> dict[str, str]:
        return {"onion": self.onion, "auth": self.auth_private}


class BoxReach:
    def __init__(
        self,
        data_dir: Path,
        endpoint: Endpoint,
        *,
        header_deadline_s: float,
        audit: Audit,
        key_keeper: KeyKeeper | None = None,
    ) -> None:
        self.data_dir = data_dir
        # A damaged reach.json must not stop the box: reach stays off and says why.
        self.problem: str | None = None
        try:
            self.settings: ReachSettings = load_settings(data_dir)
        except ReachSettingsError as exc:
            log.error("remote reach stays off: %s", exc)
            self.settings, self.problem = ReachSettings(), str(exc)
        self.listener = OnionListener(
            self.settings.onion_socket, endpoint, header_deadline_s=header_deadline_s
        )
        self._audit = audit
        self._keeper = key_keeper
        self.onion: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def _helper(self, method: str, route: str, body: Any = None) -> Any:
        return await call_helper(self.settings.helper_socket, method, route, body)

    async def start(self) -> None:
        """At boot: listen for tor if reach was left on (tor keeps its own configuration)."""
        if not self.enabled:
            return
        try:
            await self.listener.start()
        except OSError as exc:  # the socket's directory is missing or not ours
            self.problem = f"cannot listen on {self.settings.onion_socket}: {exc}"
            log.error("remote reach: %s", self.problem)
            return
        try:
            self.onion = check_onion(str((await self._helper("GET", "/status"))["onion"]))
        except (HelperUnavailable, ValueError) as exc:
            log.warning("remote reach is on but its helper does not answer: %s", exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        await self.listener.stop()

    async def turn_on(self, actor: str) -> str:
        """Ask the helper to publish the onion service, then listen; audited.

        The service's secret key lives in the archive too (so in its encrypted
        backups): a restored box puts it back first and keeps its address."""
        kept = await self._keeper.load() if self._keeper is not None else None
        current = (await self._helper("GET", "/key")).get("key")
        if kept is not None and kept != current:
            await self._helper("PUT", "/key", {"key": kept})
        answer = await self._helper("POST", "/enable")
        self.onion = check_onion(str(answer["onion"]))
        await self._keep_key()
        await self.listener.start()
        self.settings = self.settings.with_enabled(True)
        save_settings(self.data_dir, self.settings)
        await self._audit(actor, "reach.on", self.onion, None)
        return self.onion

    async def turn_off(self, actor: str) -> None:
        """Withdraw the onion service first, then stop listening; audited."""
        await self._helper("POST", "/disable")
        await self.listener.stop()
        self.settings = self.settings.with_enabled(False)
        save_settings(self.data_dir, self.settings)
        await self._audit(actor, "reach.off", self.onion or "", None)

    async def rotate(self, actor: str) -> str:
        """A new onion address; phones must be paired again to learn it. Audited."""
        old = self.onion or ""
        answer = await self._helper("POST", "/rotate")
        self.onion = check_onion(str(answer["onion"]))
        await self._keep_key()
        await self._audit(actor, "reach.rotate", self.onion, {"previous": old})
        return self.onion

    async def _keep_key(self) -> None:
        if self._keeper is None:
            return
        key = (await self._helper("GET", "/key")).get("key")
        if isinstance(key, str) and key != await self._keeper.load():
            await self._keeper.store(key)

    async def status(self) -> dict[str, Any]:
        """What the settings page and `strongroom reach status` show."""
        view: dict[str, Any] = {
            "enabled": self.enabled,
            "listening": self.listener.listening,
            "onion": self.onion,
            "helper": True,
            "tor": None,
            "clients": 0,
            "problem": self.problem,
            "devices": [],  # ids of the paired phones whose key tor holds
        }
        try:
            helper = await self._helper("GET", "/status")
        except HelperUnavailable as exc:
            view["helper"] = False
            view["problem"] = "; ".join(p for p in (self.problem, str(exc)) if p)
            return view
        view["onion"] = helper.get("onion") or self.onion
        view["tor"] = helper.get("tor")
        names = [str(n) for n in helper.get("clients") or []]
        view["clients"] = len(names)
        view["devices"] = sorted(
            int(n.removeprefix("device-")) for n in names if n.removeprefix("device-").isdigit()
        )
        return view

    # -- phones ------------------------------------------------------------------------------

    def offer(self, device_id: int) -> dict[str, str] | None:
        """At pairing (called from the peer session, synchronously): a new key for this
        phone, authorised with tor in the background. None while reach is off."""
        if not self.enabled or self.onion is None:
            return None
        key = ClientAuthKey.generate()
        task = asyncio.get_running_loop().create_task(self._authorize(device_id, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ReachGrant(self.onion, key.private_b32).to_frame()

    async def _authorize(self, device_id: int, key: ClientAuthKey) -> None:
        name = device_client_name(device_id)
        try:
            await self._helper("PUT", f"/clients/{name}", {"public": key.public_b32})
        except HelperUnavailable as exc:
            log.error("could not authorise phone %s on the onion service: %s", device_id, exc)
            await self._audit("box", "reach.grant-failed", str(device_id), {"reason": str(exc)})
            return
        await self._audit("box", "reach.grant", str(device_id), None)

    async def revoke(self, device_id: int) -> None:
        """The phone is revoked: its .auth file goes too (tor reloads), even with reach off."""
        try:
            answer = await self._helper("DELETE", f"/clients/{device_client_name(device_id)}")
        except HelperUnavailable as exc:
            if self.enabled:
                # Noise still refuses the phone; the audit trail shows tor may not.
                log.error("could not remove phone %s from the onion service: %s", device_id, exc)
                await self._audit(
                    "box", "reach.revoke-failed", str(device_id), {"reason": str(exc)}
                )
            return
        if answer.get("removed"):
            await self._audit("box", "reach.revoke", str(device_id), None)
