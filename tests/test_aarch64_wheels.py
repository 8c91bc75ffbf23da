"""The Raspberry Pi's wheels, fetched for real: requirements-aarch64.lock resolved by
pip for CPython 3.11 on aarch64 (glibc 2.36, Debian bookworm) from the package index.

test_install_script.py reads the lock as a file; this asks the index. pip downloads
what `pip install --require-hashes --only-binary=:all: -r requirements-aarch64.lock`
on the Pi would (scripts/install-venv.sh), dependencies included, so a transitive
dependency missing from the lock fails here as it would on the Pi ("Hashes are
required in --require-hashes mode"). The wheels are kept under var/aarch64-wheels:
a re-run downloads nothing and only asks the index again (a few seconds).

What pip's cross-platform download cannot do: run the wheels (nothing here imports
an aarch64 extension; the booted appliance test runs amd64), or evaluate
environment markers for the Pi: `platform_machine`, `sys_platform` and the like in
a dependency's metadata are evaluated on this machine (x86_64 Linux), only the
Python version and the wheel tags follow --python-version/--platform. The
markers the locked wheels use today (implementation_name,
platform_python_implementation, python_version) come out the same here and on
the Pi; none names the machine. scripts/lock-aarch64.sh resolves the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements-aarch64.lock"
WHEELS = REPO / "var" / "aarch64-wheels"
# Raspberry Pi OS / Debian bookworm has glibc 2.36: every manylinux tag up to it.
GLIBC = (2, 36)
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(GLIBC[1], 16, -1)] + [
    "manylinux2014_aarch64"
]


def _locked() -> dict[str, tuple[str, str]]:
    """wheel file name -> (name==version, sha256) from the lock."""
    text = LOCK.read_text(encoding="utf-8")
    pattern = r"^([a-z0-9-]+==\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})  # (\S+\.whl)$"
    entries = {m[2]: (m[0], m[1]) for m in re.findall(pattern, text, flags=re.MULTILINE)}
    assert len(entries) == text.count("=="), "an entry the parser did not understand"
    return entries


def _runs_on_the_pi(wheel: str) -> bool:
    """Its tags (PEP 425, compressed sets allowed) fit CPython 3.11 on aarch64 glibc 2.36."""
    python, abi, platform = wheel.removesuffix(".whl").split("-")[-3:]
    if platform == "any":
        return abi == "none" and "py3" in python.split(".")
    if not ("cp311" in python.split(".") and "cp311" in abi.split(".")) and abi != "abi3":
        return False
    for tag in platform.split("."):
        legacy = {"manylinux2014_aarch64": (2, 17)}
        match = re.fullmatch(r"manylinux_(\d+)_(\d+)_aarch64", tag)
        glibc = (int(match[1]), int(match[2])) if match else legacy.get(tag)
        if glibc is not None and glibc <= GLIBC:
            return True
    return False


def test_pip_fetches_every_locked_wheel_for_the_pi_with_the_locked_hash() -> None:
    locked = _locked()
    WHEELS.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check"]
    argv += ["--progress-bar", "off", "--only-binary=:all:", "--require-hashes"]
    argv += ["--python-version", "3.11", "--implementation", "cp"]
    argv += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for platform in PLATFORMS:
        argv += ["--platform", platform]
    argv += ["-r", str(LOCK), "-d", str(WHEELS)]
    # The index only, as on the Pi: no local wheel directory this machine may set.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_NO_INDEX")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # pip checked the hashes; check them again, and that each is the wheel the lock names.
    for wheel, (pin, digest) in locked.items():
        path = WHEELS / wheel
        assert path.is_file(), f"{pin}: pip did not pick {wheel}\n{done.stdout[-3000:]}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, wheel
        assert _runs_on_the_pi(wheel), wheel
    fetched = {
        line.split("/")[-1]
        for line in re.findall(r"(?:Saved|File was already downloaded) (\S+)", done.stdout)
    }
    assert fetched == set(locked), fetched ^ set(locked)


def test_the_tag_check_refuses_what_the_pi_cannot_install() -> None:
    assert _runs_on_the_pi(
        "cffi-2.1.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    )
    assert _runs_on_the_pi("attrs-26.1.0-py3-none-any.whl")
    assert not _runs_on_the_pi("cffi-2.1.1-cp311-cp311-manylinux2014_x86_64.whl")
    assert not _runs_on_the_pi("cffi-2.1.1-cp312-cp312-manylinux2014_aarch64.whl")
    assert not _runs_on_the_pi("x-1.0-cp311-cp311-manylinux_2_38_aarch64.whl")  # glibc too new
    assert not _runs_on_the_pi("x-1.0-cp311-cp311-musllinux_1_2_aarch64.whl")
