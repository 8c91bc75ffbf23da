"""Replace a small file so that a power cut leaves either the old or the new contents."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from strongroom.durable import fsync_dir


def write_atomically(
    path: Path, data: bytes, mode: int = 0o600, *, exclusive: bool = False
) -> None:
    """Write `data` to `path` via a temporary file in the same directory.

    Sequence: write + fsync the temporary file, os.replace() it over `path`, then fsync the
    directory so the rename itself survives a power cut. The temporary file is removed if
    anything fails before the rename. With `exclusive`, the file is hard-linked into place
    instead, which fails with FileExistsError rather than replace an existing `path`.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        if exclusive:
            os.link(tmp_name, path)
            os.unlink(tmp_name)
        else:
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(directory)
