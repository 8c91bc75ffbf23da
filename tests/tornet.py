"""A private Tor network on loopback, inside a network namespace: no internet, ever.

3 directory authorities (keys made by `tor-gencert`) + 3 relays + the box's tor
(the onion service side) + two phone-side tors (clients with a SOCKS port). Every tor
runs inside one network namespace whose only interface is its own loopback
(`unshare -n` as root, `unshare -rn` otherwise), so nothing can leave the machine
even by mistake, and fixed ports cannot collide with anything else running.

The test process stays outside the namespace and talks to tor through files only:

* the box listens on a Unix socket that the onion service's `HiddenServicePort`
  targets (a path crosses network namespaces; a port would not);
* the phone's tor offers its SOCKS port as a Unix socket; `SocksRelay` puts it
  on 127.0.0.1:<ephemeral> in the test's namespace, byte for byte, so the client
  code under test uses a plain `socks5://127.0.0.1:PORT` proxy, as on a phone;
* the box's tor reads `%include BOX/reach.conf` (what the reach helper writes)
  and reloads on SIGHUP, exactly like the appliance's tor.

Bootstrapping takes 30-50 s (TestingTorNetwork, 20 s voting interval): build one
network per test module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TOR = shutil.which("tor") or "/usr/sbin/tor"
TOR_GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"
BUDGET_S = 180.0

AUTHORITIES = 3
RELAYS = 3
# Phone-side tor clients: "phone" gets the keys the box hands out at pairing;
# "stranger" never gets any (a phone that was never paired, or lost its key).
CLIENTS = ("phone", "stranger")
OR_BASE = 5000
DIR_BASE = 7000

_COMMON = """\
TestingTorNetwork 1
DataDirectory {dir}
PidFile {dir}/pid
Log notice file {dir}/notice.log
SafeLogging 0
RunAsDaemon 0
ShutdownWaitLength 0
ClientUseIPv6 0
ContactInfo test@strongroom.invalid
# Exit when the test process is gone, even if it was killed before stopping us.
__OwningControllerProcess {owner}
{dirauths}
"""

_RELAY = """\
Nickname {nick}
Address 127.0.0.1
ORPort 127.0.0.1:{orport}
SocksPort 0
AssumeReachable 1
ExitRelay 0
ExitPolicy reject *:*
"""

_AUTHORITY = """\
DirPort 127.0.0.1:{dirport}
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
TestingV3AuthInitialVotingInterval 20
TestingV3AuthInitialVoteDelay 4
TestingV3AuthInitialDistDelay 4
V3AuthVotingInterval 20
V3AuthVoteDelay 4
V3AuthDistDelay 4
V3AuthNIntervalsValid 2
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
"""


def tor_available() -> bool:
    return Path(TOR).exists() and Path(TOR_GENCERT).exists() and shutil.which("unshare") is not None


@dataclass
class TorNet:
    root: Path
    processes: dict[str, Path] = field(default_factory=dict)  # name -> data dir
    _runner: subprocess.Popen[bytes] | None = None

    @property
    def box_dir(self) -> Path:
        return self.root / "box"

    @property
    def box_reach_conf(self) -> Path:
        """The file the reach helper writes; the box's tor includes it."""
        return self.box_dir / "reach.conf"

    @property
    def box_control_socket(self) -> Path:
        return self.box_dir / "control.sock"

    def socks_socket(self, client: str = "phone") -> Path:
        return self.root / client / "socks" / "socks.sock"

    def auth_dir(self, client: str = "phone") -> Path:
        """A client tor's ClientOnionAuthDir: where `<name>.auth_private` files go."""
        return self.root / client / "onion_auth"

    async def forget_onions(self, client: str = "phone") -> None:
        """SIGNAL NEWNYM: the client tor forgets cached descriptors and which HSDirs it
        asked (otherwise it waits 15 minutes before asking the same HSDir again)."""
        data = self.root / client
        reader, writer = await asyncio.open_unix_connection(str(data / "control.sock"))
        try:
            cookie = (data / "control_auth_cookie").read_bytes().hex()
            writer.write(f"AUTHENTICATE {cookie}\r\nSIGNAL NEWNYM\r\nQUIT\r\n".encode())
            replies = [await reader.readline() for _ in range(2)]
            assert all(r.startswith(b"250") for r in replies), replies
        finally:
            writer.close()

    def reload_box_tor(self) -> None:
        self.reload("box")

    def reload(self, name: str) -> None:
        os.kill(int((self.root / name / "pid").read_text().strip()), signal.SIGHUP)

    # -- building --------------------------------------------------------------------------

    def _authority_keys(self, index: int) -> tuple[str, str]:
        """(v3 identity fingerprint, relay fingerprint) of authority `index`."""
        data = self.root / f"auth{index}"
        keys = data / "keys"
        keys.mkdir(parents=True, mode=0o700)
        subprocess.run(
            [
                TOR_GENCERT,
                "--create-identity-key",
                "--passphrase-fd",
                "0",
                "-m",
                "12",
                "-a",
                f"127.0.0.1:{DIR_BASE + index}",
                "-i",
                str(keys / "authority_identity_key"),
                "-s",
                str(keys / "authority_signing_key"),
                "-c",
                str(keys / "authority_certificate"),
            ],
            input=b"",
            check=True,
            capture_output=True,
        )
        cert = (keys / "authority_certificate").read_text()
        v3ident = re.search(r"^fingerprint ([0-9A-F]{40})$", cert, re.M)
        assert v3ident is not None, cert
        listed = subprocess.run(
            [
                TOR,
                "-f",
                "/dev/null",
                "--defaults-torrc",
                "/dev/null",
                "--ignore-missing-torrc",
                "--list-fingerprint",
                "--DataDirectory",
                str(data),
                "--ORPort",
                str(OR_BASE + index),
                "--Log",
                "err stderr",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        relay_fp = (data / "fingerprint").read_text().split()[1]
        assert re.fullmatch(r"[0-9A-F]{40}", relay_fp), listed.stdout
        return v3ident.group(1), relay_fp

    def _write(self, name: str, text: str) -> Path:
        data = self.root / name
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(data, 0o700)
        torrc = data / "torrc"
        torrc.write_text(text)
        self.processes[name] = data
        return torrc

    def build(self) -> None:
        idents = [self._authority_keys(i) for i in range(AUTHORITIES)]
        dirauths = "\n".join(
            f"DirAuthority auth{i} orport={OR_BASE + i} no-v2 v3ident={v3} "
            f"127.0.0.1:{DIR_BASE + i} {fp}"
            for i, (v3, fp) in enumerate(idents)
        )

        def common(name: str) -> str:
            return _COMMON.format(dir=self.root / name, dirauths=dirauths, owner=os.getpid())

        for i in range(AUTHORITIES):
            name = f"auth{i}"
            self._write(
                name,
                common(name)
                + _RELAY.format(nick=name, orport=OR_BASE + i)
                + _AUTHORITY.format(dirport=DIR_BASE + i),
            )
        for i in range(RELAYS):
            name = f"relay{i}"
            self._write(name, common(name) + _RELAY.format(nick=name, orport=OR_BASE + 10 + i))
        self.box_dir.mkdir(mode=0o700)
        self.box_reach_conf.write_text("")
        self._write(
            "box",
            common("box")
            + f"SocksPort 0\nControlSocket {self.box_control_socket}\n"
            + "CookieAuthentication 1\n"
            + f"%include {self.box_reach_conf}\n",
        )
        for name in CLIENTS:
            data = self.root / name
            (data / "socks").mkdir(parents=True, mode=0o700)
            (data / "onion_auth").mkdir(mode=0o700)
            self._write(
                name,
                common(name)
                + f"SocksPort unix:{self.socks_socket(name)} ExtendedErrors\n"
                + f"ClientOnionAuthDir {data / 'onion_auth'}\n"
                + f"ControlSocket {data / 'control.sock'}\nCookieAuthentication 1\n",
            )

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start every tor inside one loopback-only network namespace."""
        script = ["set -e", "ip link set lo up"]
        for data in self.processes.values():
            script.append(f"{TOR} -f {data / 'torrc'} --defaults-torrc /dev/null >/dev/null 2>&1 &")
        script.append("wait")
        isolate = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
        self._runner = subprocess.Popen(
            [*isolate, "bash", "-c", "\n".join(script)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.processes[name] / "notice.log").read_text(errors="replace")
        return ""

    def wait_bootstrapped(self, deadline: float) -> None:
        """Every tor says 'Bootstrapped 100%' (the box and the phone tor included)."""
        while True:
            if self._runner is not None and self._runner.poll() is not None:
                raise RuntimeError("the tor network exited:\n" + self.tail())
            missing = [n for n in self.processes if "Bootstrapped 100%" not in self.log(n)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"tor did not bootstrap: {missing}\n" + self.tail())
            time.sleep(0.5)

    def tail(self, lines: int = 15) -> str:
        out = []
        for name in self.processes:
            out.append(f"--- {name}")
            out.extend(self.log(name).splitlines()[-lines:])
        return "\n".join(out)

    def stop(self) -> None:
        if self._runner is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._runner.pid, signal.SIGTERM)
        try:
            self._runner.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._runner.pid, signal.SIGKILL)
            self._runner.wait()
        self._runner = None


def start_tornet(root: Path, budget_s: float = BUDGET_S) -> TorNet:
    net = TorNet(root)
    net.build()
    net.start()
    try:
        net.wait_bootstrapped(time.monotonic() + budget_s)
    except BaseException:
        net.stop()
        raise
    return net


class SocksRelay:
    """127.0.0.1:<ephemeral> in the test's namespace -> the phone tor's SOCKS Unix socket.

    A byte pipe, nothing more: the SOCKS5 dialogue (and tor's extended errors) pass
    through untouched, so the client speaks to tor exactly as on a phone.
    """

    def __init__(self, socks_socket: Path) -> None:
        self.socks_socket = socks_socket
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.socks_socket))
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
