"""A sealed bundle: a .zip whose every file is listed in a signed SHA-256 manifest.

Layout (all under one top directory so unzipping makes no mess)::

    <root>/MANIFEST.sha256   `sha256sum -c` format: "<hex>  <path>" per line, LF
    <root>/manifest.sig      raw 64-byte Ed25519 signature of MANIFEST.sha256 by the box
    <root>/sth.txt           the signed tree head text, byte for byte what the box signed
    <root>/sth.sig           raw 64-byte Ed25519 signature of sth.txt
    <root>/box.pem           the box public key (SubjectPublicKeyInfo PEM)
    <root>/VERIFY.txt        how to check it all with sha256sum and openssl (FR/EN)
    <root>/...               the content (exports, certificates)

Every file except MANIFEST.sha256 and manifest.sig is in the manifest, so a
changed byte anywhere is caught either by `sha256sum -c` or by the signature.
Members are written through a hashing stream, so a bundle of any size is built
without holding it in memory.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from nacl.signing import SigningKey

from strongroom.proof.pem import ed25519_public_key_pem
from strongroom.proof.sth import SignedTreeHead

MANIFEST = "MANIFEST.sha256"
MANIFEST_SIG = "manifest.sig"
STH_TEXT = "sth.txt"
STH_SIG = "sth.sig"
BOX_PEM = "box.pem"
VERIFY_TXT = "VERIFY.txt"
UNSIGNED = frozenset({MANIFEST, MANIFEST_SIG})


def openssl_verify_command(message: str, signature: str) -> str:
    """The exact openssl line that checks a raw Ed25519 signature with box.pem."""
    return (
        f"openssl pkeyutl -verify -pubin -inkey box.pem -rawin -in {message} -sigfile {signature}"
    )


VERIFY_MANIFEST_CMD = openssl_verify_command(MANIFEST, MANIFEST_SIG)
VERIFY_STH_CMD = openssl_verify_command(STH_TEXT, STH_SIG)
SHA256SUM_CMD = f"sha256sum -c {MANIFEST}"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, limit: int = 80) -> str:
    """A name sha256sum prints without escaping and every OS accepts."""
    cleaned = _SAFE.sub("_", name).strip("._") or "file"
    return cleaned[:limit]


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._target.write(data)


class SealedBundleWriter:
    """Write members, then `finish()` adds the tree head, key, VERIFY.txt and manifest."""

    def __init__(
        self, path: Path, root: str, signing_key: SigningKey, tree_head: SignedTreeHead
    ) -> None:
        self.path = path
        self.root = root
        self._key = signing_key
        self.tree_head = tree_head
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self._entries: list[tuple[str, str]] = []
        self._names: set[str] = set()

    def _member(self, name: str) -> str:
        if name in self._names or name in UNSIGNED or name.startswith("/") or ".." in name:
            raise ValueError(f"bad or duplicate bundle member {name!r}")
        self._names.add(name)
        return f"{self.root}/{name}"

    @contextmanager
    def open(self, name: str) -> Iterator[_HashingWriter]:
        """Stream one member; it is hashed for the manifest as it is written."""
        member = self._member(name)
        with self._zip.open(member, "w", force_zip64=True) as raw:
            writer = _HashingWriter(raw)
            yield writer
        self._entries.append((writer.digest.hexdigest(), name))

    def add_bytes(self, name: str, data: bytes) -> None:
        with self.open(name) as out:
            out.write(data)

    def add_chunks(self, name: str, chunks: Iterable[bytes]) -> None:
        with self.open(name) as out:
            for chunk in chunks:
                out.write(chunk)

    def finish(self, verify_text: str) -> bytes:
        """Seal the bundle; return SHA-256 of the manifest (what the audit log records)."""
        head = self.tree_head
        sth_text = head.signed_message()
        self.add_bytes(STH_TEXT, sth_text)
        self.add_bytes(STH_SIG, head.signature)
        self.add_bytes(BOX_PEM, ed25519_public_key_pem(bytes(self._key.verify_key)).encode())
        self.add_bytes(VERIFY_TXT, verify_text.encode("utf-8"))
        manifest = "".join(
            f"{digest}  {name}\n" for digest, name in sorted(self._entries, key=lambda e: e[1])
        )
        manifest_bytes = manifest.encode("utf-8")
        self._zip.writestr(f"{self.root}/{MANIFEST}", manifest_bytes)
        self._zip.writestr(f"{self.root}/{MANIFEST_SIG}", self._key.sign(manifest_bytes).signature)
        self._zip.comment = seal_placeholder()
        self._zip.close()
        seal_container(self.path, self._key)
        return hashlib.sha256(manifest_bytes).digest()

    def abort(self) -> None:
        self._zip.close()
        self.path.unlink(missing_ok=True)


# The container seal: the zip comment (the file's last bytes) holds the box's
# signature over SHA-256 of every byte before it. The manifest covers the
# content; the seal covers the container too (timestamps, attributes, headers),
# so a flipped byte anywhere in the .zip is detected by verify-export.
SEAL_PREFIX = b"strongroom-seal-v1 "
SEAL_BYTES = len(SEAL_PREFIX) + 128


def seal_placeholder() -> bytes:
    return SEAL_PREFIX + b"0" * 128


def seal_message(digest: bytes) -> bytes:
    return b"strongroom-zip-v1\n" + digest.hex().encode() + b"\n"


def container_digest(path: Path) -> bytes:
    """SHA-256 of the file without its trailing seal."""
    digest = hashlib.sha256()
    remaining = path.stat().st_size - SEAL_BYTES
    with path.open("rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(1 << 20, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.digest()


def seal_container(path: Path, key: SigningKey) -> None:
    signature = key.sign(seal_message(container_digest(path))).signature
    with path.open("r+b") as handle:
        handle.seek(-SEAL_BYTES, 2)
        if handle.read(len(SEAL_PREFIX)) != SEAL_PREFIX:
            raise ValueError("the zip does not end with the seal placeholder")
        handle.seek(-128, 2)
        handle.write(signature.hex().encode())


def read_seal(path: Path) -> bytes | None:
    """The container signature at the end of a bundle, or None if there is none."""
    if path.stat().st_size < SEAL_BYTES:
        return None
    with path.open("rb") as handle:
        handle.seek(-SEAL_BYTES, 2)
        tail = handle.read()
    if not tail.startswith(SEAL_PREFIX):
        return None
    try:
        return bytes.fromhex(tail[len(SEAL_PREFIX) :].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def box_key_fingerprint(verify_key: bytes) -> str:
    """SHA-256 of the DER public key: `openssl pkey -pubin -in box.pem -outform DER | sha256sum`."""
    from strongroom.proof.pem import ED25519_SPKI_PREFIX

    return hashlib.sha256(ED25519_SPKI_PREFIX + verify_key).hexdigest()


def verify_instructions(root: str, fingerprint: str, extra_fr: str = "", extra_en: str = "") -> str:
    """VERIFY.txt: the exact commands, in French then English."""
    return f"""\
VÉRIFIER CE DOSSIER SCELLÉ / VERIFYING THIS SEALED BUNDLE
==========================================================

Aucun logiciel Strongroom n'est nécessaire : sha256sum et openssl (3.0 ou plus)
suffisent. No Strongroom software is needed: sha256sum and openssl (3.0 or later).

--- FRANÇAIS ---------------------------------------------------------------

1. Décompressez l'archive puis placez-vous dans le dossier :
       cd {root}

2. Vérifiez l'empreinte de la clé publique du boîtier. Elle doit être égale à
   celle affichée par le boîtier (page Santé / Identité) :
       openssl pkey -pubin -in box.pem -outform DER | sha256sum
   Attendu : {fingerprint}

3. Vérifiez l'intégrité de chaque fichier (chaque ligne doit finir par « OK » /
   « Réussi ») :
    {SHA256SUM_CMD}

4. Vérifiez que la liste des empreintes a été signée par le boîtier :
    {VERIFY_MANIFEST_CMD}
   Réponse attendue : « Signature Verified Successfully ».

5. Vérifiez la tête d'arbre signée (taille du journal, date, racine Merkle) :
    {VERIFY_STH_CMD}
       cat sth.txt
{extra_fr}
Si une seule commande échoue, le dossier a été modifié après sa création.

--- ENGLISH ----------------------------------------------------------------

1. Unzip the file and enter the folder:
       cd {root}

2. Check the box public key fingerprint. It must equal the one the box shows
   (Health / Identity page):
       openssl pkey -pubin -in box.pem -outform DER | sha256sum
   Expected: {fingerprint}

3. Check every file (every line must end with "OK"):
    {SHA256SUM_CMD}

4. Check the box signed the list of checksums:
    {VERIFY_MANIFEST_CMD}
   Expected answer: "Signature Verified Successfully".

5. Check the signed tree head (log size, time, Merkle root):
    {VERIFY_STH_CMD}
       cat sth.txt
{extra_en}
If any command fails, the bundle was changed after it was made.
"""


PROOF_SECTION_FR = """
6. Preuves d'inclusion dans le journal (RFC 6962, SHA-256). Pour chaque entrée,
   proofs/<n>.leaf contient les octets exacts de la feuille ; son empreinte est
   SHA-256(0x00 || feuille) :
       (printf '\\000'; cat proofs/<n>.leaf) | sha256sum
   et doit être égale à "leaf_hash" dans proofs/<n>.json. La feuille (CBOR
   [1, type, sha256(contenu), date_ms]) contient l'empreinte du contenu :
       xxd -p proofs/<n>.leaf | tr -d '\\n'
   affiche cette empreinte. Le chemin "audit_path" relie la feuille à la racine
   de sth.txt (RFC 9162 §2.1.3.2) ; le script check_proofs.py (Python 3 seul,
   lisible en 60 lignes) refait ce calcul pour toutes les entrées :
       python3 check_proofs.py
"""

PROOF_SECTION_EN = """
6. Inclusion proofs in the log (RFC 6962, SHA-256). For each entry,
   proofs/<n>.leaf holds the exact leaf bytes; its hash is SHA-256(0x00 || leaf):
       (printf '\\000'; cat proofs/<n>.leaf) | sha256sum
   and must equal "leaf_hash" in proofs/<n>.json. The leaf (CBOR
   [1, kind, sha256(content), time_ms]) contains the content hash:
       xxd -p proofs/<n>.leaf | tr -d '\\n'
   shows it. "audit_path" links the leaf to the root in sth.txt (RFC 9162
   §2.1.3.2); check_proofs.py (plain Python 3, 60 readable lines) recomputes it
   for every entry:
       python3 check_proofs.py
"""

# Shipped inside bundles: stdlib only, so a verifier needs nothing but python3.
CHECK_PROOFS_PY = '''\
"""Recompute every inclusion proof in proofs/ against the root in sth.txt.

RFC 9162 section 2.1.3.2, SHA-256, standard library only. Run: python3 check_proofs.py
"""
import hashlib
import json
import pathlib
import sys


def leaf_hash(data):
    return hashlib.sha256(b"\\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\\x01" + left + right).digest()


def root_from_path(leaf, index, size, path):
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


here = pathlib.Path(__file__).resolve().parent
lines = (here / "sth.txt").read_text(encoding="ascii").split("\\n")
size, root = int(lines[1]), bytes.fromhex(lines[3])
bad = 0
proofs = sorted((here / "proofs").glob("*.json"))
for proof_file in proofs:
    proof = json.loads(proof_file.read_text(encoding="utf-8"))
    leaf = (here / "proofs" / (proof_file.stem + ".leaf")).read_bytes()
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    ok = (
        proof["tree_size"] == size
        and leaf_hash(leaf).hex() == proof["leaf_hash"]
        and root_from_path(leaf_hash(leaf), proof["leaf_index"], size, path) == root
    )
    print(("OK      " if ok else "FAILED  ") + proof_file.name)
    bad += not ok
print(f"{len(proofs) - bad} of {len(proofs)} proofs verify against sth.txt")
sys.exit(1 if bad else 0)
'''
