"""strongroom-reach-helper: the small privileged process that owns tor's files.

The box's service is unprivileged and has no business writing tor's
configuration; this helper (its own hardened unit, running as tor's user) does
exactly these things, asked over a Unix socket only the box's group can open:

    POST   /enable              turn the onion service on, answer its address
    POST   /disable             turn it off (the keys stay: same address next time)
    POST   /rotate              new service keys, so a new onion address
    GET    /key, PUT /key       the service's secret key, kept in the box's archive
    PUT    /clients/<name>      {"public": <x25519 base32>}: authorise one phone
    DELETE /clients/<name>      remove one phone's .auth file
    GET    /status              enabled, address, clients, tor's bootstrap/descriptor

Each change is followed by a reload of tor (SIGHUP). Every input is checked
(names, keys) before it reaches a file name or a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from strongroom.reach.archived_key import decode_key, encode_key
from strongroom.reach.keys import ReachKeyError
from strongroom.reach.tor_control import TorControl, TorControlError, TorNotRunning
from strongroom.reach.tor_files import ReachHelperError, TorFiles, sighup_from_pidfile
from strongroom.reach.torrc import ServiceConfig

# Longer than the helper's own wait for tor's hostname file (tor_files.HOSTNAME_WAIT_S).
CALL_TIMEOUT_S = 45.0


def helper_app(files: TorFiles, control: TorControl | None) -> web.Application:
    routes = web.RouteTableDef()

    async def guarded(work: Any) -> web.Response:
        try:
            result = await asyncio.to_thread(work)
        except (ReachKeyError, ReachHelperError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result if result is not None else {})

    @routes.post("/enable")
    async def enable(_request: web.Request) -> web.Response:
        return await guarded(lambda: {"onion": files.enable()})

    @routes.get("/key")
    async def get_key(_request: web.Request) -> web.Response:
        data = files.secret_key()
        return web.json_response({"key": None if data is None else encode_key(data)})

    @routes.put("/key")
    async def put_key(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            data = decode_key(str(body["key"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"expected {{'key': ...}}: {exc}"}, status=400)
        return await guarded(lambda: files.install_key(data))

    @routes.post("/rotate")
    async def rotate(_request: web.Request) -> web.Response:
        return await guarded(lambda: {"onion": files.rotate()})

    @routes.post("/disable")
    async def disable(_request: web.Request) -> web.Response:
        return await guarded(files.disable)

    @routes.put("/clients/{name}")
    async def authorize(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": "expected JSON"}, status=400)
        public = body.get("public") if isinstance(body, dict) else None
        if not isinstance(public, str):
            return web.json_response({"error": "expected {'public': key}"}, status=400)
        name = request.match_info["name"]
        return await guarded(lambda: files.authorize(name, public))

    @routes.delete("/clients/{name}")
    async def deauthorize(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return await guarded(lambda: {"removed": files.deauthorize(name)})

    @routes.get("/status")
    async def status(_request: web.Request) -> web.Response:
        onion = files.onion()
        body: dict[str, Any] = {
            "enabled": files.enabled(),
            "onion": onion,
            "clients": files.clients(),
            "tor": None,
        }
        if control is not None:
            try:
                state = await control.state(onion if body["enabled"] else None)
                body["tor"] = {
                    "running": True,
                    "bootstrap": state.bootstrap_percent,
                    "summary": state.bootstrap_summary,
                    "descriptor": state.descriptor_built,
                }
            except TorNotRunning as exc:
                # Expected while reach is off (tor runs only while it is on).
                body["tor"] = {"running": False, "error": str(exc)}
            except TorControlError as exc:
                body["tor"] = {"running": True, "error": str(exc)}
        return web.json_response(body)

    app = web.Application(client_max_size=4096)
    app.add_routes(routes)
    return app


def _clear(socket_path: Path) -> None:
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)


async def serve_helper(app: web.Application, socket_path: Path) -> web.AppRunner:
    """Listen on `socket_path`, mode 0660: the box's service shares the socket's group."""
    _clear(socket_path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    old_umask = os.umask(0o117)
    try:
        await web.UnixSite(runner, str(socket_path)).start()
    finally:
        os.umask(old_umask)
    return runner


class HelperUnavailable(Exception):
    """The helper is not running (or not installed), or refused the request."""


async def call_helper(socket_path: Path, method: str, route: str, body: Any = None) -> Any:
    """The box's side: one request to the helper; HelperUnavailable on any failure."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.request(
                method,
                f"http://helper{route}",
                json=body,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
            ) as response:
                answer = await response.json()
                if response.status != 200:
                    raise HelperUnavailable(str(answer.get("error", response.status)))
                return answer
    except (OSError, aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        raise HelperUnavailable(f"the reach helper is unreachable: {exc}") from exc


def add_helper_arguments(parser: argparse.ArgumentParser) -> None:
    """The appliance's paths by default (Debian's tor@default); see docs/operations.md."""
    parser.add_argument("--socket", type=Path, default=Path("/run/strongroom-reach/helper.sock"))
    parser.add_argument("--hs-dir", type=Path, default=Path("/var/lib/tor/strongroom"))
    parser.add_argument("--conf", type=Path, default=Path("/var/lib/tor/strongroom-reach.conf"))
    parser.add_argument(
        "--onion-socket",
        type=Path,
        default=Path("/var/lib/tor-onion-sockets/default/strongroom/peer.sock"),
    )
    parser.add_argument("--tor-pidfile", type=Path, default=Path("/run/tor/tor.pid"))
    parser.add_argument("--tor-control", type=Path, default=Path("/run/tor/control"))
    parser.add_argument("--tor-cookie", type=Path, default=Path("/run/tor/control.authcookie"))


def run_helper(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT (systemd stops it with SIGTERM)."""
    files = TorFiles(
        ServiceConfig(args.hs_dir, args.onion_socket),
        args.conf,
        sighup_from_pidfile(args.tor_pidfile),
    )
    app = helper_app(files, TorControl(args.tor_control, args.tor_cookie))

    async def run() -> None:
        runner = await serve_helper(app, args.socket)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strongroom-reach-helper")
    add_helper_arguments(parser)
    return run_helper(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
