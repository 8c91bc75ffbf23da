"""The box's side of remote reach: on/off, rotate, the onion listener, its status.

Each phone's key (given at pairing, refreshed, revoked) is `reach.grants`.

The box never touches tor's files itself: it asks the privileged helper
(`reach.helper`) over a Unix socket, and only listens on the Unix socket that
tor's `HiddenServicePort` targets. Every change is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from strongroom.reach.grants import Audit, PhoneGrants, PhoneStore
from strongroom.reach.helper import HelperUnavailable, call_helper
from strongroom.reach.keys import check_onion
from strongroom.reach.listener import Endpoint, OnionListener
from strongroom.reach.settings import (
    ReachSettings,
    ReachSettingsError,
    load_settings,
    save_settings,
    settings_path,
)

log = logging.getLogger(__name__)
# How long the start waits for the helper to withdraw a service left on (seconds).
START_DISABLE_S = 5.0

# The same words on the page (a flash msgid), in the CLI, and in the log.
ON_FAILED = (
    "Remote reach could not be turned on: it stays off, and tor's onion service was"
    " withdrawn again."
)


class ReachNotOn(Exception):
    """`turn_on` failed after the helper published the service; it was withdrawn."""


class KeyKeeper(Protocol):
    """Where the box keeps the onion service's secret key (reach.archived_key)."""

    async def load(self) -> str | None: ...

    async def store(self, value: str) -> None: ...


class BoxReach(PhoneGrants):
    """On, off, rotate and status; each phone's key is `PhoneGrants`' job."""

    def __init__(
        self,
        data_dir: Path,
        endpoint: Endpoint,
        *,
        header_deadline_s: float,
        audit: Audit,
        key_keeper: KeyKeeper | None = None,
        phones: PhoneStore | None = None,
        notify: Callable[[], None] | None = None,
    ) -> None:
        """`phones`: what each phone was given (for refreshes and the counts);
        `notify`: tells the phones connected now that reach changed (reach_changed)."""
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
        super().__init__(phones)
        self._audit = audit
        self._keeper = key_keeper
        self._notify = notify
        self.onion: str | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def _helper(self, method: str, route: str, body: Any = None) -> Any:
        return await call_helper(self.settings.helper_socket, method, route, body)

    async def start(self) -> None:
        """At boot: listen for tor if reach was left on (tor keeps its own configuration).

        Off: tor's include file must say off too (a crash in the middle of a `reach on`
        may have left it on, and the path unit would run tor with the service), so the
        helper is asked to withdraw it; a helper that is down is left alone. Not for a
        box that never turned reach on (no reach.json, e.g. a scratch or test box on a
        machine whose real box uses the same helper): it cannot have left it on."""
        if not self.enabled:
            if not settings_path(self.data_dir).exists():
                return
            try:
                # Short: a helper that hangs must not hold up the box's start (watchdog).
                await asyncio.wait_for(self._helper("POST", "/disable"), START_DISABLE_S)
            except (HelperUnavailable, TimeoutError) as exc:
                log.info("remote reach is off; its helper does not answer: %r", exc)
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
        backups): a restored box puts it back first and keeps its address, and
        puts back the phones' keys tor no longer holds (not while the restore notice is
        up: the restored devices table may list phones revoked since the backup), and
        removes the keys of phones that are not active."""
        kept = await self._keeper.load() if self._keeper is not None else None
        current = (await self._helper("GET", "/key")).get("key")
        if kept is not None and kept != current:
            await self._helper("PUT", "/key", {"key": kept})
        answer = await self._helper("POST", "/enable")
        # From here tor's include file says on: any failure must withdraw the service
        # again, or the path unit would run tor with it while the box's setting says off.
        was_on, before = self.enabled, self.settings
        try:
            self.onion = check_onion(str(answer["onion"]))
            await self._keep_key()
            try:
                await self._restore_phone_keys()
            except HelperUnavailable as exc:  # reach is on; phones without it refresh on the LAN
                log.error("could not give tor back the phones' keys: %s", exc)
            await self.listener.start()
            self.settings = self.settings.with_enabled(True)
            save_settings(self.data_dir, self.settings)
            await self._audit(actor, "reach.on", self.onion, None)
        except Exception as exc:
            if was_on:  # the setting says on: tor's service stays, as it says
                raise
            log.error("remote reach: turning on failed, withdrawing the service: %r", exc)
            with contextlib.suppress(Exception):
                await self._helper("POST", "/disable")
            with contextlib.suppress(Exception):
                await self.listener.stop()
            self.settings = before
            with contextlib.suppress(Exception):
                save_settings(self.data_dir, before)
            cause = str(exc)
            if isinstance(exc, OSError):  # the listener's (the archive's are not OSError)
                cause = f"cannot listen on {before.onion_socket}: {exc}"
            raise ReachNotOn(f"{ON_FAILED} ({cause})") from exc
        self._changed()
        return self.onion

    async def turn_off(self, actor: str) -> None:
        """Withdraw the onion service first, then stop listening; audited."""
        await self._helper("POST", "/disable")
        await self.listener.stop()
        self.settings = self.settings.with_enabled(False)
        save_settings(self.data_dir, self.settings)
        await self._audit(actor, "reach.off", self.onion or "", None)
        self._changed()

    async def rotate(self, actor: str) -> str:
        """A new onion address. The phones keep their keys; each learns the new address
        at its next LAN connection (those connected now are told at once). Audited."""
        old = self.onion or ""
        answer = await self._helper("POST", "/rotate")
        self.onion = check_onion(str(answer["onion"]))
        await self._keep_key()
        await self._audit(actor, "reach.rotate", self.onion, {"previous": old})
        self._changed()
        return self.onion

    def _changed(self) -> None:
        if self._notify is not None:
            try:
                self._notify()
            except Exception:  # telling phones early is a courtesy: they ask on the LAN
                log.exception("could not tell the connected phones that reach changed")

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
            # Paired phones that hold the current address and a key tor holds, and
            # those that must connect once on the LAN to get them (ids).
            "current": [],
            "waiting": [],
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
            int(n.removeprefix("device-"))
            for n in names
            if n.removeprefix("device-").isascii() and n.removeprefix("device-").isdigit()
        )
        if self.enabled and view["onion"] and self._phones is not None:
            held = set(view["devices"])
            for device_id, reach in (await self._phones.active()).items():
                up_to_date = reach is not None and reach.onion == view["onion"]
                key = "current" if up_to_date and device_id in held else "waiting"
                view[key].append(device_id)
        return view
