"""The box's side of remote reach: on/off, the onion listener, per-phone grants.

The box never touches tor's files itself: it asks the privileged helper
(`reach.helper`) over a Unix socket, and only listens on the Unix socket that
tor's `HiddenServicePort` targets. Every change is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from strongroom.reach.helper import HelperUnavailable, call_helper
from strongroom.reach.keys import ClientAuthKey, check_onion, device_client_name
from strongroom.reach.listener import Endpoint, OnionListener
from strongroom.reach.phones import PhoneReach
from strongroom.reach.settings import (
    ReachSettings,
    ReachSettingsError,
    load_settings,
    save_settings,
)

log = logging.getLogger(__name__)

Audit = Callable[[str, str, str, dict[str, Any] | None], Awaitable[None]]

# A phone's key changes at most once a minute (protocol.md §12.2): each change is a
# helper write, a tor reload and a `reach.grant` leaf of the permanent signed log,
# so a paired phone asking over and over must not grow the log without limit.
KEY_CHANGE_INTERVAL_S = 60.0


class KeyKeeper(Protocol):
    """Where the box keeps the onion service's secret key (reach.archived_key)."""

    async def load(self) -> str | None: ...

    async def store(self, value: str) -> None: ...


class PhoneStore(Protocol):
    """What the box remembers of each phone's reach (reach.phones.PhoneKeys)."""

    async def load(self, device_id: int) -> PhoneReach | None: ...

    async def store(self, device_id: int, reach: PhoneReach) -> None: ...

    async def forget(self, device_id: int) -> None: ...

    async def active(self) -> dict[int, PhoneReach | None]: ...

    async def restored(self) -> bool: ...

    def readable(self) -> bool: ...  # False while the archive is locked: nothing known


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
        self._audit = audit
        self._keeper = key_keeper
        self._phones = phones
        self._notify = notify
        self._device_locks: dict[int, asyncio.Lock] = {}
        # Revoked while this box runs: a refresh already past the handshake gives tor no key.
        self._revoked: set[int] = set()
        # Revoked while the helper did not answer: their .auth files go at the next
        # helper contact (and every turn_on removes the keys of phones not active).
        self._pending_removal: set[int] = set()
        self._reconciled = False  # tor's keys checked against the devices once this run
        self._last_change: dict[int, float] = {}  # device -> time.monotonic() of its key change
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
        backups): a restored box puts it back first and keeps its address, and
        puts back the phones' keys tor no longer holds (not while the restore notice is
        up: the restored devices table may list phones revoked since the backup), and
        removes the keys of phones that are not active."""
        kept = await self._keeper.load() if self._keeper is not None else None
        current = (await self._helper("GET", "/key")).get("key")
        if kept is not None and kept != current:
            await self._helper("PUT", "/key", {"key": kept})
        answer = await self._helper("POST", "/enable")
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

    async def _restore_phone_keys(self) -> None:
        """A new tor (or a restored box): give tor back the keys the archive says phones
        hold, so they keep working without a visit to the office; remove the others.

        Not while the restore notice is up: a backup predates the revocations made
        after it, so its devices table may list a lost phone as active. Those phones
        get a key at their next LAN refresh instead (a revoked one never gets there)."""
        if self._phones is None:
            return
        held = await self._remove_inactive()
        restored = await self._phones.restored()
        for device_id, reach in (await self._phones.active()).items():
            name = device_client_name(device_id)
            if reach is not None and name not in held:
                if restored:  # forgotten: its next LAN refresh gives tor the phone's key
                    await self._phones.forget(device_id)
                    continue
                await self._helper("PUT", f"/clients/{name}", {"public": reach.key})
                await self._audit("box", "reach.grant", str(device_id), {"key": "restored"})

    async def _remove_inactive(self) -> set[str]:
        """Remove from tor every `device-N` key of a phone that is not active (revoked
        while the helper was down, or in a restored archive); the names tor still holds."""
        held = {str(n) for n in (await self._helper("GET", "/status")).get("clients") or []}
        if self._phones is None or not self._phones.readable():
            return held
        active = {device_client_name(d) for d in await self._phones.active()}
        for name in sorted(held - active):
            device = name.removeprefix("device-")
            if not device.isdigit():
                continue
            async with self._device_locks.setdefault(int(device), asyncio.Lock()):
                await self._helper("DELETE", f"/clients/{name}")
            held.discard(name)
            self._pending_removal.discard(int(device))
            await self._audit("box", "reach.revoke", device, {"key": "stale"})
        self._reconciled = True
        return held

    async def _retry_removals(self) -> None:
        """The phones revoked while the helper was down: remove their keys now."""
        for device_id in sorted(self._pending_removal):
            async with self._device_locks.setdefault(device_id, asyncio.Lock()):
                answer = await self._helper("DELETE", f"/clients/{device_client_name(device_id)}")
            self._pending_removal.discard(device_id)
            if answer.get("removed"):
                await self._audit("box", "reach.revoke", str(device_id), {"retried": True})

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
            int(n.removeprefix("device-")) for n in names if n.removeprefix("device-").isdigit()
        )
        if self.enabled and view["onion"] and self._phones is not None:
            held = set(view["devices"])
            for device_id, reach in (await self._phones.active()).items():
                up_to_date = reach is not None and reach.onion == view["onion"]
                key = "current" if up_to_date and device_id in held else "waiting"
                view[key].append(device_id)
        return view

    # -- phones ------------------------------------------------------------------------------

    def offer(self, device_id: int) -> dict[str, str] | None:
        """At pairing (called from the peer session, synchronously): a new key for this
        phone, authorised with tor in the background. None while reach is off."""
        if not self.enabled or self.onion is None:
            return None
        key = ClientAuthKey.generate()
        task = asyncio.get_running_loop().create_task(
            self._authorize(device_id, key.public_b32, self.onion)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return ReachGrant(self.onion, key.private_b32).to_frame()

    async def _authorize(self, device_id: int, public_b32: str, onion: str) -> None:
        """Under the device's lock, like `revoke`: a revoke racing the pairing either
        comes after (and removes this key) or before (and no key is given)."""
        name = device_client_name(device_id)
        async with self._device_locks.setdefault(device_id, asyncio.Lock()):
            if device_id in self._revoked:
                return
            try:
                await self._helper("PUT", f"/clients/{name}", {"public": public_b32})
            except HelperUnavailable as exc:
                log.error("could not authorise phone %s on the onion service: %s", device_id, exc)
                await self._audit("box", "reach.grant-failed", str(device_id), {"reason": str(exc)})
                return
            self._last_change[device_id] = time.monotonic()
            if self._phones is not None:
                await self._phones.store(device_id, PhoneReach(public_b32, onion))
            await self._audit("box", "reach.grant", str(device_id), None)

    async def refresh(self, device_id: int, auth_pub: str | None) -> dict[str, Any]:
        """A paired phone asks for its reach (protocol.md §12.2): off, or the current onion
        and, when it names no key (or not the one tor holds for it), what it needs.

        A phone naming a key keeps it: tor is given that key if it holds another (the
        phone proved who it is with Noise IK; the key only opens the door to the onion).
        A phone naming none gets a new key, its public half given to tor before the
        reply. HelperUnavailable when tor cannot be told: the phone retries later.
        At most one key change per phone per KEY_CHANGE_INTERVAL_S: a phone asking for
        another within it is answered with the onion only (its key unchanged)."""
        if not self.enabled:
            return {"on": False}
        if self.onion is None:  # on, but the helper did not answer at boot
            self.onion = check_onion(str((await self._helper("GET", "/status"))["onion"]))
        onion = self.onion
        # A phone revoked while the helper was down (this run, or before a restart
        # with reach left on): its key goes at the first helper contact after.
        with contextlib.suppress(HelperUnavailable):
            if not self._reconciled:
                await self._remove_inactive()
            elif self._pending_removal:
                await self._retry_removals()
        if self._tasks:  # a key handed out at a pairing just now: let tor get it first
            await asyncio.wait(list(self._tasks))
        lock = self._device_locks.setdefault(device_id, asyncio.Lock())
        async with lock:  # two connections of one phone must not get two keys
            known = await self._phones.load(device_id) if self._phones is not None else None
            if device_id in self._revoked:  # its session is closing: the reply goes nowhere
                return {"on": False}
            if auth_pub is not None and known is not None and known.key == auth_pub:
                if known.onion != onion:
                    await self._store_phone(device_id, PhoneReach(auth_pub, onion))
                return {"on": True, "onion": onion}
            last = self._last_change.get(device_id)
            if last is not None and time.monotonic() - last < KEY_CHANGE_INTERVAL_S:
                log.warning("phone %s asks for another reach key within a minute", device_id)
                return {"on": True, "onion": onion}
            issued = ClientAuthKey.generate() if auth_pub is None else None
            public = issued.public_b32 if issued is not None else auth_pub
            assert public is not None
            try:
                await self._helper(
                    "PUT", f"/clients/{device_client_name(device_id)}", {"public": public}
                )
            except HelperUnavailable as exc:
                # Not audited: the phone asks again at every LAN connection until it works.
                log.error("could not give phone %s a reach key: %s", device_id, exc)
                raise
            self._last_change[device_id] = time.monotonic()
            await self._store_phone(device_id, PhoneReach(public, onion))
            how = "issued" if issued is not None else "phone's"
            await self._audit("box", "reach.grant", str(device_id), {"key": how, "via": "refresh"})
        if issued is None:
            return {"on": True, "onion": onion}
        return {"on": True, "onion": onion, "auth": issued.private_b32}

    async def _store_phone(self, device_id: int, reach: PhoneReach) -> None:
        if self._phones is not None:
            await self._phones.store(device_id, reach)

    async def revoke(self, device_id: int) -> None:
        """The phone is revoked: its .auth file goes too (tor reloads), even with reach off.

        Under the device's lock, after marking it revoked: a refresh of this phone still
        in flight either finished before (its key is removed here) or gives none."""
        self._revoked.add(device_id)
        async with self._device_locks.setdefault(device_id, asyncio.Lock()):
            await self._forget(device_id)

    async def _forget(self, device_id: int) -> None:
        if self._phones is not None:
            await self._phones.forget(device_id)
        try:
            answer = await self._helper("DELETE", f"/clients/{device_client_name(device_id)}")
        except HelperUnavailable as exc:
            # Its key goes at the next helper contact (a refresh, turn_on, or boot).
            self._pending_removal.add(device_id)
            if self.enabled:
                # Noise still refuses the phone; the audit trail shows tor may not.
                log.error("could not remove phone %s from the onion service: %s", device_id, exc)
                await self._audit(
                    "box", "reach.revoke-failed", str(device_id), {"reason": str(exc)}
                )
            return
        if answer.get("removed"):
            await self._audit("box", "reach.revoke", str(device_id), None)
