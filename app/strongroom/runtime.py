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
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from strongroom import runtime_jobs, runtime_panel
from strongroom.appliance import clockwatch
from strongroom.appliance.announce import Announcer
from strongroom.appliance.control_routes import control_app
from strongroom.appliance.discovery import unique_host_name
from strongroom.appliance.network import LanPolicy
from strongroom.appliance.nightjobs import NightJobs
from strongroom.appliance.sdnotify import Notifier, watchdog_interval, watchdog_loop
from strongroom.archive.verify_runs import Mode
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.control import socket_path, start_control
from strongroom.gc_settle import settle
from strongroom.integrity import IntegrityStatus, run_periodically
from strongroom.malloc_tuning import keep_freed_memory
from strongroom.pairing.service import PairingService
from strongroom.runtime_phones import PhoneDoor
from strongroom.runtime_serve import serve
from strongroom.runtime_tls import BoxCertificate
from strongroom.runtime_unlock import unlock_unattended
from strongroom.web.app import build_web_app
from strongroom.web.state import STATE
from strongroom.web.tls import http_redirect_app
from strongroom_panel.panel import FrontPanel

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
        self.pin_factory = pin_factory
        self.panel: FrontPanel | None = None  # None: no panel, or it failed (a fault)
        self.port = config.port
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.announcer: Announcer | None = None
        self.lan = LanPolicy(config.lan_allow)
        self.booting = True
        self.integrity_ok = True
        self.error: str | None = None
        # Periodic integrity check: the latest result, shown by the dashboard and the panel.
        self.integrity: IntegrityStatus | None = None
        self.integrity_interval_s: float = config.integrity_interval_s
        self.clock_watch = clockwatch.ClockWatch(clock)
        self.night_jobs = NightJobs(
            self.box,
            clock,
            self.check_integrity_now,
            self.refresh_panel,
            retention_guard=self.clock_watch.problem,
        )
        # Made here, not in start(), so it is never None for the runtime's own code;
        # start() hands the same object to the box (`box.pairing`) for the web UI.
        self.pairing = PairingService(clock, on_change=self.refresh_panel)
        self.status_line = ""
        self._cert = BoxCertificate(config)
        self.phones = PhoneDoor(self.box, config, self.pairing, clock)
        self.certificate_renewal: asyncio.Task[None] | None = None  # the last one started
        self._web: web.Application | None = None
        # How often (ticks of 1 s) a destruction's pending scrub is tried again.
        self.scrub_retry_ticks = runtime_jobs.SCRUB_RETRY_TICKS

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = self.config.host
        if host in ("::", "0.0.0.0"):  # noqa: S104  (a comparison, not a bind)
            host = unique_host_name(self.config.box_name, self.box.fingerprint) + ".local"
        elif ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    # -- start / stop -------------------------------------------------------------
    #
    # One AsyncExitStack: each part is set up and, on the next line, its teardown
    # is pushed. Teardown runs in reverse order, so `stop` undoes exactly what
    # `start` did, and a start that fails half-way undoes what it had done
    # before re-raising (no panel pins left claimed, no archive left open).

    async def start(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await self._start_parts(stack)
            self._stack = stack.pop_all()  # success: keep everything until stop()
        # Last, with everything running (stop() works meanwhile): opening may migrate
        # the archive after an upgrade, minutes on a Pi, in a worker thread.
        await unlock_unattended(self)

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _start_parts(self, stack: contextlib.AsyncExitStack) -> None:
        loop = asyncio.get_running_loop()
        self.box.pairing = self.pairing
        self.box.reach = reach = self.phones.reach()
        self.box.on_unlock(self._renew_certificate)
        self.box.on_unlock(self.phones.start_peers)
        self.box.on_unlock(self._after_unlock)
        self.box.on_change(self.refresh_panel)
        runtime_panel.start_panel(self, loop)
        stack.callback(self._close_panel)
        stack.push_async_callback(self.box.stop)
        # What the tick loop had not written yet (a pairing just before the stop).
        stack.push_async_callback(self._audit_pairing_events)
        stack.push_async_callback(self._cancel_tasks)
        # The certificate first: the web UI shows its fingerprint on every page.
        ssl_context = self._cert.context(self._unique_name())
        self._web = self._web_app()
        self.port = await self._serve(
            stack,
            self._web,
            self.config.port,
            ssl_context,
            handler_cancellation=True,
            keepalive_timeout=self.config.limits.idle_timeout_s,
        )
        stack.push_async_callback(self.phones.close)
        if self.config.tls and self.config.http_redirect_port:
            # http://strongroom-3841.local/… → https://…: people type the short form.
            redirect = http_redirect_app(self.port)
            await self._serve(stack, redirect, self.config.http_redirect_port, None)
        control = await start_control(control_app(self), self.config.data_dir)
        stack.callback(socket_path(self.config.data_dir).unlink, missing_ok=True)
        stack.push_async_callback(control.cleanup)
        # Remote reach (off by default): serves phones on tor's onion socket when on.
        await reach.start()
        stack.push_async_callback(reach.stop)
        self._spawn(runtime_jobs.tick_loop(self))
        self._spawn(run_periodically(self.periodic_check, lambda: self.integrity_interval_s))
        if interval := watchdog_interval():
            self._spawn(watchdog_loop(self.notifier, interval))
        if self.config.advertise_mdns:
            # mDNS `tls`: the key's SPKI fingerprint, what a person compares (the footer,
            # the recovery sheet), not the certificate's, which each re-issue changes.
            self.announcer = Announcer(self.box, self.port, self.tls_key_fingerprint())
            await self.announcer.start()
            stack.push_async_callback(self.announcer.stop)
            self._spawn(self.announcer.follow())
        stack.push_async_callback(self.box.abandon_open)  # a migration under way stops
        stack.callback(self.notifier.stopping)  # the first thing systemd hears at stop
        self.booting = False
        self.refresh_panel()
        # Everything built so far lives as long as the box: out of the full GC passes.
        settle()
        keep_freed_memory()  # malloc's thresholds (malloc_tuning: blob streams)
        self.notifier.ready()
        self.publish_status()

    async def _serve(
        self,
        stack: contextlib.AsyncExitStack,
        app: web.Application,
        port: int,
        ssl_context: ssl.SSLContext | None,
        **runner_options: Any,
    ) -> int:
        """Serve `app` on every address of the configured host; return the port it got."""
        return await serve(
            stack,
            app,
            self.config.host,
            port,
            ssl_context,
            admit=self._admit,
            header_deadline_s=self.config.limits.handshake_timeout_s,
            **runner_options,
        )

    def _admit(self, peer: str) -> bool:
        # The policy of the moment, read at each connection: `lan` may be replaced.
        return self.lan.admit(peer)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("background task ended with %r", result)

    def _close_panel(self) -> None:
        if self.panel is not None:
            self.panel.close()

    def _web_app(self) -> web.Application:
        app = build_web_app(self.box)
        app.middlewares.insert(0, self.phones.peer_first)  # /peer before the web UI's
        app.router.add_get("/peer", self.phones.endpoint)
        return app

    def tls_fingerprint(self) -> str | None:
        return self._cert.fingerprint()

    def tls_key_fingerprint(self) -> str | None:
        """The certificate key's SHA-256 (web/tls_key.py): the same across re-issues."""
        return self._cert.key_fingerprint()

    # -- parts ---------------------------------------------------------------------

    def _unique_name(self) -> str | None:
        """`strongroom-3841`, the name the box has on mDNS; None before it has an identity."""
        fingerprint = self.box.fingerprint
        return unique_host_name(self.config.box_name, fingerprint) if fingerprint else None

    def _renew_certificate(self) -> None:
        """At unlock: if the wizard has just made the identity, the certificate gets the
        box's unique name (same key) and new connections are served the new one.

        on_unlock callbacks run on the event loop and openssl takes a while on a Pi: the
        renewal is a task (openssl in a worker thread). The recovery sheet prints the
        key's fingerprint (web/tls_key.py), which the renewal leaves as it was."""
        task = asyncio.create_task(self._renew_certificate_now())
        self._tasks.append(task)
        self.certificate_renewal = task

    async def _renew_certificate_now(self) -> None:
        fingerprint = await self._cert.renew(self._unique_name())
        if fingerprint is None:
            return
        if self._web is not None:
            self._web[STATE].tls_fingerprint = fingerprint  # the footer, the recovery sheet
        if self.announcer is not None:  # the key's, kept by a re-issue (see start)
            self.announcer.set_tls_key_fingerprint(self.tls_key_fingerprint())

    def _after_unlock(self) -> None:
        # on_unlock callbacks are synchronous; the audit writes are not.
        self._spawn(self._catch_up_night_jobs())
        # The archive, committer and peer service now exist and stay until stop.
        asyncio.get_running_loop().call_soon(settle)

    async def watch_clock(self) -> None:
        """A clock earlier than what the box already signed: fault, audit, until it catches up."""
        if await self.clock_watch.watch(self.box):
            self.refresh_panel()

    # -- jobs and panel (runtime_jobs.py, runtime_panel.py) -------------------------

    async def _audit_pairing_events(self) -> None:
        await runtime_jobs.audit_pairing_events(self)

    async def _catch_up_night_jobs(self) -> None:
        await runtime_jobs.catch_up_night_jobs(self)

    async def periodic_check(self) -> IntegrityStatus | None:
        return await runtime_jobs.periodic_check(self)

    async def check_integrity_now(self, mode: Mode = "full") -> IntegrityStatus | None:
        return await runtime_jobs.check_integrity_now(self, mode)

    def press_pair(self, source: str = "button") -> None:
        """PAIR button, web UI button and `strongroom pair` all end here."""
        self.pairing.press()
        self.refresh_panel()

    def refresh_panel(self) -> None:
        runtime_panel.refresh_panel(self)

    def publish_status(self) -> None:
        runtime_panel.publish_status(self)
