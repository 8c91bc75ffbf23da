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
    read_words,
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

    config = box_config(args)
    if has_identity(config):
        return 1
    passphrase = new_passphrase(args)
    entropy = new_entropy()
    words = entropy_to_words(entropy, "french" if args.language == "fr" else "english")
    box = Box(config)
    box.initialise(entropy, passphrase)
    try:
        print("Write these 24 words on paper and keep them safe. They are shown only once.")
        print(
            "Notez ces 24 mots sur papier et gardez-les en lieu sûr."
            " Ils ne sont montrés qu'une fois."
        )
        for number, word in enumerate(words, start=1):
            print(f"{number:2d}. {word}")
        print(f"Box fingerprint / empreinte : {box.fingerprint}")
    finally:
        asyncio.run(box.stop())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from strongroom.box import Box

    config = box_config(args)
    if has_identity(config):
        return 1
    entropy = read_words(args)
    if entropy is None:
        return 2
    passphrase = new_passphrase(args)
    box = Box(config)
    box.initialise(entropy, passphrase)
    print(f"Identity restored. Box fingerprint / empreinte : {box.fingerprint}")
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


def _words_file(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--words-file", help="read the 24 words from this file")


COMMANDS: dict[str, Spec] = {
    "init": Spec(cmd_init, "create a new box identity (24 words) and an empty archive", _language),
    "restore": Spec(cmd_restore, "recreate the box identity from its 24 words", _words_file),
    "check-words": Spec(cmd_words_check, "check 24 words without writing anything", _words_file),
}
