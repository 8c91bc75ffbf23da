"""The reference phone client: the normative example of docs/protocol.md in code.

from strongroom.client import DeviceState, PhoneClient
"""

from strongroom.client.link import (
    BoxError,
    ConnectionLost,
    FingerprintMismatch,
    HandshakeRefused,
    LinkError,
)
from strongroom.client.pairing import Paired
from strongroom.client.phone import (
    DeliveryNotice,
    HistoryItem,
    Mail,
    NotPaired,
    PhoneClient,
)
from strongroom.client.proofs import Ack, ProofError
from strongroom.client.state import DeviceState, StateError

__all__ = [
    "Ack",
    "BoxError",
    "ConnectionLost",
    "DeliveryNotice",
    "DeviceState",
    "FingerprintMismatch",
    "HandshakeRefused",
    "HistoryItem",
    "LinkError",
    "Mail",
    "NotPaired",
    "Paired",
    "PhoneClient",
    "ProofError",
    "StateError",
]
