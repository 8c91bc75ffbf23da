"""threat-model.md, "Compromised dependency": crypto primitives come only from PyNaCl
(libsodium). No module of the box or the panel imports another crypto library, or uses
the standard library's hashlib or hmac for anything but SHA-256 (which RFC 6962 and
`sha256sum` fix) and hmac.compare_digest (a comparison, no primitive): no keyed MAC, no
KDF, no BLAKE2 or other hash, however spelled (`from hashlib import blake2b`,
`import hashlib as h`, `hashlib.new("blake2b")`, `getattr(hashlib, ...)`). A static
scan: `importlib`/`__import__` by a computed name would pass it. TLS is `ssl`/openssl
(operations.md)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OTHER_LIBRARIES = ("cryptography", "Crypto", "Cryptodome", "argon2", "bcrypt", "ecdsa", "rsa")
STDLIB_CRYPTO = ("hashlib", "hmac")
# All a module may use of STDLIB_CRYPTO; hashlib.new only as hashlib.new("sha256").
STDLIB_ALLOWED = {"hashlib.sha256", "hashlib.new", "hmac.compare_digest"}


def _sources() -> list[Path]:
    return sorted([*(REPO / "app").rglob("*.py"), *(REPO / "firmware").rglob("*.py")])


def _bound_names(tree: ast.AST) -> dict[str, str]:
    """Each name an import binds -> what it stands for ("hashlib", "hashlib.new", ...)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:  # `import a.b` binds `a`
                    top = alias.name.split(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _meaning(node: ast.expr, bound: dict[str, str]) -> str | None:
    """`h.pbkdf2_hmac` -> "hashlib.pbkdf2_hmac" after `import hashlib as h`, etc."""
    if isinstance(node, ast.Name):
        return bound.get(node.id, node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{bound.get(node.value.id, node.value.id)}.{node.attr}"
    return None


def _stdlib_use(meaning: str | None) -> bool:
    """A name of hashlib's or hmac's other than the allowed ones."""
    if meaning is None or "." not in meaning:
        return False
    module, _ = meaning.split(".", 1)
    return module in STDLIB_CRYPTO and meaning not in STDLIB_ALLOWED


def _sha256_named(call: ast.Call) -> bool:
    args = [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]
    return any(isinstance(a, ast.Constant) and a.value in ("sha256", "SHA256") for a in args)


def _offences(source: str, name: str) -> list[str]:
    tree = ast.parse(source, filename=name)
    bound = _bound_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in OTHER_LIBRARIES]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in OTHER_LIBRARIES:
                found.append(node.module)
            imported = (f"{node.module}.{a.name}" for a in node.names)
            found += [m for m in imported if _stdlib_use(m)]  # `from hmac import new`
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if _stdlib_use(meaning := _meaning(node, bound)):  # `h.pbkdf2_hmac` too
                found.append(str(meaning))
        if isinstance(node, ast.Call):
            called = _meaning(node.func, bound)
            if called == "hashlib.new" and not _sha256_named(node):
                found.append("hashlib.new")  # hashlib.new("blake2b"), any name but sha256
            elif (
                called == "getattr" and node.args and _meaning(node.args[0], bound) in STDLIB_CRYPTO
            ):
                found.append(f"getattr({_meaning(node.args[0], bound)}, ...)")
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
    spellings = {  # each a way to reach a primitive of the standard library's
        "from hashlib import blake2b\nblake2b(b'x')\n": "hashlib.blake2b",
        "from hmac import new\nnew(b'k', b'm', 'sha256')\n": "hmac.new",
        "from hmac import HMAC as Mac\n": "hmac.HMAC",
        "import hashlib\nhashlib.new('blake2b')\n": "hashlib.new",
        "from hashlib import new\nnew(name='sha3_256')\n": "hashlib.new",
        "import hashlib as h\nh.pbkdf2_hmac('sha256', b'p', b's', 1)\n": "hashlib.pbkdf2_hmac",
        "import hashlib\nhashlib.scrypt(b'p', salt=b's', n=2, r=8, p=1)\n": "hashlib.scrypt",
        "import hashlib\nhashlib.md5(b'x')\n": "hashlib.md5",
        "import hashlib\ngetattr(hashlib, 'blake2b')(b'x')\n": "getattr(hashlib, ...)",
    }
    for source, offence in spellings.items():
        assert _offences(source, "p.py") == [f"p.py:{offence}"], source


def test_the_scan_lets_sha256_and_pynacl_through() -> None:
    allowed = (
        "import hashlib\nimport hmac\nhashlib.sha256(b'x')\nhmac.compare_digest(b'a', b'b')\n"
        "hashlib.new('sha256')\nfrom hashlib import sha256\nsha256(b'x')\n"
        "import nacl.hashlib\nnacl.hashlib.blake2b(digest_size=32)\n"
        "from nacl import hashlib as h\nh.blake2b(b'x')\n"
    )
    assert _offences(allowed, "p.py") == []
