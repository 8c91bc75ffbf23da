"""Checking a directory an admin types in (a backup target, a backup to restore).

The box only ever backs up to, and restores from, a local path: a USB drive
mounted on the box or an SMB/NFS share mounted on the LAN. A path that does
not exist is almost always a drive that is not plugged in, so that is what
the message says.
"""

from __future__ import annotations

from pathlib import Path

from strongroom.web.i18n import N_

MAX_PATH_CHARS = 1000

NO_PATH = N_("Give the directory's path.")
NOT_ABSOLUTE = N_("Give an absolute path, such as /media/usb-backup.")
NOT_MOUNTED = N_("Nothing is mounted there: plug in the drive (or mount the share) and try again.")


def parse_directory(text: str) -> Path | str:
    """The directory `text` names, or the msgid of why it is refused.

    Absolute, without `..` (no climbing out of a mount point), and an existing
    directory. Blocking (it touches the file system): call it off the loop.
    """
    text = text.strip()
    if not text:
        return NO_PATH
    if len(text) > MAX_PATH_CHARS or "\x00" in text:
        return NOT_ABSOLUTE
    path = Path(text)
    if not path.is_absolute() or ".." in path.parts:
        return NOT_ABSOLUTE
    try:
        if not path.is_dir():
            return NOT_MOUNTED
    except OSError:  # a share that went away, a permission problem
        return NOT_MOUNTED
    return path
