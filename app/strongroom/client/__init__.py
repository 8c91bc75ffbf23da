"""The reference phone client: the normative example of docs/protocol.md in code.

from strongroom.client import DeviceState, PhoneClient
"""

from strongroom.client.heads import ForkedLog
from strongroom.client.link import (
    BoxError,
    ConnectionLost,
    FingerprintMismatch,
    HandshakeRefused,
    LinkError,
)
from strongroom.client.mail import DeliveryNotice, Mail
from strongroom.client.pairing import Paired
from strongroom.client.phone import NotPaired, PhoneClient
from strongroom.client.proofs import Ack, ProofError
from strongroom.client.restore import HistoryItem, HistoryStore
from strongroom.client.state import DeviceState, StateError

__all__ = [
    "Ack",
    "BoxError",
    "ConnectionLost",
    "DeliveryNotice",
    "DeviceState",
    "FingerprintMismatch",
    "ForkedLog",
    "HandshakeRefused",
    "HistoryItem",
    "HistoryStore",
    "LinkError",
    "Mail",
    "NotPaired",
    "Paired",
    "PhoneClient",
    "ProofError",
    "StateError",
]
