"""Where phones come in while the box runs: `/peer` on the web port (ahead of the web
UI's middlewares) and on tor's onion socket when remote reach is on, the peer
service made at each unlock, and remote reach itself (strongroom.reach)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web

from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.pairing.service import PairingService
from strongroom.peer.server import PeerService
from strongroom.reach.archived_key import ArchivedKey
from strongroom.reach.phones import PhoneKeys
from strongroom.reach.service import BoxReach


class PhoneDoor:
    def __init__(
        self,
        box: Box,
        config: BoxConfig,
        pairing: PairingService,
        clock: Callable[[], float],
    ) -> None:
        self.box, self.config, self.pairing, self.clock = box, config, pairing, clock

    def reach(self) -> BoxReach:
        """Remote reach over Tor (off by default): see strongroom.reach."""
        return BoxReach(
            self.config.data_dir,
            self.endpoint,
            header_deadline_s=self.config.limits.handshake_timeout_s,
            audit=self.box.audit,
            key_keeper=ArchivedKey(self.box),
            phones=PhoneKeys(self.box),
            notify=self._reach_changed,
        )

    def start_peers(self) -> None:
        """At unlock: the peer service over the archive that is now open."""
        box = self.box
        assert box.archive is not None and box.committer is not None and box.keys is not None
        box.peers = PeerService(
            box.archive,
            box.committer,
            box.keys,
            self.config.limits,
            self.pairing,
            clock=self.clock,
        )
        if box.reach is not None:  # pairing hands each phone its onion-auth key
            box.peers.box = replace(
                box.peers.box, reach_offer=box.reach.offer, reach_refresh=box.reach.refresh
            )

    async def close(self) -> None:
        if self.box.peers is not None:
            await self.box.peers.close_all()

    def _reach_changed(self) -> None:
        """Phones connected now learn a new reach at once (they ask again)."""
        if self.box.peers is not None:
            self.box.peers.reach_changed()

    @web.middleware
    async def peer_first(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Phones are not browsers: /peer bypasses the web UI's session/phase/CSRF
        middlewares, which would redirect a locked box's /peer to /unlock."""
        if request.path == "/peer":
            return await self.endpoint(request)
        return await handler(request)

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        peers = self.box.peers
        if peers is None:
            # Locked: phones keep their records and retry later.
            return web.json_response({"error": "locked"}, status=503, headers={"Retry-After": "30"})
        return await peers.handle(request)
