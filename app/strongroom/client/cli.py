"""`strongroom phone …`: play a phone from a terminal against a running box.

    strongroom phone pair ws://127.0.0.1:8080/peer --name "Pixel" --owner claire
    strongroom phone send "Bonjour" --conv client-martin [--to paul]
    strongroom phone inbox
    strongroom phone restore
    strongroom phone attach scan.pdf --conv client-martin
    strongroom phone reach                 # on the LAN: the box's onion and our key
    strongroom phone tor-key DIR           # give the phone's tor that key
    strongroom phone --tor socks5://127.0.0.1:9050 send "Bonjour" --conv client-martin

The phone's keys, pairing and outbox live in a JSON file (--state, default
$STRONGROOM_PHONE or var/phone.json). Mail payloads sent by this tool are the
signed record bytes, NOT end-to-end encrypted: real apps encrypt them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import mimetypes
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import cbor2

from strongroom.client.link import LinkError
from strongroom.client.phone import PhoneClient
from strongroom.client.proofs import ProofError
from strongroom.client.restore import HistoryStore
from strongroom.client.state import DeviceState, StateError

DEFAULT_STATE = "var/phone.json"
NO_REACH = (
    "no remote-reach address or key: connect once on the office network"
    " (strongroom phone reach) while the box has remote reach on"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongroom phone", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(os.environ.get("STRONGROOM_PHONE", DEFAULT_STATE)),
        help="the phone's state file (keys, pairing, outbox)",
    )
    parser.add_argument(
        "--tor",
        metavar="SOCKS_URL",
        help="reach the box's onion through tor, e.g. socks5://127.0.0.1:9050 (remote reach)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pair = commands.add_parser("pair", help="pair with a box (button window or QR code)")
    pair.add_argument("url", help="the box's peer endpoint, e.g. ws://127.0.0.1:8080/peer")
    pair.add_argument("--name", required=True, help="this phone's name, shown on the box")
    pair.add_argument("--owner", required=True, help="the staff member owning this phone")
    pair.add_argument("--fingerprint", help="the box fingerprint to check (from mDNS)")
    pair.add_argument("--qr", help="the pairing URI read from the box's QR code")
    send = commands.add_parser("send", help="archive a sent message (and mail it)")
    send.add_argument("text")
    send.add_argument("--conv", required=True, help="conversation id")
    send.add_argument("--to", help="also leave it as mail for this owner's phones")
    send.add_argument("--peer", help="the other party (default: --to)")
    inbox = commands.add_parser("inbox", help="receive waiting mail and archive it")
    inbox.add_argument("--wait", type=float, default=2.0, help="seconds to wait for mail")
    restore = commands.add_parser("restore", help="fetch the owner's whole history")
    restore.add_argument("--attachments", type=Path, help="download attachments here")
    attach = commands.add_parser("attach", help="upload a file and archive it as an attachment")
    attach.add_argument("file", type=Path)
    attach.add_argument("--conv", required=True)
    attach.add_argument("--peer", help="the other party")
    commands.add_parser(
        "reach", help="connect on the LAN and get the box's current remote reach (onion, key)"
    )
    tor_key = commands.add_parser("tor-key", help="give the phone's tor its onion-auth key")
    tor_key.add_argument("auth_dir", type=Path, help="the phone tor's ClientOnionAuthDir")
    return parser


def _message(text: str, conv: str, direction: str, sender: str, peer: str) -> dict[str, Any]:
    # `peer` names the other party (protocol 6.1): holds and exports on a person use it.
    fields = {
        "v": 1,
        "kind": "message",
        "id": str(uuid.uuid4()),
        "conv": conv,
        "dir": direction,
        "from": sender,
        "at": int(time.time() * 1000),
        "text": text,
    }
    if peer:
        fields["peer"] = peer
    return fields


async def _pair(phone: PhoneClient, args: argparse.Namespace) -> None:
    def show(code: str) -> None:
        print(f"Comparison code: {code}  (check that the box shows the same code)", flush=True)

    if args.qr:  # the QR code's one-time secret proves the box: no code to compare
        paired = await phone.pair_qr(args.url, args.qr, args.name, args.owner)
    else:
        print("Waiting for the box to accept (press PAIR, confirm the code)…", flush=True)
        paired = await phone.pair_button(
            args.url, args.fingerprint, args.name, args.owner, on_code=show
        )
    print(f"Paired as device {paired.device_id} with box {paired.fingerprint}")


async def _send(phone: PhoneClient, args: argparse.Namespace) -> None:
    state = phone.state
    await phone.connect()
    fields = _message(args.text, args.conv, "out", state.owner, args.peer or args.to or "")
    ack = await phone.push(fields)
    size = ack.tree_head.tree_size
    print(f"archived at log index {ack.log_index} (proof verified, tree size {size})")
    if args.to:
        raw, sig = phone.sign(fields)
        await phone.send_mail(args.to, cbor2.dumps({"record": raw, "sig": sig}, canonical=True))
        print(f"mail left for {args.to}")


async def _inbox(phone: PhoneClient, args: argparse.Namespace) -> None:
    await phone.connect()
    mails = await phone.receive_mail(wait_s=args.wait)
    while mails and (more := await phone.receive_mail(wait_s=0.3)):  # until quiet
        mails += more
    for mail in mails:
        try:
            envelope = cbor2.loads(mail.payload)
            fields = cbor2.loads(envelope["record"])
            text, conv = str(fields["text"]), str(fields["conv"])
        except Exception:  # not from this tool: show it raw
            print(f"[{mail.sender_owner}] {mail.payload.hex()}")
            continue
        print(f"[{mail.sender_owner}] {text}")
        await phone.push(_message(text, conv, "in", mail.sender_owner, mail.sender_owner))
    print(f"{len(mails)} message(s)")


async def _restore(phone: PhoneClient, args: argparse.Namespace) -> None:
    await phone.connect()

    def progress(count: int) -> None:
        print(f"\r{count} records", end="", flush=True)

    # Records go to a store next to the state file, a page at a time: a restore that is
    # cut off (Ctrl-C, lost link) goes on from the last stored page when run again.
    directory = Path(f"{args.state}.history")
    count = await phone.restore_to(directory, progress, attachments_dir=args.attachments)
    print()
    last = collections.deque(HistoryStore(directory).items(), maxlen=10)
    for item in last:
        fields = item.fields
        print(
            f"#{item.log_index} {fields.get('kind')} {fields.get('conv')}: {fields.get('text', '')}"
        )
    print(f"{count} records in {directory}")


async def _attach(phone: PhoneClient, args: argparse.Namespace) -> None:
    state = phone.state
    await phone.connect()
    path: Path = args.file

    def progress(offset: int, size: int) -> None:
        print(f"\r{offset}/{size} bytes", end="", flush=True)

    ack = await phone.upload_attachment(path, progress=progress)
    print()
    size = (await asyncio.to_thread(path.stat)).st_size
    fields = _message("", args.conv, "out", state.owner, args.peer or "")
    del fields["text"]
    fields.update(
        kind="attachment",
        ref=fields["id"],
        blob={
            "sha256": ack.ref,
            "size": size,
            "name": path.name,
            "mime": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        },
    )
    record_ack = await phone.push(fields)
    print(f"attachment {ack.ref.hex()[:16]}… archived at log index {record_ack.log_index}")


async def _reach(phone: PhoneClient, args: argparse.Namespace) -> None:
    # Every connection on the LAN asks for reach (client/reach.py); this one only does that.
    await phone.connect()
    state = phone.state
    if state.onion is None:
        print("remote reach: off (or this box has none)")
        return
    print(f"remote reach: on\nonion address: {state.onion}")
    print("onion key: held" if state.onion_auth else "onion key: none yet (retry later)")


async def _tor_key(phone: PhoneClient, args: argparse.Namespace) -> None:
    from strongroom.reach.phone import install_client_auth

    state = phone.state
    if state.onion is None or state.onion_auth is None:
        raise StateError(NO_REACH)
    path = install_client_auth(args.auth_dir, "strongroom", state.onion, state.onion_auth)
    print(f"wrote {path}; reload tor (SIGHUP) to use it")


COMMANDS = {
    "pair": _pair,
    "send": _send,
    "inbox": _inbox,
    "restore": _restore,
    "attach": _attach,
    "reach": _reach,
    "tor-key": _tor_key,
}


async def _run(args: argparse.Namespace) -> None:
    path: Path = args.state
    if args.command == "pair":
        if await asyncio.to_thread(path.exists):
            raise StateError(f"{path} already holds a phone; choose another --state")
        state = DeviceState.generate(args.name, args.owner)
    else:
        state = DeviceState.load(path)
    lan_url, http = state.url, None
    if args.tor and args.command != "pair":
        # Remote reach: the same protocol, through tor's SOCKS5 port (docs/protocol.md §12).
        from strongroom.reach.phone import onion_peer_url, tor_session

        if state.onion is None:
            raise StateError(NO_REACH)
        http, state.url = tor_session(args.tor), onion_peer_url(state.onion)
    phone = PhoneClient(state, state_path=path, http=http)
    try:
        await COMMANDS[args.command](phone, args)
    finally:
        if http is not None:
            state.url = lan_url  # the onion is used only when asked for
        await phone.close()
        if http is not None:
            await http.close()


def main(argv: list[str]) -> int:
    """Entry point for `strongroom phone ARGS`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except (LinkError, ProofError, StateError, OSError, aiohttp.ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from strongroom.reach.phone import SocksError, SocksTimeout, socks_reply

        if not isinstance(exc, SocksError | SocksTimeout):
            raise
        code = socks_reply(exc) if isinstance(exc, SocksError) else None
        reply = f" (SOCKS reply {code:#04x})" if code is not None else ""
        print(f"error: tor could not reach the box{reply}: {exc}", file=sys.stderr)
        return 1
    return 0
