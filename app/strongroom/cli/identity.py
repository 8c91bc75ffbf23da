"""`strongroom init | restore | check-words`: the box identity and its 24 words."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from strongroom.cli.common import (
    Spec,
    box_config,
    has_identity,
    new_passphrase,
    restore_inputs,
)
from strongroom.identity import (
    WordsError,
    derive_box_keys,
    entropy_to_words,
    new_entropy,
    words_to_entropy,
)


def cmd_init(args: argparse.Namespace) -> int:
    from strongroom.box import Box
    from strongroom.web.tls_key import certificate_key_fingerprint

    config = box_config(args)
    if has_identity(config):
        return 1
    sheet_path = Path(args.recovery_sheet).resolve() if args.recovery_sheet else None
    if sheet_path is not None and sheet_path.is_relative_to(config.data_dir.resolve()):
        print(
            "strongroom: the recovery sheet must not be kept on the box; nothing was written",
            file=sys.stderr,
        )
        return 2
    passphrase = new_passphrase(args)
    entropy = new_entropy()
    words = entropy_to_words(entropy, "french" if args.language == "fr" else "english")
    box = Box(config)
    box.initialise(entropy, passphrase)
    try:
        if sheet_path is not None:
            tls_key = certificate_key_fingerprint(config.tls_dir)  # None before a first start
            _write_sheet(sheet_path, words, box.fingerprint or "", args.language, tls_key)
        print("Write these 24 words on paper and keep them safe. They are shown only once.")
        print(
            "Notez ces 24 mots sur papier et gardez-les en lieu sûr."
            " Ils ne sont montrés qu'une fois."
        )
        for number, word in enumerate(words, start=1):
            print(f"{number:2d}. {word}")
        print(f"Box fingerprint / empreinte : {box.fingerprint}")
        _say_first_admin(config.data_dir)
    finally:
        asyncio.run(box.stop())
    return 0


def _say_first_admin(data_dir: Path) -> None:
    """A box made from a terminal has no web account yet: its login page would open to
    nobody. Say the one command that makes the first administrator."""
    print(
        f"Next / ensuite : strongroom user-add NAME --role admin --data {data_dir}"
        "  (the first web account: none exists yet / aucun compte web n'existe encore)"
    )


def _write_sheet(
    path: Path, words: list[str], fingerprint: str, language: str, tls_key: str | None
) -> None:
    """The printable recovery sheet (the web wizard's PDF), to a USB key or a printer spool;
    with the HTTPS key's fingerprint when the box has made its certificate (it stays the
    same when the certificate is issued again for the new identity)."""
    import time

    from strongroom.office.export_render import DEFAULT_TIME_ZONE
    from strongroom.office.practice_days import today_in
    from strongroom.web.i18n import translator
    from strongroom.web.recovery_kit import KitSheet, kit_pdf

    # No archive to read the practice's zone from at init: the default zone's
    # date, as the web wizard's sheet has, not the box's UTC one.
    issued = today_in(DEFAULT_TIME_ZONE, time.time())
    sheet = KitSheet(words, "", issued, fingerprint, tls_key)
    path.write_bytes(kit_pdf(sheet, translator(language)))
    print(f"Recovery sheet / fiche de secours : {path} (print it, then delete the file)")


def cmd_restore(args: argparse.Namespace) -> int:
    from strongroom.box import Box

    inputs = restore_inputs(args)
    if isinstance(inputs, int):
        return inputs
    config, entropy, passphrase = inputs
    box = Box(config)
    box.initialise(entropy, passphrase)
    print(f"Identity restored. Box fingerprint / empreinte : {box.fingerprint}")
    print(
        "The archive is empty: every phone must be paired again (to bring the archive back,"
        " use restore-backup instead).\nL’archive est vide : chaque téléphone doit être"
        " appairé de nouveau (pour retrouver l’archive, utilisez plutôt restore-backup)."
    )
    _say_first_admin(config.data_dir)
    asyncio.run(box.stop())
    return 0


def cmd_words_check(args: argparse.Namespace) -> int:
    """Check 24 words without writing anything (used by support staff)."""
    text = Path(args.words_file).read_text(encoding="utf-8") if args.words_file else input()
    try:
        entropy = words_to_entropy(text)
    except WordsError as exc:
        print(f"strongroom: {exc}", file=sys.stderr)
        return 2
    print(f"valid; box fingerprint / empreinte : {derive_box_keys(entropy).fingerprint}")
    return 0


def _language(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--language", choices=("fr", "en"), default="fr")
    cmd.add_argument(
        "--recovery-sheet",
        help="also write the printable recovery sheet (PDF) there: a USB key, never the box",
    )


def _words_file(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--words-file", help="read the 24 words from this file")


COMMANDS: dict[str, Spec] = {
    "init": Spec(cmd_init, "create a new box identity (24 words) and an empty archive", _language),
    "restore": Spec(cmd_restore, "recreate the box identity from its 24 words", _words_file),
    "check-words": Spec(cmd_words_check, "check 24 words without writing anything", _words_file),
}
