"""Files a killed job leaves behind, named after the process that wrote them.

A job that writes a temporary file (a backup's database snapshot, an export's
unfinished bundle) puts its pid in the name; a later run removes the files of
processes that no longer run. Files of a live process are kept: a job started
from the web UI and one from the CLI at the same time must not delete each
other's work.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def remove_files_of_dead_processes(directory: Path, prefix: str, suffix: str) -> None:
    """Remove `<prefix><pid>...<suffix>` files in `directory` whose process is gone.

    A matching name without a pid after the prefix belongs to no process and goes too.
    """
    for path in directory.iterdir():
        name = path.name
        if len(name) <= len(prefix) + len(suffix):
            continue
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        middle = name[len(prefix) : len(name) - len(suffix)]
        digits = middle[: len(middle) - len(middle.lstrip("0123456789"))]
        if digits and pid_alive(int(digits)):
            continue
        path.unlink(missing_ok=True)
