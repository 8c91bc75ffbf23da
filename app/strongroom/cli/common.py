"""What every command group shares: the data directory, secrets, the unlocked box.

Secrets are read from a file or the terminal, never from argv (argv is
visible to every user of the machine) and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp

from strongroom.config import BoxConfig, load_config
from strongroom.identity import WordsError, words_to_entropy

if TYPE_CHECKING:
    from strongroom.box import Box

Command = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]


class Spec(NamedTuple):
    """One `strongroom NAME` command: what runs, its help line, its own options."""

    run: Command
    help: str
    arguments: AddArguments | None = None


def box_config(args: argparse.Namespace) -> BoxConfig:
    data = Path(args.data) if args.data else Path("/var/lib/strongroom")
    return load_config(data, Path(args.config) if args.config else None)


def read_secret(prompt: str, path: str | None, *, confirm: bool = False) -> str:
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SystemExit(f"strongroom: cannot read {path} ({why}); nothing was done") from None
    if not sys.stdin.isatty():
        given = sys.stdin.readline().rstrip("\r\n")
        if not given:  # stdin closed or empty (a script, a timer): say so, not "too short"
            raise SystemExit(NOTHING_TYPED)
        return given
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again / Encore : ") != first:
        raise SystemExit("strongroom: the two passphrases differ; nothing was written")
    return first


def check_passphrase(passphrase: str) -> str | None:
    """Why a passphrase is refused, or None. Same rule in the CLI and the wizard."""
    if len(passphrase) < 12:
        return "the passphrase needs at least 12 characters"
    classes = sum(
        (
            any(c.islower() for c in passphrase),
            any(c.isupper() for c in passphrase),
            any(c.isdigit() for c in passphrase),
            any(not c.isalnum() for c in passphrase),
        )
    )
    if classes < 2 and len(passphrase) < 20:
        return "mix letters with digits or symbols, or use 20 characters or more"
    return None


def new_passphrase(args: argparse.Namespace) -> str:
    passphrase = read_secret(
        "Admin passphrase / Phrase secrète : ", args.passphrase_file, confirm=True
    )
    problem = check_passphrase(passphrase)
    if problem:
        raise SystemExit(f"strongroom: {problem}; nothing was written")
    return passphrase


@contextlib.contextmanager
def unlocked_box(args: argparse.Namespace) -> Iterator[Box]:
    """The box of this data dir, unlocked (key file or passphrase), stopped on exit."""
    from strongroom.box import Box
    from strongroom.unlock import read_unlock_choice

    config = box_config(args)
    box = Box(config)
    box.on_migrate = _say_migrating
    try:
        if read_unlock_choice(config).mode == "unattended":
            box.unlock_unattended()
        else:
            box.unlock(read_secret("Admin passphrase / Phrase secrète : ", args.passphrase_file))
    except Exception as exc:
        _say_why_not_opened(exc, config.data_dir)
        raise
    try:
        yield box
    finally:
        asyncio.run(box.stop())


def _say_why_not_opened(exc: Exception, data_dir: Path) -> None:
    """A damaged archive, or one that is locked, full, read-only or unreachable: say
    which (archive/open_failure.py), in both languages, and exit; else let it rise."""
    from strongroom.archive.open_failure import classify_open_failure

    failure = classify_open_failure(exc, data_dir)
    if failure is None:
        return
    from strongroom.web.i18n import translator
    from strongroom.web.open_failure_text import open_failure_text

    french, english = (open_failure_text(failure, translator(lang)) for lang in ("fr", "en"))
    raise SystemExit(f"strongroom : {french}\nstrongroom: {english}") from None


def _say_migrating(found: int, target: int, _conn: object) -> None:
    # The box is stopped and this command opens the archive itself: after an upgrade
    # it migrates it first, which may take minutes on a Pi. Say so, or it looks hung.
    print(
        f"Mise à jour de l'archive… (schéma {found} → {target}) /"
        f" Updating the archive… (schema {found} to {target})",
        file=sys.stderr,
        flush=True,
    )


def nothing_written(exc: Exception) -> None:
    print(f"strongroom: {str(exc).rstrip('.')}; nothing was written", file=sys.stderr)


NOTHING_TYPED = (
    "strongroom: no passphrase given (stdin is closed or empty): type it in a terminal,"
    " or pass --passphrase-file FILE; nothing was done\n"
    "strongroom : aucune phrase secrète donnée (entrée fermée ou vide) : tapez-la dans un"
    " terminal, ou indiquez --passphrase-file FICHIER ; rien n’a été fait"
)
NO_WORDS = (
    "strongroom: no words were given: type the 24 words at the prompt, or pass"
    " --words-file FILE; nothing was written\n"
    "strongroom : aucun mot n’a été donné : tapez les 24 mots à l’invite, ou indiquez"
    " --words-file FICHIER ; rien n’a été écrit"
)


def read_words(args: argparse.Namespace) -> bytes | None:
    """The entropy behind the 24 words typed or given in a file; None (and why) if refused."""
    try:
        text = (
            Path(args.words_file).read_text(encoding="utf-8")
            if args.words_file
            else input("24 words / 24 mots : ")
        )
    except EOFError:  # stdin closed or empty: nobody typed them
        print(NO_WORDS, file=sys.stderr)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(
            f"strongroom: cannot read the words file {args.words_file} ({why}); nothing was"
            f" written\nstrongroom : impossible de lire le fichier des mots {args.words_file}"
            f" ({why}) ; rien n’a été écrit",
            file=sys.stderr,
        )
        return None
    try:
        return words_to_entropy(text)
    except WordsError as exc:
        nothing_written(exc)
        return None


def has_identity(config: BoxConfig) -> bool:
    if config.keystore_path.exists():
        print(
            f"strongroom: {config.data_dir} already has an identity; nothing was written",
            file=sys.stderr,
        )
        return True
    return False


def restore_inputs(args: argparse.Namespace) -> tuple[BoxConfig, bytes, str] | int:
    """What a restore (words alone, or words and a backup) needs: a data dir with no
    identity yet, the 24 words' entropy and a new passphrase. An int is the exit code
    when one is refused (why is already printed)."""
    config = box_config(args)
    if has_identity(config):
        return 1
    entropy = read_words(args)
    if entropy is None:
        return 2
    return config, entropy, new_passphrase(args)


def night_job(
    args: argparse.Namespace, job: str, here: Command, body: Any = None, *, as_json: bool = False
) -> int:
    """Run a night job in the running box (over the control socket), else `here`.

    In attended mode only the running box has the keys: a batch process has no
    passphrase. With no box running the command opens the archive itself.
    Exit code: 0 done, 1 failed, 75 skipped (box locked).
    """
    from strongroom.control import call

    config = box_config(args)
    try:
        status, answer = asyncio.run(
            call(config.data_dir, "POST", f"/jobs/{job}", body, timeout_s=None)
        )
    except OSError:  # nobody listens on the control socket: no box is running
        return here(args)
    except aiohttp.ClientError as exc:
        print(f"strongroom: {job}: the box stopped answering ({exc})", file=sys.stderr)
        return 1
    if not isinstance(answer, dict) or "outcome" not in answer:
        print(f"strongroom: {job}: unexpected answer from the box ({status})", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(answer, ensure_ascii=False))
    elif answer["outcome"] == "done":
        print(answer["summary"])
    else:
        print(f"strongroom: {job} {answer['outcome']}: {answer['summary']}", file=sys.stderr)
    return int(answer["exit_code"])


def control(
    args: argparse.Namespace,
    method: str,
    route: str,
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> int:
    """Ask the running box; print its answer as JSON (what scripts parse), or as
    `describe` words it when given and `--json` is not."""
    from strongroom.control import call

    config = box_config(args)
    try:
        status, body = asyncio.run(call(config.data_dir, method, route))
    except OSError:
        print(f"strongroom: no box is running with data in {config.data_dir}", file=sys.stderr)
        return 1
    if describe is not None and status == 200 and not getattr(args, "json", False):
        print(describe(body))
    else:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    return 0 if status == 200 else 1
