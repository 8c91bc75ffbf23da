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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import sqlcipher3
from aiohttp import web

from strongroom.appliance.health import Health, read_health
from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.db import Connection, MigrationHook
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

# The box's fault (self.faults) once the group committer's thread has died.
COMMITTER_FAULT = "committer"
# And once the WAL checkpointer's thread has died (writes go on, slower).
CHECKPOINTER_FAULT = "checkpointer"


class BoxLocked(Exception):
    """The operation needs the unlocked archive."""


# How often a stop asks a migration under way to give up (Box.abandon_open).
INTERRUPT_EVERY_S = 0.05


class BoxBusy(Exception):
    """An unlock is already opening (perhaps migrating) the archive: not run twice."""


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
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the box was opened on
        self._on_unlock: list[Callable[[], Any]] = []
        self._on_change: list[Callable[[], Any]] = []
        # The unlock opening the archive in a worker thread (begin_open), if any; the
        # migration's connection while one runs, so that stop() can interrupt it.
        self.opening: asyncio.Task[None] | None = None
        self.migration: tuple[int, int] | None = None  # (schema found, target) meanwhile
        self._migrating_conn: Connection | None = None
        self._abandon_open = False
        # Told when an open on the caller's thread (the CLI's) starts a migration.
        self.on_migrate: MigrationHook | None = None
        self.open_failure: BaseException | None = None  # the last begin_open's, for the page

    # -- identity -------------------------------------------------------------

    @property
    def fingerprint(self) -> str | None:
        if self.keys is not None:
            return self.keys.fingerprint
        # While a migration runs (UPDATING) the keys are not the box's yet either:
        # the keystore's public copy keeps its mDNS name and address unchanged.
        if self.phase in (BoxPhase.LOCKED, BoxPhase.UPDATING):
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

    def begin_open(
        self, keys: BoxKeys, then: Callable[[], Awaitable[None]] | None = None
    ) -> asyncio.Task[None]:
        """Open the archive with unsealed keys in a worker thread; on the loop, what
        follows (`then`, e.g. the unlock's audit event, after the on-unlock callbacks).

        Opening runs the schema migrations an upgrade brings: minutes on a Pi with an
        SD card. Run on the loop they would freeze the web UI and the panel and starve
        systemd's watchdog, which would kill the box mid-migration at every start.
        While one runs the phase is UPDATING. The task belongs to the box (a closed
        browser tab does not cancel it); raise BoxBusy if one is already under way.
        """
        if self.opening is not None and not self.opening.done():
            raise BoxBusy("the archive is already being opened")
        self.open_failure = None
        self.opening = asyncio.create_task(self._open_off_loop(keys, then))
        self.opening.add_done_callback(self._opening_done)
        return self.opening

    def _opening_done(self, task: asyncio.Task[None]) -> None:
        # Whoever started it may be gone (a closed tab): the failure is kept for the
        # unlock page and logged here, by type only (the text may quote paths).
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.open_failure = exc
            log.error("opening the archive failed: %s", type(exc).__name__)
            self.changed()  # the panel and the status line say why (runtime_panel)

    async def open_off_loop(self, keys: BoxKeys) -> None:
        """begin_open, and wait for it (raises what opening raised)."""
        await asyncio.shield(self.begin_open(keys))

    async def _open_off_loop(
        self, keys: BoxKeys, then: Callable[[], Awaitable[None]] | None
    ) -> None:
        if self.phase is BoxPhase.READY:
            return
        loop = asyncio.get_running_loop()

        def migrating(found: int, target: int, conn: Connection) -> None:  # worker thread
            self._migrating_conn = conn
            loop.call_soon_threadsafe(self._show_migration, found, target)

        try:
            archive = await asyncio.to_thread(self._open_migrating, keys, migrating)
        except BaseException:
            if self.phase is BoxPhase.UPDATING:
                self.phase = BoxPhase.LOCKED
            raise
        finally:
            self._migrating_conn, self.migration = None, None
            self.changed()
        if self._abandon_open:  # the box stopped meanwhile: nothing may start now
            archive.close()
            self.phase = BoxPhase.LOCKED
            return
        self._opened(keys, archive)
        if then is not None:
            await then()

    def _show_migration(self, found: int, target: int) -> None:
        if self.phase is BoxPhase.LOCKED:
            self.phase, self.migration = BoxPhase.UPDATING, (found, target)
            log.warning("migrating the archive schema from %d to %d", found, target)
            self.changed()

    def _open_migrating(self, keys: BoxKeys, on_migrate: MigrationHook) -> Archive:
        """Worker thread: open, with the migration's connection left to abandon_open."""
        try:
            return self._open_archive(keys, on_migrate)
        finally:
            self._migrating_conn = None  # migrated (or failed): nothing left to interrupt

    def _open_archive(self, keys: BoxKeys, on_migrate: MigrationHook | None = None) -> Archive:
        return Archive.open(
            self.config.data_dir,
            keys.archive_key,
            keys.blob_key,
            keys.signing_key,
            clock=self.clock,
            on_migrate=on_migrate,
        )

    def _open(self, keys: BoxKeys) -> None:
        """On the caller's thread: the CLI, a restore, the first-run wizard (a new
        archive has nothing to migrate)."""
        self._opened(keys, self._open_archive(keys, self.on_migrate))

    def _opened(self, keys: BoxKeys, archive: Archive) -> None:
        self.keys = keys
        self.archive = archive
        self.committer = GroupCommitter(self.archive)
        self.committer.on_died = self._committer_died
        self.committer.on_checkpointer_died = self._checkpointer_died
        with contextlib.suppress(RuntimeError):  # no loop: an open on the CLI's thread
            self._loop = asyncio.get_running_loop()
        self.committer.start()
        self.readers = ReaderPool(self.archive)
        self.phase = BoxPhase.READY
        for callback in self._on_unlock:
            callback()
        self.changed()

    def _committer_died(self, why: str) -> None:
        """On the committer's dying thread: every write now fails at once (no phone
        hangs); the fault says so on the dashboard, `strongroom status` and
        `systemctl status`, and the front panel shows its error."""
        self._thread_died(COMMITTER_FAULT, why)

    def _checkpointer_died(self, why: str) -> None:
        """On the checkpointer's dying thread: writes go on, but the commit that takes
        the WAL past its bound copies it (seconds on a card): shown the same way."""
        self._thread_died(CHECKPOINTER_FAULT, why)

    def _thread_died(self, fault: str, why: str) -> None:
        self.faults[fault] = f"{why}; restart the box (systemctl restart strongroom)"
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody looks
                self._loop.call_soon_threadsafe(self.changed)

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

    @property
    def open_abandoned(self) -> bool:
        """The box is stopping and gave up an open under way (its failure is not damage)."""
        return self._abandon_open

    async def abandon_open(self) -> None:
        """At stop: a migration under way is interrupted (its step rolls back whole, the
        next start runs it again) rather than holding the stop for minutes."""
        task = self.opening
        if task is None or task.done():
            return
        self._abandon_open = True
        # sqlite3_interrupt only stops the statements running when it is called (a
        # step runs several, one after the other): asked again until the open gives up.
        while not task.done():
            if (conn := self._migrating_conn) is not None:
                # A failed step's open closes the connection before the worker thread
                # clears it: nothing left to interrupt, the task ends on its own.
                with contextlib.suppress(sqlcipher3.ProgrammingError):
                    conn.interrupt()
            await asyncio.wait({task}, timeout=INTERRUPT_EVERY_S)
        with contextlib.suppress(Exception):
            await task

    async def stop(self) -> None:
        await self.abandon_open()
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
