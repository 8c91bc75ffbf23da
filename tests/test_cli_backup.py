"""The restore drill from a terminal: back up, lose the box, rebuild it from 24 words."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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


def test_restore_backup_without_words_says_so_in_french_and_english(tmp_path: Path) -> None:
    """No --words-file and nothing on stdin (a script, a closed terminal): a clear refusal,
    not a traceback; an unreadable words file too. Nothing is written either way."""
    usb, _words_file, secret = _one_backup(tmp_path)
    second = tmp_path / "box2"
    base = ["restore-backup", "--data", str(second), "--passphrase-file", str(secret), str(usb)]
    for extra in ([], ["--words-file", str(tmp_path / "no-such-file.txt")]):
        refused = run_cli(*base, *extra, stdin="")
        assert refused.returncode == 2, refused.stderr
        assert "Traceback" not in refused.stderr
        assert "nothing was written" in refused.stderr
        assert "rien n’a été écrit" in refused.stderr
        assert not second.exists() or not any(second.iterdir())
    no_words = run_cli(*base, stdin="")
    assert "--words-file FILE" in no_words.stderr and "--words-file FICHIER" in no_words.stderr


def test_restore_backup_runs_as_the_owner_of_the_data_dir_alone(tmp_path: Path) -> None:
    """On the appliance the strongroom user owns /var/lib/strongroom (where the service has
    already made tls/) but may not write in /var/lib. Here: uid 0 without the capability
    to override file permissions, a read-only parent and a data dir it owns."""
    usb, words, secret = _one_backup(tmp_path)
    var_lib = tmp_path / "var-lib"
    data = var_lib / "strongroom"
    (data / "tls").mkdir(parents=True, mode=0o700)
    (data / "tls" / "box.crt").write_text("the certificate the service made at first start")
    var_lib.chmod(0o555)
    try:
        restored = _run_cli_bound_by_permissions(
            "restore-backup", "--data", str(data), "--words-file", str(words),
            "--passphrase-file", str(secret), "--yes", str(usb),
        )  # fmt: skip
    finally:
        var_lib.chmod(0o755)
    assert restored.returncode == 0, restored.stderr
    assert "restored set" in restored.stdout
    assert (data / "archive.db").is_file() and (data / "keystore.json").is_file()
    assert (data / "tls" / "box.crt").read_text().startswith("the certificate")
    assert sorted(p.name for p in var_lib.iterdir()) == ["strongroom"]  # nothing left beside it
    check = run_cli("verify", "--data", str(data), "--passphrase-file", str(secret))
    assert check.returncode == 0, check.stdout + check.stderr


def _run_cli_bound_by_permissions(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI without CAP_DAC_OVERRIDE (as root; any other user has none to drop)."""
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    command = [*(drop if os.geteuid() == 0 else []), sys.executable, "-m", "strongroom", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _one_backup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A box with its 24 words in a file and one backup set: (backup dir, words, passphrase)."""
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
    return usb, words, secret
