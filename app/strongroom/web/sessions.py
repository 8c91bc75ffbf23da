"""Server-side sessions: the browser holds only a random id.

Every visitor gets a session (the wizard, the login form and the unlock page
need a CSRF token before anyone is logged in). Logging in *replaces* the
session with a new id, so an id planted in a victim's browser before login is
worthless after it (no session fixation). Sessions end after an idle period,
measured with an injectable clock so tests need not sleep.

Sessions are looked up by the SHA-256 of their id. Logged-in sessions (never
their scratch data: the wizard keeps the entropy there) are saved with that
digest by `persist.py`, so a restart does not log everyone out and the file
holds no usable cookie.
"""

from __future__ import annotations

import hashlib
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


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(
        self,
        *,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}  # by digest(id)
        self.dirty = False  # a logged-in session changed since the last save

    def new(self) -> Session:
        self._evict()
        now = self.clock()
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen=now,
        )
        self._sessions[digest(session.id)] = session
        return session

    def get(self, session_id: str | None) -> tuple[Session | None, bool]:
        """The live session for an id, touched; and whether it just expired."""
        if not session_id:
            return None, False
        key = digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None, False
        now = self.clock()
        if now - session.last_seen > self.idle_timeout_s:
            del self._sessions[key]
            self.dirty |= session.logged_in
            return None, session.logged_in
        session.id = session_id  # a session restored from disk only knew the digest
        session.last_seen = now
        self.dirty |= session.logged_in
        return session, False

    def log_in(self, old: Session, username: str, role: str) -> Session:
        """A fresh session (new id, new CSRF token) for a user; the old id dies."""
        self._sessions.pop(digest(old.id), None)
        session = self.new()
        session.username = username
        session.role = role
        self.dirty = True
        session.data = {k: v for k, v in old.data.items() if k == "wizard"}
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(digest(session.id), None)
        self.dirty |= session.logged_in

    def end_user(self, username: str) -> None:
        """Log a user out everywhere (when an admin disables the account)."""
        for key in [k for k, s in self._sessions.items() if s.username == username]:
            del self._sessions[key]
            self.dirty = True

    def _evict(self) -> None:
        now = self.clock()
        expired = [k for k, s in self._sessions.items() if now - s.last_seen > self.idle_timeout_s]
        for key in expired:
            self.dirty |= self._sessions.pop(key).logged_in
        if len(self._sessions) >= MAX_SESSIONS:
            # Drop the oldest anonymous sessions first: they hold nothing of value.
            anonymous = sorted(
                (s for s in self._sessions.values() if not s.logged_in), key=lambda s: s.last_seen
            )
            for session in anonymous[: len(self._sessions) - MAX_SESSIONS + 1]:
                del self._sessions[digest(session.id)]

    def dump(self) -> list[dict[str, Any]]:
        """The logged-in sessions, by digest, without their scratch data or flashes."""
        now = self.clock()
        return [
            {
                "digest": key,
                "csrf_token": s.csrf_token,
                "created_at": s.created_at,
                "last_seen": s.last_seen,
                "username": s.username,
                "role": s.role,
            }
            for key, s in self._sessions.items()
            if s.logged_in and now - s.last_seen <= self.idle_timeout_s
        ]

    def load(self, rows: Any) -> None:
        if not isinstance(rows, list):
            return
        for row in rows[:MAX_SESSIONS]:
            try:
                key, username, role = str(row["digest"]), str(row["username"]), str(row["role"])
                session = Session(
                    id="",
                    csrf_token=str(row["csrf_token"]),
                    created_at=float(row["created_at"]),
                    last_seen=float(row["last_seen"]),
                    username=username,
                    role=role,
                )
            except (KeyError, TypeError, ValueError):
                continue  # a damaged row is dropped, the others kept
            self._sessions[key] = session

    def __len__(self) -> int:
        return len(self._sessions)
