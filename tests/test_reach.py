"""Remote reach without a Tor network: formats, the helper's files, the box's onion socket.

Tor itself is replaced here by what it would do at the edges: the helper's
"reload" is counted instead of signalling tor, tor's `hostname` file is written
by the test, and a phone reaches the onion socket directly (aiohttp's Unix
connector) where tor would carry it. Everything else is real: the helper app on
a Unix socket, a whole BoxRuntime, the web UI, the CLI. The real network is in
test_reach_tor.py.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from e2e_helpers import (
    E2EBox,
    WebAdmin,
    admin_page,
    message,
    pair_by_button,
    pair_by_qr,
    prepare_data_dir,
    start_box,
    until,
)
from reach_support import ONION, cli, running, through_onion_socket, tor_files
from strongroom.client import HandshakeRefused, PhoneClient
from strongroom.reach.helper import call_helper, helper_app, serve_helper
from strongroom.reach.keys import (
    ClientAuthKey,
    ReachKeyError,
    client_auth_line,
    public_of,
    service_auth_line,
    unb32,
)
from strongroom.reach.settings import (
    ReachSettings,
    ReachSettingsError,
    load_settings,
    save_settings,
    settings_path,
)
from strongroom.reach.tor_files import SENTINEL, ReachHelperError, TorFiles
from strongroom.reach.torrc import ServiceConfig, service_conf

__all__ = ["running"]  # a fixture, shared with test_reach_refresh.py


def test_client_auth_files_are_in_tors_formats() -> None:
    key = ClientAuthKey.generate()
    line = service_auth_line(key.public_b32)
    assert line == f"descriptor:x25519:{key.public_b32}\n" and len(key.public_b32) == 52
    assert client_auth_line(ONION, key.private_b32) == (
        f"{'a' * 56}:descriptor:x25519:{key.private_b32}\n"
    )
    assert public_of(key.private_b32) == key.public_b32
    for bad in ("", "a" * 52, "A" * 51, "A" * 51 + "1", key.public_b32[:-1] + "B"):
        with pytest.raises(ReachKeyError):
            unb32(bad)
    with pytest.raises(ReachKeyError):
        client_auth_line("example.com", key.private_b32)


def test_service_conf_targets_a_unix_socket_with_limits_and_pow(tmp_path: Path) -> None:
    conf = service_conf(ServiceConfig(tmp_path / "hs", tmp_path / "peer.sock"))
    assert f"HiddenServiceDir {tmp_path / 'hs'}\n" in conf
    assert f"HiddenServicePort 80 unix:{tmp_path / 'peer.sock'}\n" in conf
    assert "HiddenServiceMaxStreams 4\nHiddenServiceMaxStreamsCloseCircuit 1\n" in conf
    assert "HiddenServicePoWDefensesEnabled 1\n" in conf
    assert "HiddenService" not in service_conf(None)
    with pytest.raises(ValueError):
        service_conf(ServiceConfig(tmp_path / "a b", tmp_path / "peer.sock"))


def test_reach_is_off_without_a_settings_file_and_bad_files_are_refused(tmp_path: Path) -> None:
    assert load_settings(tmp_path) == ReachSettings()
    assert not ReachSettings().enabled
    mine = ReachSettings(True, onion_socket=tmp_path / "o.sock", helper_socket=tmp_path / "h")
    save_settings(tmp_path, mine)
    assert load_settings(tmp_path) == mine
    for text in ("{", '{"enabled": "yes"}', '{"other": 1}', '{"onion_socket": "relative"}'):
        settings_path(tmp_path).write_text(text)
        with pytest.raises(ReachSettingsError):
            load_settings(tmp_path)


def test_rotating_gives_a_new_address_and_keeps_client_authorisation(tmp_path: Path) -> None:
    files, _ = tor_files(tmp_path)
    with pytest.raises(ReachHelperError):
        files.rotate()  # off: nothing to rotate, nothing touched
    assert (files.service.hs_dir / "hostname").read_text().strip() == ONION
    files.enable()
    files.authorize("device-3", ClientAuthKey.generate().public_b32)
    new = files.rotate()
    assert new != ONION and files.onion() == new and files.enabled()
    assert files.clients() == ["device-3"]
    assert (files.clients_dir / f"{SENTINEL}.auth").exists()


def test_the_service_is_never_left_without_client_authorisation(tmp_path: Path) -> None:
    files, reload = tor_files(tmp_path)
    assert files.enable() == ONION and files.enabled() and reload.count == 1
    # tor serves an onion with an empty authorized_clients/ to anyone: a key that
    # nobody holds keeps authorisation on before the first and after the last phone.
    sentinel = files.clients_dir / f"{SENTINEL}.auth"
    assert sentinel.read_text().startswith("descriptor:x25519:")
    assert files.clients() == []
    key = ClientAuthKey.generate()
    files.authorize("device-7", key.public_b32)
    assert files.clients() == ["device-7"] and reload.count == 2
    assert files.deauthorize("device-7") and reload.count == 3
    assert files.clients() == [] and sentinel.exists()
    for name in (SENTINEL, "../x", "Device-7", ""):
        with pytest.raises(ValueError):
            files.deauthorize(name)
    assert sentinel.exists()
    files.disable()
    assert not files.enabled() and (files.service.hs_dir / "hs_ed25519_secret_key").parent.exists()


async def test_the_helper_refuses_bad_names_and_keys_and_writes_nothing(tmp_path: Path) -> None:
    files, reload = tor_files(tmp_path)
    files.enable()
    runner = await serve_helper(helper_app(files, None), tmp_path / "helper.sock")
    try:
        sock = tmp_path / "helper.sock"
        connector = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=connector) as http:
            for name, body in (
                ("..", {"public": ClientAuthKey.generate().public_b32}),
                ("device-1", {"public": "not a key"}),
                ("device-1", {"public": 5}),
                (SENTINEL, {"public": ClientAuthKey.generate().public_b32}),
            ):
                async with http.put(f"http://helper/clients/{name}", json=body) as response:
                    assert response.status in (400, 404), (name, body)
            # A "kept key" that is not a tor key file is refused, and nothing replaced.
            for body in ({"key": "bm90IGEga2V5"}, {"key": 3}, {}):
                async with http.put("http://helper/key", json=body) as response:
                    assert response.status == 400, body
        assert files.clients() == [] and reload.count == 1
        assert not (files.service.hs_dir / "hs_ed25519_secret_key").exists()
        status = await call_helper(sock, "GET", "/status")
        assert status == {"enabled": True, "onion": ONION, "clients": [], "tor": None}
    finally:
        await runner.cleanup()


# -- the whole box, with a stand-in for tor's transport -----------------------------------------


async def test_reach_on_serves_phones_and_only_phones_on_the_onion_socket(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    socket = files.service.onion_socket
    assert not socket.exists()  # off by default: nothing listens for tor
    code, out = await cli("reach", "on", "--data", str(box.data_dir))
    assert code == 0 and f"onion address: {ONION}" in out and "remote reach: on" in out
    assert socket.exists() and files.enabled()

    phone, paired = await pair_by_qr(box, "Claire's phone", "claire")
    await phone.close()
    assert phone.state.onion == ONION and phone.state.onion_auth is not None
    # The helper authorises the key just after `paired`.
    await until(lambda: files.clients() == [f"device-{paired.device_id}"], what="the .auth file")
    auth = (files.clients_dir / f"device-{paired.device_id}.auth").read_text()
    assert auth == service_auth_line(public_of(phone.state.onion_auth))
    page = await admin_page(box, "/reach")
    listed = page[page.index('id="reach-phones"') :].split("</ul>")[0]
    assert "Claire&#39;s phone · claire" in listed

    async with through_onion_socket(socket) as http:
        remote = PhoneClient(phone.state, http=http, keepalive=False)
        await remote.connect(f"ws://{ONION}/peer")
        ack = await remote.push(message("Depuis la gare", conv="c-1", sender="claire", n=1))
        assert ack.log_index >= 0 and not ack.duplicate
        await remote.close()
        # The web UI is not on the onion: only /peer is.
        for path in ("/login", "/dashboard", "/reach", "/static/style.css"):
            async with http.get(f"http://{ONION}{path}", allow_redirects=False) as response:
                assert response.status == 404, path

        code, out = await cli("revoke", str(paired.device_id), "--data", str(box.data_dir))
        assert code == 0 and files.clients() == []
        code, out = await cli("reach", "rotate", "--data", str(box.data_dir))
        assert code == 0 and ONION not in out and f"onion address: {files.onion()}" in out
        again = PhoneClient(phone.state, http=http, keepalive=False)
        with pytest.raises(HandshakeRefused):
            await again.connect(f"ws://{ONION}/peer")
        await again.close()
    admin = WebAdmin(box.url)
    try:
        await admin.login()
        before = files.onion()
        status, _, location = await admin.post_form("/reach/rotate", {}, form_page="/reach")
        assert status == 303 and location == "/reach"
        status, page = await admin.get("/reach")
        assert status == 200
        assert "The box has a new onion address: each phone learns it the next time" in page
        assert files.onion() != before and f'id="reach-onion">{files.onion()}<' in page
    finally:
        await admin.close()
    assert box.audit_actions("reach.") == [
        "reach.on",
        "reach.grant",
        "reach.revoke",
        "reach.rotate",
        "reach.rotate",
    ]


async def test_a_helper_that_does_not_answer_is_a_clear_error_and_nothing_changes(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, files = running
    (tmp_path / "helper.sock").unlink()  # the helper's unit is stopped
    admin = WebAdmin(box.url)
    try:
        await admin.login()
        status, _, location = await admin.post_form("/reach/on", {}, form_page="/reach")
        assert status == 303 and location == "/reach"
        status, page = await admin.get("/reach")
        assert status == 200 and "strongroom-reach-helper installed and running" in page
        assert 'id="reach-state">off<' in page
    finally:
        await admin.close()
    code, out = await cli("reach", "on", "--data", str(box.data_dir))
    assert code == 1 and "helper is unreachable" in out
    assert "(systemctl status strongroom-reach-helper)" in out  # operations.md, "If it fails"
    assert not load_settings(box.data_dir).enabled and not files.service.onion_socket.exists()
    assert box.audit_actions("reach.") == []
    # The box itself carries on: phones on the LAN still pair and push, without reach.
    phone, _ = await pair_by_qr(box, "Hugo's phone", "hugo")
    assert phone.state.onion is None
    await phone.push(message("Au bureau", conv="c-2", sender="hugo", n=1))
    await phone.close()


def test_the_helper_unit_runs_as_tor_with_no_network_and_the_cli_starts_it() -> None:
    unit = Path(__file__).resolve().parents[1] / "systemd" / "strongroom-reach-helper.service"
    lines = {
        line.partition("=")[0]: line.partition("=")[2]
        for line in unit.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["ExecStart"] == "/opt/strongroom/venv/bin/strongroom reach-helper"
    assert lines["User"] == "debian-tor" and lines["Group"] == "strongroom"
    assert lines["PrivateNetwork"] == "yes" and lines["IPAddressDeny"] == "any"
    assert lines["RestrictAddressFamilies"] == "AF_UNIX" and lines["CapabilityBoundingSet"] == ""
    from strongroom.cli import build_parser

    args = build_parser().parse_args(["reach-helper", "--socket", "/tmp/h.sock"])
    assert args.socket == Path("/tmp/h.sock") and args.hs_dir == Path("/var/lib/tor/strongroom")


async def test_the_phone_cli_says_when_it_has_no_remote_reach(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, _ = running  # reach is off: the phone is paired without an onion key
    phone, _ = await pair_by_qr(box, "Paul's phone", "paul")
    await phone.close()
    state_file = tmp_path / "paul.json"
    phone.state.save(state_file)
    base = ("phone", "--state", str(state_file))
    code, out = await cli(*base, "--tor", "socks5://127.0.0.1:9", "send", "x", "--conv", "c")
    assert code == 1 and "connect once on the office network" in out
    code, out = await cli(*base, "tor-key", str(tmp_path / "auth"))
    assert code == 1 and "no remote-reach address or key" in out
    assert not (tmp_path / "auth").exists()
    # Without --tor the phone still uses the LAN, as before.
    code, out = await cli(*base, "send", "Au bureau", "--conv", "c")
    assert code == 0 and "proof verified" in out


async def test_a_damaged_reach_file_leaves_the_box_running_with_reach_off(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    settings_path(config.data_dir).write_text('{"enabled": tru')
    box = await start_box(config)
    try:
        assert box.box.peers is not None  # the box serves phones as usual
        code, out = await cli("reach", "status", "--data", str(config.data_dir))
        assert code == 0 and "remote reach: off" in out and "reach.json" in out
        admin = WebAdmin(box.url)
        try:
            await admin.login()
            status, page = await admin.get("/reach")
            assert status == 200 and 'id="reach-problem"' in page
        finally:
            await admin.close()
    finally:
        await box.stop()


async def test_revoking_while_the_helper_is_down_still_revokes_and_says_tor_was_not_told(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    phone, paired = await pair_by_qr(box, "Lost phone", "ines")
    await phone.close()
    await until(lambda: bool(files.clients()), what="the .auth file")
    (tmp_path / "helper.sock").unlink()  # the helper died
    code, _ = await cli("revoke", str(paired.device_id), "--data", str(box.data_dir))
    assert code == 0
    assert box.audit_actions("device.") == ["device.revoke"]
    assert box.audit_actions("reach.re") == ["reach.revoke-failed"]
    async with through_onion_socket(files.service.onion_socket) as http:
        again = PhoneClient(phone.state, http=http, keepalive=False)
        with pytest.raises(HandshakeRefused):
            await again.connect(f"ws://{ONION}/peer")
        await again.close()


async def test_button_pairing_hands_out_a_key_too(running: tuple[E2EBox, TorFiles]) -> None:
    box, files = running
    await box.reach.turn_on("test")
    admin = WebAdmin(box.url)
    try:
        await admin.login()
        phone, paired = await pair_by_button(box, admin, "Pixel", "marc")
    finally:
        await admin.close()
    await phone.close()
    assert phone.state.onion == ONION and phone.state.onion_auth is not None
    await until(lambda: files.clients() == [f"device-{paired.device_id}"], what="the .auth file")
