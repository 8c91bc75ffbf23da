"""Making file-system changes survive a power cut.

A rename or a new file is durable only once its directory is fsynced; every
module that moves files into place (keystore, blobs, backups) calls this.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """fsync a directory so the entries created or renamed in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
