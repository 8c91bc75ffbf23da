"""Mail: opaque payloads a phone leaves for another owner's device(s).

The box cannot read mail (phones encrypt it end to end); it only holds it.
A mail row lives through three states:

1. held: written durably when the sender's `mail` frame arrives (the sender
   gets an `ack` of kind "mail");
2. delivered: a recipient device answered the delivery with `mail_ack`; the
   payload is wiped, the row remembers which device took it and when, and
   the box tells the sender (`mail_ack` notice, now or when it reconnects);
3. gone: the sender answered the notice with its own `mail_ack`.

Mail addressed to an owner goes to the first of the owner's devices that
acknowledges it; mail addressed to a device that is later revoked falls
back to the owner's other devices, so a re-paired phone still gets it.
Mail is not a record: it is not in the log; what the phones push about it
(the message, its receipts) is.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive.errors import RecordRejected
from strongroom.archive.store import Txn, WriteOpOf


class UnknownRecipient(RecordRejected):
    """No device was ever paired for that owner, or no such device for that owner."""


@dataclass(frozen=True)
class HeldMail:
    mail_id: bytes
    recipient_owner: str
    recipient_device: int | None
    duplicate: bool


@dataclass(frozen=True)
class Delivered:
    """A recipient acknowledged mail: tell its sender."""

    mail_id: bytes
    sender_device: int
    device: int
    at: int


@dataclass(frozen=True)
class NoticeDone:
    """The sender acknowledged the delivery notice: the row is gone."""

    mail_id: bytes


def hold_mail(
    mail_id: bytes,
    sender_device: int,
    recipient_owner: str,
    recipient_device: int | None,
    payload: bytes,
) -> WriteOpOf[HeldMail]:
    def op(txn: Txn) -> HeldMail:
        row = txn.conn.execute(
            "SELECT sender_device, recipient_owner, recipient_device FROM mail WHERE mail_id = ?",
            (mail_id,),
        ).fetchone()
        if row is not None:
            if int(row[0]) != sender_device:
                raise RecordRejected("this mail id is already used by another device")
            device = None if row[2] is None else int(row[2])
            return HeldMail(mail_id, str(row[1]), device, duplicate=True)
        if recipient_device is not None:
            known = txn.conn.execute(
                "SELECT 1 FROM devices WHERE id = ? AND owner = ?",
                (recipient_device, recipient_owner),
            ).fetchone()
        else:
            known = txn.conn.execute(
                "SELECT 1 FROM devices WHERE owner = ? LIMIT 1", (recipient_owner,)
            ).fetchone()
        if known is None:
            raise UnknownRecipient(f"no device of {recipient_owner!r} matches")
        txn.conn.execute(
            "INSERT INTO mail (mail_id, sender_device, recipient_owner, recipient_device,"
            " payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (mail_id, sender_device, recipient_owner, recipient_device, payload, txn.at_ms),
        )
        return HeldMail(mail_id, recipient_owner, recipient_device, duplicate=False)

    return op


# Mail that device :device of owner :owner may take: addressed to the owner, to this
# device, or to one of the owner's devices that was revoked since.
PENDING_MAIL_SQL = """
SELECT m.mail_id, d.owner, m.sender_device, m.created_at, m.payload
FROM mail m JOIN devices d ON d.id = m.sender_device
WHERE m.acked_at IS NULL AND m.recipient_owner = :owner
  AND (m.recipient_device IS NULL OR m.recipient_device = :device
       OR m.recipient_device IN (SELECT id FROM devices WHERE revoked_at IS NOT NULL))
ORDER BY m.id LIMIT :limit
"""

_TAKE_SQL = """
SELECT m.sender_device, m.acked_at FROM mail m
WHERE m.mail_id = :mail AND m.recipient_owner = :owner
  AND (m.recipient_device IS NULL OR m.recipient_device = :device
       OR m.recipient_device IN (SELECT id FROM devices WHERE revoked_at IS NOT NULL))
"""


def ack_mail(
    mail_id: bytes, device_id: int, owner: str
) -> WriteOpOf[Delivered | NoticeDone | None]:
    """A device's `mail_ack`: a recipient taking mail, or a sender taking its notice."""

    def op(txn: Txn) -> Delivered | NoticeDone | None:
        row = txn.conn.execute(
            _TAKE_SQL,
            {"mail": mail_id, "owner": owner, "device": device_id},
        ).fetchone()
        if row is not None and row[1] is None:
            txn.conn.execute(
                "UPDATE mail SET acked_at = ?, delivered_at = coalesce(delivered_at, ?),"
                " recipient_device = ?, payload = x'' WHERE mail_id = ?",
                (txn.at_ms, txn.at_ms, device_id, mail_id),
            )
            return Delivered(mail_id, int(row[0]), device_id, txn.at_ms)
        done = txn.conn.execute(
            "DELETE FROM mail WHERE mail_id = ? AND sender_device = ? AND acked_at IS NOT NULL",
            (mail_id, device_id),
        )
        return NoticeDone(mail_id) if done.rowcount else None

    return op
