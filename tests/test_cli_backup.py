"""The restore drill from a terminal: back up, lose the box, rebuild it from 24 words."""

from __future__ import annotations

import asyncio
from pathlib import Path

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from test_cli_identity import PASSPHRASE, run_cli


def _words(init_stdout: str) -> str:
    return " ".join(line.split(". ", 1)[1] for line in init_stdout.splitlines() if ". " in line[:4])


def test_backup_then_restore_on_a_new_box_keeps_every_record(tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    first = tmp_path / "box1"
    init = run_cli("init", "--data", str(first), "--passphrase-file", str(secret))
    assert init.returncode == 0, init.stderr
    words = tmp_path / "words.txt"
    words.write_text(_words(init.stdout))

    box = Box(BoxConfig(data_dir=first))
    box.unlock(PASSPHRASE)
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    texts = [f"Conclusions déposées, pièce n°{n}" for n in range(25)]
    archive.write_batch(
        [writes.store_record(message(key, text), device_id, "maitre.durand") for text in texts]
    )
    asyncio.run(box.stop())

    usb = tmp_path / "usb"
    usb.mkdir()
    made = run_cli(
        "backup", "--data", str(first), "--passphrase-file", str(secret), "--target", str(usb)
    )
    assert made.returncode == 0, made.stderr
    assert "backup set" in made.stdout

    second = tmp_path / "box2"
    restored = run_cli(
        "restore-backup",
        "--data",
        str(second),
        "--words-file",
        str(words),
        "--passphrase-file",
        str(secret),
        "--yes",
        str(usb),
    )
    assert restored.returncode == 0, restored.stderr
    assert "25 records" in restored.stdout
    check = run_cli("verify", "--data", str(second), "--passphrase-file", str(secret))
    assert check.returncode == 0, check.stdout
    assert "records: 25" in check.stdout
    devices = run_cli("devices", "--data", str(second), "--passphrase-file", str(secret))
    assert "Pixel de Maître Durand" in devices.stdout

    # The wrong 24 words: a clear refusal, and the third box stays empty.
    other = run_cli("init", "--data", str(tmp_path / "other"), "--passphrase-file", str(secret))
    words.write_text(_words(other.stdout))
    third = tmp_path / "box3"
    refused = run_cli(
        "restore-backup",
        "--data",
        str(third),
        "--words-file",
        str(words),
        "--passphrase-file",
        str(secret),
        str(usb),
    )
    assert refused.returncode == 2
    assert "nothing was written" in refused.stderr
    assert not third.exists() or not any(third.iterdir())


def test_restore_backup_says_what_the_backup_holds_and_asks_before_restoring(
    tmp_path: Path,
) -> None:
    """The backup's signed head (log size, time) and the pairing warning, in FR and EN,
    come before anything is written; "no" (or no answer) leaves the new box empty."""
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    first = tmp_path / "box1"
    init = run_cli("init", "--data", str(first), "--passphrase-file", str(secret))
    assert init.returncode == 0, init.stderr
    words = tmp_path / "words.txt"
    words.write_text(_words(init.stdout))
    usb = tmp_path / "usb"
    usb.mkdir()
    made = run_cli(
        "backup", "--data", str(first), "--passphrase-file", str(secret), "--target", str(usb)
    )
    assert made.returncode == 0, made.stderr
    backed_size = int(made.stdout.split("tree size ")[1].split(",")[0])

    second = tmp_path / "box2"
    base = ["restore-backup", "--data", str(second), "--words-file", str(words)]
    base += ["--passphrase-file", str(secret), str(usb)]
    for answer in ("n\n", ""):
        refused = run_cli(*base, stdin=answer)
        assert refused.returncode == 1
        assert f"log size / taille du journal : {backed_size}, signed / signé 20" in refused.stdout
        assert "will refuse the restored box until they are paired again" in refused.stdout
        assert "refuseront le boîtier restauré" in refused.stdout
        assert "revoked after this backup's head time are active again" in refused.stdout
        assert "révoqués après l’heure de la tête de cette sauvegarde" in refused.stdout
        assert "nothing was written" in refused.stderr
        assert not second.exists() or not any(second.iterdir())

    accepted = run_cli(*base, stdin="oui\n")
    assert accepted.returncode == 0, accepted.stderr
    assert f"log size {backed_size}" in accepted.stdout
    assert (second / "archive.db").is_file()
