"""Remote reach kept current, as a phone app does it (protocol.md §12.2).

On every connection over the LAN (and whenever the box sends `reach_changed`),
a phone whose box lists the "reach" capability asks `reach`, naming the public
half of the onion-auth key it holds. It stores what comes back: the onion (or
none: reach is off) and a new private key when the box issued one. A phone
paired before reach was turned on, or before a new address, so never needs to
be paired again: one visit to the office network is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.client.link import Link
from strongroom.client.state import DeviceState
from strongroom.reach.keys import ReachKeyError, check_onion, public_of, unb32

CAPABILITY = "reach"


@dataclass(frozen=True)
class ReachUpdate:
    on: bool
    changed: bool  # the onion or the key changed: give the phone's tor the new line


def on_lan(url: str) -> bool:
    """Through the onion, the phone already has what it needs to come back that way."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return not host.endswith(".onion")


async def refresh_reach(link: Link, state: DeviceState) -> ReachUpdate:
    """Ask the box for its current reach and store it in `state` (the caller saves it).

    With reach off the phone forgets the onion but keeps its key: turned on again,
    the box keeps the same keys, and tells the onion at the next refresh."""
    body: dict[str, str] = {}
    if state.onion_auth is not None:
        try:
            body["auth_pub"] = public_of(state.onion_auth)
        except ReachKeyError:
            state.onion_auth = None  # unusable: ask for a new one
    reply = (await link.request("reach", body)).body
    before = (state.onion, state.onion_auth)
    if not reply["on"]:
        state.onion = None
        return ReachUpdate(False, before[0] is not None)
    state.onion = check_onion(str(reply["onion"]))
    if "auth" in reply:
        unb32(str(reply["auth"]))
        state.onion_auth = str(reply["auth"])
    return ReachUpdate(True, (state.onion, state.onion_auth) != before)
