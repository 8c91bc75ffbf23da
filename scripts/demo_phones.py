"""The two simulated phones of `make demo` (scripts/demo.sh drives this file).

    demo_phones.py prepare --data DIR   create the dev box in DIR on a free loopback port
    demo_phones.py chat --data DIR      pair two phones with the running box and chat

`chat` shows the whole story a newcomer should see: PAIR pressed (through the
control socket, as `strongroom pair` does), each phone's comparison code checked
against the one the web UI shows, the admin confirming in the web UI, then mail
between the phones and every message pushed to the box with a verified proof,
and an accent-insensitive search in the web UI archive.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from strongroom.client import DeviceState, PhoneClient
from strongroom.control import call
from strongroom.devbox import DEV_ADMIN, prepare_dev_box

PHONES = (("maitre.durand", "Pixel de Maître Durand"), ("dr.martin", "iPhone du Dr Martin"))
CONVERSATION = (
    (
        "maitre.durand",
        "dr.martin",
        "Bonjour Docteur, l'expertise médicale de M. Roux est-elle prête ?",
    ),
    ("dr.martin", "maitre.durand", "Oui, je vous l'envoie ce soir. Audience toujours jeudi ?"),
    ("maitre.durand", "dr.martin", "Jeudi 14 h, chambre 3. Merci pour l'expertise !"),
    ("dr.martin", "maitre.durand", "Parfait, à jeudi."),
)
SEARCH = "medicale"  # no accent: the archive folds them
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_HIT = re.compile(r'<span class="meta">(.*?)</span>\s*<span class="text">(.*?)</span>', re.DOTALL)


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(data_dir: Path) -> int:
    """A fresh dev box whose box.toml names a free port; prints the port."""
    prepare_dev_box(data_dir)
    config_path = data_dir / "box.toml"
    text = config_path.read_text(encoding="utf-8")
    port = free_port()
    config_path.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text), "utf-8")
    print(port)
    return 0


class WebAdmin:
    """The office manager in the web UI (session cookie, CSRF token on every form)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies from 127.0.0.1
            headers={"Accept-Language": "en"},
        )

    async def page(self, path: str) -> str:
        async with self.http.get(self.base_url + path) as response:
            response.raise_for_status()
            return await response.text()

    async def post(self, path: str, form_page: str, data: dict[str, str]) -> str:
        """Submit a form; returns where the box redirects to."""
        token = _CSRF.search(await self.page(form_page))
        if token is None:
            raise RuntimeError(f"no CSRF token on {form_page}")
        async with self.http.post(
            self.base_url + path,
            data={**data, "csrf_token": token.group(1)},
            allow_redirects=False,
        ) as response:
            if response.status != 303:
                raise RuntimeError(f"POST {path} -> {response.status}")
            return response.headers.get("Location", "")

    async def login(self, password: str) -> None:
        where = await self.post("/login", "/login", {"username": DEV_ADMIN, "password": password})
        if where.startswith("/login"):
            raise RuntimeError("the admin login failed")

    async def pending_pairing(self, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = json.loads(await self.page("/devices/pairing.json"))
            if view.get("pending"):
                return dict(view["pending"])
            await asyncio.sleep(0.05)
        raise RuntimeError("no phone showed up in the pairing window")

    async def close(self) -> None:
        await self.http.close()


async def wait_for_box(data_dir: Path, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status, body = await call(data_dir, "GET", "/status")
            if status == 200 and body["phase"] == "ready":
                return dict(body)
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError("the dev box did not start")
        await asyncio.sleep(0.1)


async def pair(
    data_dir: Path, admin: WebAdmin, peer_url: str, fingerprint: str, owner: str, name: str
) -> PhoneClient:
    status, body = await call(data_dir, "POST", "/pair")  # = pressing PAIR on the box
    if status != 200 or not body["pairing_open"]:
        raise RuntimeError(f"the pairing window did not open: {body}")
    say(f"  PAIR pressed: window open for 120 s (LED blinking) -> {name} ({owner})")
    phone = PhoneClient(DeviceState.generate(name, owner), keepalive=False)
    codes: list[str] = []
    attempt = asyncio.create_task(phone.pair_button(peer_url, fingerprint, on_code=codes.append))
    pending = await admin.pending_pairing()
    shown = f"{pending['code']} for {pending['device_name']}"
    say(f"  phone shows code {codes[0]}, web UI shows {shown}")
    if codes[0] != pending["code"]:
        raise RuntimeError("the comparison codes differ: do not confirm")
    await admin.post("/devices/pair/confirm", "/devices", {"ticket": str(pending["ticket"])})
    paired = await asyncio.wait_for(attempt, 10)
    say(f"  confirmed by the admin: {name} is device #{paired.device_id}")
    return phone


def record(owner: str, peer: str, direction: str, sender: str, text: str, n: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "message",
        "id": f"demo-{n}",
        "conv": peer,
        "dir": direction,
        "from": sender,
        "at": int(time.time() * 1000) + n,
        "text": text,
    }


async def chat(phones: dict[str, PhoneClient]) -> int:
    """Mail each line to the other phone; both push their copy; returns the log size."""
    log_size = 0
    for n, (sender, recipient, text) in enumerate(CONVERSATION):
        a, b = phones[sender], phones[recipient]
        payload = json.dumps({"id": f"demo-{n}", "text": text}).encode()
        # A real app encrypts the payload end to end; the box only holds and forwards it.
        await a.send_mail(recipient, payload)
        sent = await a.push(record(sender, recipient, "out", sender, text, 2 * n))
        [mail] = await b.receive_mail(count=1, wait_s=10)
        got = json.loads(mail.payload)["text"]
        received = await b.push(record(recipient, sender, "in", sender, got, 2 * n + 1))
        log_size = max(log_size, sent.tree_head.tree_size, received.tree_head.tree_size)
        say(f"  {sender:>13} -> {recipient:<13} {got}")
        say(
            f"{'':18}archived: sent at log #{sent.log_index}, received at log #{received.log_index}"
        )
    return log_size


async def run_chat(data_dir: Path) -> int:
    box = await wait_for_box(data_dir)
    base_url, fingerprint = str(box["url"]), str(box["fingerprint"])
    peer_url = base_url.replace("http", "ws", 1) + "/peer"
    say(f"Box running at {base_url}  fingerprint {fingerprint}")
    admin = WebAdmin(base_url)
    phones: dict[str, PhoneClient] = {}
    try:
        password = (data_dir / "admin-passphrase.txt").read_text(encoding="utf-8").strip()
        await admin.login(password)
        say("Admin logged in to the web UI.")
        say("Pairing two phones by the PAIR button:")
        for owner, name in PHONES:
            phones[owner] = await pair(data_dir, admin, peer_url, fingerprint, owner, name)
        say("Conversation (mail through the box, every message archived by both phones):")
        log_size = await chat(phones)
        say(f"Log size: {log_size} leaves (signed tree head verified by each phone)")
        page = await admin.page(f"/archive?q={SEARCH}")
        hits = [
            (html.unescape(re.sub(r"\s+", " ", meta)).strip(), html.unescape(text).strip())
            for meta, text in _HIT.findall(page)
        ]
        say(f"Search '{SEARCH}' in the web UI archive: {len(hits)} hit(s)")
        for meta, text in hits:
            say(f"  {meta}: {text}")
    finally:
        for phone in phones.values():
            await phone.close()
        await admin.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("prepare", "chat"))
    parser.add_argument("--data", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.data)
    return asyncio.run(run_chat(args.data))


if __name__ == "__main__":
    sys.exit(main())
