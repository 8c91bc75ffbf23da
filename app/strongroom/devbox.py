"""`strongroom dev` (what `make run` starts) and `strongroom serve` (the appliance).

A dev box lives under var/dev: on first run it gets an identity, a key file
that unlocks it unattended (so a second `make run` starts in well under two
seconds, without Argon2), and an admin account whose passphrase is written to
a 0600 file beside it. Nothing here is used on a real box except `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import faulthandler
import logging
import secrets
import signal
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
    box.initialise(entropy, passphrase)
    Keystore(config.keystore_path).add_keyfile_slot(entropy, keyfile)
    from strongroom.web.users import create_user

    create_user(box, DEV_ADMIN, passphrase, "admin")
    _write_private(data_dir / "admin-passphrase.txt", passphrase + "\n")
    words = entropy_to_words(entropy, "french")
    _write_private(data_dir / "words.txt", " ".join(words) + "\n")
    asyncio.run(box.stop())
    return config, True


async def _serve(runtime: BoxRuntime, banner: str | None) -> None:
    await runtime.start()
    if banner:
        print(banner.format(url=runtime.url), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def run_dev(data_dir: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config, new = prepare_dev_box(data_dir)
    runtime = BoxRuntime(config)
    lines = [
        "",
        "Strongroom dev box is running / la box de développement tourne :",
        "  {url}",
        f"  login: {DEV_ADMIN}   passphrase: see {data_dir / 'admin-passphrase.txt'}",
        f"  data: {data_dir}  (first run: {'yes' if new else 'no'})",
        "  play a phone:  .venv/bin/strongroom phone --help",
        "  stop: Ctrl+C",
    ]
    try:
        asyncio.run(_serve(runtime, "\n".join(lines)))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"strongroom: port {config.port} is busy; set port in {data_dir}/box.toml")
            return 1
        raise
    return 0


def run_serve(config: BoxConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The watchdog kills a hung loop with SIGABRT: print where it hung to the
    # journal (no core file: LimitCORE=0, it would hold the keys).
    faulthandler.enable()
    asyncio.run(_serve(BoxRuntime(config), "strongroom: serving at {url}"))
    return 0
