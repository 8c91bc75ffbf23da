"""Running a box: the web server, phones, panel, mDNS and systemd, started and stopped together.

`BoxRuntime` is what `strongroom serve` (the appliance) and `strongroom dev`
(`make run`) run, and what end-to-end tests start on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from strongroom.appliance.health import read_health
from strongroom.appliance.sdnotify import Notifier, watchdog_interval, watchdog_loop
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.control import socket_path, start_control
from strongroom.header_deadline import HeaderDeadline
from strongroom.integrity import (
    IntegrityStatus,
    check_archive,
    damaged_at_open,
    run_periodically,
)
from strongroom.panel_link import audit_fields, panel_inputs
from strongroom.reach.control import add_control_routes as add_reach_control
from strongroom.unlock import BoxPhase, read_unlock_choice

log = logging.getLogger(__name__)


class BoxRuntime:
    def __init__(
        self,
        config: BoxConfig,
        *,
        clock: Callable[[], float] = time.time,
        pin_factory: Any = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.box = Box(config, clock=clock)
        self.notifier = notifier or Notifier()
        self._pin_factory = pin_factory
        self.panel: Any = None
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._redirect: web.AppRunner | None = None
        self._control: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._advertiser: Any = None
        self._booting = True
        self.integrity_ok = True
        self.error: str | None = None
        # Periodic integrity check: the latest result, shown by the dashboard and the panel.
        self.integrity: IntegrityStatus | None = None
        self.integrity_interval_s: float = config.integrity_interval_s

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    # -- start / stop -------------------------------------------------------------

    async def start(self) -> None:
        from strongroom.pairing.service import PairingService
        from strongroom.web.app import build_web_app

        loop = asyncio.get_running_loop()
        self.box.pairing = PairingService(self.clock, on_change=self.refresh_panel)
        self.box.reach = self._reach()
        self.box.on_unlock(self._start_peers)
        self.box.on_change(self.refresh_panel)
        self._start_panel(loop)
        unattended = read_unlock_choice(self.config).mode == "unattended"
        if unattended and self.box.phase is BoxPhase.LOCKED:
            try:
                self.box.unlock_unattended()
            except Exception as exc:  # stay up, locked: an admin can still unlock by hand
                log.error("unattended unlock failed: %s", type(exc).__name__)
                if (damage := damaged_at_open(exc, self.clock)) is not None:
                    self.integrity, self.integrity_ok = damage, False
        # The certificate first: the web UI shows its fingerprint on every page.
        ssl_context = self._tls_context()
        app = build_web_app(self.box)
        # Phones are not browsers: /peer bypasses the web UI's session/phase/CSRF
        # middlewares, which would redirect a locked box's /peer to /unlock.
        app.middlewares.insert(0, self._peer_first)
        app.router.add_get("/peer", self._peer_endpoint)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            keepalive_timeout=self.config.limits.idle_timeout_s,
        )
        await self._runner.setup()
        self._listener = await self._listen(loop, self._runner.server, ssl_context)
        if self.config.tls and self.config.http_redirect_port:
            await self._start_http_redirect()
        self._control = await start_control(self._control_app(), self.config.data_dir)
        await self.box.reach.start()
        self._tasks.append(asyncio.create_task(self._tick_loop()))
        self._tasks.append(
            asyncio.create_task(
                run_periodically(self.check_integrity_now, lambda: self.integrity_interval_s)
            )
        )
        interval = watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(watchdog_loop(self.notifier, interval)))
        if self.config.advertise_mdns:
            await self._start_mdns()
        self._booting = False
        self.refresh_panel()
        self.notifier.ready()
        self.notifier.status(f"{self.box.phase.value} at {self.url}")

    async def stop(self) -> None:
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._advertiser is not None:
            with contextlib.suppress(Exception):
                await self._advertiser.stop()
        if self.box.reach is not None:
            await self.box.reach.stop()
        peers = self.box.peers
        if peers is not None:
            await peers.close_all()
        if self._listener is not None:
            self._listener.close()
        for runner in (self._control, self._redirect, self._runner):
            if runner is not None:
                await runner.cleanup()
        socket_path(self.config.data_dir).unlink(missing_ok=True)
        if self.box.pairing is not None:
            # What the tick loop had not written yet (a pairing just before the stop).
            with contextlib.suppress(Exception):
                await self._audit_pairing_events()
        await self.box.stop()
        if self.panel is not None:
            self.panel.close()

    def _tls_fingerprint(self) -> str | None:
        if not self.config.tls:
            return None
        from strongroom.web.tls import certificate_fingerprint

        return certificate_fingerprint(self.config.tls_dir)

    async def _start_http_redirect(self) -> None:
        """http://strongroom.local/… → https://…: people type the short form."""
        from strongroom.web.tls import http_redirect_app

        self._redirect = web.AppRunner(http_redirect_app(self.port), access_log=None)
        await self._redirect.setup()
        site = web.TCPSite(self._redirect, self.config.host, self.config.http_redirect_port)
        await site.start()

    async def _listen(
        self,
        loop: asyncio.AbstractEventLoop,
        handler_factory: Any,
        ssl_context: ssl.SSLContext | None,
    ) -> asyncio.Server:
        """Listen with aiohttp's handler behind a header deadline (against slowloris)."""
        deadline = self.config.limits.handshake_timeout_s
        server = await loop.create_server(
            lambda: HeaderDeadline(handler_factory(), deadline, loop),
            self.config.host,
            self.config.port,
            ssl=ssl_context,
            reuse_address=True,
            backlog=128,
        )
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    # -- parts ---------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.config.tls:
            return None
        from strongroom.web.tls import ensure_certificate

        cert, key = ensure_certificate(self.config.tls_dir, self.config.box_name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        return context

    def _start_peers(self) -> None:
        from strongroom.peer.server import PeerService

        box = self.box
        assert box.archive is not None and box.committer is not None and box.keys is not None
        box.peers = PeerService(
            box.archive,
            box.committer,
            box.keys,
            self.config.limits,
            box.pairing,
            clock=self.clock,
        )
        if box.reach is not None:  # pairing hands each phone its onion-auth key
            box.peers.box = replace(box.peers.box, reach_offer=box.reach.offer)

    def _reach(self) -> Any:
        """Remote reach over Tor (off by default): see strongroom.reach."""
        from strongroom.reach.archived_key import ArchivedKey
        from strongroom.reach.service import BoxReach

        return BoxReach(
            self.config.data_dir,
            self._peer_endpoint,
            header_deadline_s=self.config.limits.handshake_timeout_s,
            audit=self.box.audit,
            key_keeper=ArchivedKey(self.box),
        )

    @web.middleware
    async def _peer_first(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/peer":
            return await self._peer_endpoint(request)
        return await handler(request)

    async def _peer_endpoint(self, request: web.Request) -> web.StreamResponse:
        peers = self.box.peers
        if peers is None:
            # Locked: phones keep their records and retry later.
            return web.json_response({"error": "locked"}, status=503, headers={"Retry-After": "30"})
        return await peers.handle(request)  # type: ignore[no-any-return]

    def _start_panel(self, loop: asyncio.AbstractEventLoop) -> None:
        from strongroom_panel.panel import FrontPanel
        from strongroom_panel.pins import load_panel_config

        factory = self._pin_factory
        if factory is None and self.config.mock_gpio:
            from gpiozero.pins.mock import MockFactory, MockPWMPin

            factory = MockFactory(pin_class=MockPWMPin)
        panel_config = load_panel_config()
        try:
            self.panel = FrontPanel(
                panel_config.pins,
                panel_config.rgb,
                hold_seconds=panel_config.hold_seconds,
                on_pair_press=lambda: self._from_panel_thread(loop),
                on_long_hold=lambda: log.info("PAIR held: nothing destructive happens"),
                pin_factory=factory,
            )
        except Exception as exc:  # no GPIO: the box still works from the web UI
            log.warning("front panel unavailable: %s", exc)
            self.panel = None

    def _from_panel_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        # gpiozero calls back on its own thread; the pairing service lives on the loop.
        loop.call_soon_threadsafe(self.press_pair, "button")

    def press_pair(self, source: str = "button") -> None:
        """PAIR button, web UI button and `strongroom pair` all end here."""
        self.box.pairing.press()
        self.refresh_panel()

    def refresh_panel(self) -> None:
        if self.panel is None:
            return
        from strongroom_panel.state import derive_state

        try:
            disk = read_health(self.config.data_dir).disk.percent
        except OSError:
            disk = 0.0
        status = self.box.pairing.status() if self.box.pairing is not None else None
        inputs = panel_inputs(
            now=self.clock(),
            phase=self.box.phase,
            booting=self._booting,
            pairing=status,
            disk_percent=disk,
            backup_running=False,
            integrity_ok=self.integrity_ok,
            error=self.error,
        )
        self.panel.show(derive_state(inputs))

    async def _audit_pairing_events(self) -> None:
        for event in self.box.pairing.drain_events():
            action, target, details = audit_fields(event)
            await self.box.audit("pairing", action, target, details)

    async def _tick_loop(self) -> None:
        """Once a second: pairing window expiry, audit of pairing events, LEDs."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self.box.pairing.tick()
                await self._audit_pairing_events()
                self.refresh_panel()
            except Exception:
                log.exception("tick failed")

    # -- periodic integrity check --------------------------------------------------------

    async def check_integrity_now(self) -> IntegrityStatus | None:
        """Verify the whole archive now; None while the box is locked.

        A failure turns the panel to INTEGRITY_FAILURE and stays so until a
        later check passes; either way the verdict is an audit event.
        """
        archive = self.box.archive
        if archive is None:
            return None
        status = await asyncio.to_thread(check_archive, archive, self.clock)
        self.integrity = status
        self.box.integrity = status
        self.integrity_ok = status.ok
        if not status.ok:
            log.error("integrity check failed: %s", "; ".join(status.problems[:3]))
        self.refresh_panel()
        try:
            await self.box.audit("box", status.audit_action, "archive", status.audit_details())
        except Exception:  # a damaged archive may refuse the write: the panel already says so
            log.exception("could not record the integrity check in the audit trail")
        return status

    async def _start_mdns(self) -> None:
        from strongroom.appliance.discovery import Advertiser, lan_addresses

        self._advertiser = Advertiser(
            port=self.port,
            fingerprint=self.box.fingerprint or "",
            addresses=self._advertised_addresses(lan_addresses),
            name=self.config.box_name,
            interfaces=list(self.config.mdns_interfaces) or None,
            tls_fingerprint=self._tls_fingerprint(),
        )
        await self._advertiser.start()
        self._tasks.append(asyncio.create_task(self._follow_addresses(lan_addresses)))

    def _advertised_addresses(self, lan_addresses: Callable[[], list[str]]) -> list[str]:
        # Listening on every interface: publish the LAN addresses, never loopback,
        # or phones would be told to connect to themselves.
        wildcard = self.config.host in ("0.0.0.0", "::")  # noqa: S104  (a comparison, not a bind)
        return lan_addresses() if wildcard else [self.config.host]

    async def _follow_addresses(self, lan_addresses: Callable[[], list[str]]) -> None:
        """DHCP may move the box: re-announce when its addresses change."""
        while True:
            await asyncio.sleep(30.0)
            try:
                await self._advertiser.update_addresses(self._advertised_addresses(lan_addresses))
            except Exception:
                log.exception("mDNS address update failed")

    # -- control socket --------------------------------------------------------------

    def _control_app(self) -> web.Application:
        app = web.Application()
        routes = web.RouteTableDef()

        @routes.get("/status")
        async def status(_request: web.Request) -> web.Response:
            pairing = self.box.pairing.status()
            return web.json_response(
                {
                    "phase": self.box.phase.value,
                    "url": self.url,
                    "fingerprint": self.box.fingerprint,
                    "tls_fingerprint": self._tls_fingerprint(),
                    "pairing_open": pairing.open,
                }
            )

        @routes.post("/pair")
        async def pair(_request: web.Request) -> web.Response:
            self.press_pair("cli")
            await self.box.audit("cli", "pairing.press", "control socket")
            return web.json_response({"pairing_open": bool(self.box.pairing.status().open)})

        @routes.post("/integrity")
        async def integrity(_request: web.Request) -> web.Response:
            status = await self.check_integrity_now()
            if status is None:
                return web.json_response({"phase": self.box.phase.value}, status=409)
            return web.json_response({"ok": status.ok, "problems": list(status.problems)})

        @routes.post("/revoke/{device_id:\\d+}")
        async def revoke(request: web.Request) -> web.Response:
            device_id = int(request.match_info["device_id"])
            revoked = await self.box.revoke_device(device_id, "cli", "revoked from the CLI")
            return web.json_response({"revoked": revoked})

        app.add_routes(routes)
        add_reach_control(app, self.box)
        return app
