"""`strongroom user-add / passwd / users`: a second admin who can unlock, from the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strongroom.archive.audit_reads import audit_events
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.identity import Keystore
from test_cli_identity import PASSPHRASE, run_cli

BRUNO = "Bruno garde les clés 2"


def test_an_admin_added_from_the_cli_unlocks_and_can_be_reset(tmp_path: Path) -> None:
    data = tmp_path / "box"
    box_pass = tmp_path / "pass.txt"
    box_pass.write_text(PASSPHRASE + "\n")
    bruno_pass = tmp_path / "bruno.txt"
    bruno_pass.write_text(BRUNO + "\n")
    common = ("--data", str(data), "--passphrase-file", str(box_pass))
    assert run_cli("init", *common).returncode == 0
    added = run_cli(
        "user-add", "bruno", "--role", "admin", "--new-passphrase-file", str(bruno_pass), *common
    )
    assert added.returncode == 0, added.stderr
    assert Keystore(data / "keystore.json").unlock(BRUNO, "bruno")
    listing = run_cli("users", *common)
    assert "bruno\tadmin\tactive\tcan unlock" in listing.stdout
    # init's passphrase has no administrator yet (the web login that uses it names one):
    # said, not left out (the list alone read as if only bruno could unlock), on stderr:
    # a script splitting stdout on tabs gets the four columns on every line.
    assert "one more passphrase unlocks the box" in listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert rows and all(len(row) == 4 for row in rows), listing.stdout

    # Bruno's passphrase alone now opens the box for the CLI too.
    reset = tmp_path / "reset.txt"
    reset.write_text("Nouvelle phrase de Bruno 3\n")
    as_bruno = ("--data", str(data), "--passphrase-file", str(bruno_pass))
    changed = run_cli("passwd", "bruno", "--new-passphrase-file", str(reset), *as_bruno)
    assert changed.returncode == 0, changed.stderr
    assert "unlock slot re-sealed" in changed.stdout
    assert Keystore(data / "keystore.json").unlock("Nouvelle phrase de Bruno 3", "bruno")
    short = tmp_path / "short.txt"
    short.write_text("court\n")
    refused = run_cli("passwd", "bruno", "--new-passphrase-file", str(short), *common)
    assert refused.returncode == 2 and "nothing was written" in refused.stderr

    box = Box(BoxConfig(data_dir=data))
    box.unlock(PASSPHRASE)
    conn = box.require_archive().reader()
    actions = [(e.actor, e.action, e.target) for e in audit_events(conn) if e.actor == "cli"]
    conn.close()
    assert ("cli", "user.create", "bruno") in actions
    assert ("cli", "user.reset", "bruno") in actions
    asyncio.run(box.stop())
