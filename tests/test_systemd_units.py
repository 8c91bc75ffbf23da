"""The systemd units: systemd itself accepts them, the sandbox is what we say it is,
and the crypto stack really runs under MemoryDenyWriteExecute."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT_DIR = REPO / "systemd"
UNITS = sorted(p.name for p in UNIT_DIR.iterdir() if p.suffix in {".service", ".timer"})
SERVICES = [u for u in UNITS if u.endswith(".service")]
# The fault unit and the remote-reach units are not batch jobs (the helper is a
# daemon with its own checks: tests/test_reach.py; the tor switch runs as root,
# below).
NOT_BATCH_JOBS = (
    "strongroom.service",
    "strongroom-fault.service",
    "strongroom-reach-helper.service",
    "strongroom-reach-tor.service",
)
ONESHOTS = [u for u in SERVICES if u not in NOT_BATCH_JOBS]
PRODUCTION_BINARY = "/opt/strongroom/venv/bin/strongroom"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _parse(name: str) -> dict[str, list[tuple[str, str]]]:
    """Unit files repeat keys (SystemCallFilter=, IPAddressAllow=), so no configparser."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (UNIT_DIR / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        sections[current].append((key, value))
    return sections


def _values(name: str, section: str, key: str) -> list[str]:
    return [v for k, v in _parse(name).get(section, []) if k == key]


def _one(name: str, section: str, key: str) -> str:
    values = _values(name, section, key)
    assert len(values) == 1, f"{name}: [{section}] {key}= set {len(values)} times"
    return values[0]


def test_the_expected_units_exist() -> None:
    assert UNITS == [
        "strongroom-backup.service",
        "strongroom-backup.timer",
        "strongroom-fault.service",
        "strongroom-reach-helper.service",
        "strongroom-reach-tor.service",
        "strongroom-retention.service",
        "strongroom-retention.timer",
        "strongroom-verify.service",
        "strongroom-verify.timer",
        "strongroom.service",
    ]


# ---------------------------------------------------------------- systemd-analyze


def _verify(directory: Path, unit: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE, "systemd-analyze missing: run scripts/ensure-system-deps.sh"
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", f"./{unit}"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def verifiable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart pointing at a binary that exists on this machine."""
    directory = tmp_path_factory.mktemp("units")
    for unit in UNITS:
        text = (UNIT_DIR / unit).read_text(encoding="utf-8")
        (directory / unit).write_text(text.replace(PRODUCTION_BINARY, "/bin/true"))
    return directory


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_is_clean(verifiable: Path, unit: str) -> None:
    result = _verify(verifiable, unit)
    # verify exits 0 on unknown keys and unparsable values; those are only
    # warnings on stderr, so any output at all is a failure here.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_check_catches_a_typo(verifiable: Path, tmp_path: Path) -> None:
    broken = (
        (verifiable / "strongroom.service").read_text().replace("ProtectSystem", "ProtectSytem")
    )
    (tmp_path / "strongroom.service").write_text(broken)
    result = _verify(tmp_path, "strongroom.service")
    assert "ProtectSytem" in result.stderr


def _exposure(unit: str) -> tuple[float, str]:
    assert SYSTEMD_ANALYZE
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", f"./{unit}"],
        cwd=UNIT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), match.group(2)


@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure_is_ok_and_documented(unit: str) -> None:
    score, level = _exposure(unit)
    assert level in {"SAFE", "OK"}, (unit, score, level)
    doc = (REPO / "docs" / "hardware.md").read_text(encoding="utf-8")
    assert re.search(rf"`{re.escape(unit)}`\s*\|\s*{score}\s*\|\s*{level}", doc), (
        f"docs/hardware.md must show {unit} at {score} {level}"
    )


# ---------------------------------------------------------------- what the units say


def test_main_service_is_a_watched_notify_service() -> None:
    unit = "strongroom.service"
    assert _one(unit, "Service", "Type") == "notify"
    assert _one(unit, "Service", "NotifyAccess") == "main"
    assert _one(unit, "Service", "WatchdogSec") == "30"
    assert _one(unit, "Service", "Restart") == "on-failure"
    assert _one(unit, "Service", "ExecStart") == (
        f"{PRODUCTION_BINARY} serve --config /etc/strongroom/box.toml"
    )
    assert _one(unit, "Install", "WantedBy") == "multi-user.target"


def test_main_service_reaches_only_the_lan_and_only_gpio_devices() -> None:
    unit = "strongroom.service"
    assert _one(unit, "Service", "IPAddressDeny") == "any"
    allowed = " ".join(_values(unit, "Service", "IPAddressAllow")).split()
    assert sorted(allowed) == sorted(
        "localhost link-local multicast 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7".split()
    )
    assert _one(unit, "Service", "DevicePolicy") == "closed"
    devices = [v.split()[0] for v in _values(unit, "Service", "DeviceAllow")]
    assert sorted(devices) == ["/dev/gpiomem", "char-gpiochip"]
    assert _one(unit, "Service", "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert _one(unit, "Service", "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"


@pytest.mark.parametrize("unit", SERVICES)
def test_no_service_dumps_core(unit: str) -> None:
    # A core file of any of them would hold the archive keys (the watchdog's
    # SIGABRT would otherwise write one).
    assert _one(unit, "Service", "LimitCORE") == "0"


def test_main_service_gives_lgpio_a_writable_working_directory() -> None:
    unit = "strongroom.service"
    assert _one(unit, "Service", "RuntimeDirectory") == "strongroom"
    assert _one(unit, "Service", "WorkingDirectory") == "%t/strongroom"
    assert "LG_WD=%t/strongroom" in _values(unit, "Service", "Environment")


def test_a_service_that_failed_for_good_lights_the_fault_led() -> None:
    assert _one("strongroom.service", "Unit", "OnFailure") == "strongroom-fault.service"
    fault = "strongroom-fault.service"
    assert _one(fault, "Service", "ExecStart") == (
        f"{PRODUCTION_BINARY} panel-fault --config /etc/strongroom/box.toml"
    )
    # The box takes the pins back as soon as it starts again.
    assert _one(fault, "Unit", "Conflicts") == "strongroom.service"
    assert _one(fault, "Unit", "Before") == "strongroom.service"
    assert _one(fault, "Service", "PrivateNetwork") == "yes"
    assert _one(fault, "Service", "CapabilityBoundingSet") == ""
    devices = [v.split()[0] for v in _values(fault, "Service", "DeviceAllow")]
    assert sorted(devices) == ["/dev/gpiomem", "char-gpiochip"]
    assert "LG_WD=%t/strongroom-fault" in _values(fault, "Service", "Environment")
    boot = (REPO / "firmware" / "boot" / "config.txt").read_text(encoding="utf-8")
    assert "\ndtparam=strict_gpiod\n" in boot
    doc = (REPO / "docs" / "hardware.md").read_text(encoding="utf-8")
    assert "StartLimitBurst=5" in doc and "reset-failed strongroom" in doc


# Hardening every service carries with the same value. Network, device and
# capability settings differ on purpose (the batch jobs get none) and are
# checked separately.
SHARED_HARDENING = [
    "User",
    "Group",
    "StateDirectory",
    "UMask",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "ReadWritePaths",
    "NoNewPrivileges",
    "RestrictSUIDSGID",
    "RemoveIPC",
    "LockPersonality",
    "RestrictRealtime",
    "MemoryDenyWriteExecute",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "SystemCallArchitectures",
]


@pytest.mark.parametrize("unit", ONESHOTS)
def test_batch_jobs_share_the_sandbox_and_get_no_network(unit: str) -> None:
    for key in SHARED_HARDENING:
        assert _values(unit, "Service", key) == _values("strongroom.service", "Service", key), key
    assert _values(unit, "Service", "SystemCallFilter") == _values(
        "strongroom.service", "Service", "SystemCallFilter"
    )
    assert _one(unit, "Service", "Type") == "oneshot"
    assert _one(unit, "Service", "PrivateNetwork") == "yes"
    assert _one(unit, "Service", "IPAddressDeny") == "any"
    assert _one(unit, "Service", "PrivateDevices") == "yes"
    assert _one(unit, "Service", "CapabilityBoundingSet") == ""


@pytest.mark.parametrize(
    ("job", "command", "calendar"),
    [
        ("retention", "retention-run", "*-*-* 03:30:00"),
        ("backup", "backup", "*-*-* 02:00:00"),
        # Nightly; the command itself picks incremental or (weekly) full.
        ("verify", "verify --scheduled", "*-*-* 04:30:00"),
    ],
)
def test_each_timer_starts_its_job(job: str, command: str, calendar: str) -> None:
    service, timer = f"strongroom-{job}.service", f"strongroom-{job}.timer"
    assert _one(service, "Service", "ExecStart") == (
        f"{PRODUCTION_BINARY} {command} --config /etc/strongroom/box.toml"
    )
    assert _one(timer, "Timer", "OnCalendar") == calendar
    assert _one(timer, "Timer", "Persistent") == "true"
    assert _one(timer, "Install", "WantedBy") == "timers.target"
    # No Unit= in the timer: it starts the service of the same name.
    assert _values(timer, "Timer", "Unit") == []


def test_calendars_are_valid_for_systemd() -> None:
    assert SYSTEMD_ANALYZE
    for timer in (u for u in UNITS if u.endswith(".timer")):
        calendar = _one(timer, "Timer", "OnCalendar")
        result = subprocess.run(
            [SYSTEMD_ANALYZE, "calendar", calendar],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, (timer, result.stderr)


# ---------------------------------------------------------------- MemoryDenyWriteExecute

# systemd 252 (bookworm) implements MemoryDenyWriteExecute= with seccomp: mmap
# with PROT_WRITE|PROT_EXEC and any mprotect/pkey_mprotect adding PROT_EXEC fail
# with EPERM. The probe installs that same filter in a child Python, then runs
# the libraries the service uses. If one of them needed W+X memory (cffi ABI-mode
# callbacks do), the probe fails and the unit must drop MemoryDenyWriteExecute=.
SYSCALLS = {"x86_64": (9, 10, 329), "aarch64": (222, 226, 288)}

PROBE = textwrap.dedent(
    """
    import ctypes, mmap, struct, sys
    MMAP, MPROTECT, PKEY_MPROTECT = {numbers}
    def insn(code, jt, jf, k):
        return struct.pack("HBBI", code, jt, jf, k)
    LD, JEQ, JSET, AND, RET = 0x20, 0x15, 0x45, 0x54, 0x06
    ALLOW, EPERM = 0x7FFF0000, 0x00050001
    PROT = 32  # offsetof(struct seccomp_data, args[2]), low word
    prog = b"".join([
        insn(LD, 0, 0, 0),
        insn(JEQ, 3, 0, MMAP),
        insn(JEQ, 6, 0, MPROTECT),
        insn(JEQ, 5, 0, PKEY_MPROTECT),
        insn(RET, 0, 0, ALLOW),
        insn(LD, 0, 0, PROT),            # mmap: refuse write+exec together
        insn(AND, 0, 0, 6),
        insn(JEQ, 3, 0, 6),
        insn(RET, 0, 0, ALLOW),
        insn(LD, 0, 0, PROT),            # mprotect: refuse any exec
        insn(JSET, 0, 1, 4),
        insn(RET, 0, 0, EPERM),
        insn(RET, 0, 0, ALLOW),
    ])
    buf = ctypes.create_string_buffer(prog)
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()  # SECCOMP
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        sys.exit("filter not active")
    {body}
    print("ok")
    """
)

STACK = """
import nacl.bindings, nacl.public, nacl.pwhash, nacl.secret, nacl.signing
key = nacl.public.PrivateKey.generate()
box = nacl.public.Box(key, key.public_key)
assert box.decrypt(box.encrypt(b"record")) == b"record"
signing = nacl.signing.SigningKey.generate()
signing.verify_key.verify(signing.sign(b"tree head"))
nacl.pwhash.argon2id.kdf(32, b"password", b"s" * 16, opslimit=2, memlimit=8 * 1024 * 1024)
import sqlcipher3
db = sqlcipher3.connect(":memory:")
db.execute("PRAGMA key = 'k'")
db.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
db.execute("INSERT INTO t VALUES ('dossier')")
assert db.execute("SELECT count(*) FROM t WHERE t MATCH 'dossier'").fetchone() == (1,)
import aiohttp.web, cbor2, gpiozero, jinja2, segno, ssl, zeroconf.asyncio
assert jinja2.Template("{{ x }}").render(x=1) == "1"
ssl.create_default_context()
"""


def _run_probe(body: str) -> subprocess.CompletedProcess[str]:
    numbers = SYSCALLS.get(platform.machine())
    assert numbers, f"no syscall numbers for {platform.machine()}"
    code = PROBE.format(numbers=numbers, body=textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_service_stack_runs_under_memory_deny_write_execute() -> None:
    result = _run_probe(STACK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_probe_does_catch_write_execute_memory() -> None:
    # cffi ABI-mode callbacks need a W+X page: the probe must make them fail.
    body = "import cffi\ncffi.FFI().callback('int(int)', lambda x: x)\n"
    result = _run_probe(body)
    assert result.returncode != 0
    assert "write+execute" in result.stderr


def test_tor_runs_only_while_reach_is_on_and_nothing_pulls_it_in() -> None:
    """The helper's include file is the switch: the path unit watches it and runs
    the tor switch, which only asks systemd to start or stop tor@default (booted
    for real in tests/test_appliance_boot.py)."""
    switch = "strongroom-reach-tor.service"
    path = (UNIT_DIR / "strongroom-reach-tor.path").read_text(encoding="utf-8")
    assert "\nPathChanged=/var/lib/tor/strongroom-reach.conf\n" in path
    assert f"\nUnit={switch}\n" in path
    command = _one(switch, "Service", "ExecStart")
    assert "/var/lib/tor/strongroom-reach.conf" in command
    assert "systemctl start --no-block tor@default.service" in command
    assert "systemctl stop --no-block tor@default.service" in command
    assert _one(switch, "Service", "Type") == "oneshot"
    assert _one(switch, "Service", "CapabilityBoundingSet") == "CAP_DAC_READ_SEARCH"
    assert _one(switch, "Service", "PrivateNetwork") == "yes"
    # No unit of ours Wants/Requires tor: only the switch starts it.
    for unit in UNITS:
        for key in ("Wants", "Requires", "BindsTo"):
            assert not any("tor" in v for v in _values(unit, "Unit", key)), (unit, key)
