"""The records office through the `strongroom` CLI, box running (control socket) then stopped.

Two phones push 2015 conversations; an admin opens a matter, holds dr.martin,
runs retention (the held conversations survive, the unprotected one goes with a
readable summary), lifts the hold, approves the due queue, downloads the
certificate and checks it with openssl alone; `strongroom verify` passes and
the destroyed texts are nowhere, on disk or in the decrypted database.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from archive_helpers import COUNT_BY_TEXT
from records_office_helpers import (
    HELD_TEXTS,
    PETIT_TEXT,
    astrongroom,
    box_with_the_past,
    run_strongroom,
    strongroom,
    texts_in_archive,
    texts_left_on_disk,
    verify_certificate_with_openssl,
)


async def test_the_records_office_journey_through_the_cli(tmp_path: Path) -> None:
    async with box_with_the_past(tmp_path) as (running, data, secret):
        shown = await astrongroom(data, "register-details")  # a look, through the box
        assert "time zone: Europe/Paris (par défaut / by default)" in shown, shown
        assert running.audit_actions("register.") == []  # it was an audit event
        out = await astrongroom(
            data, "matter", "create", "D-2015-007", "--client", "Dr Martin", "--as", "secretariat"
        )
        assert "D-2015-007" in out and "open" in out
        await astrongroom(data, "matter", "attach", "D-2015-007", "--person", "dr.martin")
        await astrongroom(
            data, "matter", "attach", "D-2015-007", "--conversation", "dr.martin/c-durand"
        )
        closed = await astrongroom(data, "matter", "close", "D-2015-007", "--on", "2016-01-31")
        # The day typed is the day shown: both the practice's (it was shown in UTC, the 30th).
        assert "closed 2016-01-31" in closed, closed
        await astrongroom(
            data, "retention", "assign", "--matter", "D-2015-007", "--policy", "dossier-avocat"
        )
        await astrongroom(
            data,
            "retention",
            "assign",
            "--person",
            "M. Petit",
            "--policy",
            "correspondance-generale",
        )
        policies = await astrongroom(data, "retention", "policies")
        assert "Dossier d'avocat" in policies and "matter" in policies

        added = await astrongroom(
            data,
            "hold",
            "add",
            "--person",
            "DR.MARTIN",
            "--reason",
            "Plainte ordinale",
            "--case",
            "Ordre c/ Martin",
            "--as",
            "secretariat",
        )
        # Owner, other party and mere sender: all three conversations of dr.martin.
        assert "protects 3 conversations, 4 records" in added, added
        listed = json.loads(await astrongroom(data, "hold", "list", "--json"))
        (hold,) = listed["holds"]
        assert (hold["case"], hold["placed_by"], hold["records"]) == (
            "Ordre c/ Martin",
            "secretariat",
            4,
        )

        # The check below finds the texts while they exist (so its empty answer means gone).
        assert len(texts_in_archive(running, (PETIT_TEXT,), "zqxw")) >= 3
        summary = await astrongroom(data, "retention-run")
        assert "Retention run: 1 records destroyed" in summary, summary
        assert "4 protected by a legal hold" in summary and "Destruction(" not in summary
        assert running.count(COUNT_BY_TEXT + " = ?", PETIT_TEXT) == 0
        assert running.count("SELECT count(*) FROM messages") == 4
        again = json.loads(await astrongroom(data, "retention-run", "--json"))  # for scripts
        assert (again["outcome"], again["exit_code"]) == ("done", 0)
        assert again["details"] == {"destroyed": 0, "to_review": 0, "held": 4, "kept": 0}
        assert again["at_utc"].endswith("Z") and again["summary"].startswith("Retention run:")

        due = json.loads(await astrongroom(data, "retention", "due", "--json"))
        assert {i["state"] for i in due["items"]} == {"held"}
        assert all(i["matters"] == ["D-2015-007"] for i in due["items"])
        await astrongroom(data, "hold", "lift", str(hold["id"]), "--reason", "Plainte classée")
        table = await astrongroom(data, "retention", "due")
        assert "D-2015-007" in table and "review" in table

        approved = await astrongroom(
            data,
            "retention",
            "approve",
            "--all-due",
            "--as",
            "archiviste",
            "--reason",
            "Délai de 5 ans écoulé",
        )
        assert "Destroyed 4 records" in approved, approved
        certs = json.loads(await astrongroom(data, "certificates", "list", "--json"))
        assert [c["records"] for c in certs["certificates"]] == [1, 4]
        second = certs["certificates"][1]
        assert second["approver"] == "archiviste"
        zip_path = tmp_path / "certificat.zip"
        await astrongroom(data, "certificates", "get", str(second["id"]), "--out", str(zip_path))
        document = verify_certificate_with_openssl(zip_path, tmp_path / "clean")
        assert document["count"] == 4 and document["approver"] == "archiviste"
        assert document["policies"][0]["assigned_through"] == ["matter:1"]
        assert document["holds_checked"] == []
        assert "retention.approve" in running.audit_actions("retention.")
        assert texts_in_archive(running, (*HELD_TEXTS, PETIT_TEXT), "zqxw") == []

    # Box stopped: the same commands open the archive themselves.
    listed_stopped = strongroom(data, "hold", "list", passphrase_file=secret)
    assert "lifted by cli" in listed_stopped and "Plainte classée" in listed_stopped
    assert "No destruction" not in strongroom(data, "certificates", "list", passphrase_file=secret)
    stopped_run = json.loads(strongroom(data, "retention-run", "--json", passphrase_file=secret))
    assert stopped_run["details"] == {"destroyed": 0, "to_review": 0, "held": 0, "kept": 0}
    # The same object whether the box runs or not (operations.md): a script reads either.
    assert stopped_run.keys() == again.keys(), (stopped_run, again)
    assert stopped_run["details"].keys() == again["details"].keys()
    assert stopped_run["at_utc"] >= again["at_utc"], (stopped_run, again)
    verify = strongroom(data, "verify", passphrase_file=secret)
    assert "OK: the archive verifies" in verify
    assert texts_left_on_disk(data, (*HELD_TEXTS, PETIT_TEXT)) == []


def _refused(data: Path, *argv: str, secret: Path | None = None) -> str:
    done = run_strongroom(data, *argv, passphrase_file=secret)
    assert done.returncode == 2, (argv, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


async def test_bad_requests_are_refused_clearly_and_the_box_goes_on(tmp_path: Path) -> None:
    async with box_with_the_past(tmp_path) as (running, data, secret):
        cases = [
            (("hold", "lift", "99", "--reason", "x"), "no active legal hold 99"),
            (("hold", "add", "--conversation", "c-nulle", "--reason", "x"), "no conversation"),
            (("hold", "add", "--person", "dr.martin", "--reason", "  "), "needs a reason"),
            (
                ("retention", "assign", "--person", "x", "--policy", "inconnue"),
                "no retention policy",
            ),
            # Unicode digits that int() refuses ("²") are not numbers: a clear refusal.
            (("retention", "assign", "--person", "x", "--policy", "²"), "no retention policy"),
            (("hold", "add", "--conversation", "²", "--reason", "x"), "no conversation"),
            (("retention", "approve", "--reason", "r", "--as", "a"), "name the records"),
            # A record that is not due: said, not "Approved: 0 records." and exit 0.
            (("retention", "approve", "1", "--reason", "r", "--as", "a"), "none of the records"),
            # reject/extend the same (99999 named no record: a foreign-key traceback)
            (("retention", "reject", "99999", "--reason", "r", "--as", "a"), "none of the records"),
            (
                ("retention", "extend", "1", "--until", "2099-01-01", "--reason", "r", "--as", "a"),
                "none of the records",
            ),
            (("certificates", "get", "7", "--out", str(tmp_path / "c.zip")), "certificate 7"),
            (("matter", "close", "D-404"), "no matter"),
        ]
        for argv, why in cases:
            stderr = await asyncio.to_thread(_refused, data, *argv)
            assert why in stderr and "nothing was" in stderr, (argv, stderr)
        assert not (tmp_path / "c.zip").exists()
        assert running.box.phase.value == "ready"
        assert "No legal hold." in await astrongroom(data, "hold", "list")
        assert running.audit_actions("hold.") == []
        assert running.audit_actions("retention.") == []
    # Stopped: the same refusal, from the archive opened by the command itself.
    assert "no active legal hold 5" in _refused(
        data, "hold", "lift", "5", "--reason", "x", secret=secret
    )
    assert "none of the records named is due" in _refused(
        data, "retention", "reject", "99999", "--reason", "r", "--as", "a", secret=secret
    )


async def test_an_assignment_is_removed_from_the_cli_running_or_stopped(tmp_path: Path) -> None:
    async with box_with_the_past(tmp_path) as (running, data, secret):
        policy = ("--policy", "correspondance-generale")
        await astrongroom(data, "retention", "assign", "--person", "M. Petit", *policy)
        await astrongroom(data, "retention", "assign", "--default", "--policy", "dossier-avocat")
        # Box running: the default goes through the control socket, audited.
        out = await astrongroom(data, "retention", "unassign", "--default", "--as", "secretariat")
        assert "no longer has a policy" in out, out
        assert "retention.unassign" in running.audit_actions("retention.")
        stderr = await asyncio.to_thread(
            _refused, data, "retention", "unassign", "--conversation", "c-petit"
        )
        assert "no policy for conversation" in stderr and "nothing was changed" in stderr
        assert running.box.phase.value == "ready"
        due = json.loads(await astrongroom(data, "retention", "due", "--json"))
        assert [i["policy"] for i in due["items"]] == ["Correspondance générale"], due
        # A decision naming it and a number that is not due: kept, and the other said.
        (item,) = due["items"]
        reason = ("--reason", "relance en cours", "--as", "secretariat")
        out = await astrongroom(data, "retention", "reject", str(item["id"]), "99999", *reason)
        assert "kept: 1 records" in out and "1 of the records named are not due" in out, out

    # Box stopped: the command opens the archive itself.
    removed = json.loads(
        strongroom(
            data, "retention", "unassign", "--person", "M. Petit", "--json", passphrase_file=secret
        )
    )
    assert removed == {"unassigned": {"scope": "contact", "subject": "M. Petit"}}
    listed = json.loads(strongroom(data, "retention", "policies", "--json", passphrase_file=secret))
    assert listed["assignments"] == []
    due = json.loads(strongroom(data, "retention", "due", "--json", passphrase_file=secret))
    assert due["items"] == []
    stderr = _refused(data, "retention", "unassign", "--person", "M. Petit", secret=secret)
    assert "no policy for contact M. Petit is assigned" in stderr, stderr


async def test_the_cli_finds_what_to_hold_by_its_first_letters(tmp_path: Path) -> None:
    """`strongroom hold find`: the web form's search (office/pickers.py) from SSH; what it
    prints is what `hold add` takes."""
    async with box_with_the_past(tmp_path) as (running, data, secret):
        found = await astrongroom(data, "hold", "find", "m. p")
        (line,) = [row for row in found.splitlines() if "M. Petit" in row]
        option, number = line.split()[:2]
        assert option == "--conversation" and number.isdigit()
        assert "maitre.durand ↔ M. Petit" in line
        persons = json.loads(
            await astrongroom(data, "hold", "find", "DR", "--kind", "person", "--json")
        )
        assert [f["label"] for f in persons["found"]] == ["dr.martin"]
        assert "No conversation starts with 'zz'" in await astrongroom(data, "hold", "find", "zz")
        added = await astrongroom(
            data, "hold", "add", "--conversation", number, "--reason", "Facture contestée"
        )
        assert "protects 1 conversation, 1 record" in added, added
        assert running.audit_actions("hold.") == ["hold.place"]
    # Stopped: the same search, from the archive opened by the command itself.
    no_matter = strongroom(data, "hold", "find", "D-", "--kind", "matter", passphrase_file=secret)
    assert "No matter starts with 'D-'." in no_matter
    # Digits to str.isdigit() that are not a number (int() refuses "²"): no match, no traceback.
    assert "No conversation starts with '²'" in strongroom(
        data, "hold", "find", "²", passphrase_file=secret
    )
    stderr = _refused(data, "hold", "add", "--conversation", "²", "--reason", "r", secret=secret)
    assert "no conversation '²'" in stderr, stderr
    assert "maitre.durand ↔ M. Petit" in strongroom(
        data, "hold", "find", "M. P", passphrase_file=secret
    )
