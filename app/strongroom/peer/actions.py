"""What a PeerSession asks its network glue to do.

The session never performs I/O: it returns these. Actions that wait for
something (an archive commit, a reader query, the pairing gate, the blob
store) carry a continuation `then`, which the glue calls with the outcome to
get the session's next actions. A test can run a session by executing the
actions itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.archive.blobs import BlobLocation
from strongroom.archive.committer import Committed
from strongroom.archive.db import Connection
from strongroom.archive.store import WriteOp
from strongroom.pairing.gate import PairingAttempt, PairingOutcome
from strongroom.peer.frames import Frame


@dataclass(frozen=True)
class Send:
    frame: Frame


@dataclass(frozen=True)
class Close:
    """Close the WebSocket with this code and reason (see CloseCode)."""

    code: int
    reason: str


# Waiting actions carry `request_id`, the id of the phone's frame they answer (0 for
# work the box starts on its own): if the action itself fails (a fault in the box, not
# an outcome `then` handles), the glue's `internal` error frame names that request, so
# the phone fails it at once instead of waiting for its own timeout (protocol.md §10.1).


@dataclass(frozen=True)
class Commit:
    """Submit `op` to the group committer; `then` gets Committed or the exception."""

    op: WriteOp
    log_index_of: Callable[[Any], int | None] | None
    then: Callable[[Committed | Exception], list[Action]]
    request_id: int = 0


@dataclass(frozen=True)
class CheckSignature:
    """Check an Ed25519 signature (the glue may do it off the event loop, in batches).

    `then` gets whether it holds; nothing may reach the archive before that.
    """

    public_key: bytes
    message: bytes
    signature: bytes
    then: Callable[[bool], list[Action]]
    request_id: int = 0


@dataclass(frozen=True)
class Query:
    """Run `read(conn)` on a reader connection (off the event loop); `then` gets the result."""

    read: Callable[[Connection], Any]
    then: Callable[[Any], list[Action]]
    request_id: int = 0


@dataclass(frozen=True)
class AskGate:
    attempt: PairingAttempt
    then: Callable[[PairingOutcome], list[Action]]
    request_id: int = 0


@dataclass(frozen=True)
class DeviceSeen:
    """The device connected: remember when (the glue may throttle the write)."""

    device_id: int


@dataclass(frozen=True)
class RefreshReach:
    """Ask the box's remote reach for this device's current onion (and a key if it holds
    none, or adopt the one it names); `then` gets the reply body or the exception."""

    device_id: int
    auth_pub: str | None
    then: Callable[[Mapping[str, Any] | Exception], list[Action]]
    request_id: int = 0


@dataclass(frozen=True)
class WakeMail:
    """New mail for `owner` (maybe one device): online recipients should fetch it."""

    owner: str
    device: int | None


@dataclass(frozen=True)
class WakeNotices:
    """A delivery notice is waiting for the sender device."""

    device: int


@dataclass(frozen=True)
class BlobStored:
    """UploadOpen's outcome when the box already holds the blob."""


@dataclass(frozen=True)
class UploadOpened:
    offset: int


@dataclass(frozen=True)
class UploadFailed:
    code: str
    message: str


@dataclass(frozen=True)
class UploadOpen:
    """Start or resume receiving blob `sha256` of `size` bytes."""

    sha256: bytes
    size: int
    then: Callable[[BlobStored | UploadOpened | UploadFailed], list[Action]]


@dataclass(frozen=True)
class UploadWrite:
    """Append bytes to the open upload, in order; `then` is called only on failure."""

    data: bytes
    on_error: Callable[[UploadFailed], list[Action]]


@dataclass(frozen=True)
class UploadFinish:
    """Seal the upload, check its hash, move it into place; `then` gets its location."""

    then: Callable[[BlobLocation | UploadFailed], list[Action]]


@dataclass(frozen=True)
class UploadAbort:
    """Stop the open upload, keeping its whole chunks for a later resume."""


@dataclass(frozen=True)
class StreamBlob:
    """Send a stored blob from `offset` as blob_data frames answering `request_id`."""

    request_id: int
    location: BlobLocation
    size: int
    offset: int


Action = (
    Send
    | Close
    | Commit
    | CheckSignature
    | Query
    | AskGate
    | RefreshReach
    | DeviceSeen
    | WakeMail
    | WakeNotices
    | UploadOpen
    | UploadWrite
    | UploadFinish
    | UploadAbort
    | StreamBlob
)


def request_of(action: Action) -> int:
    """The id of the phone's request a waiting action answers (0: the box's own work)."""
    match action:
        case Commit() | CheckSignature() | Query() | AskGate() | RefreshReach() | StreamBlob():
            return action.request_id
    return 0
