"""Command-line interface: `strongroom …` and `python -m strongroom …`.

One module per command group; each offers `COMMANDS`, a name → `Spec`
table (what runs, its help line, its own options). Every command takes
`--data`, `--config` and `--passphrase-file`, and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys

from strongroom import __version__
from strongroom.cli import (
    appliance,
    archive,
    audit,
    certificates,
    exports,
    holds,
    identity,
    losses,
    matters,
    office,
    people,
    reach,
    retention,
    service,
)
from strongroom.cli.common import Spec
from strongroom.config import ConfigError
from strongroom.identity import KeystoreError, WrongPassphrase
from strongroom.office.errors import BackupError

COMMANDS: dict[str, Spec] = {
    **service.COMMANDS,
    **identity.COMMANDS,
    **archive.COMMANDS,
    **losses.COMMANDS,
    **office.COMMANDS,
    **appliance.COMMANDS,
    **holds.COMMANDS,
    **audit.COMMANDS,
    **retention.COMMANDS,
    **certificates.COMMANDS,
    **matters.COMMANDS,
    **exports.COMMANDS,
    **people.COMMANDS,
    **reach.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongroom", description="Strongroom box")
    parser.add_argument("--version", action="version", version=f"strongroom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, spec in COMMANDS.items():
        cmd = sub.add_parser(name, help=spec.help)
        cmd.add_argument("--data", help="data directory (default /var/lib/strongroom)")
        cmd.add_argument("--config", help="box.toml (default: DATA/box.toml)")
        cmd.add_argument("--passphrase-file", help="read the admin passphrase from this file")
        if spec.arguments is not None:
            spec.arguments(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv[:1] == ["phone"]:
        # The reference phone client has its own commands and options.
        from strongroom.client.cli import main as phone_main

        return phone_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except ConfigError as exc:
        print(f"strongroom: configuration: {exc}", file=sys.stderr)
        return 2
    except WrongPassphrase:
        print("strongroom: wrong passphrase", file=sys.stderr)
        return 3
    except KeystoreError as exc:
        print(f"strongroom: {exc}", file=sys.stderr)
        return 3
    except BackupError as exc:
        print(f"strongroom: backup: {exc}", file=sys.stderr)
        return 2
