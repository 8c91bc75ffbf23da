"""What the records-office journeys share: two phones with past conversations, and checks.

maître Durand's phone and dr Martin's phone push records dated 2015:

* Durand ↔ dr.martin ("c-martin"): Durand's message names dr.martin as the
  other party (the reference client fills ``peer``), dr.martin answers;
* Durand's "c-ancien": an older phone's conversation without ``peer``, where
  only the sender of the incoming message says it is dr.martin;
* dr.martin's own "c-durand";
* Durand ↔ M. Petit ("c-petit"), which nothing protects.

A hold on dr.martin must protect the first three; retention destroys the last.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_helpers import Clock, E2EBox, pair_by_qr, prepare_data_dir, start_box
from strongroom.office.sealed import box_key_fingerprint
from strongroom.office.verify_text import command_lines
from strongroom.proof.pem import ed25519_public_key_from_pem
from web_helpers import ADMIN_PASSWORD

AT_2015 = int(datetime(2015, 3, 2, 9, 0, tzinfo=UTC).timestamp() * 1000)
HELD_TEXTS: tuple[str, ...] = (
    "Rendez-vous confidentiel Martin",
    "Bien reçu, Martin",
    "Note ancienne de Martin",
)
HELD_TEXTS += ("Note de Martin pour Durand",)
PETIT_TEXT = "Facture soldée Petit zqxw"
MATTER_TEXT_PREFIX = "Rendez-vous confidentiel"


def record(
    text: str, conv: str, sender: str, n: int, *, direction: str = "out", peer: str = ""
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "v": 1,
        "kind": "message",
        "id": f"m-{conv}-{n}",
        "conv": conv,
        "dir": direction,
        "from": sender,
        "at": AT_2015 + n * 60_000,
        "text": text,
    }
    if peer:
        fields["peer"] = peer
    return fields


async def two_phones_push_the_past(running: E2EBox) -> None:
    durand, _ = await pair_by_qr(running, "Pixel Durand", "maitre.durand")
    martin, _ = await pair_by_qr(running, "Fairphone Martin", "dr.martin")
    try:
        await durand.push(record(HELD_TEXTS[0], "c-martin", "maitre.durand", 1, peer="dr.martin"))
        await durand.push(record(HELD_TEXTS[1], "c-martin", "dr.martin", 2, direction="in"))
        await durand.push(record(HELD_TEXTS[2], "c-ancien", " Dr.Martin ", 3, direction="in"))
        await durand.push(record(PETIT_TEXT, "c-petit", "maitre.durand", 4, peer="M. Petit"))
        await martin.push(record(HELD_TEXTS[3], "c-durand", "dr.martin", 5, peer="maitre.durand"))
    finally:
        await durand.close()
        await martin.close()


@asynccontextmanager
async def box_with_the_past(tmp_path: Path) -> AsyncIterator[tuple[E2EBox, Path, Path]]:
    """A running box the two phones pushed 2015 to; yields it, its data dir and a file
    holding the admin passphrase (for the commands run once it is stopped)."""
    config = await prepare_data_dir(tmp_path / "box")
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    running = await start_box(config, clock=Clock())
    try:
        await two_phones_push_the_past(running)
        yield running, config.data_dir, secret
    finally:
        await running.stop()


def run_strongroom(
    data_dir: Path, *argv: str, passphrase_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m strongroom … --data DIR [--passphrase-file F]` and return the outcome."""
    command = [sys.executable, "-m", "strongroom", *argv, "--data", str(data_dir)]
    if passphrase_file is not None:
        command += ["--passphrase-file", str(passphrase_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def strongroom(data_dir: Path, *argv: str, passphrase_file: Path | None = None) -> str:
    """Run `python -m strongroom …`; fail the test with its output if it fails."""
    done = run_strongroom(data_dir, *argv, passphrase_file=passphrase_file)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


async def astrongroom(data_dir: Path, *argv: str, passphrase_file: Path | None = None) -> str:
    return await asyncio.to_thread(strongroom, data_dir, *argv, passphrase_file=passphrase_file)


def verify_certificate_with_openssl(bundle: Path, clean_dir: Path) -> dict[str, Any]:
    """Run VERIFY.txt's own `$` lines with /bin/sh in an empty directory holding the .zip.

    The same procedure a stranger follows for an export (unzip, seal, manifest,
    sha256sum, proofs), then the certificate's own signature. The expected
    fingerprint pasted in is the one box.pem gives, as the box shows it.
    """
    import json

    from test_export_verify_txt import members, script

    clean_dir.mkdir()
    _, files, _ = members(bundle)
    text = files["VERIFY.txt"].decode("utf-8")
    (zip_name,) = [line[2:] for line in command_lines(text) if line.startswith("Z=")]
    shutil.copyfile(bundle, clean_dir / zip_name)
    key = ed25519_public_key_from_pem(files["box.pem"].decode("ascii"))
    shell = clean_dir.parent / f"{clean_dir.name}.sh"
    shell.write_text(script(bundle, box_key_fingerprint(key)), encoding="utf-8")
    done = subprocess.run(
        ["/bin/sh", "-e", str(shell)],
        cwd=clean_dir,
        env={"PATH": "/usr/bin:/bin", "HOME": str(clean_dir), "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The container seal, the manifest, the tree head, then the certificate itself.
    assert done.stdout.count("Signature Verified Successfully") >= 4, done.stdout
    document: dict[str, Any] = json.loads(files["certificate.json"])
    return document


def texts_left_on_disk(data_dir: Path, texts: tuple[str, ...]) -> list[str]:
    """Every file under the data dir that still holds one of these texts (UTF-8 or UTF-16)."""
    found = []
    needles = [t.encode() for t in texts] + [t.encode("utf-16-le") for t in texts]
    for dirpath, _dirs, files in os.walk(data_dir):
        for name in files:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


def texts_in_archive(running: E2EBox, texts: tuple[str, ...], token: str) -> list[str]:
    """Decrypted, every row of every table (signed bodies, FTS segments) holds none of these."""
    conn = running.box.require_archive().reader()
    found: list[str] = []
    needles = [(t, t.encode()) for t in (*texts, token)]
    try:
        tables = [
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            if table == "messages_fts":
                continue  # the virtual table itself: its shadow tables are read below
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    for text, raw in needles:
                        if (isinstance(value, str) and text in value) or (
                            isinstance(value, bytes) and raw in value
                        ):
                            found.append(f"{table}: {text!r}")
        hits = conn.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (token,)
        ).fetchone()
    finally:
        conn.close()
    if int(hits[0]):
        found.append(f"token {token!r} still matches in search")
    return found
