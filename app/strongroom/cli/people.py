"""`strongroom users | user-add | passwd`: accounts and their unlock slots, box stopped.

The same rules as the web Users page: an administrator gets their own keystore
slot, so their passphrase unlocks the box after a restart; `passwd` sets a new
passphrase (your own, or a colleague's who forgot theirs) and re-seals their
slot. Both are audited with the actor "cli". New passphrases are read from
--new-passphrase-file or the terminal, never from argv.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from strongroom.archive import writes
from strongroom.cli.common import Spec, read_secret, unlocked_box
from strongroom.web.users import (
    DEFAULT_HASHER,
    ROLES,
    BadUserInput,
    UserExists,
    check_new_user,
    create_user,
    get_user,
    list_users,
    passphrase_problem,
    set_password_op,
)

if TYPE_CHECKING:
    from strongroom.box import Box

ACTOR = "cli"


def _new_passphrase(args: argparse.Namespace, prompt: str) -> str | None:
    passphrase = read_secret(prompt, args.new_passphrase_file, confirm=True)
    problem = passphrase_problem(passphrase)
    if problem is not None:
        print(
            f"strongroom: the passphrase is refused ({problem.value}); nothing was written",
            file=sys.stderr,
        )
        return None
    return passphrase


def cmd_users(args: argparse.Namespace) -> int:
    with unlocked_box(args) as box:
        owners = box.keystore().owners
        for user in list_users(box.require_archive().conn):
            unlock = "can unlock" if user.username in owners else "-"
            state = "disabled" if user.disabled else "active"
            print(f"{user.username}\t{user.role}\t{state}\t{unlock}")
    if "" in owners:  # `init`, a restore: the passphrase typed then, whoever types it
        print(  # on stderr: every stdout line is a tab-separated row, for scripts
            "strongroom: one more passphrase unlocks the box (the one given to init or a"
            " restore): the administrator who logs in with it on the web is named beside it",
            file=sys.stderr,
        )
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    with unlocked_box(args) as box:
        try:
            name = check_new_user(args.username, "x" * 20, args.role)
        except BadUserInput as exc:
            print(f"strongroom: {exc} refused; nothing was written", file=sys.stderr)
            return 2
        passphrase = _new_passphrase(args, f"Passphrase for {name} / Phrase secrète : ")
        if passphrase is None:
            return 2
        try:
            create_user(box, name, passphrase, args.role)
        except UserExists:
            print(f"strongroom: {name} already exists; nothing was written", file=sys.stderr)
            return 1
        if args.role == "admin":
            assert box.keys is not None
            box.keystore().set_passphrase(box.keys.entropy, name, passphrase)
        details = {"role": args.role, "unlock_slot": args.role == "admin"}
        _audit(box, "user.create", name, details)
    print(f"{name} created ({args.role})")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    with unlocked_box(args) as box:
        archive = box.require_archive()
        user = get_user(archive.conn, args.username)
        if user is None:
            print(f"strongroom: no user {args.username!r}", file=sys.stderr)
            return 1
        passphrase = _new_passphrase(args, f"New passphrase for {user.username} / Nouvelle : ")
        if passphrase is None:
            return 2
        archive.write(set_password_op(user.username, DEFAULT_HASHER.hash(passphrase)))
        sealed = user.role == "admin" and not user.disabled
        if sealed:
            assert box.keys is not None
            box.keystore().set_passphrase(box.keys.entropy, user.username, passphrase)
        _audit(box, "user.reset", user.username, {"unlock_slot": sealed})
    print(f"passphrase of {user.username} changed" + (" (unlock slot re-sealed)" if sealed else ""))
    return 0


def _audit(box: Box, action: str, target: str, details: dict[str, Any]) -> None:
    box.require_archive().write(writes.audit(ACTOR, action, target, details))


def _new_passphrase_file(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--new-passphrase-file", help="read the new passphrase from this file")


def _user_add_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("username")
    cmd.add_argument("--role", choices=ROLES, default="admin")
    _new_passphrase_file(cmd)


def _passwd_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("username")
    _new_passphrase_file(cmd)


COMMANDS: dict[str, Spec] = {
    "users": Spec(cmd_users, "list the web accounts and who can unlock the box"),
    "user-add": Spec(
        cmd_user_add, "add a web account (an admin also gets an unlock slot)", _user_add_options
    ),
    "passwd": Spec(
        cmd_passwd, "set a user's new passphrase (re-seals an admin's unlock slot)", _passwd_options
    ),
}
