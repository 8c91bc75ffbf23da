"""The whole box, with one lifecycle: start, unlock, stop.

A Box owns its parts and wires them together: the archive and its group
committer, the peer service (phones), pairing, the web UI, the front panel,
mDNS and systemd notifications. Tests build a whole Box on loopback with mock
pins; the dev box and the appliance run the very same object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from strongroom.appliance.health import Health, read_health
from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.readers import ReaderPool
from strongroom.archive.store import Archive
from strongroom.config import BoxConfig
from strongroom.identity import BoxKeys, Keystore, derive_box_keys
from strongroom.integrity import IntegrityStatus
from strongroom.unlock import BoxPhase, keys_from_keyfile, keys_from_passphrase, phase_on_disk

if TYPE_CHECKING:  # the runtime wires them in; the box itself never builds either
    from strongroom.pairing.service import PairingService
    from strongroom.peer.server import PeerService
    from strongroom.reach.service import BoxReach

log = logging.getLogger(__name__)


class BoxLocked(Exception):
    """The operation needs the unlocked archive."""


class Box:
    def __init__(self, config: BoxConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.phase = phase_on_disk(config)
        self.keys: BoxKeys | None = None
        self.archive: Archive | None = None
        self.committer: GroupCommitter | None = None
        self.readers: ReaderPool | None = None
        self.started_at = clock()
        # Wired by the runtime: the pairing rules (from start), the phones' service
        # (from unlock). None on a box without a runtime (web tests, the CLI).
        self.pairing: PairingService | None = None
        self.peers: PeerService | None = None
        self.reach: BoxReach | None = None  # remote reach over tor, when built
        # The latest periodic integrity check (runtime), shown by the dashboard.
        self.integrity: IntegrityStatus | None = None
        # What the appliance found wrong with itself (front panel, clock), by name:
        # shown on the dashboard and in `systemctl status`.
        self.faults: dict[str, str] = {}
        self._on_unlock: list[Callable[[], Any]] = []
        self._on_change: list[Callable[[], Any]] = []

    # -- identity -------------------------------------------------------------

    @property
    def fingerprint(self) -> str | None:
        if self.keys is not None:
            return self.keys.fingerprint
        if self.phase is BoxPhase.LOCKED:
            return Keystore(self.config.keystore_path).fingerprint
        return None

    def initialise(
        self, entropy: bytes, passphrase: str, *, owner: str = "", **limits: int
    ) -> None:
        """Seal a new identity and open the archive (`strongroom init`, restores)."""
        self.open_with(self.seal_identity(entropy, passphrase, owner=owner, **limits))

    def seal_identity(
        self, entropy: bytes, passphrase: str, *, owner: str = "", **limits: int
    ) -> BoxKeys:
        """Seal a new identity in the keystore and return its keys; opens nothing.

        Argon2id takes about a second on a Pi: the web wizard runs this in a
        worker thread, then `open_with` on the loop. Raises KeystoreExists.
        """
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        Keystore.create(self.config.keystore_path, entropy, passphrase, owner=owner, **limits)
        return derive_box_keys(entropy)

    def keys_for(self, passphrase: str, owner: str | None = None) -> BoxKeys:
        """The keys any admin's passphrase unseals (Argon2id; fine in a worker thread).

        Raises identity.WrongPassphrase if the passphrase opens no slot.
        """
        return keys_from_passphrase(self.config, passphrase, owner)

    def keystore(self, **limits: int) -> Keystore:
        """The keystore file (slots are added and removed with the admins' accounts)."""
        return Keystore(self.config.keystore_path, **limits)

    def unlock(self, passphrase: str, owner: str | None = None) -> None:
        """Attended mode: raise identity.WrongPassphrase if the passphrase is wrong."""
        if self.phase is BoxPhase.READY:
            return
        self._open(self.keys_for(passphrase, owner))

    def open_with(self, keys: BoxKeys) -> None:
        """Open the archive with unsealed keys (on the loop thread: the on-unlock
        callbacks, such as starting the peer service, belong to the loop)."""
        if self.phase is BoxPhase.READY:
            return
        self._open(keys)

    def unlock_unattended(self) -> None:
        self._open(keys_from_keyfile(self.config))

    def _open(self, keys: BoxKeys) -> None:
        self.keys = keys
        self.archive = Archive.open(
            self.config.data_dir,
            keys.archive_key,
            keys.blob_key,
            keys.signing_key,
            clock=self.clock,
        )
        self.committer = GroupCommitter(self.archive)
        self.committer.start()
        self.readers = ReaderPool(self.archive)
        self.phase = BoxPhase.READY
        for callback in self._on_unlock:
            callback()
        self.changed()

    def require_archive(self) -> Archive:
        if self.archive is None:
            raise BoxLocked("the box is locked")
        return self.archive

    # -- events ---------------------------------------------------------------

    def on_unlock(self, callback: Callable[[], Any]) -> None:
        self._on_unlock.append(callback)

    def on_change(self, callback: Callable[[], Any]) -> None:
        """Called whenever something the panel or the UI shows may have changed."""
        self._on_change.append(callback)

    def changed(self) -> None:
        for callback in self._on_change:
            try:
                callback()
            except Exception:  # a display must never take the box down
                log.exception("state change listener failed")

    async def audit(
        self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None
    ) -> None:
        """Write an audit event (a log leaf) durably; silently nothing while locked."""
        if self.committer is None:
            return
        await self.committer.submit(writes.audit(actor, action, target, details))

    async def revoke_device(self, device_id: int, actor: str, reason: str) -> bool:
        """Revoke a phone: refused from its next frame, open sessions closed, event logged."""
        if self.committer is None:
            raise BoxLocked("the box is locked")
        committed = await self.committer.submit(writes.revoke_device(device_id, reason))
        if self.peers is not None:
            self.peers.revoke(device_id)
        if self.reach is not None:  # its onion-auth key goes too
            await self.reach.revoke(device_id)
        await self.audit(actor, "device.revoke", str(device_id), {"reason": reason})
        self.changed()
        return bool(committed.result)

    def health(self) -> Health:
        return read_health(self.config.data_dir)

    # -- lifecycle --------------------------------------------------------------

    async def stop(self) -> None:
        if self.readers is not None:
            self.readers.close()
            self.readers = None
        if self.committer is not None:
            await asyncio.to_thread(self.committer.stop)
            self.committer = None
        if self.archive is not None:
            with contextlib.suppress(Exception):
                self.archive.close()
            self.archive = None


__all__ = ["Box", "BoxLocked", "BoxPhase", "web"]
