"""Each phone's key to the onion service: given at pairing, refreshed on the LAN
(protocol.md §12.2), revoked with the phone, and put back or cleaned when tor's
keys and the archive's devices disagree (a new tor, a restored box, a revoke
while the helper was down).

`PhoneGrants` is the part of `reach.service.BoxReach` that does this job; it
uses the box's helper, audit, `enabled` and `onion` from there. Every change
goes through the phone's own lock, so a revoke racing a pairing or a refresh
always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from strongroom.reach.helper import HelperUnavailable
from strongroom.reach.keys import ClientAuthKey, check_onion, device_client_name
from strongroom.reach.phones import PhoneReach

log = logging.getLogger(__name__)

Audit = Callable[[str, str, str, dict[str, Any] | None], Awaitable[None]]

# A phone's key changes at most once a minute (protocol.md §12.2): each change is a
# helper write, a tor reload and a `reach.grant` leaf of the permanent signed log,
# so a paired phone asking over and over must not grow the log without limit.
KEY_CHANGE_INTERVAL_S = 60.0


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


class PhoneGrants:
    onion: str | None
    _audit: Audit

    def __init__(self, phones: PhoneStore | None) -> None:
        self._phones = phones
        self._device_locks: dict[int, asyncio.Lock] = {}
        # Revoked while this box runs: a refresh already past the handshake gives tor no key.
        self._revoked: set[int] = set()
        # Revoked while the helper did not answer: their .auth files go at the next
        # helper contact (and every turn_on removes the keys of phones not active).
        self._pending_removal: set[int] = set()
        self._reconciled = False  # tor's keys checked against the devices once this run
        self._last_change: dict[int, float] = {}  # device -> time.monotonic() of its key change
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def enabled(self) -> bool:
        raise NotImplementedError  # BoxReach: the settings say

    async def _helper(self, method: str, route: str, body: Any = None) -> Any:
        raise NotImplementedError  # BoxReach: the privileged helper's socket

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
            if not (device.isascii() and device.isdigit()):
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
