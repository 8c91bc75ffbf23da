"""Remote reach over a real (private) Tor network: phones reach the box through its onion.

One Tor network per module (tests/tornet.py: 3 authorities, 3 relays, the box's
tor, two phone-side tors, all on the loopback of a network namespace of their
own). The box is a real BoxRuntime whose onion listener is the Unix socket that
tor's HiddenServicePort targets; the privileged helper is `strongroom
reach-helper` in its own process, writing tor's real files and reloading the
real tor. Phones are the reference client, connecting through tor's SOCKS5 port
with aiohttp-socks.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

import tornet
from e2e_helpers import E2EBox, WebAdmin, message, pair_by_qr, prepare_data_dir, start_box
from strongroom.client import DeviceState, HandshakeRefused, PhoneClient
from strongroom.reach.archived_key import decode_key
from strongroom.reach.keys import public_of, service_auth_line
from strongroom.reach.phone import (
    SOCKS_BAD_CLIENT_AUTH,
    SOCKS_MISSING_CLIENT_AUTH,
    SOCKS_ONION_NOT_FOUND,
    SocksError,
    SocksTimeout,
    install_client_auth,
    onion_peer_url,
    socks_reply,
    tor_session,
)
from strongroom.reach.settings import ReachSettings, save_settings
from strongroom.reach.tor_files import TorFiles
from strongroom.reach.torrc import ServiceConfig

pytestmark = [pytest.mark.tor, pytest.mark.slow]

# Tor-level retries while the descriptor is not yet on the HSDirs (0xF0), or the one
# there predates this phone's key (0xF5: the box's tor republishes after the reload).
PUBLISH_BUDGET_S = 120.0
NOT_YET = (SOCKS_ONION_NOT_FOUND, SOCKS_BAD_CLIENT_AUTH)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tornet.TorNet]:
    if not tornet.tor_available():
        pytest.fail("tor and tor-gencert are needed: run scripts/ensure-system-deps.sh as root")
    # Short paths: a Unix socket path must fit in 108 bytes.
    network = tornet.start_tornet(tmp_path_factory.mktemp("tor"))
    yield network
    network.stop()


class Reach:
    """The box side of one test: where the helper works; `files` inspects (and, to reset
    between tests, changes) the same files the helper process owns."""

    def __init__(self, net: tornet.TorNet, tmp: Path) -> None:
        self.net = net
        self.helper_socket = tmp / "helper.sock"
        self.onion_socket = net.root / "peer.sock"  # the same for every test: tor's target
        self.files = TorFiles(
            ServiceConfig(net.box_dir / "hs", self.onion_socket),
            net.box_reach_conf,
            net.reload_box_tor,
        )


@pytest.fixture
async def reach(net: tornet.TorNet, tmp_path: Path) -> AsyncIterator[Reach]:
    """The helper as on the appliance: its own process (`strongroom reach-helper`),
    reloading tor through its pid file and reading tor's state with the cookie."""
    setup = Reach(net, tmp_path)
    helper = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strongroom",
        "reach-helper",
        *("--socket", str(setup.helper_socket)),
        *("--hs-dir", str(setup.files.service.hs_dir)),
        *("--conf", str(net.box_reach_conf)),
        *("--onion-socket", str(setup.onion_socket)),
        *("--tor-pidfile", str(net.box_dir / "pid")),
        *("--tor-control", str(net.box_control_socket)),
        *("--tor-cookie", str(net.box_dir / "control_auth_cookie")),
    )
    await until_true(setup.helper_socket.exists, "the helper's socket", timeout_s=30)
    yield setup
    helper.terminate()
    assert await asyncio.wait_for(helper.wait(), 10) == 0  # SIGTERM: a clean stop


@pytest.fixture
async def running(reach: Reach, tmp_path: Path) -> AsyncIterator[E2EBox]:
    config = await prepare_data_dir(tmp_path / "box")
    save_settings(
        config.data_dir,
        ReachSettings(False, onion_socket=reach.onion_socket, helper_socket=reach.helper_socket),
    )
    box = await start_box(config)
    yield box
    await box.stop()


@pytest.fixture
async def relay(net: tornet.TorNet) -> AsyncIterator[dict[str, tornet.SocksRelay]]:
    relays = {name: tornet.SocksRelay(net.socks_socket(name)) for name in tornet.CLIENTS}
    for r in relays.values():
        await r.start()
    yield relays
    for r in relays.values():
        await r.stop()


async def connect_through_tor(
    net: tornet.TorNet, client: str, socks_url: str, state: DeviceState
) -> PhoneClient:
    """Connect the phone over its onion URL, retrying while the descriptor is not published."""
    assert state.onion is not None
    deadline = time.monotonic() + PUBLISH_BUDGET_S
    while True:
        phone = PhoneClient(state, http=tor_session(socks_url), keepalive=False)
        phone._own_http = True  # close the SOCKS session with the phone
        try:
            await asyncio.wait_for(phone.connect(onion_peer_url(state.onion)), 60)
            return phone
        except SocksError as exc:
            await phone.close()
            if socks_reply(exc) not in NOT_YET or time.monotonic() > deadline:
                raise
        await net.forget_onions(client)
        await asyncio.sleep(3)


async def one_attempt(socks_url: str, state: DeviceState) -> BaseException | None:
    """One connection attempt through tor (no retry); the exception it ended with."""
    assert state.onion is not None
    phone = PhoneClient(state, http=tor_session(socks_url, connect_timeout_s=20), keepalive=False)
    phone._own_http = True
    try:
        await asyncio.wait_for(phone.connect(onion_peer_url(state.onion)), 60)
    except Exception as exc:
        return exc
    finally:
        await phone.close()
    return None


async def socks_error_of(
    net: tornet.TorNet, client: str, socks_url: str, state: DeviceState
) -> int | None:
    try:
        phone = await connect_through_tor(net, client, socks_url, state)
    except SocksError as exc:
        return socks_reply(exc)
    await phone.close()
    raise AssertionError("the connection through tor succeeded")


async def test_paired_phone_pushes_records_through_the_onion_and_a_keyless_phone_is_stopped_by_tor(
    net: tornet.TorNet, reach: Reach, running: E2EBox, relay: dict[str, tornet.SocksRelay]
) -> None:
    box_reach = running.reach
    onion = await box_reach.turn_on("test")
    assert running.audit_actions("reach.") == ["reach.on"]
    assert "HiddenServiceDir" in net.box_reach_conf.read_text()

    # Paired in the office (QR on the LAN): the paired frame carries reach.
    phone, paired = await pair_by_qr(running, "Claire's phone", "claire")
    await phone.close()
    state = phone.state
    assert state.onion == onion and state.onion_auth is not None
    # The helper writes the phone's public key for tor just after `paired`.
    auth_file = net.box_dir / "hs" / "authorized_clients" / f"device-{paired.device_id}.auth"
    expected = service_auth_line(public_of(state.onion_auth))
    await until_true(
        lambda: auth_file.exists() and auth_file.read_text() == expected, "the .auth file"
    )

    # The phone's tor learns its key (as the app would install it), then the phone
    # leaves the office: the same protocol, through tor.
    install_client_auth(net.auth_dir("phone"), "strongroom", onion, state.onion_auth)
    net.reload("phone")
    remote = await connect_through_tor(net, "phone", relay["phone"].url, state)
    try:
        records = [
            message(f"Audience reportée, note {n}", conv="dossier-17", sender="claire", n=n)
            for n in range(3)
        ]
        acks = await remote.push_many(records)
    finally:
        await remote.close()
    assert [a.log_index for a in acks] == sorted({a.log_index for a in acks})
    assert all(not a.duplicate and a.proof is not None for a in acks)
    stored = running.count("SELECT count(*) FROM records WHERE device_id = ?", paired.device_id)
    assert stored == 3

    # Another phone's tor holds no key for this onion: tor refuses before any byte
    # reaches the box (SOCKS5 extended error 0xF4, "missing client authorization").
    stranger_state = DeviceState.generate("found on a train", "nobody")
    stranger_state.device_id = paired.device_id
    stranger_state.box_noise_public = state.box_noise_public
    stranger_state.box_sign_public = state.box_sign_public
    stranger_state.onion = onion
    code = await socks_error_of(net, "stranger", relay["stranger"].url, stranger_state)
    assert code == SOCKS_MISSING_CLIENT_AUTH


async def run_cli(*argv: str) -> tuple[int, str]:
    """`strongroom ...` as the office manager types it (in a thread: it runs its own loop)."""
    from strongroom.cli import main

    buffer = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(buffer):
            return main(list(argv))

    code = await asyncio.to_thread(run)
    return code, buffer.getvalue()


async def test_reach_is_off_by_default_turned_on_in_the_web_ui_and_off_from_the_cli(
    net: tornet.TorNet, reach: Reach, running: E2EBox, relay: dict[str, tornet.SocksRelay]
) -> None:
    data = str(running.data_dir)
    auth_dir = str(net.auth_dir("phone"))
    reach.files.disable()  # whatever an earlier test left: the appliance starts off
    admin = WebAdmin(running.url)
    try:
        await admin.login()
        status, page = await admin.get("/reach")
        assert status == 200 and 'id="reach-state">off<' in page
        assert "Records are still stored only on the box." in page
        code, out = await run_cli("reach", "status", "--data", data)
        assert code == 0 and "remote reach: off" in out and "tor bootstrap: 100%" in out

        status, _, location = await admin.post_form("/reach/on", {}, form_page="/reach")
        assert status == 303 and location == "/reach"
        status, page = await admin.get("/reach")
        assert 'id="reach-state">on<' in page and "Remote reach is on." in page
        onion = running.reach.onion
        assert onion is not None and f'id="reach-onion">{onion}<' in page

        phone, paired = await pair_by_qr(running, "Hugo's phone", "hugo")
        await phone.close()
        assert phone.state.onion == onion and phone.state.onion_auth is not None
        state_file = running.data_dir.parent / "hugo.json"
        phone.state.save(state_file)
        # The phone's side, from the reference client's CLI: give tor the key, then send.
        code, out = await run_cli("phone", "--state", str(state_file), "tor-key", auth_dir)
        assert code == 0 and "reload tor" in out
        net.reload("phone")
        await net.forget_onions("phone")
        remote = await connect_through_tor(net, "phone", relay["phone"].url, phone.state)
        ack = await remote.push(message("Depuis le tribunal", conv="d-9", sender="hugo", n=1))
        assert not ack.duplicate
        await remote.close()
        tor = ("phone", "--state", str(state_file), "--tor", relay["phone"].url)
        code, out = await run_cli(*tor, "send", "Audience terminée", "--conv", "d-9")
        assert code == 0 and "proof verified" in out, out
        assert DeviceState.load(state_file).url == running.peer_url  # the LAN stays default
        # Once a phone got through, tor has published the descriptor: the page says so.
        status, page = await admin.get("/reach")
        assert "tor connected to the Tor network" in page and ">100 %<" in page
        code, out = await run_cli("reach", "status", "--data", data)
        assert "descriptor published: yes" in out and f"onion address: {onion}" in out

        code, out = await run_cli("reach", "off", "--data", data)
        assert code == 0 and "remote reach: off" in out
    finally:
        await admin.close()
    assert "HiddenServiceDir" not in net.box_reach_conf.read_text()
    assert not reach.onion_socket.exists()
    # The phone's tor still holds the old descriptor, but the introduction points are
    # gone: tor refuses, or gives up trying (nothing listens on the box's side anyway).
    failure = await one_attempt(relay["phone"].url, phone.state)
    assert isinstance(failure, SocksError | SocksTimeout), failure
    assert running.audit_actions("reach.o") == ["reach.on", "reach.off"]
    actors = running.query(
        "SELECT actor FROM audit_events WHERE action LIKE 'reach.o%' ORDER BY id"
    )
    assert [row[0] for row in actors] == ["admin", "cli"]
    assert paired.device_id is not None


async def test_a_revoked_phone_is_refused_by_noise_and_then_by_tor(
    net: tornet.TorNet, reach: Reach, running: E2EBox, relay: dict[str, tornet.SocksRelay]
) -> None:
    onion = await running.reach.turn_on("test")
    phone, paired = await pair_by_qr(running, "Lost phone", "ines")
    await phone.close()
    state = phone.state
    assert state.onion_auth is not None
    auth_file = net.box_dir / "hs" / "authorized_clients" / f"device-{paired.device_id}.auth"
    await until_true(auth_file.exists, "the phone's .auth file")
    install_client_auth(net.auth_dir("phone"), "strongroom", onion, state.onion_auth)
    net.reload("phone")
    await net.forget_onions("phone")
    remote = await connect_through_tor(net, "phone", relay["phone"].url, state)
    await remote.push(message("Avant la perte", conv="d-3", sender="ines", n=1))
    await remote.close()

    code, out = await run_cli("revoke", str(paired.device_id), "--data", str(running.data_dir))
    assert code == 0, out
    assert not auth_file.exists()
    assert "reach.revoke" in running.audit_actions("reach.")

    # Noise layer: the box refuses the phone's key, even through a descriptor still cached.
    lan = PhoneClient(state, keepalive=False)
    with pytest.raises(HandshakeRefused):
        await lan.connect(running.peer_url)
    await lan.close()
    # Tor layer: once the box's tor has republished without its key, the phone's tor
    # cannot even decrypt the descriptor (0xF5: its key is not among the clients).
    deadline = time.monotonic() + PUBLISH_BUDGET_S
    seen: list[str] = []
    while True:
        await net.forget_onions("phone")
        failure = await one_attempt(relay["phone"].url, state)
        seen.append(repr(failure))
        if isinstance(failure, SocksError) and socks_reply(failure) == SOCKS_BAD_CLIENT_AUTH:
            break
        # Meanwhile the old descriptor may still lead to the box, which refuses the key,
        # or to introduction points that are gone: never to a session.
        assert isinstance(failure, HandshakeRefused | SocksError | SocksTimeout), failure
        assert time.monotonic() < deadline, f"tor still accepts the revoked key: {seen}"
        await asyncio.sleep(3)
    stored = running.count("SELECT count(*) FROM records WHERE device_id = ?", paired.device_id)
    assert stored == 1


async def until_true(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_the_onion_key_lives_in_the_archive_so_a_rebuilt_box_keeps_its_address(
    net: tornet.TorNet, reach: Reach, running: E2EBox
) -> None:
    onion = await running.reach.turn_on("test")
    kept = running.query("SELECT value FROM settings WHERE key = 'reach_onion_key'")
    hs = net.box_dir / "hs"
    assert kept and decode_key(kept[0][0]) == (hs / "hs_ed25519_secret_key").read_bytes()
    await running.reach.turn_off("test")
    # A new Pi restored from the encrypted backup: tor has no key for the service.
    for name in ("hostname", "hs_ed25519_secret_key", "hs_ed25519_public_key"):
        (hs / name).unlink()
    assert await running.reach.turn_on("test") == onion
    assert (hs / "hostname").read_text().strip() == onion  # tor derived it from the kept key


async def test_a_phone_paired_before_reach_refreshes_on_the_lan_and_follows_a_rotate(
    net: tornet.TorNet, reach: Reach, running: E2EBox, relay: dict[str, tornet.SocksRelay]
) -> None:
    reach.files.disable()  # whatever an earlier test left: reach starts off
    phone, paired = await pair_by_qr(running, "Léa's phone", "lea")
    await phone.close()
    state = phone.state
    assert state.onion is None and state.onion_auth is None  # paired while reach was off
    first = await running.reach.turn_on("test")

    # Back in the office: the LAN connection asks for reach (protocol.md §12.2).
    lan = PhoneClient(state, keepalive=False)
    await lan.connect(running.peer_url)
    await lan.close()
    assert state.onion == first and state.onion_auth is not None
    key = state.onion_auth
    auth_file = net.box_dir / "hs" / "authorized_clients" / f"device-{paired.device_id}.auth"
    assert auth_file.read_text() == service_auth_line(public_of(key))  # before the reply
    install_client_auth(net.auth_dir("phone"), "strongroom", first, key)
    net.reload("phone")
    await net.forget_onions("phone")
    remote = await connect_through_tor(net, "phone", relay["phone"].url, state)
    await remote.push(message("Hors du cabinet", conv="d-7", sender="lea", n=1))
    await remote.close()

    # A new address: the old one leads nowhere any more.
    second = await running.reach.rotate("test")
    assert second != first and state.onion == first
    await net.forget_onions("phone")
    failure = await one_attempt(relay["phone"].url, state)
    assert isinstance(failure, SocksError | SocksTimeout), failure
    # One LAN connection later the phone holds the new address, with the same key.
    lan = PhoneClient(state, keepalive=False)
    await lan.connect(running.peer_url)
    await lan.close()
    assert state.onion == second and state.onion_auth == key
    install_client_auth(net.auth_dir("phone"), "strongroom", second, key)
    net.reload("phone")
    await net.forget_onions("phone")
    remote = await connect_through_tor(net, "phone", relay["phone"].url, state)
    ack = await remote.push(message("Nouvelle adresse", conv="d-7", sender="lea", n=2))
    await remote.close()
    assert not ack.duplicate
    stored = running.count("SELECT count(*) FROM records WHERE device_id = ?", paired.device_id)
    assert stored == 2
    status = await running.reach.status()
    assert status["current"] == [paired.device_id] and status["waiting"] == []
