"""The proof machine: an RFC 6962 Merkle log and Ed25519-signed tree heads.

Everything here is chosen so that a verifier outside the box needs only
``sha256`` and ``openssl``: the tree uses SHA-256 exactly as RFC 6962/9162
section 2 defines it, tree heads are signed over a short text form, and the
public key is published as a standard PEM SubjectPublicKeyInfo.
"""
