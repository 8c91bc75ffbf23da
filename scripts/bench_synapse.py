"""A real peer in the same run: Matrix Synapse under the ingest-over-Noise load (#20, item 6).

Synapse is installed from PyPI (wheels only, one pinned version) into a venv of
its own under var/bench/ -- never the project's venv -- once, then reused. It
runs as its own process on loopback with SQLite, rate limits off, 10 users
registered through the admin API's shared secret, all in one room. The load is
the one of the "ingest over Noise" row: 10 senders, 64 requests in flight each,
1 KiB messages (`m.text`), a request counted when it is answered 200 (Synapse
has then persisted the event). In the same run, Strongroom's box takes that
row's load in a fresh process (bench_peer.bench_ingest), so the ratios compare
two servers measured minutes apart on the same machine:
- messages per second, Strongroom / Synapse (aim >= 100);
- CPU per message: each server process's CPU time (Synapse's from
  /proc/<pid>/stat, all its threads; the box's process_time, all threads);
- idle RSS: Synapse's VmRSS once it answers, the box's right after it starts
  (aim <= 0.5).

Whatever stops the comparison (no network, a failed install, Synapse not
starting) becomes a row that says why, never a missing row. In `--quick` mode
(part of `make test`) Synapse runs a 2-second load only if its venv is already
installed; a cold install (about 240 MB; 90 to 133 s here) is left to the full run,
which starts it in the background as the run begins (install_in_background).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import bench_peer
from bench_peer_harness import MESSAGE_BYTES, PUSHES_IN_FLIGHT

SYNAPSE_VERSION = "1.163.2"
REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "var" / "bench" / f"synapse-{SYNAPSE_VERSION}"
STAMP = VENV / ".installed"
USERS = 10
IN_FLIGHT = PUSHES_IN_FLIGHT  # per sender, as the ingest row's phones (64)
MESSAGE = "x" * MESSAGE_BYTES
NAME = "Matrix Synapse " + SYNAPSE_VERSION


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _python() -> Path:
    return VENV / "bin" / "python"


# A cold install started by install_in_background, which install() then waits for.
_BACKGROUND: list[concurrent.futures.Future[float]] = []


def install_in_background() -> None:
    """Start a cold install now, beside the first sections of the run.

    `make bench` calls this before its corpus builds: pip mostly waits on PyPI
    (~240 MB of wheels) while the builds keep both cores busy, so the install
    costs the first run little of its own time. A cached venv makes it a no-op.
    """
    if STAMP.exists() or _BACKGROUND:
        return
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="synapse-install")
    _BACKGROUND.append(pool.submit(_install))
    pool.shutdown(wait=False)


def install() -> float:
    """Install the pinned Synapse into its own venv (once); seconds spent, 0 if cached.

    If a background install was started, its result (or its failure) is this one's.
    """
    if _BACKGROUND:
        return _BACKGROUND[0].result()
    return _install()


def _install() -> float:
    if STAMP.exists():
        return 0.0
    started = time.perf_counter()
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True, capture_output=True)
    pip = [str(_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "--only-binary=:all:", f"matrix-synapse=={SYNAPSE_VERSION}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if "WARNING" not in line][-3:]
        raise RuntimeError(f"pip install matrix-synapse failed: {' '.join(last)[:300]}")
    STAMP.write_text(SYNAPSE_VERSION)
    return time.perf_counter() - started


# Rate limits high enough never to apply: the figure is Synapse's work, not its throttle.
_UNLIMITED = {"per_second": 1_000_000, "burst_count": 1_000_000}
_RATE_LIMITS = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_room_creation": _UNLIMITED,
}
_LOG_CONFIG = """version: 1
formatters:
  plain: {format: '%(asctime)s %(name)s %(levelname)s %(message)s'}
handlers:
  file: {class: logging.FileHandler, formatter: plain, filename: LOGFILE}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


def configure(data: Path, port: int) -> tuple[Path, str]:
    """A fresh server directory: generated keys, then our listener, SQLite, no limits."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    config = data / "homeserver.yaml"
    server = [str(_python()), "-m", "synapse.app.homeserver", "--server-name", "bench.local"]
    paths = ["--config-path", str(config), "--data-directory", str(data)]
    subprocess.run(
        [*server, *paths, "--generate-config", "--report-stats=no"],
        check=True,
        capture_output=True,
    )
    secret = secrets.token_hex(16)
    (data / "log.yaml").write_text(_LOG_CONFIG.replace("LOGFILE", str(data / "homeserver.log")))
    overrides = {
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
        "log_config": str(data / "log.yaml"),
        "registration_shared_secret": secret,
        "enable_metrics": False,
        "presence": {"enabled": False},
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        **_RATE_LIMITS,
    }
    # Synapse's own PyYAML merges the overrides (JSON is YAML) into its generated file.
    merge = (
        "import json,sys,yaml;p=sys.argv[1];c=yaml.safe_load(open(p));"
        "c.update(json.loads(sys.argv[2]));yaml.safe_dump(c,open(p,'w'))"
    )
    subprocess.run(
        [str(_python()), "-c", merge, str(config), json.dumps(overrides)],
        check=True,
        capture_output=True,
    )
    return config, secret


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _until_up(http: aiohttp.ClientSession, base: str, process: Any, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Synapse exited with {process.returncode} while starting")
        try:
            async with http.get(base + "/_matrix/client/versions") as reply:
                if reply.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"Synapse did not answer within {limit_s:.0f} s")


async def _register(http: aiohttp.ClientSession, base: str, secret: str, user: str) -> str:
    """A user through the shared-secret admin API; its access token."""
    url = base + "/_synapse/admin/v1/register"
    async with http.get(url) as reply:
        nonce = (await reply.json())["nonce"]
    password = secrets.token_hex(8)
    message = b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"notadmin"])
    mac = hmac.new(secret.encode(), message, hashlib.sha1).hexdigest()
    body = {"nonce": nonce, "username": user, "password": password, "admin": False, "mac": mac}
    async with http.post(url, json=body) as reply:
        if reply.status != 200:
            raise RuntimeError(f"registering {user}: {reply.status} {await reply.text()}")
        token: str = (await reply.json())["access_token"]
        return token


async def _room(http: aiohttp.ClientSession, base: str, tokens: list[str]) -> str:
    """One public room made by the first user, joined by every other."""
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    body = {"preset": "public_chat", "name": "bench"}
    async with http.post(base + "/_matrix/client/v3/createRoom", json=body, headers=auth) as r:
        room: str = (await r.json())["room_id"]
    for token in tokens[1:]:
        url = f"{base}/_matrix/client/v3/join/{room}"
        async with http.post(url, json={}, headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status != 200:
                raise RuntimeError(f"join: {r.status} {await r.text()}")
    return room


async def _load(
    http: aiohttp.ClientSession, base: str, tokens: list[str], room: str, seconds: float
) -> int:
    """10 senders x IN_FLIGHT for `seconds`; how many messages were answered 200."""
    deadline = time.perf_counter() + seconds
    sent = 0

    async def sender(index: int, lane: int) -> None:
        nonlocal sent
        headers = {"Authorization": f"Bearer {tokens[index]}"}
        n = 0
        while time.perf_counter() < deadline:
            txn = f"t{lane}-{n}-{secrets.token_hex(4)}"
            url = f"{base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"
            body = {"msgtype": "m.text", "body": MESSAGE}
            async with http.put(url, json=body, headers=headers) as reply:
                if reply.status != 200:
                    raise RuntimeError(f"send: {reply.status} {(await reply.text())[:200]}")
                await reply.read()
            sent += 1
            n += 1

    lanes = [sender(i, i * IN_FLIGHT + j) for i in range(len(tokens)) for j in range(IN_FLIGHT)]
    await asyncio.gather(*lanes)
    return sent


def _launch(config: Path, data: Path) -> tuple[subprocess.Popen[bytes], Any]:
    log = (data / "stdout.log").open("wb")
    process = subprocess.Popen(
        [str(_python()), "-m", "synapse.app.homeserver", "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
    )
    return process, log


async def _synapse(data: Path, seconds: float) -> dict[str, Any]:
    port = _free_port()
    config, secret = await asyncio.to_thread(configure, data, port)
    base = f"http://127.0.0.1:{port}"
    process, log = _launch(config, data)
    try:
        limit = aiohttp.TCPConnector(limit=USERS * IN_FLIGHT)
        async with aiohttp.ClientSession(connector=limit) as http:
            await _until_up(http, base, process, 120.0)
            await asyncio.sleep(1.0)  # let its start-up background work settle
            idle_rss = _proc_rss_mib(process.pid)
            tokens = [await _register(http, base, secret, f"bench{i}") for i in range(USERS)]
            room = await _room(http, base, tokens)
            cpu0, t0 = _proc_cpu_s(process.pid), time.perf_counter()
            count = await _load(http, base, tokens, room, seconds)
            elapsed, cpu = time.perf_counter() - t0, _proc_cpu_s(process.pid) - cpu0
        return {"count": count, "elapsed": elapsed, "cpu": cpu, "idle_rss": idle_rss}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _strongroom(quick: bool, work_dir: Path) -> dict[str, float]:
    """The ingest-over-Noise row's load on the box, in a fresh process, same run."""
    child = bench_peer.start_in_fresh_process(
        bench_peer.bench_ingest, quick=quick, work_dir=work_dir
    )
    rows = {row["name"]: row for row in bench_peer.wait_for_child(child, "the box's ingest")}
    ingest = next(row for name, row in rows.items() if name.startswith("ingest over Noise"))
    cpu = rows["CPU per acked record, box (all threads) / phones"]
    return {
        "msgs": ingest["value"],
        "cpu_us": cpu["value"],
        "idle_rss": rows["box RSS, idle"]["value"],
    }


def _not_run(why: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Strongroom / {NAME}, 10 senders x 1 KiB",
            "value": None,
            "unit": "",
            "note": why,
        }
    ]


def bench_synapse(*, quick: bool = False, work_dir: Path | None = None) -> list[dict[str, Any]]:
    work = (work_dir or REPO / "var" / "bench") / "synapse-run"
    if quick and not STAMP.exists():
        return _not_run(
            f"not run: full mode only. {NAME} is not installed in {_shown(VENV)};"
            " a cold install (~240 MB of wheels from PyPI, 90-133 s here) is left to make bench"
        )
    try:
        install_s = install()
    except Exception as exc:
        return _not_run(f"FAILED: could not install {NAME}: {exc}"[:300])
    seconds = 2.0 if quick else 10.0
    try:
        theirs = asyncio.run(_synapse(work, seconds))
    except Exception as exc:
        return _not_run(f"FAILED: {NAME} did not take the load: {exc!r}"[:300])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours = _strongroom(quick, work.parent / "synapse-box")
    msgs = theirs["count"] / theirs["elapsed"]
    cpu_us = theirs["cpu"] / max(1, theirs["count"]) * 1e6
    installed = f"installed in {install_s:.0f} s" if install_s else "cached venv"
    if install_s and _BACKGROUND:
        installed += " (in the background from the start of the run)"
    load = f"10 senders x {IN_FLIGHT} in flight, 1 KiB m.text, SQLite, loopback"
    return [
        {
            "name": f"{NAME}: messages persisted (200), 10 senders x 1 KiB",
            "value": msgs,
            "unit": "msgs/s",
            "note": f"{theirs['count']:,} in {theirs['elapsed']:.1f} s; {load}; {installed}"
            f" under {_shown(VENV)}",
        },
        {
            "name": f"ingest, Strongroom over Noise vs {NAME} (ratio = how many times faster)",
            "value": ours["msgs"],
            "unit": "msgs/s",
            "ceiling": msgs,
            "ceiling_what": f"{NAME}, same load, same run",
            "aim": ">= 100x Synapse",
            "note": "ratio = Strongroom / Synapse; Strongroom's senders: load-generator phones"
            " since session 12 (bench_phones.py: acks read by request id, not checked; before,"
            " reference clients checking every ack's proofs on the same cores)",
        },
        {
            "name": f"CPU per message, Strongroom box vs {NAME} (all threads of each server)",
            "value": ours["cpu_us"],
            "unit": "µs",
            "ceiling": cpu_us,
            "ceiling_what": f"{NAME}'s process, /proc/<pid>/stat",
            "aim": "lower is better",
            "note": "ratio = Strongroom / Synapse",
        },
        {
            "name": f"idle RSS, Strongroom box vs {NAME}",
            "value": ours["idle_rss"],
            "unit": "MiB",
            "ceiling": theirs["idle_rss"],
            "ceiling_what": f"{NAME} once it answers",
            "aim": "<= 0.5x Synapse",
            "note": "ratio = Strongroom / Synapse; the box's figure includes the bench harness",
        },
    ]


def bench_synapse_figures(quick: bool, work_dir: Path) -> list[Any]:
    """bench.py's section: the rows as Figures (a row that says why if none could be made)."""
    from bench_archive import Figure

    return [
        Figure(
            row["name"],
            row["value"],
            row["unit"],
            row.get("ceiling"),
            row.get("ceiling_what", ""),
            row.get("aim", ""),
            row.get("note", ""),
        )
        for row in bench_synapse(quick=quick, work_dir=work_dir)
    ]


if __name__ == "__main__":
    for row in bench_synapse(quick="--quick" in sys.argv):
        print(row)
