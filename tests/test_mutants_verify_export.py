"""verify-export checks each phone's signature, not only the box's seal over the bundle.

A box (or anyone holding its key) could otherwise put words in a phone's mouth:
change a record's signature, list the new bytes in MANIFEST.sha256, re-sign
the manifest and re-seal the zip with the box key. Every box-level check then
holds, and only the phone's signature over the record tells the forgery.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.sealed import (
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_SIG,
    UNSIGNED,
    seal_container,
    seal_placeholder,
)
from strongroom.office.verify_export import main as verify_main
from strongroom.office.verify_export import verify_bundle
from test_office_support import (
    Box,
    box_with_two_messages,
    conversation_id,
)

box = pytest.fixture(box_with_two_messages)


def export(box: Box, out: Path) -> Path:
    scope = ExportScope("conversation", conversation_id=conversation_id(box))
    request = ExportRequest(scope, "me.durand", "Tribunal judiciaire de Lyon", "instance 24/123")
    export_bundle(box.archive, request, out)
    return out


def read_members(bundle: Path) -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(bundle) as zf:
        root = zf.namelist()[0].split("/")[0]
        return root, {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}


def resealed(
    bundle: Path, out: Path, change: dict[str, bytes], box_key: SigningKey, *, legacy: bool = False
) -> Path:
    """`bundle` with members replaced, then re-listed, re-signed and re-sealed by the box
    (`legacy`: as bundles were made before MANIFEST.digest, the manifest itself signed)."""
    root, files = read_members(bundle)
    files.update(change)
    listed = sorted(name for name in files if name not in UNSIGNED)
    manifest = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in listed).encode()
    files[MANIFEST] = manifest
    if legacy:
        del files[MANIFEST_DIGEST]
        files[MANIFEST_SIG] = box_key.sign(manifest).signature
    else:
        files[MANIFEST_DIGEST] = f"{hashlib.sha256(manifest).hexdigest()}  {MANIFEST}\n".encode()
        files[MANIFEST_SIG] = box_key.sign(files[MANIFEST_DIGEST]).signature
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{root}/{name}", data)
        zf.comment = seal_placeholder()
    seal_container(out, box_key)
    return out


def records(files: dict[str, bytes]) -> list[str]:
    return sorted(n.removesuffix(".cbor") for n in files if n.endswith(".cbor"))


def test_the_untouched_export_verifies(box: Box, tmp_path: Path) -> None:
    bundle = export(box, tmp_path / "export.zip")
    # Re-sealing unchanged content must not itself break anything.
    again = resealed(bundle, tmp_path / "again.zip", {}, box.archive.signing_key)
    for path in (bundle, again):
        report = verify_bundle(path)
        assert report.ok, report.problems
        assert report.records == 2


def test_a_bundle_signed_the_older_way_still_verifies(box: Box, tmp_path: Path) -> None:
    """Bundles made before MANIFEST.digest carry manifest.sig over the manifest itself."""
    bundle = export(box, tmp_path / "export.zip")
    old = resealed(bundle, tmp_path / "old.zip", {}, box.archive.signing_key, legacy=True)
    assert MANIFEST_DIGEST not in read_members(old)[1]
    report = verify_bundle(old)
    assert report.ok, report.problems
    forged = resealed(bundle, tmp_path / "forged.zip", {}, SigningKey.generate(), legacy=True)
    assert MANIFEST_SIG in verify_bundle(forged).failing_files()


def test_a_stranger_signature_resealed_by_the_box_is_named(box: Box, tmp_path: Path) -> None:
    bundle = export(box, tmp_path / "export.zip")
    _, files = read_members(bundle)
    victim = records(files)[1]
    forged = SigningKey.generate().sign(RECORD_SIGNING_CONTEXT + files[f"{victim}.cbor"])
    change = {f"{victim}.sig": forged.signature}
    bad = resealed(bundle, tmp_path / "forged.zip", change, box.archive.signing_key)

    report = verify_bundle(bad)

    assert not report.ok
    # The box's own checks all hold: only the phone's signature fails, and it is named.
    assert report.failing_files() == {f"{victim}.sig"}, report.problems
    assert "phone's signature" in report.problems[0].message
    assert verify_main([str(bad)]) == 1


def test_a_signature_moved_from_another_record_is_named(box: Box, tmp_path: Path) -> None:
    bundle = export(box, tmp_path / "export.zip")
    _, files = read_members(bundle)
    first, second = records(files)
    # The phone's genuine signature, but over the other record.
    moved = {f"{second}.sig": files[f"{first}.sig"]}
    report = verify_bundle(resealed(bundle, tmp_path / "moved.zip", moved, box.archive.signing_key))
    assert report.failing_files() == {f"{second}.sig"}, report.problems
