"""Export by matter: `strongroom export --matter REF`, box running (control socket) then
stopped, titled by the matter's reference and client, holding every conversation of
the matter and nothing else, and passing VERIFY.txt's own command lines."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from records_office_helpers import HELD_TEXTS, PETIT_TEXT, astrongroom, box_with_the_past
from strongroom.office.sealed import box_key_fingerprint
from strongroom.office.verify_export import verify_bundle
from strongroom.proof.pem import ed25519_public_key_from_pem
from test_export_verify_txt import TOOLS, members, run_verify

MATTER_TITLE = "Dossier / matter D-2015-007 — Dr Martin"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "strongroom", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def bundle_text(bundle: Path, suffix: str) -> str:
    with zipfile.ZipFile(bundle) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(suffix))).decode("utf-8")


def verify_txt_passes(bundle: Path, where: Path) -> str:
    """VERIFY.txt's lines, run by sh with only the tools it names (no Python), must pass."""
    tools = where / "bin"
    tools.mkdir(parents=True)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run VERIFY.txt"
        (tools / tool).symlink_to(found)
    _, files, _ = members(bundle)
    key = ed25519_public_key_from_pem(files["box.pem"].decode("ascii"))
    code, output = run_verify(bundle, tools, where / "clean", box_key_fingerprint(key))
    assert code == 0, output
    assert "ALL CHECKS PASSED" in output
    return output


def matter_export_holds_the_matter(bundle: Path) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    html = bundle_text(bundle, "records.html")
    assert MATTER_TITLE in html
    # dr.martin's three conversations with Maître Durand, not Durand's other client,
    # nor the conversation recorded on dr.martin's own phone (not attached).
    for text in HELD_TEXTS[:3]:
        assert text in html
    assert PETIT_TEXT not in html and HELD_TEXTS[3] not in html
    assert report.records == 3
    assert '"kind": "matter"' in bundle_text(bundle, "export.json")


async def test_export_by_matter_from_the_cli_running_then_stopped(tmp_path: Path) -> None:
    out = tmp_path / "D-2015-007.zip"
    async with box_with_the_past(tmp_path) as (running, data_dir, secret):
        data = str(data_dir)
        matter = ("matter", "create", "D-2015-007", "--client", "Dr Martin")
        await astrongroom(data_dir, *matter)
        attach = ("matter", "attach", "D-2015-007", "--person", "dr.martin")
        await astrongroom(data_dir, *attach)
        args = ["export", "--data", data, "--matter", "D-2015-007", "--out", str(out)]
        done = await asyncio.to_thread(cli, *args, "--recipient", "Cour", "--reason", "RG 2")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 records" in done.stdout
        assert running.audit_actions("export") == ["export"]
    await asyncio.to_thread(matter_export_holds_the_matter, out)
    output = await asyncio.to_thread(verify_txt_passes, out, tmp_path / "running")
    assert "is signed by the phone key devices/D" in output

    # Stopped: the CLI opens the archive itself; the same matter, by its number this time.
    stopped = tmp_path / "stopped.zip"
    unlock = ["--passphrase-file", str(secret)]
    args = ["export", "--data", data, "--matter", "1", "--out", str(stopped), *unlock]
    done = await asyncio.to_thread(cli, *args, "--recipient", "Patient", "--reason", "accès")
    assert done.returncode == 0, done.stdout + done.stderr
    await asyncio.to_thread(matter_export_holds_the_matter, stopped)
    await asyncio.to_thread(verify_txt_passes, stopped, tmp_path / "stopped")

    # An unknown matter: a clear refusal, nothing written.
    missing = tmp_path / "missing.zip"
    args = ["export", "--data", data, "--matter", "D-1999-000", "--out", str(missing), *unlock]
    done = await asyncio.to_thread(cli, *args, "--recipient", "x", "--reason", "y")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no matter 'D-1999-000'" in done.stderr and "nothing was written" in done.stderr
    assert not missing.exists()
