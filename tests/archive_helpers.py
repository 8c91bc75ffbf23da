"""Helpers to write realistic records into an archive in tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from strongroom.archive import conv_keys, search, verify_records, writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.schema import MESSAGE_TEXT
from strongroom.archive.store import Archive
from support.records import signed_message as message

# Every message's text as the archive shows it (schema 8: read from the signed record).
MESSAGES_JOIN = "messages m JOIN records r ON r.id = m.record_id"
SELECT_TEXTS = f"SELECT {MESSAGE_TEXT} FROM {MESSAGES_JOIN}"
# Messages whose text matches what follows, e.g. COUNT_BY_TEXT + " = ?".
COUNT_BY_TEXT = f"SELECT count(*) FROM {MESSAGES_JOIN} WHERE {MESSAGE_TEXT}"


def open_with_keys(data: Path, keys: dict[str, bytes]) -> Archive:
    """The archive in `data`, opened (created if new) with conftest's `archive_keys`."""
    return Archive.open(data, keys["archive"], keys["blob"], SigningKey(keys["sign_seed"]))


def new_archive(data: Path) -> Archive:
    """A new archive in `data` with keys of its own, never opened again."""
    return Archive.open(data, os.urandom(32), os.urandom(32), SigningKey.generate())


@asynccontextmanager
async def committing(archive: Archive) -> AsyncIterator[GroupCommitter]:
    """The box's group committer (and its checkpointer thread) running on `archive`."""
    committer = GroupCommitter(archive)
    committer.start()
    try:
        yield committer
    finally:
        await asyncio.to_thread(committer.stop)


def new_phone(
    archive: Archive, owner: str = "maitre.durand", name: str = "Pixel"
) -> tuple[int, SigningKey]:
    key = SigningKey.generate()
    device_id = archive.write(
        writes.add_device(
            writes.NewDevice(
                sign_key=bytes(key.verify_key),
                noise_key=os.urandom(32),
                name=name,
                owner=owner,
                role="staff",
                method="test",
            )
        )
    )
    return int(device_id), key


__all__ = ["message", "new_phone"]  # message: a signed Record (support.records)


def assert_index_matches_text(conn: Connection) -> None:
    """FTS5's own check, then every index entry against the text the archive shows.

    FTS5's check against its content table ('integrity-check', 1) reads messages.text,
    which rows written since schema 8 leave NULL (their text is read from the signed
    record): the index is compared here, term, row and position, with one built
    afresh from MESSAGE_TEXT, folded as the feed folds it.
    """
    conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
    conn.execute(
        "CREATE VIRTUAL TABLE temp.text_check USING fts5(text,"
        ' tokenize="unicode61 remove_diacritics 2")'
    )
    try:
        conn.execute(
            "INSERT INTO temp.text_check(rowid, text) SELECT m.record_id,"
            f" replace(replace(replace(replace({MESSAGE_TEXT},"
            " 'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE')"
            " FROM messages m JOIN records r ON r.id = m.record_id"
            " WHERE m.record_id <= (SELECT indexed_upto FROM fts_state)"
        )
        for name, of in (("v_main", "main, messages_fts"), ("v_check", "temp, text_check")):
            conn.execute(f"CREATE VIRTUAL TABLE temp.{name} USING fts5vocab({of}, instance)")
        indexed = sorted(conn.execute("SELECT term, doc, offset FROM temp.v_main").fetchall())
        expected = sorted(conn.execute("SELECT term, doc, offset FROM temp.v_check").fetchall())
        assert indexed == expected
        assert indexed  # the comparison saw entries
    finally:
        for name in ("v_main", "v_check", "text_check"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


@contextmanager
def reads_before_text_once() -> Iterator[None]:
    """Search and verify as software before schema 8 ran them, on an archive built
    at an older schema: the text in messages.text only (no text_at column yet)."""
    with pytest.MonkeyPatch.context() as patch:
        for module, name in ((search, "_HIT_COLUMNS"), (verify_records, "_RECORD_ROWS")):
            sql = getattr(module, name)
            assert MESSAGE_TEXT in sql
            patch.setattr(module, name, sql.replace(MESSAGE_TEXT, "m.text"))
        with reads_before_conv_lsm():
            yield


# A conversation's keys read from records (records_conversation), as one "table".
RECORDS_AS_KEYS = "(SELECT conversation_id, sent_at, id AS record_id FROM records)"


@contextmanager
def reads_before_conv_lsm() -> Iterator[None]:
    """Readers of a conversation's records (conv_keys) on an archive built before
    schema 10: the keys read from the records table, in one arm."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_keys, "ARMS", (RECORDS_AS_KEYS,))
        yield


def keys_once_each(conn: Connection) -> None:
    """Every record's key in exactly one of the conversation index's two tables
    (conv_folded, conv_recent: archive/conv_keys.py), none left over."""
    keys = conn.execute(
        "SELECT conversation_id, sent_at, record_id FROM conv_folded"
        " UNION ALL SELECT conversation_id, sent_at, record_id FROM conv_recent"
    ).fetchall()
    assert len(keys) == len(set(keys))
    records = conn.execute("SELECT conversation_id, sent_at, id FROM records").fetchall()
    assert sorted(keys) == sorted(records)
