"""scripts/install.sh: shellcheck-clean, and a scratch-root install that is idempotent
and whose uninstall keeps the records."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from strongroom.config import parse_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install.sh"
STOCK_CONFIG_TXT = (
    "# For more options and information see\n"
    "# http://rptl.io/configtxt\n"
    "dtparam=audio=on\n"
    "[cm4]\n"
    "otg_mode=1\n"
    "[all]\n"
    "arm_boost=1"  # no final newline: the installer must still start a new line
)
UNITS = sorted(p.name for p in (REPO / "systemd").iterdir())


def run_install(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
        # No tty, no PATH tricks: exactly what CI and an image build see.
        env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"},
    )


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under root with its content digest, mtime and mode."""
    out: dict[str, tuple[str, int, int]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (digest, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def pi_root(tmp_path: Path) -> Path:
    """A scratch root shaped like a freshly flashed Raspberry Pi OS."""
    root = tmp_path / "root"
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(STOCK_CONFIG_TXT)
    return root


def install(root: Path) -> subprocess.CompletedProcess[str]:
    result = run_install("--root", str(root), "--no-apt", "--no-venv")
    assert result.returncode == 0, result.stderr
    return result


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run scripts/ensure-system-deps.sh"
    result = subprocess.run(
        [
            shellcheck,
            "--severity=style",
            "-x",
            str(SCRIPT),
            str(SCRIPT.with_name("install-venv.sh")),
            str(SCRIPT.with_name("install-remove.sh")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_script_is_strict() -> None:
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines


def test_install_lays_out_the_appliance(pi_root: Path) -> None:
    result = install(pi_root)
    unit_dir = pi_root / "etc" / "systemd" / "system"
    for unit in UNITS:
        assert (unit_dir / unit).read_bytes() == (REPO / "systemd" / unit).read_bytes()
    dropin = pi_root / "etc" / "systemd" / "system.conf.d" / "strongroom-watchdog.conf"
    assert dropin.read_bytes() == (REPO / "firmware" / "boot" / "watchdog.conf").read_bytes()
    time_sync = unit_dir / "systemd-time-wait-sync.service.d" / "strongroom.conf"
    shipped = REPO / "firmware" / "boot" / "time-wait-sync.conf"
    assert time_sync.read_bytes() == shipped.read_bytes()
    etc = pi_root / "etc" / "strongroom"
    assert (etc / "box.toml").read_bytes() == (REPO / "firmware" / "box.toml").read_bytes()
    assert (etc / "box.toml").stat().st_mode & 0o777 == 0o640
    assert (etc / "panel.toml").read_bytes() == (REPO / "firmware" / "panel.toml").read_bytes()
    assert (pi_root / "var" / "lib" / "strongroom").stat().st_mode & 0o777 == 0o700
    assert (pi_root / "mnt" / "strongroom-backup").is_dir()
    assert (pi_root / "opt" / "strongroom" / "docs" / "hardware.md").is_file()

    config_txt = (pi_root / "boot" / "firmware" / "config.txt").read_text()
    fragment = (REPO / "firmware" / "boot" / "config.txt").read_text()
    assert config_txt == STOCK_CONFIG_TXT + "\n" + fragment
    assert "https://strongroom.local/" in result.stdout
    assert "reboot" in result.stdout


def test_second_run_changes_nothing(pi_root: Path) -> None:
    install(pi_root)
    before = snapshot(pi_root)
    again = install(pi_root)
    assert snapshot(pi_root) == before
    assert "wrote" not in again.stdout
    assert "reboot" not in again.stdout  # config.txt untouched


def test_the_administrators_config_is_never_overwritten(pi_root: Path) -> None:
    install(pi_root)
    box_toml = pi_root / "etc" / "strongroom" / "box.toml"
    box_toml.write_text('port = 8443\nbox_name = "cabinet-martin"\n')
    result = install(pi_root)
    assert box_toml.read_text() == 'port = 8443\nbox_name = "cabinet-martin"\n'
    assert "kept your /etc/strongroom/box.toml" in result.stdout


def test_an_updated_unit_is_replaced(pi_root: Path) -> None:
    install(pi_root)
    unit = pi_root / "etc" / "systemd" / "system" / "strongroom.service"
    unit.write_text("[Service]\nExecStart=/bin/false\n")  # an older release's unit
    result = install(pi_root)
    assert unit.read_bytes() == (REPO / "systemd" / "strongroom.service").read_bytes()
    assert "wrote /etc/systemd/system/strongroom.service" in result.stdout


def test_uninstall_removes_software_and_keeps_records(pi_root: Path) -> None:
    install(pi_root)
    data = pi_root / "var" / "lib" / "strongroom"
    (data / "archive.db").write_bytes(b"SQLCipher pages")
    venv_python = pi_root / "opt" / "strongroom" / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")  # stands for the virtualenv --no-venv skipped
    clone = pi_root / "opt" / "strongroom" / "src" / "pyproject.toml"
    clone.parent.mkdir(parents=True)
    clone.write_text("")  # docs/operations.md clones the source here
    result = run_install("--root", str(pi_root), "--uninstall")
    assert result.returncode == 0, result.stderr
    unit_dir = pi_root / "etc" / "systemd" / "system"
    assert [p.name for p in unit_dir.iterdir()] == []
    assert not (pi_root / "etc" / "systemd" / "system.conf.d" / "strongroom-watchdog.conf").exists()
    assert sorted(p.name for p in (pi_root / "opt" / "strongroom").iterdir()) == ["src"]
    assert clone.exists()
    assert (pi_root / "boot" / "firmware" / "config.txt").read_text() == STOCK_CONFIG_TXT + "\n"
    assert (data / "archive.db").read_bytes() == b"SQLCipher pages"
    assert (pi_root / "etc" / "strongroom" / "box.toml").is_file()
    assert "kept the records" in result.stdout
    # And installing again picks the records up untouched.
    install(pi_root)
    assert (data / "archive.db").read_bytes() == b"SQLCipher pages"


def test_purge_needs_confirmation(pi_root: Path) -> None:
    install(pi_root)
    data = pi_root / "var" / "lib" / "strongroom"
    (data / "archive.db").write_bytes(b"records")
    refused = run_install("--root", str(pi_root), "--uninstall", "--purge", stdin="destroy\n")
    assert refused.returncode != 0  # no tty and no --yes: never destroy on a guess
    assert (data / "archive.db").exists()
    assert (pi_root / "etc" / "systemd" / "system" / "strongroom.service").exists()
    purged = run_install("--root", str(pi_root), "--uninstall", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert not data.exists()
    assert not (pi_root / "etc" / "strongroom").exists()


@pytest.mark.parametrize(
    "args",
    [["--purge"], ["--frobnicate"], ["--root"], ["--root", "/nonexistent/strongroom"]],
)
def test_bad_arguments_are_refused_before_anything_happens(args: list[str], pi_root: Path) -> None:
    before = snapshot(pi_root)
    result = run_install(*args)
    assert result.returncode != 0
    assert "error" in result.stderr
    assert snapshot(pi_root) == before


def test_force_without_rollback_is_refused(pi_root: Path) -> None:
    # It would otherwise install, silently ignoring what the administrator asked.
    before = snapshot(pi_root)
    result = run_install("--root", str(pi_root), "--no-apt", "--no-venv", "--force")
    assert result.returncode == 1
    assert "--force only makes sense with --rollback" in result.stderr
    assert snapshot(pi_root) == before


def test_without_a_boot_partition_the_rest_still_installs(tmp_path: Path) -> None:
    result = install(tmp_path)
    assert "no /boot/firmware/config.txt" in result.stdout
    assert (tmp_path / "etc" / "systemd" / "system" / "strongroom.service").is_file()


def test_shipped_box_toml_is_valid_for_the_service() -> None:
    # The service refuses unknown keys: a stale template would stop the box booting.
    config = parse_config((REPO / "firmware" / "box.toml").read_text(), Path("/unused"))
    assert config.data_dir == Path("/var/lib/strongroom")
    assert (config.port, config.tls, config.mock_gpio) == (443, True, False)
    assert config.backup_target == Path("/mnt/strongroom-backup")


def test_hardware_watchdog_timeout_fits_the_soc() -> None:
    text = (REPO / "firmware" / "boot" / "watchdog.conf").read_text()
    line = next(x for x in text.splitlines() if x.startswith("RuntimeWatchdogSec="))
    # The BCM283x/2711/2712 watchdog counts at most ~15.9 s; more is silently clamped.
    assert 0 < int(line.split("=")[1]) <= 15


def test_a_damaged_boot_block_is_left_for_a_human(pi_root: Path) -> None:
    config_txt = pi_root / "boot" / "firmware" / "config.txt"
    damaged = "# >>> strongroom >>> (half edited)\ndtparam=watchdog=on\n[all]\nmy_own_setting=1\n"
    config_txt.write_text(damaged)
    result = run_install("--root", str(pi_root), "--no-apt", "--no-venv")
    assert result.returncode != 0
    assert "fix it by hand" in result.stderr
    assert config_txt.read_text() == damaged


# ---------------------------------------------------------------- lock file, upgrades


def _lock_entries() -> dict[str, tuple[str, str, str]]:
    """name -> (version, sha256, wheel file) from requirements-aarch64.lock."""
    text = (REPO / "requirements-aarch64.lock").read_text(encoding="utf-8")
    pattern = r"^([a-z0-9-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})  # (\S+\.whl)$"
    return {m[0]: (m[1], m[2], m[3]) for m in re.findall(pattern, text, flags=re.MULTILINE)}


def test_every_locked_dependency_is_a_hashed_aarch64_wheel_for_python_311() -> None:
    entries = _lock_entries()
    text = (REPO / "requirements-aarch64.lock").read_text(encoding="utf-8")
    assert len(entries) == text.count("=="), "an entry the parser did not understand"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    for pin in pyproject["project"]["dependencies"]:
        name, version = pin.split("==")
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert entries[key][0] == version, f"{pin} is not what the lock installs"
    for name, (_version, _digest, wheel) in entries.items():
        tags = wheel.removesuffix(".whl").split("-")[-3:]
        python, abi, platform = tags
        pure = platform == "any" and abi == "none"
        assert pure or ("aarch64" in platform and "manylinux" in platform), (name, wheel)
        assert pure or python == "cp311" or abi == "abi3", (name, wheel)


def test_the_pi_compiles_nothing_and_pip_checks_every_hash() -> None:
    script = SCRIPT.read_text(encoding="utf-8")
    apt = re.search(r"APT_PACKAGES=\(([^)]*)\)", script)
    assert apt is not None
    for build_tool in ("build-essential", "libsqlcipher-dev", "python3-dev", "gcc"):
        assert build_tool not in apt.group(1)
    venv_script = SCRIPT.with_name("install-venv.sh").read_text(encoding="utf-8")
    assert "--require-hashes --only-binary=:all: -r" in venv_script
    assert "--no-deps --no-build-isolation --no-index" in venv_script


def _fake_release(root: Path, name: str) -> None:
    binary = root / "opt" / "strongroom" / "venvs" / name / "bin" / "strongroom"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\necho {name}\n")
    (binary.parents[1] / ".strongroom-complete").write_text("")


def _release_units(root: Path, name: str) -> str:
    """The unit files a release kept: REPO's, with its own verify unit."""
    units = root / "opt" / "strongroom" / "venvs" / name / "units"
    shutil.copytree(REPO / "systemd", units / "systemd")
    verify = f"[Service]\nExecStart=/opt/strongroom/venv/bin/strongroom verify # {name}\n"
    (units / "systemd" / "strongroom-verify.service").write_text(verify)
    return verify


def test_rollback_goes_back_to_the_previous_release_and_forth_again(pi_root: Path) -> None:
    install(pi_root)
    opt = pi_root / "opt" / "strongroom"
    _fake_release(pi_root, "old")
    _fake_release(pi_root, "new")
    # Each release runs the units it was installed with (an older one may not
    # understand a newer one's command lines).
    old_verify = _release_units(pi_root, "old")
    new_verify = _release_units(pi_root, "new")
    verify_unit = pi_root / "etc" / "systemd" / "system" / "strongroom-verify.service"
    (opt / "venv").symlink_to("venvs/new")
    (opt / "venv.previous").symlink_to("venvs/old")
    result = run_install("--root", str(pi_root), "--rollback")
    assert result.returncode == 0, result.stderr
    assert os.readlink(opt / "venv") == "venvs/old"
    assert os.readlink(opt / "venv.previous") == "venvs/new"
    assert (opt / "venv" / "bin" / "strongroom").read_text().endswith("echo old\n")
    assert verify_unit.read_text() == old_verify
    assert "installed the unit files of venvs/old" in result.stdout
    assert "restore the backup" in result.stdout
    again = run_install("--root", str(pi_root), "--rollback")
    assert again.returncode == 0, again.stderr
    assert os.readlink(opt / "venv") == "venvs/new"
    assert verify_unit.read_text() == new_verify
    # Uninstall takes every release away, and keeps the records.
    assert run_install("--root", str(pi_root), "--uninstall").returncode == 0
    assert not (opt / "venvs").exists() and not (opt / "venv.previous").is_symlink()


def test_rollback_without_a_previous_release_changes_nothing(pi_root: Path) -> None:
    install(pi_root)
    _fake_release(pi_root, "only")
    (pi_root / "opt" / "strongroom" / "venv").symlink_to("venvs/only")
    result = run_install("--root", str(pi_root), "--rollback")
    assert result.returncode == 1
    assert "no previous version" in result.stderr
    assert os.readlink(pi_root / "opt" / "strongroom" / "venv") == "venvs/only"


def _fake_schema(root: Path, name: str, schema: int) -> None:
    """The release's python answers the installer's SCHEMA_VERSION question."""
    python = root / "opt" / "strongroom" / "venvs" / name / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho {schema}\n")
    python.chmod(0o755)


def test_rollback_to_an_older_archive_schema_is_refused_unless_forced(pi_root: Path) -> None:
    install(pi_root)
    opt = pi_root / "opt" / "strongroom"
    for name, schema in (("old", 5), ("new", 6)):
        _fake_release(pi_root, name)
        _fake_schema(pi_root, name, schema)
    (opt / "venv").symlink_to("venvs/new")
    (opt / "venv.previous").symlink_to("venvs/old")
    refused = run_install("--root", str(pi_root), "--rollback")
    assert refused.returncode == 1
    assert "venvs/old reads archive schema 5, venvs/new brought schema 6" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert os.readlink(opt / "venv") == "venvs/new"
    forced = run_install("--root", str(pi_root), "--rollback", "--force")
    assert forced.returncode == 0, forced.stderr
    assert os.readlink(opt / "venv") == "venvs/old"
    assert "restore the backup taken before the upgrade" in forced.stdout


def _release_id() -> str:
    """The venvs/<id> install.sh builds for this tree (its source_digest)."""
    paths = [REPO / "pyproject.toml"]
    for top in ("app", "firmware/strongroom_panel"):
        paths += [
            p
            for p in (REPO / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        ]
    names = sorted(str(p.relative_to(REPO)).encode() for p in paths)
    listing = b"".join(
        hashlib.sha256((REPO / n.decode()).read_bytes()).hexdigest().encode() + b"  " + n + b"\n"
        for n in names
    )
    return hashlib.sha256(listing).hexdigest()[:16]


def test_an_install_that_stops_after_the_switch_puts_the_release_back(pi_root: Path) -> None:
    install(pi_root)
    opt = pi_root / "opt" / "strongroom"
    _fake_release(pi_root, "older")
    _fake_release(pi_root, "old")
    _fake_release(pi_root, _release_id())  # built already: the installer only switches
    (opt / "venv").symlink_to("venvs/old")
    (opt / "venv.previous").symlink_to("venvs/older")
    old_verify = _release_units(pi_root, "old")
    verify_unit = pi_root / "etc" / "systemd" / "system" / "strongroom-verify.service"
    verify_unit.write_text(old_verify)
    config_txt = pi_root / "boot" / "firmware" / "config.txt"
    damaged = "# >>> strongroom >>> (half edited)\ndtparam=watchdog=on\n"
    config_txt.write_text(damaged)  # a later step dies
    failed = run_install("--root", str(pi_root), "--no-apt")
    assert failed.returncode == 1
    assert f"now using /opt/strongroom/venv -> venvs/{_release_id()}" in failed.stdout
    assert "going back to venvs/old" in failed.stdout
    assert os.readlink(opt / "venv") == "venvs/old"
    assert os.readlink(opt / "venv.previous") == "venvs/older"
    assert verify_unit.read_text() == old_verify  # the new tree's units went with it
    # Fixed and run again: the switch happens afresh (nothing thinks it is done).
    config_txt.write_text(STOCK_CONFIG_TXT)
    again = run_install("--root", str(pi_root), "--no-apt")
    assert again.returncode == 0, again.stderr
    assert os.readlink(opt / "venv") == f"venvs/{_release_id()}"
    assert os.readlink(opt / "venv.previous") == "venvs/old"
    # The new release kept the units it was installed with, for a later rollback.
    kept = opt / "venvs" / _release_id() / "units"
    for unit in UNITS:
        assert (kept / "systemd" / unit).read_bytes() == (REPO / "systemd" / unit).read_bytes()
    assert verify_unit.read_bytes() == (REPO / "systemd" / "strongroom-verify.service").read_bytes()
    before = snapshot(pi_root)
    assert run_install("--root", str(pi_root), "--no-apt").returncode == 0
    assert snapshot(pi_root) == before  # idempotent, the kept units included


UNINSTALL_WITHOUT_SYSTEMD = r"""
set -eu
# Only this namespace sees these: the machine's own directories are never touched.
for dir in /opt /etc/systemd/system /boot /etc/tor /run/systemd; do
    if [ -d "$dir" ]; then mount -t tmpfs tmpfs "$dir"; fi
done
mkdir -p /opt/strongroom/venv/bin
: >/opt/strongroom/venv/bin/python
printf '[Service]\nExecStart=/bin/true\n' >/etc/systemd/system/strongroom.service
set +e
bash "$1" --uninstall
echo "exit=$?"
ls -A /opt/strongroom /etc/systemd/system 2>&1
"""


def test_live_uninstall_finishes_where_systemd_is_not_pid_1(tmp_path: Path) -> None:
    """A chroot, an image build, a container: `--uninstall` used to die at
    `systemctl daemon-reload`, leaving the virtualenv installed. It now warns and
    finishes. Run live (no --root) in a private mount namespace, over tmpfs."""
    isolate = ["unshare", "-m", "--propagation", "private"]
    if os.geteuid() != 0:
        isolate.insert(1, "-r")
    result = subprocess.run(
        [*isolate, "bash", "-c", UNINSTALL_WITHOUT_SYSTEMD, "uninstall", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8"},
    )
    assert "exit=0" in result.stdout, result.stdout + result.stderr
    assert "removed /etc/systemd/system/strongroom.service" in result.stdout
    assert "removed /opt/strongroom/venv" in result.stdout
    assert "kept the records" in result.stdout
    assert "systemd is not running here (not PID 1): no daemon-reload" in result.stderr
    # What is left: nothing of ours, the unit directory empty.
    assert result.stdout.rstrip().endswith("/etc/systemd/system:"), result.stdout
