"""scripts/install.sh makes remote reach ready (issue #18), in a scratch root: tor's
torrc gets its %include line once and loses only that line again, the include file
says "off", the socket directory follows Debian's convention. The same steps on a
booted system (tor installed, never started while reach is off, `reach on` starting
it) are proven in tests/test_appliance_boot.py."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from strongroom.reach.settings import DEFAULT_ONION_SOCKET
from strongroom.reach.tor_files import TorFiles
from strongroom.reach.torrc import ServiceConfig
from test_install_script import run_install, snapshot

INCLUDE = "%include /var/lib/tor/strongroom-reach.conf"
# An administrator's torrc: Debian's comments, their own settings, no final newline.
ADMIN_TORRC = (
    "## Configuration file for Tor\n#SocksPort 9050\n"
    "Log notice file /var/log/tor/notices\nExitPolicy reject *:*"
)


@pytest.fixture
def tor_root(tmp_path: Path) -> Path:
    """A scratch root where Debian's tor is installed (its torrc and data directory)."""
    root = tmp_path / "root"
    (root / "etc" / "tor").mkdir(parents=True)
    (root / "etc" / "tor" / "torrc").write_text(ADMIN_TORRC)
    (root / "var" / "lib" / "tor").mkdir(parents=True, mode=0o700)
    return root


def install(root: Path) -> str:
    result = run_install("--root", str(root), "--no-apt", "--no-venv")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_install_adds_the_include_once_after_the_admins_torrc(tor_root: Path) -> None:
    out = install(tor_root)
    torrc = (tor_root / "etc" / "tor" / "torrc").read_text()
    # The administrator's lines untouched, ours appended on a line of their own.
    assert torrc.startswith(ADMIN_TORRC + "\n")
    assert torrc.splitlines().count(INCLUDE) == 1 and torrc.endswith(INCLUDE + "\n")
    assert f"added '{INCLUDE}'" in out
    # The file it includes exists (tor refuses a missing include) and says "off".
    conf = tor_root / "var" / "lib" / "tor" / "strongroom-reach.conf"
    files = TorFiles(ServiceConfig(tor_root / "hs", tor_root / "s.sock"), conf, lambda: None)
    assert conf.is_file() and not files.enabled()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    # Debian's socket convention: the box's own directory, 02750 (setgid).
    sockets = tor_root / str(DEFAULT_ONION_SOCKET.parent).lstrip("/")
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o2750
    # Run again: nothing changes, nothing is duplicated.
    before = snapshot(tor_root)
    again = install(tor_root)
    assert snapshot(tor_root) == before
    assert "added" not in again and "created" not in again


def test_an_include_the_admin_already_added_is_not_duplicated(tor_root: Path) -> None:
    torrc = tor_root / "etc" / "tor" / "torrc"
    torrc.write_text(f"{INCLUDE}\nSocksPort 0\n")  # the old manual set-up
    install(tor_root)
    assert torrc.read_text() == f"{INCLUDE}\nSocksPort 0\n"


def test_uninstall_gives_the_admin_their_torrc_back_and_purge_forgets_the_service(
    tor_root: Path,
) -> None:
    install(tor_root)
    conf = tor_root / "var" / "lib" / "tor" / "strongroom-reach.conf"
    keys = tor_root / "var" / "lib" / "tor" / "strongroom" / "hs_ed25519_secret_key"
    keys.parent.mkdir(mode=0o700)
    keys.write_bytes(b"== ed25519v1-secret: type0 ==\0\0\0" + bytes(64))  # tor's made one
    removed = run_install("--root", str(tor_root), "--uninstall")
    assert removed.returncode == 0, removed.stderr
    torrc = (tor_root / "etc" / "tor" / "torrc").read_text()
    assert torrc == ADMIN_TORRC + "\n"
    # A plain uninstall keeps state: a reinstall keeps the onion address.
    assert conf.is_file() and keys.is_file()
    install(tor_root)
    assert (tor_root / "etc" / "tor" / "torrc").read_text().count(INCLUDE) == 1
    purged = run_install("--root", str(tor_root), "--uninstall", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    assert (tor_root / "etc" / "tor" / "torrc").read_text() == ADMIN_TORRC + "\n"
    assert not conf.exists() and not keys.parent.exists()
    assert not (tor_root / str(DEFAULT_ONION_SOCKET.parent).lstrip("/")).exists()


def test_a_sandboxed_tor_is_pointed_out(tor_root: Path) -> None:
    (tor_root / "etc" / "tor" / "torrc").write_text("Sandbox 1\n")
    assert "needs tor's sandbox off" in install(tor_root)


def test_without_tor_the_rest_installs_and_says_reach_is_unavailable(tmp_path: Path) -> None:
    out = install(tmp_path)
    assert "remote reach stays unavailable" in out
    assert not (tmp_path / "etc" / "tor").exists()
    assert not (tmp_path / "var" / "lib" / "tor-onion-sockets").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_link_planted_in_tors_directory_is_never_written_through(
    tor_root: Path, existing: bool
) -> None:
    # /var/lib/tor belongs to debian-tor: whoever runs as tor can plant a link
    # there; root writing (and chowning) through it would hand them root.
    victim = tor_root / "etc" / "ld.so.preload"
    if existing:
        victim.write_text("kept\n")
    conf = tor_root / "var" / "lib" / "tor" / "strongroom-reach.conf"
    conf.symlink_to(victim)
    result = run_install("--root", str(tor_root), "--no-apt", "--no-venv")
    assert result.returncode == 1
    assert "is a symbolic link: refusing to write through it" in result.stderr
    assert victim.read_text() == "kept\n" if existing else not victim.exists()
    assert conf.is_symlink()
