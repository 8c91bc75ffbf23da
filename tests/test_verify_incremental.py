"""Incremental verify: new entries since the last verified head, a consistency proof to
it, and a rotating sample of the older log; every run kept in `verifications`."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import db, writes
from strongroom.archive.schema import MIGRATIONS, SCHEMA_VERSION
from strongroom.archive.store import Archive
from strongroom.archive.verify_incremental import SAMPLE_RUNS
from strongroom.archive.verify_runs import latest, run_verification, whole_coverage

OWNER = "maitre.durand"


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def fill(archive: Archive, key: SigningKey, device: int, count: int, word: str) -> None:
    archive.write_batch(
        [writes.store_record(message(key, f"{word} {i}"), device, OWNER) for i in range(count)]
        + [writes.audit("admin", "export", f"{word}-{i}") for i in range(2)]
    )


def sql(archive: Archive, keys: dict[str, bytes], statement: str, args: tuple[object, ...]) -> int:
    """Tamper as someone holding the key would: straight SQL on the file."""
    with closing(db.connect(archive.path, keys["archive"])) as conn:
        return int(conn.execute(statement, args).rowcount)


def tamper_record_at(archive: Archive, keys: dict[str, bytes], lo: int, hi: int) -> int:
    """Change the signed body of the first record whose leaf is in [lo, hi)."""
    row = archive.conn.execute(
        "SELECT id, log_index FROM records WHERE log_index >= ? AND log_index < ?"
        " ORDER BY log_index LIMIT 1",
        (lo, hi),
    ).fetchone()
    assert row is not None, (lo, hi)
    changed = sql(
        archive,
        keys,
        "UPDATE records SET body = CAST(replace(CAST(body AS TEXT), 'x', 'y') AS BLOB),"
        " signature = zeroblob(64) WHERE id = ?",
        (int(row[0]),),
    )
    assert changed == 1
    return int(row[1])


@pytest.fixture
def box(archive: Archive) -> tuple[Archive, SigningKey, int]:
    device, key = new_phone(archive, owner=OWNER)
    fill(archive, key, device, 300, "ancien")
    return archive, key, device


def test_an_incremental_run_checks_what_is_new_and_one_slice_of_the_rest(
    box: tuple[Archive, SigningKey, int],
) -> None:
    archive, key, device = box
    clock = Clock()
    report, first = run_verification(archive, "incremental", clock)
    # Nothing verified yet: the first run is a full one, from the empty tree.
    assert report.ok, report.problems
    assert (first.kind, first.from_size, first.records) == ("full", 0, 300)
    size = first.tree_size
    fill(archive, key, device, 40, "nouveau")
    report, run = run_verification(archive, "incremental", clock)
    assert report.ok, report.problems
    assert run.kind == "incremental" and run.ok
    assert run.from_size == size and run.tree_size == size + 42
    slice_ = -(-size // SAMPLE_RUNS)
    assert (run.sample_from, run.sample_to) == (0, slice_)
    sampled = archive.conn.execute(
        "SELECT count(*) FROM records WHERE log_index < ?", (slice_,)
    ).fetchone()[0]
    assert run.records == 40 + sampled < 300  # not the whole archive again
    assert latest(archive.conn) == run
    # The next run starts from this one's head, and the next slice.
    report, after = run_verification(archive, "incremental", clock)
    assert report.ok and after.from_size == run.tree_size
    # (The slice is 1/SAMPLE_RUNS of the older log, which grew.)
    assert (after.sample_from, after.sample_to) == (slice_, slice_ + -(-run.tree_size // 30))


def test_a_tampered_new_record_fails_and_the_failure_stays_until_a_full_verify_passes(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes]
) -> None:
    archive, key, device = box
    clock = Clock()
    _, full = run_verification(archive, "full", clock)
    fill(archive, key, device, 10, "nouveau")
    tamper_record_at(archive, archive_keys, full.tree_size, 2**62)
    report, run = run_verification(archive, "incremental", clock)
    assert run.kind == "incremental" and not run.ok
    assert any("content does not match its hash" in p for p in report.problems), report.problems
    assert run.problems == len(report.problems) and run.first_problems
    # After a failure an incremental run is a full one: it cannot turn the failure green.
    report, again = run_verification(archive, "incremental", clock)
    assert again.kind == "full" and not again.ok


def test_a_tampered_old_record_is_caught_when_its_slice_comes_round(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes]
) -> None:
    archive, _key, _device = box
    clock = Clock()
    _, full = run_verification(archive, "full", clock)
    slice_ = -(-full.tree_size // SAMPLE_RUNS)
    # In the third slice: the first two incremental runs do not read it.
    tampered = tamper_record_at(archive, archive_keys, 2 * slice_, 3 * slice_)
    for _ in range(2):
        report, run = run_verification(archive, "incremental", clock)
        assert report.ok and run.kind == "incremental"
    report, run = run_verification(archive, "incremental", clock)
    assert (run.sample_from, run.sample_to) == (2 * slice_, 3 * slice_)
    assert not run.ok
    assert any(f"(log {tampered})" in p for p in report.problems), report.problems


def test_a_rewritten_old_log_fails_the_consistency_proof(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes]
) -> None:
    archive, key, device = box
    clock = Clock()
    _, full = run_verification(archive, "full", clock)
    fill(archive, key, device, 5, "nouveau")
    # A stored node of the old tree, outside any slice the next run reads.
    level = full.tree_size.bit_length() - 1
    assert (
        sql(
            archive,
            archive_keys,
            "UPDATE log_nodes SET hash = zeroblob(32) WHERE level = ? AND idx = 0",
            (level,),
        )
        == 1
    )
    report, run = run_verification(archive, "incremental", clock)
    assert not run.ok
    joined = "\n".join(report.problems)
    assert "consistency proof fails" in joined, joined


def test_the_whole_log_is_reread_within_sample_runs(box: tuple[Archive, SigningKey, int]) -> None:
    archive, key, device = box
    clock = Clock()
    _, _full = run_verification(archive, "full", clock)
    covered = whole_coverage(archive.conn)
    assert covered is not None and covered.kind == "full"
    runs = []
    for n in range(SAMPLE_RUNS):
        fill(archive, key, device, 3, f"jour {n}")
        report, run = run_verification(archive, "incremental", clock)
        assert report.ok, report.problems
        runs.append(run)
        if run.completes_sweep:
            break
    assert runs[-1].completes_sweep, [(r.sample_from, r.sample_to, r.from_size) for r in runs]
    covered = whole_coverage(archive.conn)
    assert covered is not None and covered.kind == "incremental"
    assert covered.tree_size == runs[-1].tree_size
    assert covered.since_ms == runs[0].started_at and covered.until_ms == runs[-1].finished_at
    # The slices tile the log: every record re-read once by a slice, and those the
    # sweep's runs found new (all but the last run's) once more as such.
    assert sum(r.records for r in runs) == 300 + 3 * (len(runs) - 1) + 3 * len(runs)


def test_a_slice_never_exceeds_sample_max_and_the_sweep_goes_on_past_sample_runs(
    box: tuple[Archive, SigningKey, int],
) -> None:
    """On a big archive 1/SAMPLE_RUNS of the older log would make a night long: each
    slice is capped, and the sweep takes as many runs as the cap needs, tiling the log."""
    archive, key, device = box
    clock = Clock()
    _, full = run_verification(archive, "full", clock)
    cap = 8  # each run adds 3 leaves: the sweep gains 5 a run on a 303-leaf log
    assert -(-full.tree_size // SAMPLE_RUNS) > cap  # the cap binds on this archive
    runs = []
    for n in range(3 * SAMPLE_RUNS):
        fill(archive, key, device, 1, f"jour {n}")
        report, run = run_verification(archive, "incremental", clock, sample_max=cap)
        assert report.ok, report.problems
        runs.append(run)
        if run.completes_sweep:
            break
    assert all(r.sample_to - r.sample_from <= cap for r in runs)
    # Each run checks its day's record and at most `cap` leaves' worth of older ones.
    assert all(r.records <= 1 + cap for r in runs)
    assert len(runs) > SAMPLE_RUNS and runs[-1].completes_sweep
    assert [r.sample_from for r in runs[1:]] == [r.sample_to for r in runs[:-1]]
    assert runs[0].sample_from == 0 and runs[-1].sample_to == runs[-1].from_size
    covered = whole_coverage(archive.conn)
    assert covered is not None and covered.kind == "incremental"
    assert covered.since_ms == runs[0].started_at


def test_a_scheduled_run_is_full_once_a_week(box: tuple[Archive, SigningKey, int]) -> None:
    archive, _, _ = box
    clock = Clock()
    _, run = run_verification(archive, "scheduled", clock)
    assert run.kind == "full"
    _, run = run_verification(archive, "scheduled", clock)
    assert run.kind == "incremental"
    clock.now += 7 * 24 * 3600
    _, run = run_verification(archive, "scheduled", clock)
    assert run.kind == "full"


def test_an_archive_from_before_the_migration_gets_the_verifications_table(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    def open_at() -> Archive:
        return Archive.open(
            tmp_path / "data",
            archive_keys["archive"],
            archive_keys["blob"],
            SigningKey(archive_keys["sign_seed"]),
        )

    # The version before the migration that adds the table (whatever is merged after it).
    (adds,) = [n for n, m in enumerate(MIGRATIONS, 1) if "CREATE TABLE verifications" in m]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", adds - 1)
        old = open_at()
        try:
            device, key = new_phone(old, owner=OWNER)
            fill(old, key, device, 20, "avant")
            names = {r[0] for r in old.conn.execute("SELECT name FROM sqlite_master")}
            assert "verifications" not in names
        finally:
            old.close()
    archive = open_at()
    try:
        assert db.schema_version(archive.conn) == SCHEMA_VERSION
        assert latest(archive.conn) is None
        report, run = run_verification(archive, "incremental", Clock())
        assert report.ok, report.problems
        assert run.kind == "full" and run.records == 20
        fill(archive, key, device, 5, "après")
        report, run = run_verification(archive, "incremental", Clock())
        assert report.ok and run.kind == "incremental" and run.from_size > 0
    finally:
        archive.close()


def test_the_slices_go_on_across_the_weekly_full_runs(
    box: tuple[Archive, SigningKey, int],
) -> None:
    archive, _, _ = box
    clock = Clock()
    run_verification(archive, "full", clock)
    _, first = run_verification(archive, "incremental", clock)
    _, second = run_verification(archive, "incremental", clock)
    assert first.sample_from == 0 and second.sample_from == first.sample_to
    _, weekly = run_verification(archive, "full", clock)
    _, after = run_verification(archive, "incremental", clock)
    # Not back to 0: otherwise, with a full run every 7 nights, the slices of a
    # 30-night sweep would never reach the end of the log.
    assert after.kind == "incremental" and after.sample_from == second.sample_to
    assert after.sweep_started_at == first.sweep_started_at == first.started_at
    assert weekly.kind == "full" and after.from_size == weekly.tree_size


def _copy_record_at(archive: Archive, keys: dict[str, bytes], log_index: int) -> None:
    """A record row (a copy of the first, under a new id) naming leaf `log_index`."""
    assert (
        sql(
            archive,
            keys,
            "INSERT INTO records (record_id, device_id, conversation_id, kind, client_id,"
            " sent_at, received_at, body, signature, content_sha256, log_index, destroyed_at)"
            " SELECT randomblob(32), device_id, conversation_id, kind, client_id || '-bis',"
            " sent_at, received_at, body, signature, content_sha256, ?, destroyed_at"
            " FROM records ORDER BY id LIMIT 1",
            (log_index,),
        )
        == 1
    )


@pytest.mark.parametrize("where", ["beyond", "negative"])
def test_a_record_outside_the_signed_log_fails_an_incremental_run(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes], where: str
) -> None:
    archive, key, device = box
    clock = Clock()
    run_verification(archive, "full", clock)
    fill(archive, key, device, 5, "nouveau")
    size = int(archive.conn.execute("SELECT count(*) FROM log_leaves").fetchone()[0])
    _copy_record_at(archive, archive_keys, size + 1000 if where == "beyond" else -7)
    report, run = run_verification(archive, "incremental", clock)
    assert run.kind == "incremental" and not run.ok
    joined = "\n".join(report.problems)
    assert f"1 records row(s) name a log leaf outside [0, {size})" in joined, joined
    assert f"{size} leaves but {size + 1} archive entries" in joined, joined


def test_an_extra_audit_event_on_an_old_leaf_fails_an_incremental_run(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes]
) -> None:
    """A second entry on a leaf of the older log, outside this run's slice: only the
    count of entries against leaves sees it."""
    archive, _key, _device = box
    clock = Clock()
    _, full = run_verification(archive, "full", clock)
    taken = int(
        archive.conn.execute(
            "SELECT log_index FROM records ORDER BY log_index DESC LIMIT 1"
        ).fetchone()[0]
    )
    sql(
        archive,
        archive_keys,
        "INSERT INTO audit_events (at, actor, action, target, details, log_index)"
        " VALUES (1, 'x', 'export', '', '{}', ?)",
        (taken,),
    )
    report, run = run_verification(archive, "incremental", clock)
    assert (run.sample_from, run.sample_to) == (0, -(-full.tree_size // SAMPLE_RUNS))
    assert not run.ok
    joined = "\n".join(report.problems)
    assert f"{full.tree_size} leaves but {full.tree_size + 1} archive entries" in joined, joined


def test_an_audit_event_at_a_negative_leaf_fails_a_full_verify(
    box: tuple[Archive, SigningKey, int], archive_keys: dict[str, bytes]
) -> None:
    archive, _key, _device = box
    sql(
        archive,
        archive_keys,
        "INSERT INTO audit_events (at, actor, action, target, details, log_index)"
        " VALUES (1, 'x', 'export', '', '{}', -1)",
        (),
    )
    report, run = run_verification(archive, "full", Clock())
    assert not run.ok
    assert any("1 audit_events row(s) name a log leaf outside" in p for p in report.problems), (
        report.problems
    )
