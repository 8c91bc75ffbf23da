"""`strongroom dev` (what `make run` starts) and `strongroom serve` (the appliance).

A dev box lives under var/dev: on first run it gets an identity, a key file
that unlocks it unattended (so a second `make run` starts in well under two
seconds, without Argon2), and an admin account whose passphrase is written to
a 0600 file beside it. `--fresh` instead starts a box with no identity, at the
first-run wizard, as a practice sees it out of the box (an existing var/dev is
moved aside, never deleted). `--port N` serves on another port; if the port is
taken the command says so, and without `--port` it picks a free one and prints
it. Nothing here is used on a real box except `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import faulthandler
import logging
import secrets
import signal
import sys
import time
from pathlib import Path

from strongroom.config import CONFIG_FILE_NAME, BoxConfig, load_config
from strongroom.identity import Keystore, entropy_to_words, new_entropy
from strongroom.runtime import BoxRuntime

DEV_ADMIN = "admin"


def _write_private(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def prepare_dev_box(data_dir: Path) -> tuple[BoxConfig, bool]:
    """Create the dev box on first run; return its config and whether it is new."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_path = data_dir / CONFIG_FILE_NAME
    keyfile = data_dir / "unlock.key"
    if Keystore.exists(data_dir / "keystore.json"):
        return load_config(data_dir), False
    from strongroom.box import Box

    _write_private(
        config_path,
        "# Dev box: loopback only, mock GPIO, unlocked by the key file beside it.\n"
        'host = "127.0.0.1"\nport = 8080\nmock_gpio = true\nunlock_mode = "unattended"\n'
        f'unlock_keyfile = "{keyfile.resolve()}"\n',
    )
    config = load_config(data_dir)
    passphrase = "dev-" + secrets.token_urlsafe(12)
    entropy = new_entropy()
    box = Box(config)
    box.initialise(entropy, passphrase, owner=DEV_ADMIN)  # admin's own unlock slot
    Keystore(config.keystore_path).add_keyfile_slot(entropy, keyfile)
    from strongroom.web.users import create_user

    create_user(box, DEV_ADMIN, passphrase, "admin")
    _write_private(data_dir / "admin-passphrase.txt", passphrase + "\n")
    words = entropy_to_words(entropy, "french")
    _write_private(data_dir / "words.txt", " ".join(words) + "\n")
    asyncio.run(box.stop())
    return config, True


def prepare_fresh_dev_box(data_dir: Path) -> BoxConfig:
    """A dev box with no identity (the wizard runs), attended unlock like a real box."""
    if data_dir.exists() and any(data_dir.iterdir()):
        aside = data_dir.with_name(f"{data_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        data_dir.rename(aside)
        print(f"strongroom: the previous dev box is kept in {aside}", flush=True)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(
        data_dir / CONFIG_FILE_NAME,
        "# Fresh dev box: loopback only, mock GPIO, no identity yet (first-run wizard).\n"
        'host = "127.0.0.1"\nport = 8080\nmock_gpio = true\nunlock_mode = "attended"\n',
    )
    return load_config(data_dir)


async def _serve(runtime: BoxRuntime, banner: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before start: start awaits the unattended unlock, which migrates the archive
    # after an upgrade (minutes on a Pi). `systemctl stop` meanwhile is a clean stop
    # (the migration gives up, rolled back whole), not a SIGTERM death.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(runtime.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a busy port raises here (start let go of its parts)
            if banner:
                print(banner.format(url=runtime.url), flush=True)
            await stopping
    finally:
        stopping.cancel()
        # Stopped during start: with its parts up, stop abandons the open under way
        # (Box.abandon_open) and start returns; still building them, start is
        # cancelled (its own stack lets them go). Stopped again in case the parts
        # came up meanwhile and the unlock began.
        await runtime.stop()
        if not starting.done():
            starting.cancel()
        await asyncio.wait({starting})
        if not starting.cancelled():  # what a start cut short by the stop raised: moot
            with contextlib.suppress(BaseException):
                starting.result()
        await runtime.stop()


def run_dev(data_dir: Path, *, port: int | None = None, fresh: bool = False) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if fresh:
        config, new = prepare_fresh_dev_box(data_dir), True
    else:
        config, new = prepare_dev_box(data_dir)
    if port is not None:
        config = config.with_overrides(port=port)
    if Keystore.exists(config.keystore_path):
        login = f"  login: {DEV_ADMIN}   passphrase: see {data_dir / 'admin-passphrase.txt'}"
        if not (data_dir / "admin-passphrase.txt").exists():
            login = "  log in with the administrator made in the wizard"
    else:
        login = "  first-run wizard: open the address above / assistant de mise en service"
    lines = [
        "",
        "Strongroom dev box is running / la box de développement tourne :",
        "  {url}",
        login,
        f"  data: {data_dir}  (first run: {'yes' if new else 'no'})",
        # As README types it: `strongroom` is not on PATH until the venv is activated.
        "  see the first-run wizard: .venv/bin/strongroom dev --fresh"
        + ("" if data_dir == Path("var/dev") else f" --data {data_dir}"),
        "  play a phone:  .venv/bin/strongroom phone --help",
        "  stop: Ctrl+C",
    ]
    banner = "\n".join(lines)
    try:
        asyncio.run(_serve(BoxRuntime(config), banner))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        if port is not None:
            print(
                f"strongroom: port {port} is already in use (another dev box?); "
                "choose another with --port N, or stop the other program",
                file=sys.stderr,
                flush=True,
            )
            return 1
        print(
            f"strongroom: port {config.port} is already in use; using a free port instead",
            flush=True,
        )
        asyncio.run(_serve(BoxRuntime(config.with_overrides(port=0)), banner))
    return 0


def run_serve(config: BoxConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The watchdog kills a hung loop with SIGABRT: print where it hung to the
    # journal (no core file: LimitCORE=0, it would hold the keys).
    faulthandler.enable()
    asyncio.run(_serve(BoxRuntime(config), "strongroom: serving at {url}"))
    return 0
