"""Sealed exports and destruction certificates: verified with the real sha256sum and
openssl commands from VERIFY.txt, and by verify_bundle, which must name any tampering."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.office import retention
from strongroom.office.bundle_pdf import DEJAVU_DIR
from strongroom.office.certificates import write_certificate_bundle
from strongroom.office.errors import NothingToExport
from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.office.sealed import box_key_fingerprint
from strongroom.office.verify_export import main as verify_main
from strongroom.office.verify_export import verify_bundle
from strongroom.office.verify_text import EXPECTED_PLACEHOLDER_EN, command_lines
from strongroom.proof.pem import ed25519_public_key_from_pem
from support.pdf import pdf_words
from test_office_support import DAY_MS, T0, Box, attach, conversation_id, new_box, new_phone, say

ATTACHMENT = os.urandom(150_000)


def build_box(tmp_path: Path) -> Box:
    box = new_box(tmp_path)
    phone = new_phone(box.archive)
    say(box, phone, "Bonjour Maître, voici mon dossier : « arrêt de travail », ça presse.", at=T0)
    say(box, phone, "Réponse\nsur deux lignes — œuvre, naïve, Noël", at=T0 + 1000)
    attach(box, phone, ATTACHMENT, "arrêt de travail.pdf", at=T0 + 2000)
    say(box, phone, "Autre client", conv="client-bernard", peer="Mme Bernard", at=T0 + 3000)
    return box


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = build_box(tmp_path)
    yield b
    b.close()


def export(box: Box, out: Path, scope: ExportScope | None = None) -> Path:
    scope = scope or ExportScope("conversation", conversation_id=conversation_id(box))
    request = ExportRequest(scope, "me.durand", "Tribunal judiciaire de Lyon", "instance 24/123")
    export_bundle(box.archive, request, out)
    return out


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One export and one destruction certificate, built once for the tamper tests."""
    tmp = tmp_path_factory.mktemp("sealed")
    b = build_box(tmp)
    bundle = export(b, tmp / "export.zip")
    policy = b.archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    b.archive.write(assign_policy("contact", "Mme Bernard", int(policy), "admin"))
    result = retention.run(b.archive, T0 + 2 * DAY_MS, approver="dr.martin")
    assert result.destruction.certificate is not None
    cert = write_certificate_bundle(
        b.archive.conn, b.archive.signing_key, result.destruction.certificate.id, tmp / "cert.zip"
    )
    yield bundle, cert
    b.close()


def unzip(bundle: Path, where: Path) -> Path:
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(where)
        (root,) = {n.split("/")[0] for n in zf.namelist()}
    return where / root


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("which", [0, 1], ids=["export", "certificate"])
def test_verify_txt_commands_pass_with_the_real_tools(
    sealed: tuple[Path, Path], tmp_path: Path, which: int
) -> None:
    with zipfile.ZipFile(sealed[which]) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith("VERIFY.txt"))).decode()
    assert "sha256sum --quiet --strict -c MANIFEST.sha256" in text and "FRANÇAIS" in text
    found = command_lines(text)
    assert sum(c.startswith("openssl pkeyutl -verify") for c in found) == 3 + which
    assert "sh check_proofs.sh" in found and not any("python" in c for c in found)
    (zip_name,) = [c[2:] for c in found if c.startswith("Z=")]
    shutil.copyfile(sealed[which], tmp_path / zip_name)
    with zipfile.ZipFile(sealed[which]) as zf:
        pem = zf.read(next(n for n in zf.namelist() if n.endswith("/box.pem"))).decode()
    fingerprint = box_key_fingerprint(ed25519_public_key_from_pem(pem))
    lines = [c.replace(EXPECTED_PLACEHOLDER_EN, fingerprint) for c in found]
    done = run("set -e\n" + "\n".join(lines), tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    # A certificate adds its own signature and the later head over its own log entry.
    assert done.stdout.count("Signature Verified Successfully") == 3 + 2 * which
    assert done.stdout.count("ALL CHECKS PASSED") == 1 + which


def test_each_phone_signature_verifies_with_openssl(
    sealed: tuple[Path, Path], tmp_path: Path
) -> None:
    root = unzip(sealed[0], tmp_path)
    records = sorted((root / "records").glob("*.cbor"))
    assert len(records) == 3
    for cbor in records:
        meta = json.loads(cbor.with_suffix(".json").read_text(encoding="utf-8"))
        (root / "message.bin").write_bytes(b"strongroom-record-v1\x00" + cbor.read_bytes())
        done = run(
            f"openssl pkeyutl -verify -pubin -inkey {meta['device']['pem']} -rawin"
            f" -in message.bin -sigfile records/{cbor.stem}.sig",
            root,
        )
        assert "Signature Verified Successfully" in done.stdout, done.stderr


def test_export_content(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    report = verify_bundle(sealed[0])
    assert report.ok, report.problems
    assert (report.kind, report.records, report.attachments) == ("export", 3, 1)
    root = unzip(sealed[0], tmp_path)
    (attachment,) = (root / "attachments").iterdir()
    assert attachment.read_bytes() == ATTACHMENT
    assert attachment.name.endswith("-arrêt de travail.pdf")
    page = (root / "records.html").read_text(encoding="utf-8")
    assert "« arrêt de travail », ça presse" in page and "Autre client" not in page
    pdf = (root / "records.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and (b"DejaVu" in pdf) == DEJAVU_DIR.is_dir()

    text = pdf_words(pdf)  # what a judge reads: every exported message, nothing else
    assert "Tribunal judiciaire de Lyon" in text and "instance 24/123" in text
    assert "voici mon dossier : « arrêt de travail », ça presse." in text
    assert "Réponse sur deux lignes — œuvre, naïve, Noël" in text
    assert "arrêt de travail.pdf (150000 o)" in text
    assert "Autre client" not in text
    index = json.loads((root / "export.json").read_text(encoding="utf-8"))
    assert index["recipient"] == "Tribunal judiciaire de Lyon"
    assert index["reason"] == "instance 24/123"
    for cbor in (root / "records").glob("*.cbor"):
        assert cbor.with_suffix(".json").exists()


def test_export_is_an_audit_event_and_a_log_leaf(box: Box, tmp_path: Path) -> None:
    size = box.archive.log.size
    export(box, tmp_path / "e.zip")
    assert box.archive.log.size == size + 1
    actor, action, target, details = box.archive.conn.execute(
        "SELECT actor, action, target, details FROM audit_events ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert (actor, action) == ("me.durand", "export")
    assert target.startswith("conversation:")
    fields = json.loads(details)
    assert fields["recipient"] == "Tribunal judiciaire de Lyon" and fields["records"] == 3
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        manifest = next(n for n in zf.namelist() if n.endswith("MANIFEST.sha256"))
        import hashlib

        assert fields["manifest_sha256"] == hashlib.sha256(zf.read(manifest)).hexdigest()


def test_person_and_record_list_exports(box: Box, tmp_path: Path) -> None:
    person = verify_bundle(
        export(box, tmp_path / "p.zip", ExportScope("person", person="mme bernard"))
    )
    assert person.ok and person.records == 1
    ids = [int(i) for (i,) in box.archive.conn.execute("SELECT id FROM records LIMIT 2")]
    listed = verify_bundle(
        export(box, tmp_path / "r.zip", ExportScope("records", record_ids=tuple(ids)))
    )
    assert listed.ok and listed.records == 2
    with pytest.raises(NothingToExport):
        export(box, tmp_path / "n.zip", ExportScope("person", person="personne"))
    assert not (tmp_path / "n.zip").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_a_killed_exports_partial_is_removed_by_the_next_export(box: Box, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()  # exited and reaped: no process has its pid any more
    dead_pid = ended.pid
    stale = out_dir / f".e.zip.{dead_pid}.partial"
    stale.write_bytes(b"PK a complete plaintext bundle of a killed export")
    running = out_dir / f".e.zip.{os.getppid()}.partial"  # a live process's export in progress
    running.write_bytes(b"PK still being written")
    other = out_dir / f".other.zip.{dead_pid}.partial"  # another export's: not ours to judge
    other.write_bytes(b"PK")
    assert verify_bundle(export(box, out_dir / "e.zip")).ok
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(["e.zip", running.name, other.name])


def test_destroyed_records_are_left_out_but_counted(box: Box, tmp_path: Path) -> None:
    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "Mme Bernard", int(policy), "admin"))
    assert retention.run(box.archive, T0 + 5 * DAY_MS).destruction.destroyed == 1
    every = tuple(int(i) for (i,) in box.archive.conn.execute("SELECT id FROM records"))
    out = export(box, tmp_path / "all.zip", ExportScope("records", record_ids=every))
    report = verify_bundle(out)
    assert report.ok and report.records == 3
    root = unzip(out, tmp_path / "x")
    assert json.loads((root / "export.json").read_text())["destroyed_in_selection"] == 1
    scope = ExportScope("person", person="Mme Bernard")
    with pytest.raises(NothingToExport):
        export(box, tmp_path / "gone.zip", scope)


def test_certificate_bundle_content(sealed: tuple[Path, Path]) -> None:
    report = verify_bundle(sealed[1])
    assert report.ok, report.problems
    assert report.kind == "destruction-certificate" and report.records == 1
    assert verify_main([str(sealed[1])]) == 0


# -- tampering -------------------------------------------------------------------------

EXPORT_MEMBERS = [
    "VERIFY.txt",
    "MANIFEST.sha256",
    "MANIFEST.digest",
    "manifest.sig",
    "sth.txt",
    "sth.sig",
    "box.pem",
    "export.json",
    "records.html",
    "records.pdf",
    "check_proofs.sh",
    "records/*.cbor",
    "records/*.sig",
    "records/*.json",
    "proofs/*.leaf",
    "proofs/*.json",
    "proofs/*.path",
    "devices/*.pem",
    "attachments/*",
]
CERT_MEMBERS = [
    "VERIFY.txt",
    "MANIFEST.sha256",
    "MANIFEST.digest",
    "manifest.sig",
    "sth.txt",
    "sth.sig",
    "box.pem",
    "certificate.json",
    "certificate.sig",
    "check_proofs.sh",
    "proofs/*.leaf",
    "proofs/*.json",
    "proofs/*.path",
    "consistency/*.txt",
    "consistency/*.sig",
    "consistency/*.path",
    "later/*",  # the certificate's own log entry under a later head
]


def members(bundle: Path) -> list[str]:
    with zipfile.ZipFile(bundle) as zf:
        return [n.split("/", 1)[1] for n in zf.namelist()]


def rewrite(
    bundle: Path, out: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> Path:
    """Copy a bundle, replacing (or dropping, with None) members by relative name."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        root = src.namelist()[0].split("/")[0]
        for name in src.namelist():
            rel = name.split("/", 1)[1]
            if rel in change:
                if change[rel] is not None:
                    dst.writestr(name, change[rel])  # type: ignore[arg-type]
            else:
                dst.writestr(name, src.read(name))
        for rel, data in (add or {}).items():
            dst.writestr(f"{root}/{rel}", data)
    return out


def flip(data: bytes, where: int) -> bytes:
    return data[:where] + bytes([data[where] ^ 0x01]) + data[where + 1 :]


def test_the_patterns_cover_every_member(sealed: tuple[Path, Path]) -> None:
    for bundle, patterns in zip(sealed, (EXPORT_MEMBERS, CERT_MEMBERS), strict=True):
        for name in members(bundle):
            assert any(fnmatch.fnmatch(name, p) for p in patterns), name


@pytest.mark.parametrize(
    ("which", "pattern"),
    [(0, p) for p in EXPORT_MEMBERS] + [(1, p) for p in CERT_MEMBERS],
    ids=[f"export:{p}" for p in EXPORT_MEMBERS] + [f"certificate:{p}" for p in CERT_MEMBERS],
)
def test_a_flipped_byte_in_any_member_is_named(
    sealed: tuple[Path, Path], tmp_path: Path, which: int, pattern: str
) -> None:
    bundle = sealed[which]
    targets = [m for m in members(bundle) if fnmatch.fnmatch(m, pattern)]
    assert targets
    with zipfile.ZipFile(bundle) as zf:
        root = zf.namelist()[0].split("/")[0]
        contents = {m: zf.read(f"{root}/{m}") for m in targets}
    for name, data in contents.items():
        for where in sorted({0, len(data) // 2, len(data) - 1}):
            bad = rewrite(bundle, tmp_path / "bad.zip", {name: flip(data, where)})
            report = verify_bundle(bad)
            assert not report.ok, (name, where)
            assert name in report.failing_files(), (name, where, report.problems)


def test_missing_and_extra_members_are_named(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    bundle = sealed[0]
    victim = next(m for m in members(bundle) if m.startswith("records/") and m.endswith(".cbor"))
    report = verify_bundle(rewrite(bundle, tmp_path / "a.zip", {victim: None}))
    assert victim in report.failing_files()
    report = verify_bundle(rewrite(bundle, tmp_path / "b.zip", {}, {"records/extra.txt": b"x"}))
    assert "records/extra.txt" in report.failing_files()


def test_raw_byte_flips_in_the_zip_file_are_caught(
    sealed: tuple[Path, Path], tmp_path: Path
) -> None:
    data = sealed[0].read_bytes()
    for where in range(0, len(data), max(1, len(data) // 40)):
        bad = tmp_path / "raw.zip"
        bad.write_bytes(flip(data, where))
        assert not verify_bundle(bad).ok, where
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"not a zip")
    assert verify_bundle(garbage).problems[0].file == "garbage.zip"
    assert verify_main([str(garbage)]) == 1


def export_peak_memory(tmp_path: Path, attachment_size: int) -> int:
    box = new_box(tmp_path / str(attachment_size))
    try:
        phone = new_phone(box.archive)
        attach(box, phone, os.urandom(attachment_size), "scan.tiff", at=T0)
        scope = ExportScope("conversation", conversation_id=conversation_id(box))
        out = tmp_path / f"{attachment_size}.zip"
        tracemalloc.start()
        try:
            export_bundle(box.archive, ExportRequest(scope, "me", "patient", "accès"), out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert verify_bundle(out).attachments == 1
        return peak
    finally:
        box.close()


def test_attachments_are_streamed_not_loaded_whole(tmp_path: Path) -> None:
    small = export_peak_memory(tmp_path, 1000)
    big_size = 4 * 1024 * 1024
    big = export_peak_memory(tmp_path, big_size)
    # The PDF font dominates the baseline; a 4 MiB attachment must add far less.
    assert big - small < big_size // 4, (small, big)


def test_verify_txt_is_bilingual_and_names_the_fingerprint(sealed: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(sealed[0]) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith("VERIFY.txt"))).decode()
    assert "--- FRANÇAIS" in text and "--- ENGLISH" in text
    assert re.search(r"contient la clé [0-9a-f]{64}", text)
    assert re.search(r"holds the key [0-9a-f]{64}", text)
    assert "Empreinte de la clé de signature (exports scellés, SHA-256)" in text
    assert "Signing key fingerprint (sealed exports, SHA-256)" in text
    assert io.StringIO(text).readline().startswith("VÉRIFIER")


def test_a_photo_is_stored_and_a_text_deflated_and_both_verify(tmp_path: Path) -> None:
    """An already compressed attachment (a photo) is not deflated again: its member is
    about its own size, while the same bytes as a text file shrink. Both come out of
    unzip and verify-export intact."""
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive)
        data = b"Compte rendu, page 1. " * 5000  # compressible, so a skipped deflate shows
        attach(box, phone, data, "photo de l'ordonnance.jpg", at=T0)
        attach(box, phone, data, "notes.txt", at=T0 + 1000)
        out = export(box, tmp_path / "export.zip")
    finally:
        box.close()
    assert verify_bundle(out).attachments == 2
    with zipfile.ZipFile(out) as zf:
        (photo,) = [i for i in zf.infolist() if i.filename.endswith("ordonnance.jpg")]
        (text,) = [i for i in zf.infolist() if i.filename.endswith("-notes.txt")]
        assert zf.read(photo) == data and zf.read(text) == data
    assert photo.compress_size >= len(data)  # stored: not a byte spent on deflate
    assert text.compress_size < len(data) // 10
    tested = subprocess.run(["unzip", "-tq", str(out)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize(
    ("mime", "name", "stored"),
    [
        ("image/jpeg", "scan", True),
        ("application/octet-stream", "IMG_2041.HEIC", True),
        ("video/mp4", "audience", True),
        ("audio/x-wav", "dictée.wav", False),
        ("application/pdf", "arrêt.pdf", False),
        ("text/plain", "notes", False),
    ],
)
def test_already_compressed_is_told_by_type_or_extension(
    mime: str, name: str, stored: bool
) -> None:
    from strongroom.office.zip_stream import already_compressed

    assert already_compressed(mime, name) is stored
