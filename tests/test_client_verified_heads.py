"""The phone checks a new tree head's signature once, not twice (client/proofs.py).

The reply to a push is checked by the phone's HeadChain (consistency with the last
head it trusted) and then by its AckVerifier (the inclusion proof under that head).
Both used to verify the head's Ed25519 signature; they now share one cache of heads
already checked, and a head signed by anyone else is still refused by both.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from nacl.signing import SigningKey

from strongroom.archive.record import leaf_data
from strongroom.client import proofs
from strongroom.client.heads import HeadChain
from strongroom.client.proofs import AckVerifier, ProofError
from strongroom.proof.merkle import leaf_hash
from strongroom.proof.sth import SignedTreeHead, sign_tree_head, verify_tree_head

AT = 1_800_000_000_000


def _ack(signer: SigningKey) -> tuple[dict[str, Any], bytes]:
    """The body of an ack for the only record of a one-leaf log, signed by `signer`."""
    ref = hashlib.sha256(b"un message du cabinet").digest()
    root = leaf_hash(leaf_data("message", ref, AT))
    head = sign_tree_head(signer, 1, root, AT)
    body = {
        "kind": "record",
        "ref": ref,
        "log_index": 0,
        "at": AT,
        "proof": [],
        "tree_head": head.to_dict(),
    }
    return body, ref


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[SignedTreeHead]:
    """Every Ed25519 check of a tree head the phone's code makes (real checks, counted)."""
    seen: list[SignedTreeHead] = []

    def counted(head: SignedTreeHead, key: bytes) -> bool:
        seen.append(head)
        return verify_tree_head(head, key)

    monkeypatch.setattr(proofs, "verify_tree_head", counted)
    # Before the shared cache, heads.py checked the signature with its own import.
    import strongroom.client.heads as heads_module

    monkeypatch.setattr(heads_module, "verify_tree_head", counted, raising=False)
    return seen


def test_a_new_head_is_verified_once_for_the_chain_and_the_ack(
    signature_checks: list[SignedTreeHead],
) -> None:
    box = SigningKey.generate()
    public = bytes(box.verify_key)
    chain = HeadChain(public)
    verifier = AckVerifier(public, chain.verified)
    body, ref = _ack(box)

    chain.check(body)
    ack = verifier.verify(body, kind="record", leaf_kind="message", ref=ref)

    assert ack.log_index == 0 and chain.trusted == ack.tree_head
    assert len(signature_checks) == 1


def test_a_head_signed_by_someone_else_is_refused_by_both(
    signature_checks: list[SignedTreeHead],
) -> None:
    box, impostor = SigningKey.generate(), SigningKey.generate()
    public = bytes(box.verify_key)
    chain = HeadChain(public)
    verifier = AckVerifier(public, chain.verified)
    body, ref = _ack(impostor)

    with pytest.raises(ProofError, match="not signed by the box"):
        chain.check(body)
    # A refused head is not remembered as checked: the ack is refused on its own.
    with pytest.raises(ProofError, match="not signed by the box"):
        verifier.verify(body, kind="record", leaf_kind="message", ref=ref)
    assert len(signature_checks) == 2
    assert chain.trusted is None


def test_the_head_map_is_parsed_once_for_the_chain_and_the_ack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The acks of one commit carry one head: the phone parses its map once, not twice."""
    parsed: list[Any] = []
    real = SignedTreeHead.from_dict.__func__  # type: ignore[attr-defined]

    def counted(cls: type[SignedTreeHead], data: Any) -> SignedTreeHead:
        parsed.append(data)
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(SignedTreeHead, "from_dict", classmethod(counted))
    box = SigningKey.generate()
    public = bytes(box.verify_key)
    chain = HeadChain(public)
    verifier = AckVerifier(public, chain.verified)
    body, ref = _ack(box)

    chain.check(body)
    ack = verifier.verify(body, kind="record", leaf_kind="message", ref=ref)
    again = verifier.verify(dict(body), kind="record", leaf_kind="message", ref=ref)

    assert ack.tree_head == again.tree_head == chain.trusted
    assert len(parsed) == 1


def test_a_remembered_head_does_not_let_an_equal_map_of_other_types_through() -> None:
    """True == 1 in Python, but a tree size of True is malformed, remembered head or not."""
    box = SigningKey.generate()
    head = sign_tree_head(box, 1, bytes(32), AT)
    verifier = AckVerifier(bytes(box.verify_key))
    assert verifier.tree_head(head.to_dict()) == head
    as_bool = {**head.to_dict(), "tree_size": True}
    with pytest.raises(ProofError, match="malformed tree head"):
        verifier.tree_head(as_bool)
