"""`strongroom init / restore / verify / check-words` as an office manager uses them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from strongroom.identity import entropy_to_words, new_entropy
from strongroom.identity.words import WordsError, words_to_entropy

PASSPHRASE = "Correct-Horse-42-battery"


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strongroom", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "pass.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


def test_init_shows_24_words_that_restore_the_same_box(
    tmp_path: Path, passphrase_file: Path
) -> None:
    first = tmp_path / "box1"
    out = run_cli("init", "--data", str(first), "--passphrase-file", str(passphrase_file))
    assert out.returncode == 0, out.stderr
    words = [line.split(". ", 1)[1] for line in out.stdout.splitlines() if ". " in line[:4]]
    assert len(words) == 24
    (said,) = [line for line in out.stdout.splitlines() if line.startswith("Box fingerprint")]
    fingerprint = said.split(" : ")[-1]
    # No web account exists yet: it names the command that makes the first one.
    next_step = f"Next / ensuite : strongroom user-add NAME --role admin --data {first}"
    assert next_step in out.stdout
    words_file = tmp_path / "words.txt"
    words_file.write_text(" ".join(words))
    second = tmp_path / "box2"
    restored = run_cli(
        "restore",
        "--data",
        str(second),
        "--words-file",
        str(words_file),
        "--passphrase-file",
        str(passphrase_file),
    )
    assert restored.returncode == 0, restored.stderr
    assert fingerprint in restored.stdout
    # An identity without its archive: no phone is known any more, and it says so.
    assert "every phone must be paired again" in restored.stdout
    assert "chaque téléphone doit être appairé de nouveau" in restored.stdout
    assert f"strongroom user-add NAME --role admin --data {second}" in restored.stdout
    check = run_cli("verify", "--data", str(second), "--passphrase-file", str(passphrase_file))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK: the archive verifies" in check.stdout


def _bad_checksum(words: list[str]) -> list[str]:
    """The 24 words with the last one swapped for another word of the list that
    breaks the checksum (a swap keeps it valid one time in 256: try until it breaks)."""
    for other in words:
        candidate = [*words[:23], other]
        if other == words[23]:
            continue
        try:
            words_to_entropy(" ".join(candidate))
        except WordsError:
            return candidate
    raise AssertionError("no word of the list breaks the checksum")


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda w: w[:23], "24 words are needed, 23 were given"),
        (lambda w: [*w[:4], "xylophonique", *w[5:]], "Word 5 ("),
        (lambda w: _bad_checksum(w), "checksum"),
    ],
)
def test_restore_refuses_bad_words_naming_the_problem_and_writes_nothing(
    tmp_path: Path, passphrase_file: Path, mangle: Callable[[list[str]], list[str]], expected: str
) -> None:
    words = entropy_to_words(new_entropy(), "french")
    words_file = tmp_path / "words.txt"
    words_file.write_text(" ".join(mangle(words)))
    data = tmp_path / "box"
    out = run_cli(
        "restore",
        "--data",
        str(data),
        "--words-file",
        str(words_file),
        "--passphrase-file",
        str(passphrase_file),
    )
    assert out.returncode == 2
    assert expected in out.stderr
    assert "nothing was written" in out.stderr
    assert not data.exists() or not any(data.iterdir())


def test_init_refuses_to_overwrite_an_identity(tmp_path: Path, passphrase_file: Path) -> None:
    data = tmp_path / "box"
    assert (
        run_cli("init", "--data", str(data), "--passphrase-file", str(passphrase_file)).returncode
        == 0
    )
    before = (data / "keystore.json").read_bytes()
    again = run_cli("init", "--data", str(data), "--passphrase-file", str(passphrase_file))
    assert again.returncode == 1
    assert "already has an identity" in again.stderr
    assert (data / "keystore.json").read_bytes() == before


def test_weak_passphrase_is_refused(tmp_path: Path) -> None:
    weak = tmp_path / "weak.txt"
    weak.write_text("short\n")
    out = run_cli("init", "--data", str(tmp_path / "box"), "--passphrase-file", str(weak))
    assert out.returncode != 0
    assert "12 characters" in out.stderr
    assert not (tmp_path / "box" / "keystore.json").exists()


def test_no_passphrase_at_all_is_said_as_such(tmp_path: Path, passphrase_file: Path) -> None:
    """stdin closed (a script): it said "the passphrase needs at least 12 characters"
    (init) or "wrong passphrase" (an attended box), as if one had been typed."""
    data = tmp_path / "box"
    made = run_cli("init", "--data", str(data))
    assert made.returncode == 1 and "no passphrase given" in made.stderr, made.stderr
    assert "--passphrase-file FILE" in made.stderr and "aucune phrase secrète" in made.stderr
    assert not data.joinpath("keystore.json").exists()
    assert (
        run_cli("init", "--data", str(data), "--passphrase-file", str(passphrase_file)).returncode
        == 0
    )
    out = run_cli("verify", "--data", str(data))
    assert out.returncode == 1 and "no passphrase given" in out.stderr, out.stderr


def test_verify_with_wrong_passphrase_fails_cleanly(tmp_path: Path, passphrase_file: Path) -> None:
    data = tmp_path / "box"
    assert (
        run_cli("init", "--data", str(data), "--passphrase-file", str(passphrase_file)).returncode
        == 0
    )
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Not-the-right-one-99\n")
    out = run_cli("verify", "--data", str(data), "--passphrase-file", str(wrong))
    assert out.returncode == 3
    assert "wrong passphrase" in out.stderr
