"""Which foreign keys a migration step must re-check before it commits.

Migrations run with foreign_keys OFF (a step may copy a table others refer to), so
nothing stops a step from leaving a dangling reference: a copy that forgets rows, an
INSERT ... SELECT or UPDATE writing an id that does not exist, a DELETE of rows still
referred to. `PRAGMA foreign_key_check` over the whole file reads every row of every
table (8 s at 1M records, minutes at 5M on a Pi), so a step that only adds columns,
indexes or triggers must not pay it at unlock. We check exactly the tables a step
writes (itself or through the triggers it fires), and the tables whose foreign keys
point at them; a write we cannot name makes the whole file checked (wrong is worse
than slow).
"""

from __future__ import annotations

import re
import sqlite3

# A table name as SQL spells it, optionally schema-qualified and quoted.
_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|\w+)'
_NAME = rf"(?:{_IDENT}\s*\.\s*)?({_IDENT})"

# Statements that change rows or replace tables, each naming its target.
_WRITES = re.compile(
    r"\b(?:"
    rf"INSERT\s+(?:OR\s+\w+\s+)?INTO\s+{_NAME}"
    rf"|REPLACE\s+INTO\s+{_NAME}"
    rf"|UPDATE\s+(?:OR\s+\w+\s+)?(?!(?:OF|ON)\b){_NAME}"
    rf"|DELETE\s+FROM\s+{_NAME}"
    rf"|DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}"
    rf"|ALTER\s+TABLE\s+{_NAME}\s+RENAME\b(?:\s+TO\s+{_NAME})?"
    r")",
    re.IGNORECASE,
)
# Words that are not writes: trigger events (AFTER UPDATE OF ... ON t), referential
# actions (ON DELETE CASCADE), conflict clauses (INSERT OR REPLACE) and the
# replace() function.
_NOT_WRITES = re.compile(
    r"\b(?:BEFORE|AFTER|INSTEAD\s+OF)\s+(?:INSERT|UPDATE|DELETE)\b"
    r"|\bON\s+(?:DELETE|UPDATE)\b"
    r"|\bOR\s+REPLACE\b"
    r"|\bREPLACE\s*\(",
    re.IGNORECASE,
)
# What the reviewer asked to catch, and DELETE: anything left of these once the
# named writes and the non-writes are taken out is a write we could not name.
_ANY_WRITE = re.compile(r"\b(?:DROP\s+TABLE|INSERT|UPDATE|RENAME|REPLACE|DELETE)\b", re.IGNORECASE)
# Comments and string literals hold words, not statements.
_NOISE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.DOTALL)

EVERY_TABLE = None


def _unquote(name: str) -> str:
    if name[0] in '"`[':
        return name[1:-1]
    return name


def written_tables(script: str) -> set[str] | None:
    """Lower-case names of the tables `script` writes, or None if one cannot be named."""
    sql = _NOISE.sub(" ", script)
    names: set[str] = set()
    for match in _WRITES.finditer(sql):
        names.update(_unquote(g).lower() for g in match.groups() if g)
    rest = _NOT_WRITES.sub(" ", _WRITES.sub(" ", sql))
    if _ANY_WRITE.search(rest):
        return EVERY_TABLE
    return names


def _with_trigger_writes(conn: sqlite3.Connection, written: set[str] | None) -> set[str] | None:
    """`written` and what the triggers on those tables write in turn (an UPDATE of
    messages feeds the full-text index through one), until nothing new is added."""
    if not written:
        return written
    triggers = [
        (str(table).lower(), str(sql))
        for table, sql in conn.execute(
            "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
        )
    ]
    done: set[str] = set()
    while pending := [t for t in triggers if t[0] in written and t[1] not in done]:
        for _, sql in pending:
            done.add(sql)
            more = written_tables(sql)
            if more is EVERY_TABLE:
                return EVERY_TABLE
            written |= more
    return written


def dangling_reference(conn: sqlite3.Connection, script: str) -> str | None:
    """The first table left with a dangling reference by `script` (just run), or None."""
    written = _with_trigger_writes(conn, written_tables(script))
    if written is EVERY_TABLE:
        row = conn.execute("PRAGMA foreign_key_check").fetchone()
        return None if row is None else str(row[0])
    if not written:
        return None
    tables = [
        str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    for table in tables:
        parents = {
            str(fk[2]).lower()
            for fk in conn.execute("SELECT * FROM pragma_foreign_key_list(?)", (table,))
        }
        # A written table's own references, and references into a written table.
        if parents and (table.lower() in written or parents & written):
            row = conn.execute("SELECT * FROM pragma_foreign_key_check(?)", (table,)).fetchone()
            if row is not None:
                return str(row[0])
    return None
