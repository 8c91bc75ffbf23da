"""The phone's side of remote reach: a SOCKS5 session through the phone's tor.

The protocol is unchanged (same WebSocket, same Noise IK, same frames); only
the transport differs: `ws://<onion>/peer` through tor's SOCKS port, with the
onion-auth key the box gave at pairing installed in tor's ClientOnionAuthDir.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from aiohttp_socks import ProxyConnector, ProxyError, ProxyTimeoutError

from strongroom.identity.atomic_file import write_atomically
from strongroom.reach.keys import check_client_name, check_onion, client_auth_line

# Tor's extended SOCKS5 replies (SocksPort ... ExtendedErrors), for onion addresses.
SOCKS_ONION_NOT_FOUND = 0xF0  # no descriptor: the service is off, or not published yet
SOCKS_INTRO_FAILED = 0xF2
SOCKS_REND_FAILED = 0xF3
SOCKS_MISSING_CLIENT_AUTH = 0xF4  # this phone holds no key (or a revoked one)
SOCKS_BAD_CLIENT_AUTH = 0xF5

# What a connection through tor raises when tor refuses; `socks_reply` reads its code.
SocksError = ProxyError
# ... and when tor keeps trying (an onion whose introduction points are gone).
SocksTimeout = ProxyTimeoutError
_UNLISTED_REPLY = re.compile(r"reply code: 0X([0-9A-F]{2})\b", re.IGNORECASE)


def socks_reply(error: ProxyError) -> int | None:
    """The SOCKS5 reply code of a refusal. python-socks keeps only the RFC 1928 codes in
    `error_code`; tor's extended ones (0xF0-0xF7) survive only in its message."""
    if error.error_code is not None:
        return int(error.error_code)
    match = _UNLISTED_REPLY.search(str(error))
    return int(match.group(1), 16) if match else None


def tor_session(socks_url: str, *, connect_timeout_s: float = 60.0) -> aiohttp.ClientSession:
    """An HTTP/WebSocket session whose every connection goes through tor's SOCKS5.

    `rdns`: the .onion name is sent to tor as is; nothing is resolved locally
    (a local DNS lookup of an onion name would leak it, and fail).
    """
    # Building circuits to an onion takes seconds to tens of seconds: see protocol.md.
    timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout_s)
    connector = ProxyConnector.from_url(socks_url, rdns=True)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


def onion_peer_url(onion: str) -> str:
    """Tor's circuit is end-to-end encrypted and authenticates the onion; Noise IK inside
    authenticates the box itself: no TLS on the onion."""
    return f"ws://{check_onion(onion)}/peer"


def install_client_auth(auth_dir: Path, name: str, onion: str, auth_private: str) -> Path:
    """Write `<name>.auth_private` into the phone tor's ClientOnionAuthDir (reload tor after)."""
    check_client_name(name)
    path = auth_dir / f"{name}.auth_private"
    write_atomically(path, client_auth_line(onion, auth_private).encode("ascii"), 0o600)
    return path
