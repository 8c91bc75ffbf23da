"""What the reach helper does to tor's files: the include file, the .auth files, the reload.

Runs with tor's privileges (the helper's unit), never in the box's service. Every
write is atomic (write, fsync, rename) so tor never reads half a file, and
every change ends with a reload (SIGHUP): tor re-reads its configuration and
the `authorized_clients/` directory, and republishes the descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strongroom.identity.atomic_file import write_atomically
from strongroom.reach.archived_key import check_key_file
from strongroom.reach.keys import (
    ClientAuthKey,
    ReachKeyError,
    check_client_name,
    check_onion,
    service_auth_line,
)
from strongroom.reach.torrc import ServiceConfig, service_conf

log = logging.getLogger(__name__)

# tor may have to start first (reach on: strongroom-reach-tor.service starts it):
# --verify-config, then the start, take a few seconds on a Raspberry Pi.
HOSTNAME_WAIT_S = 30.0
# The .auth file of a key nobody holds (see `enable`); not a valid device name.
SENTINEL = "no-phone"


class ReachHelperError(Exception):
    """The helper could not do what was asked (the message says why, for the admin)."""


def _is_tor(pid: int) -> bool:
    """Whether `pid` is a tor process: its command name (or executable) says "tor".

    A process we may not look at counts as tor. On the appliance the helper runs as
    debian-tor with ProtectProc=invisible and no capabilities, and tor, started as
    root then switched to debian-tor, is not dumpable: its /proc entry is hidden
    from the helper, yet the kernel lets the helper signal it (same user). Without
    CAP_KILL the signal can only reach debian-tor's own processes, and there only
    tor runs as debian-tor (the helper's own pid is refused before this)."""
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "comm").read_text(encoding="utf-8", errors="replace").strip() == "tor":
            return True
        return Path(os.readlink(proc / "exe")).name == "tor"
    except PermissionError:
        return True
    except FileNotFoundError:
        # Hidden (hidepid=invisible) or gone: a pid that is gone is not signalled
        # (pidfd_send_signal raises ProcessLookupError), so only a hidden one is.
        return True
    except OSError:
        return False


def sighup_from_pidfile(pidfile: Path) -> Callable[[], None]:
    """Reload tor by SIGHUP to the pid in its PidFile (Debian: /run/tor/tor.pid).

    tor not running (no pid file: tor removes it when it stops; or a stale one)
    is not an error: on the appliance tor runs only while reach is on, and it
    reads these same files when strongroom-reach-tor.service starts it.

    A stale pid file may name a pid the kernel has since given to another process
    (or to this helper): the signal goes only to a process that is tor, through a
    pidfd opened before the check, so a pid reused between the check and the signal
    is not signalled either (the signal then reaches nobody)."""

    def reload() -> None:
        try:
            pid = int(pidfile.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ReachHelperError(f"could not reload tor ({pidfile}): {exc}") from exc
        if pid <= 0 or pid == os.getpid():
            raise ReachHelperError(f"could not reload tor ({pidfile}): bad pid {pid}")
        try:
            pidfd = os.pidfd_open(pid)
        except (ProcessLookupError, OverflowError):
            return  # stale: no such process (or a pid no process can have)
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # above pid_max
                return
            raise ReachHelperError(f"could not reload tor ({pidfile}): {exc}") from exc
        try:
            if not _is_tor(pid):
                log.warning("tor's pid file %s names pid %s, which is not tor", pidfile, pid)
                return
            signal.pidfd_send_signal(pidfd, signal.SIGHUP)
        except ProcessLookupError:
            return
        except OSError as exc:
            raise ReachHelperError(f"could not reload tor ({pidfile}): {exc}") from exc
        finally:
            os.close(pidfd)

    return reload


@dataclass
class TorFiles:
    service: ServiceConfig
    conf_path: Path  # the file tor's torrc %includes
    reload: Callable[[], None]
    hostname_wait_s: float = HOSTNAME_WAIT_S  # how long `enable` waits for tor's key

    @property
    def clients_dir(self) -> Path:
        return self.service.hs_dir / "authorized_clients"

    def _write(self, path: Path, text: str, mode: int = 0o600) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # latin-1 round-trips the raw bytes of a key file; config text is ASCII.
        write_atomically(path, text.encode("latin-1"), mode)

    def secret_key(self) -> bytes | None:
        """tor's hs_ed25519_secret_key file, for the box to keep in its (encrypted) archive."""
        try:
            return check_key_file((self.service.hs_dir / "hs_ed25519_secret_key").read_bytes())
        except (OSError, ValueError):
            return None

    def install_key(self, data: bytes) -> None:
        """Put back a kept secret key (a restored box): tor derives the address from it."""
        check_key_file(data)
        if self.enabled():
            raise ReachHelperError("turn remote reach off before putting back a key")
        self.service.hs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("hostname", "hs_ed25519_public_key"):
            (self.service.hs_dir / name).unlink(missing_ok=True)
        self._write(self.service.hs_dir / "hs_ed25519_secret_key", data.decode("latin-1"))

    def enable(self, *, undo: bool = True) -> str:
        """Turn the onion service on; the onion address once tor has made its key.

        If tor cannot be reloaded or never writes the key (tor does not start), the
        include file is put back to off when `undo` and it was off before: otherwise
        it would say on while the box's own setting, which changes only on success,
        says off, and tor would be started with a service the box does not serve."""
        was_on = self.enabled()
        # tor refuses a HiddenServiceDir readable by others; it makes it if absent.
        self.service.hs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.clients_dir.mkdir(exist_ok=True, mode=0o700)
        sentinel = self.clients_dir / f"{SENTINEL}.auth"
        if not sentinel.exists():
            # With no .auth file at all tor serves the onion to ANYONE (client auth
            # off), e.g. once the last phone is revoked. A client whose private key
            # is thrown away at once keeps authorisation on with zero phones.
            self._write(sentinel, service_auth_line(ClientAuthKey.generate().public_b32))
        self._write(self.conf_path, service_conf(self.service), 0o644)
        try:
            self.reload()
            return self.wait_onion(self.hostname_wait_s)
        except ReachHelperError as exc:
            if was_on or not undo:
                raise
            self._write(self.conf_path, service_conf(None), 0o644)
            with contextlib.suppress(ReachHelperError):  # tor is stopped or failing anyway
                self.reload()
            raise ReachHelperError(f"{exc}; remote reach stays off") from exc

    def disable(self) -> None:
        """Turn it off. The keys stay: turned on again, the box keeps its address."""
        self._write(self.conf_path, service_conf(None), 0o644)
        self.reload()

    def rotate(self) -> str:
        """A new onion address (the old one leaked, or is flooded): the service's keys are
        thrown away and tor makes new ones. Phones keep their client keys but must be
        paired again to learn the new address. Only while the service is on."""
        if not self.enabled():
            raise ReachHelperError("turn remote reach on before changing its address")
        old = self.onion()
        self._write(self.conf_path, service_conf(None), 0o644)
        self.reload()
        for name in ("hostname", "hs_ed25519_public_key", "hs_ed25519_secret_key"):
            (self.service.hs_dir / name).unlink(missing_ok=True)
        onion = self.enable(undo=False)  # reach stays on, as the box's setting says
        if onion == old:
            raise ReachHelperError("tor kept the old address")
        return onion

    def enabled(self) -> bool:
        try:
            return "HiddenServiceDir" in self.conf_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False

    def onion(self) -> str | None:
        try:
            return check_onion((self.service.hs_dir / "hostname").read_text("ascii").strip())
        except (OSError, ValueError):
            return None

    def wait_onion(self, timeout_s: float = HOSTNAME_WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while (onion := self.onion()) is None:
            if time.monotonic() > deadline:
                raise ReachHelperError("tor did not create the onion service's key")
            time.sleep(0.1)
        return onion

    @staticmethod
    def _phone_name(name: str) -> None:
        check_client_name(name)
        if name == SENTINEL:
            raise ReachKeyError("that client name is reserved")

    def authorize(self, name: str, public_b32: str) -> None:
        """Let one phone (its x25519 public key) reach the service."""
        self._phone_name(name)
        self._write(self.clients_dir / f"{name}.auth", service_auth_line(public_b32))
        self.reload()

    def deauthorize(self, name: str) -> bool:
        """Remove one phone's .auth file; True if it existed. Reloads tor either way:
        tor then publishes a descriptor that the removed key can no longer decrypt."""
        self._phone_name(name)
        path = self.clients_dir / f"{name}.auth"
        existed = path.exists()
        path.unlink(missing_ok=True)
        self.reload()
        return existed

    def clients(self) -> list[str]:
        if not self.clients_dir.is_dir():
            return []
        return sorted(p.stem for p in self.clients_dir.glob("*.auth") if p.stem != SENTINEL)
