"""Pairing as the reference client runs it (protocol.md §3.4, §3.5), after XX/XXpsk3.

The box's first frame reveals the nonce it committed to in handshake message 2;
the phone checks the commitment, shows the comparison code, proves it holds its
Ed25519 device key with the `pair` frame, then checks the `paired` answer names
the box of the handshake and carries a tree head that box signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strongroom.client.link import HandshakeRefused, Link
from strongroom.client.proofs import ProofError
from strongroom.client.state import DeviceState
from strongroom.identity import compute_fingerprint
from strongroom.pairing.codes import committed_comparison_code, verify_code_commitment
from strongroom.peer.handshake import pair_message
from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead, verify_tree_head


@dataclass(frozen=True)
class Paired:
    device_id: int
    fingerprint: str
    comparison_code: str
    tree_head: SignedTreeHead


async def pair_over(
    link: Link,
    state: DeviceState,
    url: str,
    reveal: asyncio.Future[bytes],
    on_code: Callable[[str], None] | None,
) -> Paired:
    """Run the pairing on an XX/XXpsk3 link; on success `state` holds the box's keys.

    `reveal` is resolved with the nonce of the box's `reveal` frame."""
    handshake = link.handshake
    closed: asyncio.Future[Any] = asyncio.ensure_future(link.closed.wait())
    await asyncio.wait([reveal, closed], return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    if not reveal.done():
        raise HandshakeRefused(link.ws.close_code, link.close_reason or "handshake failed")
    box_nonce = reveal.result()
    commitment, phone_nonce = handshake.code_commitment, handshake.phone_code_nonce
    if commitment is None or phone_nonce is None:
        raise ProofError("the box sent no comparison-code commitment")
    if not verify_code_commitment(commitment, box_nonce):
        raise ProofError("the box revealed a nonce it had not committed to")
    code = committed_comparison_code(handshake.handshake_hash, phone_nonce, box_nonce)
    if on_code is not None:
        on_code(code)
    signing_key = state.signing_key
    body = {
        "name": state.name,
        "owner": state.owner,
        "sign_key": bytes(signing_key.verify_key),
        "sig": signing_key.sign(pair_message(handshake.handshake_hash)).signature,
    }
    reply = await link.request("pair", body)
    paired = reply.body
    fingerprint = compute_fingerprint(handshake.box_noise_public, handshake.box_sign_public)
    if paired["sign_key"] != handshake.box_sign_public or paired["fingerprint"] != fingerprint:
        raise ProofError("the paired frame names another box")
    try:
        head = SignedTreeHead.from_dict(paired["tree_head"])
    except MalformedTreeHeadError as exc:
        raise ProofError(str(exc)) from exc
    if not verify_tree_head(head, handshake.box_sign_public):
        raise ProofError("the box's tree head signature does not verify")
    state.device_id = int(paired["device_id"])
    state.box_noise_public = handshake.box_noise_public
    state.box_sign_public = handshake.box_sign_public
    state.box_fingerprint = fingerprint
    state.url = url
    reach = paired.get("reach")  # the box's remote reach: see protocol.md section 12
    state.onion, state.onion_auth = (reach["onion"], reach["auth"]) if reach else (None, None)
    return Paired(state.device_id, fingerprint, code, head)
