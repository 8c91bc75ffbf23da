"""`strongroom fingerprint | export | verify-export` on a real box, running (control
socket) and stopped (the CLI unlocks the archive itself)."""

from __future__ import annotations

import asyncio
import os
import pty
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from e2e_helpers import Clock, message, pair_by_qr, prepare_data_dir, start_box
from strongroom.office.sealed import box_key_fingerprint
from strongroom.office.verify_export import verify_bundle
from web_helpers import ADMIN_PASSWORD


def strongroom(*args: str, stderr_tty: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "strongroom", *args]
    if not stderr_tty:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=60, check=False
        )
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return subprocess.CompletedProcess(command, done.returncode, done.stdout, seen.decode())
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)


def openssl_fingerprint(bundle: Path, where: Path) -> str:
    with zipfile.ZipFile(bundle) as zf:
        pem = next(n for n in zf.namelist() if n.endswith("/box.pem"))
        (where / "box.pem").write_bytes(zf.read(pem))
    done = subprocess.run(
        "openssl pkey -pubin -in box.pem -outform DER | sha256sum",
        shell=True,
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()[0]


async def test_export_and_fingerprint_with_the_box_running_then_stopped(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    data = str(config.data_dir)
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    running = await start_box(config, clock=Clock())
    phone, _ = await pair_by_qr(running, "Pixel de Maître Durand", "maitre.durand")
    try:
        await phone.push(message("Bonjour Maître", conv="dossier-42", sender="M. Martin", n=1))
        await phone.push(message("Bien reçu", conv="dossier-42", sender="Me Durand", n=2))
        await phone.push(message("Ailleurs", conv="autre", sender="Me Durand", n=3))
        keys = running.box.keys
        assert keys is not None
        expected = box_key_fingerprint(keys.signing_public)

        printed = await asyncio.to_thread(strongroom, "fingerprint", "--data", data)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.splitlines()[-1] == expected
        assert "Empreinte de la clé de signature (exports scellés, SHA-256)" in printed.stdout
        assert running.fingerprint in printed.stdout  # the phones' one, labelled apart

        out = tmp_path / "dossier-42.zip"
        export_args = ["export", "--data", data, "--conversation", "dossier-42"]
        export_args += ["--out", str(out), "--recipient", "Cour d'appel", "--reason", "RG 1"]
        done = await asyncio.to_thread(strongroom, *export_args)
        assert done.returncode == 0, done.stdout + done.stderr
        report = verify_bundle(out)
        assert report.ok and report.records == 2, report.problems
        assert openssl_fingerprint(out, tmp_path) == expected
        with zipfile.ZipFile(out) as zf:
            verify_txt = zf.read(next(n for n in zf.namelist() if n.endswith("VERIFY.txt")))
        assert b"Z=dossier-42.zip" in verify_txt
        assert running.audit_actions("export") == ["export"]
        # The box wrote the audit event itself: the next push still lands.
        ack = await phone.push(message("Après l'export", conv="dossier-42", sender="Me", n=4))
        assert ack.log_index > 0

        again = await asyncio.to_thread(strongroom, *export_args)
        assert again.returncode == 2 and "already exists" in again.stderr
        # Digits that are not 0-9, a phone id of nobody: "no match", exit 2, no file.
        for odd in ("²", "dossier-4"):
            odd_out = tmp_path / "odd.zip"
            refused = await asyncio.to_thread(
                strongroom, *export_args[:4], odd, "--out", str(odd_out), *export_args[7:]
            )
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "no single conversation matches" in refused.stderr
            assert not await asyncio.to_thread(odd_out.exists)

        checked = await asyncio.to_thread(strongroom, "verify-export", str(out), "--data", data)
        assert checked.returncode == 0, checked.stdout
        assert f"(sealed exports, SHA-256): {expected}" in checked.stdout
    finally:
        await phone.close()
        await running.stop()

    # Stopped: the CLI unlocks the box with the passphrase file and does the same.
    unlock = ["--passphrase-file", str(secret)]
    printed = await asyncio.to_thread(strongroom, "fingerprint", "--data", data, *unlock)
    assert printed.stdout.splitlines()[-1] == expected, printed.stderr
    stopped_out = tmp_path / "stopped.zip"
    args = ["export", "--data", data, "--conversation", "dossier-42", "--out", str(stopped_out)]
    args += ["--recipient", "Patient", "--reason", "accès", *unlock]
    done = await asyncio.to_thread(lambda: strongroom(*args, stderr_tty=True))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[" + "#" * 30 + "] 3/3 records" in done.stderr  # the bar on a terminal
    assert verify_bundle(stopped_out).records == 3

    # A date range that holds nothing: a clear refusal, no file.
    empty_out = tmp_path / "empty.zip"
    args = ["export", "--data", data, "--conversation", "dossier-42", "--out", str(empty_out)]
    args += ["--from", "2030-01-01", "--recipient", "x", "--reason", "y", *unlock]
    done = await asyncio.to_thread(strongroom, *args)
    assert done.returncode == 2 and "nothing was written" in done.stderr
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob(".*partial")))
    assert not await asyncio.to_thread(empty_out.exists) and not leftovers


async def test_verify_export_refuses_another_boxs_key(tmp_path: Path) -> None:
    """A bundle that verifies on its own but was signed by another box is refused once the
    expected fingerprint is given, by --expect-fingerprint or by --data."""
    mine = await prepare_data_dir(tmp_path / "mine")
    theirs = await prepare_data_dir(tmp_path / "theirs")
    running = await start_box(theirs, clock=Clock())
    phone, _ = await pair_by_qr(running, "Pixel", "dr.martin")
    out = tmp_path / "theirs.zip"
    try:
        await phone.push(message("Bonjour", conv="c", sender="Dr Martin", n=1))
        args = ["export", "--data", str(theirs.data_dir), "--conversation", "c"]
        args += ["--out", str(out), "--recipient", "Cour", "--reason", "RG"]
        assert (await asyncio.to_thread(strongroom, *args)).returncode == 0
    finally:
        await phone.close()
        await running.stop()
    alone = await asyncio.to_thread(strongroom, "verify-export", str(out))
    assert alone.returncode == 0, alone.stdout  # sound in itself
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    against_mine = await asyncio.to_thread(
        strongroom, "verify-export", str(out), "--data", str(mine.data_dir),
        "--passphrase-file", str(secret),
    )  # fmt: skip
    assert against_mine.returncode == 1
    assert "box.pem: signing key fingerprint" in against_mine.stdout
    wrong = await asyncio.to_thread(
        strongroom, "verify-export", str(out), "--expect-fingerprint", "ab" * 32
    )
    assert wrong.returncode == 1 and "must not be trusted" in wrong.stdout
    # A file slipped into the zip, not in the manifest: refused by name.
    padded = tmp_path / "padded.zip"
    await asyncio.to_thread(shutil.copyfile, out, padded)
    with zipfile.ZipFile(padded, "a") as zf:
        root = zf.namelist()[0].split("/")[0]
        zf.writestr(f"{root}/records/L0000000099.cbor", b"slipped in")
    slipped = await asyncio.to_thread(strongroom, "verify-export", str(padded))
    assert slipped.returncode == 1
    assert "records/L0000000099.cbor: not listed in MANIFEST.sha256" in slipped.stdout
    right = openssl_fingerprint(out, tmp_path)
    ok = await asyncio.to_thread(
        strongroom, "verify-export", str(out), "--expect-fingerprint", right
    )
    assert ok.returncode == 0, ok.stdout
