"""Wrong passphrases: a growing back-off per account *and* address.

Each (account, client address) pair has its own counter, so one person's typos
never lock a colleague out, not even one behind the same office router, and a
guesser at another desk does not lock the real owner out either. The first
FREE_FAILURES mistakes cost nothing; every further one locks that pair for
twice as long as the last (1 min, 2, 4, … capped at 1 h). A success clears the
pair; a pair quiet for a day starts afresh. Guessing stays slow on top of this:
every try is an Argon2id run.

The counters are kept with the web sessions (`persist.py`), so pulling the
plug does not reset them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strongroom.web.i18n import Translator

FREE_FAILURES = 4
BASE_LOCK_S = 60.0
MAX_LOCK_S = 3600.0
FORGET_AFTER_S = 24 * 3600.0
MAX_ENTRIES = 10_000  # a flood of made-up names cannot grow memory without bound
_SEP = "\n"  # never in a username (normalised) nor in an address


@dataclass
class _Failures:
    count: int
    last_at: float
    locked_until: float = 0.0


class Throttle:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._entries: dict[str, _Failures] = {}
        self.dirty = False

    @staticmethod
    def key(account: str, address: str) -> str:
        return f"{account}{_SEP}{address}"

    def wait_s(self, account: str, address: str) -> float:
        """Seconds until this account may be tried again from this address (0: now)."""
        entry = self._entries.get(self.key(account, address))
        return 0.0 if entry is None else max(0.0, entry.locked_until - self.clock())

    def failed(self, account: str, address: str) -> float:
        """Count a mistake; return how long the pair is now locked (0 if not)."""
        now = self.clock()
        key = self.key(account, address)
        entry = self._entries.get(key)
        if entry is None or now - entry.last_at > FORGET_AFTER_S:
            entry = self._entries[key] = _Failures(0, now)
            self._evict()
        entry.count += 1
        entry.last_at = now
        lock = 0.0
        if entry.count > FREE_FAILURES:
            lock = min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (entry.count - FREE_FAILURES - 1))
            entry.locked_until = now + lock
        self.dirty = True
        return lock

    def succeeded(self, account: str, address: str) -> None:
        if self._entries.pop(self.key(account, address), None) is not None:
            self.dirty = True

    def forgive(self, account: str) -> None:
        """An admin reset this account's login: its counters start afresh everywhere."""
        prefix = account + _SEP
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
            self.dirty = True

    def _evict(self) -> None:
        if len(self._entries) > MAX_ENTRIES:
            oldest = sorted(self._entries, key=lambda k: self._entries[k].last_at)
            for key in oldest[: len(self._entries) - MAX_ENTRIES]:
                del self._entries[key]

    # -- persistence ---------------------------------------------------------------

    def dump(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [
            {"key": k, "count": e.count, "last_at": e.last_at, "locked_until": e.locked_until}
            for k, e in self._entries.items()
            if now - e.last_at <= FORGET_AFTER_S
        ]

    def load(self, rows: Any) -> None:
        if not isinstance(rows, list):
            return
        for row in rows:
            try:
                key = str(row["key"])
                entry = _Failures(int(row["count"]), float(row["last_at"]))
                entry.locked_until = float(row["locked_until"])
            except (KeyError, TypeError, ValueError):
                continue  # a damaged row is dropped, the others kept
            self._entries[key] = entry
        self._evict()


def wait_minutes(seconds: float) -> int:
    """Whole minutes to tell the person (at least 1)."""
    return max(1, int(-(-seconds // 60)))


def locked_message(translate: Translator, seconds: float) -> str:
    return translate.ngettext(
        "Too many wrong passphrases for this account from this computer: try again in "
        "%(num)s minute.",
        "Too many wrong passphrases for this account from this computer: try again in "
        "%(num)s minutes.",
        wait_minutes(seconds),
    )
