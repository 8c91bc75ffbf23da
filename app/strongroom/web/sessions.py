"""Server-side sessions: the browser holds only a random id.

Every visitor gets a session (the wizard, the login form and the unlock page
need a CSRF token before anyone is logged in). Logging in *replaces* the
session with a new id, so an id planted in a victim's browser before login is
worthless after it (no session fixation). Sessions end after an idle period,
measured with an injectable clock so tests need not sleep.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SESSION_COOKIE = "sr_session"
DEFAULT_IDLE_TIMEOUT_S = 30 * 60.0
MAX_SESSIONS = 10_000  # anonymous visitors cannot grow memory without bound


@dataclass
class Session:
    id: str
    csrf_token: str
    created_at: float
    last_seen: float
    username: str | None = None
    role: str | None = None
    flashes: list[tuple[str, str]] = field(default_factory=list)
    # Per-session scratch space (the first-run wizard keeps its steps here).
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def logged_in(self) -> bool:
        return self.username is not None

    def flash(self, kind: str, msgid: str) -> None:
        """Queue a message (an untranslated msgid) for the next page shown."""
        self.flashes.append((kind, msgid))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    def __init__(
        self,
        *,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def new(self) -> Session:
        self._evict()
        now = self.clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> tuple[Session | None, bool]:
        """The live session for an id, touched; and whether it just expired."""
        if not session_id:
            return None, False
        session = self._sessions.get(session_id)
        if session is None:
            return None, False
        now = self.clock()
        if now - session.last_seen > self.idle_timeout_s:
            del self._sessions[session_id]
            return None, session.logged_in
        session.last_seen = now
        return session, False

    def log_in(self, old: Session, username: str, role: str) -> Session:
        """A fresh session (new id, new CSRF token) for a user; the old id dies."""
        self._sessions.pop(old.id, None)
        session = self.new()
        session.username = username
        session.role = role
        session.data = {k: v for k, v in old.data.items() if k == "wizard"}
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def end_user(self, username: str) -> None:
        """Log a user out everywhere (when an admin disables the account)."""
        for sid in [s.id for s in self._sessions.values() if s.username == username]:
            del self._sessions[sid]

    def _evict(self) -> None:
        now = self.clock()
        expired = [s.id for s in self._sessions.values() if now - s.last_seen > self.idle_timeout_s]
        for sid in expired:
            del self._sessions[sid]
        if len(self._sessions) >= MAX_SESSIONS:
            # Drop the oldest anonymous sessions first: they hold nothing of value.
            anonymous = sorted(
                (s for s in self._sessions.values() if not s.logged_in), key=lambda s: s.last_seen
            )
            for session in anonymous[: len(self._sessions) - MAX_SESSIONS + 1]:
                del self._sessions[session.id]

    def __len__(self) -> int:
        return len(self._sessions)
