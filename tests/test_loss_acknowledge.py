"""A loss the kept head witnessed (tree_head.lost), named once by verify, acknowledged
by an administrator (archive/losses.py), then listed as a note; unreadable evidence
says what to do; a kept head the box cannot write is said by verify too.

The operations are the ones the CLI and the control socket run (office run_op); the
web page and the CLI walk them in test_kept_head_page.py and the browser tests.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import new_phone
from strongroom.archive.losses import ACTION
from strongroom.archive.store import Archive
from strongroom.archive.verify_runs import run_verification
from strongroom.office.service import OpRefused, run_op
from test_kept_head import (
    LOST,
    fill,
    lose_the_last_commits,
    problems,
    reopened,
    two_commits_lost,
)
from test_kept_head import verified as verified  # the fixture

ACTOR = "maitre.durand"
NOTE = "restauré depuis la sauvegarde du 5 décembre ; téléphones relancés"


def acknowledge(archive: Archive, file: str, note: str = NOTE) -> Any:
    return run_op(archive, "loss.acknowledge", {"file": file, "note": note, "actor": ACTOR})


def test_a_loss_is_one_problem_until_acknowledged_then_a_note_and_the_file_stays(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path
) -> None:
    with two_commits_lost(verified, archive_keys, tmp_path) as (archive, left, kept):
        # Before the box's first write the kept head still holds the lost head too: one
        # line names the loss, from tree_head.lost (not a second from tree_head.latest).
        report, _ = run_verification(archive, "full")
        named = [p for p in report.problems if LOST in p]
        assert len(named) == 1 and named[0].startswith("log: tree_head.lost:"), report.problems
        listed = run_op(archive, "loss.list", {})["losses"]
        assert [(x["file"], x["acknowledged"]) for x in listed] == [("tree_head.lost", None)]
        assert listed[0]["tree_size"] == kept.tree_size

        with pytest.raises(OpRefused, match="a note is required"):
            acknowledge(archive, "tree_head.lost", "   ")
        with pytest.raises(OpRefused, match=r"tree_head\.lost\.7 names no loss"):
            acknowledge(archive, "tree_head.lost.7")
        done = acknowledge(archive, "tree_head.lost")["acknowledged"]
        assert (done["file"], done["by"]) == ("tree_head.lost", ACTOR)
        with pytest.raises(OpRefused, match=f"already acknowledged by {ACTOR}"):
            acknowledge(archive, "tree_head.lost", "une deuxième fois")

        report, _ = run_verification(archive, "full")
        assert report.ok, report.problems
        assert len(report.notes) == 1 and report.notes[0].startswith("log: tree_head.lost:")
        assert LOST in report.notes[0] and f"acknowledged by {ACTOR} on " in report.notes[0]
        assert NOTE in report.notes[0]
        # The evidence stays, and the signed trail says who, which loss and why.
        assert (verified / "tree_head.lost").exists()
        with closing(archive.reader()) as conn:
            rows = conn.execute(
                "SELECT actor, target, details, log_index FROM audit_events WHERE action = ?",
                (ACTION,),
            ).fetchall()
        assert [(r[0], r[1], r[3]) for r in rows] == [(ACTOR, "tree_head.lost", done["log_index"])]
        details = json.loads(rows[0][2])
        assert (details["tree_size"], details["root_hash"]) == (
            kept.tree_size,
            kept.root_hash.hex(),
        )
        assert details["note"] == NOTE
        ack = run_op(archive, "loss.list", {})["losses"][0]["acknowledged"]
        assert ack["by"] == ACTOR and ack["note"] == NOTE and ack["at_utc"].endswith("Z")
        assert left.tree_size < kept.tree_size

    # A later, different loss is a problem of its own: the acknowledgement names a head.
    (tmp_path / "before.db").unlink()
    lose_the_last_commits(verified, archive_keys, ["encore"], tmp_path)
    with reopened(verified, archive_keys) as archive:
        report, _ = run_verification(archive, "full")
        assert "log: tree_head.lost.2:" in problems(report)
        assert "log: tree_head.lost:" not in problems(report)
        assert [n.split(":")[1] for n in report.notes] == [" tree_head.lost"]


def test_a_file_that_changed_since_it_was_listed_is_not_acknowledged(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path
) -> None:
    # Review L2: the administrator is shown one head (the Integrity page's confirmation,
    # `strongroom losses list`); the file is moved away and a new loss is written under
    # the freed name before they confirm: acknowledging "tree_head.lost" would sign for
    # a head they never saw.
    _, first = lose_the_last_commits(verified, archive_keys, ["perdu"], tmp_path)
    with reopened(verified, archive_keys) as archive:
        (listed,) = run_op(archive, "loss.list", {})["losses"]
        shown = listed["head"]
        assert shown == f"{first.tree_size}:{first.root_hash.hex()}"
        device, key = new_phone(archive, owner="maitre.durand", name="Après")
        fill(archive, key, device, 1, "après")  # the kept head is the log's again
    (verified / "tree_head.lost").rename(tmp_path / "tree_head.lost")
    (tmp_path / "before.db").unlink()
    _, second = lose_the_last_commits(verified, archive_keys, ["encore"], tmp_path)
    with reopened(verified, archive_keys) as archive:
        (now,) = run_op(archive, "loss.list", {})["losses"]
        assert now["file"] == "tree_head.lost" and now["head"] != shown
        with pytest.raises(OpRefused, match=r"tree_head\.lost changed since it was shown"):
            run_op(
                archive,
                "loss.acknowledge",
                {"file": "tree_head.lost", "note": NOTE, "actor": ACTOR, "head": shown},
            )
        with pytest.raises(OpRefused, match="not SIZE:ROOTHEX"):
            run_op(
                archive,
                "loss.acknowledge",
                {"file": "tree_head.lost", "note": NOTE, "actor": ACTOR, "head": "12:zz"},
            )
        with closing(archive.reader()) as conn:
            count = "SELECT count(*) FROM audit_events WHERE action = ?"
            assert conn.execute(count, (ACTION,)).fetchone()[0] == 0  # nothing written
        # Looked at again: the head now shown is the one acknowledged.
        done = run_op(
            archive,
            "loss.acknowledge",
            {"file": "tree_head.lost", "note": NOTE, "actor": ACTOR, "head": now["head"]},
        )["acknowledged"]
        assert done["file"] == "tree_head.lost"
        (acked,) = run_op(archive, "loss.list", {})["losses"]
        assert acked["acknowledged"]["by"] == ACTOR
        assert acked["head"] == f"{second.tree_size}:{second.root_hash.hex()}"
        assert second != first


def test_unreadable_evidence_says_how_to_give_it_back_and_cannot_be_acknowledged(
    verified: Path,
    archive_keys: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Root runs these tests and reads any file: the box's user meeting a file a root
    # command left 0600 is a PermissionError from the read, made here.
    real = Path.read_bytes

    def as_the_box_user(path: Path) -> bytes:
        if path.name in ("tree_head.lost", "tree_head.latest"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    with two_commits_lost(verified, archive_keys, tmp_path) as (archive, _, _):
        monkeypatch.setattr(Path, "read_bytes", as_the_box_user)
        report, _ = run_verification(archive, "full")
        text = problems(report)
        for name in ("tree_head.lost", "tree_head.latest"):
            assert f"sudo chown strongroom:strongroom {verified / name}" in text, text
        assert "a command run as root may have left it root's" in text
        with pytest.raises(OpRefused, match="cannot be acknowledged as it is"):
            acknowledge(archive, "tree_head.lost")


def test_a_kept_head_the_box_cannot_write_is_a_note_of_every_verify(
    verified: Path, archive_keys: dict[str, bytes]
) -> None:
    path = verified / "tree_head.latest"
    path.unlink()
    path.mkdir()  # a real OS error root gets too (EISDIR): the open fails
    with reopened(verified, archive_keys) as archive:
        assert archive.kept_head.failing_since_ms is not None
        report, _ = run_verification(archive, "full")
        said = "\n".join(report.notes)
        assert "the kept tree head (tree_head.latest) has not been written since" in said
        assert "directory" in said
        kept = run_op(archive, "loss.list", {})["kept_head"]
        assert kept["failing_since_utc"].endswith("Z") and "directory" in kept["failure"]
