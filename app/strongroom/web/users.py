"""Web UI accounts: who may log in, with which role, and their password hashes.

Passwords (passphrases) are hashed with Argon2id through PyNaCl
(`nacl.pwhash.argon2id.str`, which stores its own parameters, so the cost can
be raised later without breaking existing hashes). The rule for a passphrase
is the one the CLI applies to the admin passphrase: at least 12 characters,
and more than one kind of character unless it is 20 characters or longer.
Rows live in the archive's `users` table; every change goes through a write
op, so it is durable and ordered with the rest of the box's writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import nacl.pwhash

from strongroom.archive.db import Connection
from strongroom.archive.errors import RecordRejected
from strongroom.archive.store import Archive, Txn, WriteOpOf

if TYPE_CHECKING:
    from strongroom.box import Box

ROLES: tuple[str, ...] = ("admin", "archivist", "auditor")
MIN_PASSPHRASE_CHARS = 12
LONG_PASSPHRASE_CHARS = 20
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PassphraseProblem(StrEnum):
    """Why a passphrase is refused (stable codes the UI translates)."""

    TOO_SHORT = "too_short"
    ONE_CLASS = "one_class"


def passphrase_problem(passphrase: str) -> PassphraseProblem | None:
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        return PassphraseProblem.TOO_SHORT
    classes = sum(
        (
            any(c.islower() for c in passphrase),
            any(c.isupper() for c in passphrase),
            any(c.isdigit() for c in passphrase),
            any(not c.isalnum() for c in passphrase),
        )
    )
    if classes < 2 and len(passphrase) < LONG_PASSPHRASE_CHARS:
        return PassphraseProblem.ONE_CLASS
    return None


def normalise_username(username: str) -> str | None:
    """The stored form of a username (lower case), or None if it is not acceptable."""
    name = username.strip().lower()
    return name if _USERNAME.match(name) else None


class UserExists(RecordRejected):
    """Another account already has this username."""


class UnknownUser(RecordRejected):
    """No account with this username."""


class BadUserInput(ValueError):
    """Username, role or passphrase refused before anything was written."""


@dataclass(frozen=True)
class PasswordHasher:
    """Argon2id cost; tests use the minimum, the box libsodium's interactive preset."""

    opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE

    def hash(self, password: str) -> bytes:
        return nacl.pwhash.argon2id.str(
            password.encode("utf-8"), opslimit=self.opslimit, memlimit=self.memlimit
        )

    @staticmethod
    def verify(password_hash: bytes, password: str) -> bool:
        try:
            return bool(nacl.pwhash.argon2id.verify(password_hash, password.encode("utf-8")))
        except (nacl.exceptions.InvalidkeyError, nacl.exceptions.RuntimeError):
            return False


DEFAULT_HASHER = PasswordHasher()
# A hash to verify against when the username is unknown, so that the response
# takes as long for "no such user" as for "wrong password".
_DUMMY_HASH_CACHE: dict[PasswordHasher, bytes] = {}


def dummy_hash(hasher: PasswordHasher) -> bytes:
    if hasher not in _DUMMY_HASH_CACHE:
        _DUMMY_HASH_CACHE[hasher] = hasher.hash("no such user, no such password")
    return _DUMMY_HASH_CACHE[hasher]


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password_hash: bytes
    created_at: int
    disabled: bool


def _user(row: tuple[Any, ...]) -> User:
    return User(int(row[0]), str(row[1]), str(row[2]), bytes(row[3]), int(row[4]), bool(row[5]))


_COLUMNS = "id, username, role, password_hash, created_at, disabled"


def get_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM users WHERE username = ?",  # noqa: S608 - fixed columns
        (username,),
    ).fetchone()
    return None if row is None else _user(row)


def list_users(conn: Connection) -> list[User]:
    return [
        _user(row)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM users ORDER BY username"  # noqa: S608 - fixed columns
        )
    ]


def check_new_user(username: str, password: str, role: str) -> str:
    """Validate inputs; return the normalised username or raise BadUserInput."""
    name = normalise_username(username)
    if name is None:
        raise BadUserInput("username")
    if role not in ROLES:
        raise BadUserInput("role")
    problem = passphrase_problem(password)
    if problem is not None:
        raise BadUserInput(problem.value)
    return name


def insert_user_op(username: str, role: str, password_hash: bytes) -> WriteOpOf[int]:
    """Write op: add an account (username already normalised, hash already computed)."""

    def op(txn: Txn) -> int:
        if txn.conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise UserExists(f"user {username!r} already exists")
        cur = txn.conn.execute(
            "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, role, password_hash, txn.at_ms),
        )
        return int(cur.lastrowid or 0)

    return op


def set_disabled_op(username: str, disabled: bool) -> WriteOpOf[None]:
    def op(txn: Txn) -> None:
        cur = txn.conn.execute(
            "UPDATE users SET disabled = ? WHERE username = ?", (1 if disabled else 0, username)
        )
        if cur.rowcount == 0:
            raise UnknownUser(f"no user {username!r}")

    return op


def create_user(
    archive_or_box: Archive | Box,
    username: str,
    password: str,
    role: str,
    *,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> int:
    """Create an account now (CLI, tests); blocking. Raise BadUserInput or UserExists."""
    archive = archive_or_box if isinstance(archive_or_box, Archive) else None
    if archive is None:
        archive = archive_or_box.require_archive()  # type: ignore[union-attr]
    name = check_new_user(username, password, role)
    return int(archive.write(insert_user_op(name, role, hasher.hash(password))))


def set_password_op(username: str, password_hash: bytes) -> WriteOpOf[None]:
    """Write op: a new passphrase hash (own change, or an admin's reset)."""

    def op(txn: Txn) -> None:
        cur = txn.conn.execute(
            "UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, username)
        )
        if cur.rowcount == 0:
            raise UnknownUser(f"no user {username!r}")

    return op
