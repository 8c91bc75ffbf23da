"""SIGKILL in the records-office jobs and a schema migration: nothing lost, nothing half-written.

Each test builds a real archive, hands it to `kill_jobs_child.py` (a separate
process opening it with keys derived from the box's entropy), kills that
process at a named point inside the job (the child prints `at POINT` and waits
there) or at a random moment, then reopens the archive here and checks what a
user would find after the power cut: the archive opens and verifies, every
record is either fully there or fully destroyed with its certificate, no
half-built export or backup passes for a finished one, and re-running the job
finishes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nacl.signing import SigningKey, VerifyKey

from archive_helpers import message, new_phone
from strongroom.archive import db, writes
from strongroom.archive.db import Connection
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.search import search_messages
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_open_archive
from strongroom.office import backup, restore, retention
from strongroom.office.errors import BackupError, NotABackup
from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.office.migrations import OFFICE_TABLES
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.office.verify_export import verify_bundle
from support.box import ArchiveBox as Box
from support.box import upload_blob
from support.records import attachment_fields, signed

CHILD = Path(__file__).with_name("kill_jobs_child.py")
DAY_MS = 86_400_000
OLD = 1_600_000_000_000  # 2020: long past any 30-day policy
OWNER = "maitre.durand"
SNAPSHOT_GLOB = ".backup-snapshot-*"


# -- the box, its records, and the child that gets killed ---------------------------------------


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path / "data", os.urandom(32))  # on the wall clock, as the child is


def opened(box: Box) -> contextlib.AbstractContextManager[Archive]:
    return box.opened()


def now_ms() -> int:
    return int(time.time() * 1000)


def scalar(archive: Archive, sql: str, *args: object) -> object:
    conn = archive.reader()
    try:
        return conn.execute(sql, args).fetchone()[0]
    finally:
        conn.close()


def store_messages(
    archive: Archive,
    phone: tuple[int, SigningKey],
    texts: list[str],
    *,
    conv: str,
    peer: str,
    at: int,
) -> list[int]:
    """Store messages in one batch; return their records.id, in order."""
    records = [
        message(phone[1], text, conv=conv, at=at + n, peer=peer) for n, text in enumerate(texts)
    ]
    archive.write_batch([writes.store_record(r, phone[0], OWNER) for r in records])
    return [
        int(str(scalar(archive, "SELECT id FROM records WHERE record_id = ?", r.record_id)))
        for r in records
    ]


@dataclass(frozen=True)
class Attached:
    record: int  # records.id
    sha256: bytes
    file_name: str


def attach(
    archive: Archive, phone: tuple[int, SigningKey], data: bytes, *, conv: str, peer: str, at: int
) -> Attached:
    """Upload a blob and store the attachment record that names it."""
    sha, file_name = upload_blob(archive, data)
    fields = attachment_fields(
        "m-1", sha, len(data), conv=conv, peer=peer, direction="in", sender=peer, at=at
    )
    record = signed(phone[1], fields)
    archive.write(writes.store_record(record, phone[0], OWNER))
    row = int(str(scalar(archive, "SELECT id FROM records WHERE record_id = ?", record.record_id)))
    return Attached(row, sha, file_name)


@dataclass
class Killed:
    lines: list[str]

    @property
    def finished(self) -> bool:
        """The job had returned (DONE) before the kill."""
        return "DONE" in self.lines


def kill_job(
    box: Box,
    pause: str,
    job: str,
    *args: str,
    trigger: Callable[[str], bool] | None = None,
    delay: float = 0.0,
) -> Killed:
    """Run the job in a child; SIGKILL it `delay` s after a line matches `trigger`.

    The child is killed anyway once it reaches its pause point (`at POINT`) or
    finishes (DONE); with no trigger and no pause point, it is expected to kill
    itself (the migration child does).
    """
    assert pause == "none" or trigger is None, "a paused job is killed at its pause point"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(box.data_dir), box.entropy.hex(), pause, job, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    lines: list[str] = []
    try:
        while line := proc.stdout.readline():
            lines.append(line.rstrip("\n"))
            if lines[-1] == "DONE" or lines[-1].startswith("at "):
                break
            if trigger is not None and trigger(lines[-1]):
                time.sleep(delay)
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines += proc.stdout.read().splitlines()
        stderr = proc.stderr.read()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
    assert proc.returncode == -signal.SIGKILL, f"the job ended on its own: {stderr}"
    if pause != "none":
        assert f"at {pause}" in lines, f"the job never reached {pause}: {lines[-3:]} {stderr}"
    return Killed(lines)


def assert_verifies(archive: Archive) -> None:
    report = verify_open_archive(archive)
    assert report.ok, report.problems


# -- 1. retention destruction ----------------------------------------------------------------------


@dataclass
class RetentionScene:
    due: dict[int, str | None]  # records.id -> its unique search word (None: an attachment)
    kept: dict[int, str]  # held, or not yet due: must never be touched
    blobs: list[Attached] = field(default_factory=list)


def build_retention_scene(box: Box) -> RetentionScene:
    with opened(box) as archive:
        phone = new_phone(archive, owner=OWNER)
        due_words = [f"dueq{n:04d}x" for n in range(240)]
        due_ids = store_messages(
            archive,
            phone,
            [f"Courrier {w} confidentiel" for w in due_words],
            conv="client-martin",
            peer="M. Martin",
            at=OLD,
        )
        blobs = [
            attach(
                archive, phone, os.urandom(40_000), conv="client-martin", peer="M. Martin", at=OLD
            )
            for _ in range(3)
        ]
        held_words = [f"heldq{n:03d}x" for n in range(20)]
        held_ids = store_messages(
            archive, phone, held_words, conv="client-bernard", peer="Mme Bernard", at=OLD
        )
        fresh_words = [f"freshq{n:03d}x" for n in range(20)]
        fresh_ids = store_messages(
            archive, phone, fresh_words, conv="client-petit", peer="M. Petit", at=now_ms() - DAY_MS
        )
        spec = PolicySpec("Courrier 30 jours", Duration(30, "days"), "record_date", "destroy")
        policy = int(archive.write(create_policy(spec, "admin")))
        archive.write(assign_policy("owner", OWNER, policy, "admin"))
        held_conv = int(
            str(scalar(archive, "SELECT id FROM conversations WHERE ref = 'client-bernard'"))
        )
        archive.write(
            place_hold(
                HoldSpec("conversation", "Litige en cours", conversation_id=held_conv), "dpo"
            )
        )
        plan = retention.find_due(archive.conn, now_ms())
        assert {i.record for i in plan.to_destroy} == set(due_ids) | {b.record for b in blobs}
    due: dict[int, str | None] = dict(zip(due_ids, due_words, strict=True))
    due.update({b.record: None for b in blobs})
    kept = dict(zip(held_ids + fresh_ids, held_words + fresh_words, strict=True))
    return RetentionScene(due, kept, blobs)


def certified_records(conn: Connection, box_key: bytes) -> dict[int, int]:
    """records.id -> destruction certificate id, checking each certificate is signed and logged."""
    certified: dict[int, int] = {}
    rows = conn.execute(
        "SELECT id, certificate, signature, log_index, record_count FROM destruction_certificates"
    ).fetchall()
    for cert_id, certificate, signature, log_index, count in rows:
        VerifyKey(box_key).verify(bytes(certificate), bytes(signature))
        document = json.loads(bytes(certificate))
        assert document["count"] == count == len(document["records"])
        event = conn.execute(
            "SELECT action, details FROM audit_events WHERE log_index = ?", (log_index,)
        ).fetchone()
        assert event is not None, f"certificate {cert_id} has no audit event"
        assert event[0] == "destruction" and json.loads(event[1])["certificate"] == cert_id
        for entry in document["records"]:
            assert entry["row_id"] not in certified, "a record was certified destroyed twice"
            certified[int(entry["row_id"])] = int(cert_id)
    return certified


def is_destroyed(conn: Connection, row_id: int, word: str | None) -> bool:
    """Whether a record is destroyed, failing if it is anything but fully one or the other."""
    body, signature, destroyed_at = conn.execute(
        "SELECT body, signature, destroyed_at FROM records WHERE id = ?", (row_id,)
    ).fetchone()
    derived = sum(
        int(
            conn.execute(f"SELECT count(*) FROM {table} WHERE record_id = ?", (row_id,)).fetchone()[
                0
            ]
        )
        for table in ("messages", "attachments", "receipts")
    )
    found = (
        []
        if word is None
        else [
            int(r[0])
            for r in conn.execute(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (f'"{word}"',)
            )
        ]
    )
    if destroyed_at is None:
        assert body is not None and signature is not None, f"record {row_id}: body gone, not marked"
        assert derived == 1, f"record {row_id} is intact but lost its message/attachment row"
        assert word is None or found == [row_id], f"record {row_id} is intact but not searchable"
        return False
    assert body is None and signature is None, f"record {row_id} is marked destroyed, body stays"
    assert derived == 0, f"record {row_id} is destroyed but its derived rows remain"
    assert found == [], f"record {row_id} is destroyed but full-text search still finds it"
    return True


def check_retention(archive: Archive, scene: RetentionScene) -> bool:
    """Check the all-or-nothing invariant; return whether the due records are destroyed."""
    assert_verifies(archive)
    conn = archive.reader()
    try:
        certified = certified_records(conn, bytes(archive.signing_key.verify_key))
        states = {r: is_destroyed(conn, r, w) for r, w in scene.due.items()}
        for row_id, destroyed in states.items():
            if destroyed:
                assert row_id in certified, f"record {row_id} destroyed without a certificate"
            else:
                assert row_id not in certified, f"a certificate names record {row_id}, still here"
        assert len(set(states.values())) == 1, "one destruction run committed only in part"
        for row_id, word in scene.kept.items():
            assert not is_destroyed(conn, row_id, word), f"held/not-due record {row_id} destroyed"
            assert row_id not in certified
        for blob in scene.blobs:
            salt, destroyed_at = conn.execute(
                "SELECT key_salt, destroyed_at FROM blobs WHERE sha256 = ?", (blob.sha256,)
            ).fetchone()
            assert (salt is None) == (destroyed_at is not None) == states[blob.record]
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
    finally:
        conn.close()
    return next(iter(states.values()))


RETENTION_KILLS = [
    pytest.param("erased", 0, id="pause-erased"),
    pytest.param("certified", 0, id="pause-certified"),
    pytest.param("committed", 0, id="pause-committed"),
    pytest.param("scrub", 0, id="pause-scrub"),
    pytest.param("none", 1, id="random-1"),
    pytest.param("none", 2, id="random-2"),
    pytest.param("none", 3, id="random-3"),
]


@pytest.mark.parametrize(("pause", "seed"), RETENTION_KILLS)
def test_a_killed_retention_run_destroys_all_or_nothing(box: Box, pause: str, seed: int) -> None:
    scene = build_retention_scene(box)
    now = now_ms()
    # The whole run takes about 0.1 s here: most random kills land inside it.
    delay = random.Random(seed).uniform(0.0, 0.12)
    trigger = "START".__eq__ if pause == "none" else None  # else: killed at the pause point
    killed = kill_job(box, pause, "retention", str(now), trigger=trigger, delay=delay)

    with opened(box) as archive:
        destroyed = check_retention(archive, scene)
        if pause in ("erased", "certified"):
            assert not destroyed, "an uncommitted destruction survived the power cut"
        if pause in ("committed", "scrub") or killed.finished:
            assert destroyed, "a committed destruction was lost"

        rerun = retention.run(archive, now)
        assert (rerun.destruction.certificate is None) == destroyed
        assert check_retention(archive, scene), "re-running retention did not finish the job"
        # The salts are gone, so these files are unreadable; but erasure promises
        # the files go too, and "a later run retries" (erasure.delete_blob_files).
        left = [b.file_name for b in scene.blobs if archive.blobs.path_for(b.file_name).exists()]
        assert left == [], f"files of destroyed attachments outlive the re-run: {left}"


# -- 2. export ------------------------------------------------------------------------------------


EXPORT_KILLS = [
    pytest.param("sealed", 0, id="pause-sealed"),
    pytest.param("audited", 0, id="pause-audited"),
    pytest.param("none", 1, id="random-1"),
    pytest.param("none", 2, id="random-2"),
    pytest.param("none", 3, id="random-3"),
]
EXPORTED = 120


@pytest.mark.parametrize(("pause", "seed"), EXPORT_KILLS)
def test_a_killed_export_never_leaves_a_finished_looking_bundle(
    box: Box, tmp_path: Path, pause: str, seed: int
) -> None:
    with opened(box) as archive:
        phone = new_phone(archive, owner=OWNER)
        texts = [f"Pièce n°{n} : « conclusions » — {'x' * (n % 50)}" for n in range(EXPORTED)]
        store_messages(archive, phone, texts, conv="client-martin", peer="M. Martin", at=OLD)
        attach(archive, phone, os.urandom(60_000), conv="client-martin", peer="M. Martin", at=OLD)
        store_messages(archive, phone, ["autre"], conv="client-petit", peer="M. Petit", at=OLD)
        conv = int(str(scalar(archive, "SELECT id FROM conversations WHERE ref = 'client-martin'")))
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    out = out_dir / "export.zip"
    # About five members per record: kill after a random one of them (or after DONE).
    members = random.Random(seed).randint(1, 5 * EXPORTED + 10)
    trigger = None if pause != "none" else f"member {members}".__eq__
    killed = kill_job(box, pause, "export", str(out), str(conv), trigger=trigger)

    with opened(box) as archive:
        assert_verifies(archive)
        logged = [
            json.loads(str(details))["file"]
            for (details,) in archive.conn.execute(
                "SELECT details FROM audit_events WHERE action = 'export'"
            )
        ]
        if out.exists():
            report = verify_bundle(out)
            assert report.ok, f"a bundle at the export path does not verify: {report.problems}"
            assert report.records == EXPORTED + 1
            assert logged == [out.name], "a finished export was not logged"
        else:
            assert not killed.finished, "the export returned but its file is missing"
        if pause in ("sealed", "audited"):
            assert not out.exists(), "the bundle was in place before it was renamed"
        if pause == "sealed":
            assert logged == [], "an export was logged before its bundle was finished"
        if pause == "audited":
            assert logged == [out.name]

        request = ExportRequest(
            ExportScope("conversation", conversation_id=conv), "me.durand", "Tribunal", "RG 24/1"
        )
        result = export_bundle(archive, request, out)
        assert result.records == EXPORTED + 1
        assert verify_bundle(out).ok
        assert sorted(p.name for p in out_dir.iterdir()) == [out.name], "leftovers after re-run"
        assert_verifies(archive)


# -- 3. backup ------------------------------------------------------------------------------------


BACKUP_KILLS = [
    pytest.param("blobs", True, 0, id="pause-blobs-older-set"),
    pytest.param("blobs", False, 0, id="pause-blobs-first-set"),
    pytest.param("renamed", True, 0, id="pause-renamed"),
    pytest.param("pruning", True, 0, id="pause-pruning"),
    pytest.param("none", True, 1, id="random-1-older-set"),
    pytest.param("none", False, 2, id="random-2-first-set"),
    pytest.param("none", True, 3, id="random-3-older-set"),
]


def record_ids(archive: Archive) -> set[bytes]:
    return {bytes(r[0]) for r in archive.conn.execute("SELECT record_id FROM records")}


def restored_ids(box: Box, target: Path, into: Path) -> tuple[str, set[bytes]]:
    """Restore the newest set of `target` into `into`; return the set's name and its records."""
    result = restore.run(target, box.entropy, into)
    restored = Box(into, box.entropy)
    with opened(restored) as archive:
        assert_verifies(archive)
        assert result.records == len(record_ids(archive))
        return result.set_name, record_ids(archive)


@pytest.mark.parametrize(("pause", "older_set", "seed"), BACKUP_KILLS)
def test_a_killed_backup_never_leaves_a_restorable_partial_set(
    box: Box, tmp_path: Path, pause: str, older_set: bool, seed: int
) -> None:
    target = tmp_path / "usb"
    target.mkdir()
    with opened(box) as archive:
        phone = new_phone(archive, owner=OWNER)
        store_messages(
            archive, phone, [f"note {n}" for n in range(60)], conv="c1", peer="A", at=OLD
        )
        attach(archive, phone, os.urandom(200_000), conv="c1", peer="A", at=OLD)
        old_name, old_ids = None, set()
        if older_set:
            old_name = backup.run(archive, target, box.keys.backup_key).set_dir.name
            old_ids = record_ids(archive)
        store_messages(
            archive, phone, [f"suite {n}" for n in range(30)], conv="c2", peer="B", at=OLD
        )
        for _ in range(3):
            attach(archive, phone, os.urandom(300_000), conv="c2", peer="B", at=OLD)
        new_ids = record_ids(archive)
    # The whole backup takes about 0.1 s here: most random kills land inside it.
    delay = random.Random(seed).uniform(0.0, 0.15)
    trigger = "START".__eq__ if pause == "none" else None  # else: killed at the pause point
    killed = kill_job(box, pause, "backup", str(target), "1", trigger=trigger, delay=delay)

    with opened(box) as archive:
        assert_verifies(archive)
        assert record_ids(archive) == new_ids
        try:
            name, restored = restored_ids(box, target, tmp_path / "restored-after-kill")
        except NotABackup:
            assert old_name is None, "the older complete set can no longer be restored"
            assert pause not in ("renamed", "pruning") and not killed.finished
        except BackupError as exc:
            pytest.fail(f"the newest set in the target is broken: {exc}")
        else:
            if name == old_name:
                assert restored == old_ids
                assert pause not in ("renamed", "pruning") and not killed.finished
            else:
                assert restored == new_ids, "restore accepted an incomplete set"
                assert pause != "blobs", "a set was in place before its blobs were copied"

        again = backup.run(archive, target, box.keys.backup_key, keep=1)
        name, restored = restored_ids(box, target, tmp_path / "restored-after-rerun")
        assert name == again.set_dir.name and restored == new_ids
        assert sorted(p.name for p in target.iterdir()) == ["pool", name], "target leftovers"
        live_blobs = {str(r[0]) for r in archive.conn.execute("SELECT file_name FROM blobs")}
        pool = {p.name for p in (target / "pool").rglob("*") if p.is_file()}
        assert pool == live_blobs, "the pool holds half-copied or unneeded files"
        # A stale snapshot is a whole copy of the database, with records that
        # retention may destroy later, left in the data dir for good.
        stale = sorted(p.name for p in box.data_dir.glob(SNAPSHOT_GLOB))
        assert stale == [], f"snapshots of killed backups stay in the data dir: {stale}"


# -- 4. schema migration --------------------------------------------------------------------------


V1_RECORDS = 40


def build_v1_archive(box: Box) -> None:
    """An old box: an archive created and filled by software that knew only migration 1."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", 1)
        with opened(box) as archive:
            phone = new_phone(archive, owner=OWNER)
            texts = [f"ancien message {n}" for n in range(V1_RECORDS)]
            store_messages(archive, phone, texts, conv="c1", peer="A", at=OLD)
    assert schema_state(box) == 1


def schema_state(box: Box) -> int:
    """The schema version on disk, failing unless the office tables match it exactly."""
    conn = db.connect(box.data_dir / "archive.db", box.keys.archive_key)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        version = db.schema_version(conn)
        tables = {
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        present = tables & set(OFFICE_TABLES)
        if version == 1:
            assert present == set(), f"version 1 with office tables {present}: half-migrated"
        else:
            # Each migration commits on its own: a kill may leave any whole version.
            assert 2 <= version <= SCHEMA_VERSION, f"unexpected schema version {version}"
            assert present == set(OFFICE_TABLES), "version 2 without all office tables"
            presets = conn.execute(
                "SELECT count(*) FROM retention_policies WHERE preset IS NOT NULL"
            ).fetchone()[0]
            assert presets == 4, "version 2 without the shipped policy presets"
        return version
    finally:
        conn.close()


def migration_steps(box: Box, scratch: Path) -> int:
    """How many SQLite progress callbacks migrating a copy of this archive takes."""
    shutil.copytree(box.data_dir, scratch)
    conn = db.connect(scratch / "archive.db", box.keys.archive_key)
    calls = [0]

    def count() -> int:
        calls[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        db.migrate(conn)
    finally:
        conn.close()
    return calls[0]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_killed_migration_leaves_the_old_or_the_new_schema(
    box: Box, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    build_v1_archive(box)
    steps = migration_steps(box, tmp_path / "scratch")
    versions: list[int] = []
    # Kill the same old box again and again while it is still at version 1:
    # at a random SQLite VM step (inside the DDL) or a random microsecond
    # (which can also land in the commit's write and fsync).
    for attempt in range(6):
        if attempt % 2 == 0:
            kill_job(box, "none", "migrate", "step", str(rng.randint(1, steps)))
        else:
            kill_job(box, "none", "migrate", "timer", str(rng.randint(0, 15_000)))
        versions.append(schema_state(box))
        if versions[-1] == SCHEMA_VERSION:
            break

    with opened(box) as archive:  # opening migrates what is left to migrate
        assert db.schema_version(archive.conn) == SCHEMA_VERSION
        # The search index survived too (migration 3 rebuilds it).
        assert len(search_messages(archive.conn, "ancien message")) == min(V1_RECORDS, 50)
        assert_verifies(archive)
        assert int(str(scalar(archive, "SELECT count(*) FROM records"))) == V1_RECORDS
        spec = PolicySpec("Après migration", Duration(1, "years"), "record_date", "destroy")
        archive.write(create_policy(spec, "admin"))  # the office tables are usable
    assert schema_state(box) == SCHEMA_VERSION
