"""The benchmark corpora (scripts/bench_corpus.py) are what the box itself would write.

`make bench` builds its 1M and 5M archives through a bulk op and build-only
connection settings (no WAL, no fsync, a big cache) because the box's own path
would take hours. That is only honest if the result is the same archive: here the
same signed records go once through the box's `writes.store_record` and once
through the bulk op, in batches grouped alike, with the clock fixed, and every
table of the two files (records, messages, conversations and their senders, log
leaves and nodes, signed heads, the FTS5 index's own shadow tables) must be equal
row for row; the bulk archive must pass verify_archive.

Run in a child interpreter (the scripts are not a package).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The start of each child: the scripts and the app importable, as `make bench` runs them.
_CHILD = """
import hashlib, json, os, sys
from pathlib import Path
sys.path.insert(0, "scripts")
sys.path.insert(0, "app")
import bench_archive as ba
import bench_corpus as bc

work = Path(sys.argv[1])
"""
# Tiny corpora (120 records) built by cached_archive itself: the same build path, in seconds.
_TINY = """
bc._BUILD_CHUNK = 60
"""


def run_child(script: str, work: Path) -> dict[str, Any]:
    """`script` after _CHILD in a child interpreter; the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD + script, str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


_RUN = """
from strongroom.archive import writes
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive

keys = ba.bench_keys()

def fixed_clock():
    return 1_800_000_000.0

def open_at(name):
    return Archive.open(work / name, keys.archive_key, keys.blob_key, keys.signing_key,
                        clock=fixed_clock)

def chunks():
    # Two phones, chunks alternating as in a corpus build; each commit holds two chunks.
    for commit in range(3):
        yield [
            (phone, ba.make_records(ba.phone_key(phone), 1_000 * (2 * commit + phone), 150,
                                    conversations=7, seed=7))
            for phone in (0, 1)
        ]

box, bulk = open_at("box"), open_at("bulk")
box_phones, bulk_phones = ba.add_phones(box, 2), ba.add_phones(bulk, 2)
bc._build_settings(bulk)
try:
    for commit in chunks():
        box.write_batch([
            writes.store_record(r, box_phones[p][0], box_phones[p][1])
            for p, records in commit for r in records
        ])
        bulk.write_batch([
            bc.bulk_store_messages(records, bulk_phones[p][0], bulk_phones[p][1])
            for p, records in commit
        ])
    bc._box_settings(bulk)
finally:
    bc._build_done()

def tables(conn):
    names = [n for (n,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {}
    for name in names:
        rows = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{name}"'))
        out[name] = [len(rows), hashlib.sha256("\\n".join(rows).encode()).hexdigest()]
    return out

report = verify_archive(bulk.conn, bulk.blobs, bytes(bulk.signing_key.verify_key),
                        witness=bulk.witness_head())
print(json.dumps({
    "box": tables(box.conn),
    "bulk": tables(bulk.conn),
    "journal": bulk.conn.execute("PRAGMA journal_mode").fetchone()[0],
    "verified": report.ok,
    "records": report.records,
    "problems": [str(p) for p in report.problems][:5],
}))
box.close()
bulk.close()
"""


def test_bulk_corpus_equals_what_the_box_writes(tmp_path: Path) -> None:
    result = run_child(_RUN, tmp_path)
    box, bulk = result["box"], result["bulk"]
    assert box["records"][0] == 900 and box["messages"][0] == 900
    assert box["messages_fts_data"][0] > 1, "the FTS index holds nothing"
    assert sorted(box) == sorted(bulk)
    differ = {name: (box[name], bulk[name]) for name in box if box[name] != bulk[name]}
    assert not differ, f"tables that differ between the box's path and the bulk op: {differ}"
    assert result["verified"], result["problems"]
    assert result["records"] == 900
    # The build's no-WAL setting does not outlive it: the file is the box's (WAL).
    assert result["journal"] == "wal"


_DURABLE = (
    _TINY
    + """
synced = []
real_fsync = os.fsync

def fsync(fd):
    # Which file, and whether the marker already vouched for it when it was synced.
    path = os.readlink(f"/proc/self/fd/{fd}")
    marker = work / f"archive-120-v{bc.SCHEMA_VERSION}" / "complete"
    synced.append((path, marker.exists()))
    real_fsync(fd)

os.fsync = fsync
data = bc.cached_archive(work, 120, log=lambda _: None)
print(json.dumps({"synced": synced, "data": str(data)}))
"""
)


def test_a_corpus_is_on_the_disk_before_its_complete_marker(tmp_path: Path) -> None:
    # The build runs with synchronous=OFF: without an fsync before the marker, a power
    # cut could leave a marker vouching for a torn archive every later run reuses.
    result = run_child(_DURABLE, tmp_path)
    corpus = Path(result["data"])
    assert (corpus / "complete").read_text() == "120\n"
    before_marker = {path for path, marked in result["synced"] if not marked}
    assert str(corpus / "data" / "archive.db") in before_marker
    assert str(corpus / "data") in before_marker  # its directory entry too


_UPGRADE = (
    _TINY
    + """
from strongroom.archive import db, schema

current = schema.SCHEMA_VERSION
older = current - 1

def at_schema(version):
    db.MIGRATIONS = schema.MIGRATIONS[:version]
    db.SCHEMA_VERSION = bc.SCHEMA_VERSION = version

at_schema(older)
bc.cached_archive(work, 120, log=lambda _: None)
at_schema(current)

def no_rebuild(*args):
    raise AssertionError("the corpus was built again")

bc._chunks = no_rebuild
logs = []
corpus = bc.cached_archive(work, 120, log=logs.append)
archive = ba.open_archive(corpus / "data")
try:
    records = archive.conn.execute("SELECT count(*) FROM records").fetchone()[0]
    version = db.schema_version(archive.conn)
finally:
    archive.close()
print(json.dumps({
    "corpus": corpus.name, "older": older, "current": current, "records": records,
    "version": version, "left": sorted(p.name for p in work.iterdir()),
    "info": bc.build_info(corpus), "complete": (corpus / "complete").exists(), "logs": logs,
}))
"""
)


def test_a_corpus_cached_at_an_older_schema_is_migrated_not_built_again(tmp_path: Path) -> None:
    # A new migration must not cost the next `make bench` a rebuild of its 5M corpus
    # (minutes): the cached one is migrated in place, as the box migrates at unlock.
    result = run_child(_UPGRADE, tmp_path)
    assert result["corpus"] == f"archive-120-v{result['current']}"
    assert result["left"] == [result["corpus"]]  # renamed, not copied
    assert result["complete"] and result["records"] == 120
    assert result["version"] == result["current"]
    assert result["info"]["migrated_from_schema"] == result["older"]
    assert result["info"]["written"] == 120  # the build's own figures are kept
    assert any("migrated" in line for line in result["logs"])
