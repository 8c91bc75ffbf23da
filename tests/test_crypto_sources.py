"""threat-model.md, "Compromised dependency": crypto primitives come only from PyNaCl
(libsodium). No module of the box or the panel imports another crypto library or keys a
MAC, derives a key or hashes with BLAKE2 through the standard library (SHA-256, which
RFC 6962 and `sha256sum` fix, is hashlib's; TLS is `ssl`/openssl, operations.md)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OTHER_LIBRARIES = ("cryptography", "Crypto", "Cryptodome", "argon2", "bcrypt", "ecdsa", "rsa")
# hashlib / hmac calls that would be a primitive of their own (keyed, a KDF, BLAKE2).
STDLIB_PRIMITIVES = {
    ("hmac", "new"),
    ("hmac", "digest"),
    ("hashlib", "pbkdf2_hmac"),
    ("hashlib", "scrypt"),
    ("hashlib", "blake2b"),
    ("hashlib", "blake2s"),
}


def _sources() -> list[Path]:
    return sorted([*(REPO / "app").rglob("*.py"), *(REPO / "firmware").rglob("*.py")])


def _offences(source: str, name: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        found += [n for n in names if n.split(".")[0] in OTHER_LIBRARIES]
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in STDLIB_PRIMITIVES
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return [f"{name}:{offence}" for offence in found]


def test_crypto_primitives_come_from_pynacl_only() -> None:
    sources = _sources()
    assert len(sources) > 100  # the tree was found
    offences = [
        offence
        for path in sources
        for offence in _offences(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert offences == []


def test_the_scan_finds_what_it_forbids() -> None:
    planted = "import hmac\nfrom cryptography.hazmat import x\nhmac.new(b'k', b'm', 'sha256')\n"
    assert _offences(planted, "p.py") == ["p.py:cryptography.hazmat", "p.py:hmac.new"]
