"""The removable drives plugged into the box, so nobody has to type a Linux path.

A USB drive is mounted under /media (by udisks/usbmount, one level or under
/media/<user>/), /run/media/<user>/ or /mnt. Only mount points count: an empty
directory left behind by an unplugged drive is not offered. Tests pass their own
roots and `mounts_only=False` (no real drive to plug in on a test machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOTS = (Path("/media"), Path("/run/media"), Path("/mnt"))
KEYFILE_NAME = "strongroom-unlock.key"
BACKUP_DIR_NAME = "strongroom-backups"
MAX_DRIVES = 20


@dataclass(frozen=True)
class Drive:
    path: Path
    label: str  # the mount point's last component, as the drive was named
    free: int
    total: int
    writable: bool


def _candidates(root: Path, mounts_only: bool) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return found
    for entry in entries:
        if not mounts_only or os.path.ismount(entry):
            found.append(entry)
            continue
        try:  # /media/<user>/<label>
            found.extend(p for p in sorted(entry.iterdir()) if p.is_dir() and os.path.ismount(p))
        except OSError:
            continue
    return found


def removable_drives(roots: tuple[Path, ...], *, mounts_only: bool = True) -> list[Drive]:
    """Drives plugged in now (blocking: call it off the loop)."""
    drives: list[Drive] = []
    for root in roots:
        for path in _candidates(root, mounts_only):
            try:
                stats = os.statvfs(path)
            except OSError:
                continue
            drives.append(
                Drive(
                    path=path,
                    label=path.name,
                    free=stats.f_bavail * stats.f_frsize,
                    total=stats.f_blocks * stats.f_frsize,
                    writable=os.access(path, os.W_OK),
                )
            )
    return drives[:MAX_DRIVES]


def chosen(drives: list[Drive], posted: str) -> Drive | None:
    """The listed drive a form names (never an arbitrary path typed into the form)."""
    return next((d for d in drives if str(d.path) == posted), None)
