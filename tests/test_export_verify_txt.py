"""VERIFY.txt's own command lines, run literally by /bin/sh in a clean directory whose
PATH holds only coreutils, openssl, unzip, sed and diff (no python), on a real
export and on tampered copies: every tampering must make a command fail."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.sealed import (
    BOX_PEM,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_SIG,
    STH_SIG,
    STH_TEXT,
    VERIFY_TXT,
    SealedBundleWriter,
    box_key_fingerprint,
)
from strongroom.office.verify_export import verify_bundle
from strongroom.office.verify_text import (
    EXPECTED_PLACEHOLDER_EN,
    EXPECTED_PLACEHOLDER_FR,
    command_lines,
)
from strongroom.proof.sth import SignedTreeHead, sign_tree_head
from test_office_support import T0, Box, attach, conversation_id, new_box, new_phone, say

TOOLS = (
    "sh", "unzip", "sha256sum", "openssl", "sort", "sed", "diff", "head", "tail", "wc",
    "cut", "base64", "od", "tr", "date", "cat", "mktemp", "rm", "mv",
)  # fmt: skip
ENVELOPE = {STH_TEXT, STH_SIG, BOX_PEM, VERIFY_TXT, MANIFEST, MANIFEST_DIGEST, MANIFEST_SIG}


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bin directory holding only the tools VERIFY.txt names."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run VERIFY.txt"
        (bin_dir / tool).symlink_to(found)
    assert not any("python" in p.name for p in bin_dir.iterdir())
    return bin_dir


class Exports:
    def __init__(self, box: Box, genuine: Path, other: Path) -> None:
        self.box = box
        self.genuine = genuine
        self.other = other  # another export of the same box (another conversation)

    @property
    def key(self) -> SigningKey:
        return self.box.archive.signing_key

    @property
    def fingerprint(self) -> str:
        return box_key_fingerprint(bytes(self.key.verify_key))


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exports]:
    tmp = tmp_path_factory.mktemp("exports")
    box = new_box(tmp)
    phone = new_phone(box.archive)
    say(box, phone, "Bonjour Maître, voici mon dossier « arrêt de travail ».", at=T0)
    attach(box, phone, os.urandom(20_000), "Expertise médicale (1).pdf", at=T0 + 1000)
    say(box, phone, "Autre client", conv="client-bernard", peer="Mme Bernard", at=T0 + 2000)
    request = ExportRequest(
        ExportScope("conversation", conversation_id=conversation_id(box)),
        "me.durand",
        "Tribunal judiciaire de Lyon",
        "RG 24/123",
    )
    genuine = export_bundle(box.archive, request, tmp / "dossier-martin.zip").path
    bernard = int(box.reader_scalar("SELECT id FROM conversations WHERE ref = 'client-bernard'"))
    box.clock.advance(5)
    other_request = ExportRequest(
        ExportScope("conversation", conversation_id=bernard), "me.durand", "Bâtonnier", "avis"
    )
    other = export_bundle(box.archive, other_request, tmp / "dossier-bernard.zip").path
    assert genuine is not None and other is not None
    yield Exports(box, genuine, other)
    box.close()


def members(bundle: Path) -> tuple[str, dict[str, bytes], bytes]:
    with zipfile.ZipFile(bundle) as zf:
        root = zf.namelist()[0].split("/")[0]
        return root, {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}, zf.comment


def rezip(bundle: Path, out: Path, change: dict[str, bytes | None], add: dict[str, bytes]) -> Path:
    """A copy re-zipped by someone without the key: members changed, dropped or added."""
    root, files, _ = members(bundle)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for rel, data in {**files, **add}.items():
            new = change.get(rel, data)
            if new is not None:
                dst.writestr(f"{root}/{rel}", new)
    return out


def reseal(
    bundle: Path,
    out: Path,
    key: SigningKey,
    head: SignedTreeHead,
    change: dict[str, bytes],
    verify_text: str | None = None,
) -> Path:
    """A copy re-signed (manifest, tree head, seal) with `key`: what a key holder can forge."""
    root, files, _ = members(bundle)
    writer = SealedBundleWriter(out, root, key, head)
    for rel, data in files.items():
        if rel not in ENVELOPE:
            writer.add_bytes(rel, change.get(rel, data))
    writer.finish(verify_text or files[VERIFY_TXT].decode("utf-8"))
    return out


def genuine_head(bundle: Path) -> SignedTreeHead:
    _, files, _ = members(bundle)
    _, size, stamp, root, _ = files[STH_TEXT].decode().split("\n")
    return SignedTreeHead(int(size), bytes.fromhex(root), int(stamp), files[STH_SIG])


def script(
    bundle: Path, fingerprint: str, section: str = "--- ENGLISH", skip: tuple[str, ...] = ()
) -> str:
    """VERIFY.txt's command lines, the expected fingerprint pasted where it says."""
    _, files, _ = members(bundle)
    lines = command_lines(files[VERIFY_TXT].decode("utf-8"), section)
    placeholder = EXPECTED_PLACEHOLDER_EN if "ENGLISH" in section else EXPECTED_PLACEHOLDER_FR
    assert f"EXPECTED={placeholder}" in lines and set(skip) <= set(lines)
    pasted = [line.replace(placeholder, fingerprint) for line in lines if line not in skip]
    # One marker before each line, so a failure names the line that caught it.
    quoted = [line.replace("'", "'\\''") for line in pasted]
    pairs = zip(quoted, pasted, strict=True)
    return "".join(f"printf '%s\\n' '@@ {q}'\n{line}\n" for q, line in pairs)


def run_verify(
    bundle: Path, tools: Path, where: Path, fingerprint: str, skip: tuple[str, ...] = ()
) -> tuple[int, str]:
    """Copy the bundle, under the name VERIFY.txt gives, into an empty dir; run the lines."""
    where.mkdir()
    _, files, _ = members(bundle)
    text = files[VERIFY_TXT].decode("utf-8")
    (zip_name,) = [line[2:] for line in command_lines(text) if line.startswith("Z=")]
    shutil.copyfile(bundle, where / zip_name)
    (where.parent / f"{where.name}.sh").write_text(
        script(bundle, fingerprint, skip=skip), encoding="utf-8"
    )
    done = subprocess.run(
        [str(tools / "sh"), "-e", str(where.parent / f"{where.name}.sh")],
        cwd=where,
        env={"PATH": str(tools), "HOME": str(where), "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def failing_line(output: str) -> str:
    return [line for line in output.splitlines() if line.startswith("@@ ")][-1][3:]


def test_the_genuine_export_passes_every_line(
    exports: Exports, tools: Path, tmp_path: Path
) -> None:
    code, output = run_verify(exports.genuine, tools, tmp_path / "ok", exports.fingerprint)
    assert code == 0, output
    assert "key.der: OK" in output
    assert output.count("Signature Verified Successfully") == 3  # seal, manifest, tree head
    assert "ALL CHECKS PASSED" in output
    assert "is signed by the phone key devices/D" in output
    assert "Expertise médicale (1).pdf is the file signed" in output
    assert "UTC" in output and ("CET" in output or "CEST" in output)  # the tree head's date


def test_the_french_lines_are_the_english_lines(exports: Exports) -> None:
    english = script(exports.genuine, exports.fingerprint)
    french = script(exports.genuine, exports.fingerprint, "--- FRANÇAIS")
    assert french == english


def test_nothing_passes_until_the_expected_fingerprint_is_pasted(
    exports: Exports, tools: Path, tmp_path: Path
) -> None:
    code, output = run_verify(exports.genuine, tools, tmp_path / "x", "0" * 64)
    assert code != 0
    assert failing_line(output) == 'echo "$EXPECTED  key.der" | sha256sum -c'


def tampered(exports: Exports, tmp: Path, how: str) -> tuple[Path, str]:
    """A tampered copy and the fingerprint the reader pastes (always the real box's)."""
    bundle = exports.genuine
    _, files, comment = members(bundle)
    record = sorted(n for n in files if n.startswith("records/") and n.endswith(".cbor"))[0]
    out = tmp / f"{how}.zip"
    if how == "flipped-byte":
        data = files[record]
        rezip(bundle, out, {record: data[:5] + bytes([data[5] ^ 1]) + data[6:]}, {})
    elif how == "added-file":
        rezip(bundle, out, {}, {"records/note.txt": b"added later"})
    elif how == "manifest-rewritten":
        # A changed record with its manifest line made to match, but no key to sign.
        data = files[record]
        changed = data[:5] + bytes([data[5] ^ 1]) + data[6:]
        old, new = (hashlib.sha256(d).hexdigest().encode() for d in (data, changed))
        rezip(bundle, out, {record: changed, MANIFEST: files[MANIFEST].replace(old, new)}, {})
    elif how == "removed-file":
        attachment = next(n for n in files if n.startswith("attachments/"))
        rezip(bundle, out, {attachment: None}, {})
    elif how == "record-from-another-export":
        _, theirs, _ = members(exports.other)
        stolen = {n: d for n, d in theirs.items() if n.startswith(("records/", "proofs/"))}
        assert not set(stolen) & set(files)
        rezip(bundle, out, {}, stolen)
    elif how == "container-only":
        # Every member byte for byte, re-zipped (other headers), the old seal copied at the end.
        rezip(bundle, out, {}, {})
        with zipfile.ZipFile(out, "a") as zf:
            zf.comment = comment
    elif how == "bad-phone-signature-box-resigned":
        signature = record.replace(".cbor", ".sig")
        bad = bytes([files[signature][0] ^ 1]) + files[signature][1:]
        reseal(bundle, out, exports.key, genuine_head(bundle), {signature: bad})
    elif how == "forgery-with-a-new-key":
        forger = SigningKey.generate()
        real = genuine_head(bundle)
        head = sign_tree_head(forger, real.tree_size, real.root_hash, real.timestamp_ms)
        page = files["records.html"].replace(b"Bonjour", b"Au revoir")
        text = (
            files[VERIFY_TXT]
            .decode()
            .replace(exports.fingerprint, box_key_fingerprint(bytes(forger.verify_key)))
        )
        reseal(bundle, out, forger, head, {"records.html": page}, text)
    else:
        raise AssertionError(how)
    return out, exports.fingerprint


CAUGHT_BY = {
    "flipped-byte": "sha256sum --quiet --strict -c MANIFEST.sha256",
    "added-file": "diff listed.txt found.txt",
    "manifest-rewritten": "sha256sum --quiet --strict -c MANIFEST.digest",
    "removed-file": "diff listed.txt found.txt",
    "record-from-another-export": "diff listed.txt found.txt",
    "container-only": 'openssl pkeyutl -verify -pubin -inkey "$R/box.pem" -rawin -in seal.txt'
    " -sigfile seal.sig",
    "bad-phone-signature-box-resigned": "sh check_proofs.sh",
    "forgery-with-a-new-key": 'echo "$EXPECTED  key.der" | sha256sum -c',
}

SEAL_LINES = (
    'N=$(( $(wc -c < "$Z") - 107 ))',
    '(echo strongroom-zip-v1; head -c "$N" "$Z" | sha256sum | cut -c1-64) > seal.txt',
    'tail -c 88 "$Z" | base64 -d > seal.sig',
    CAUGHT_BY["container-only"],
)


@pytest.mark.parametrize("how", sorted(CAUGHT_BY))
def test_every_tampering_fails_a_verify_txt_line(
    exports: Exports, tools: Path, tmp_path: Path, how: str
) -> None:
    bundle, fingerprint = tampered(exports, tmp_path, how)
    code, output = run_verify(bundle, tools, tmp_path / "run", fingerprint)
    assert code != 0, output
    line = failing_line(output)
    # Re-zipping without the key breaks the container seal first; a key holder's
    # re-signed copy gets past it and is caught by the later, specific check.
    assert line in (CAUGHT_BY[how], *SEAL_LINES, 'unzip -q "$Z"'), output
    assert not verify_bundle(bundle).ok


@pytest.mark.parametrize(
    "how",
    [
        "flipped-byte",
        "added-file",
        "removed-file",
        "record-from-another-export",
        "manifest-rewritten",
    ],
)
def test_each_content_tampering_is_caught_even_without_the_seal_lines(
    exports: Exports, tools: Path, tmp_path: Path, how: str
) -> None:
    """The manifest and file-list steps stand on their own, not only behind the seal."""
    bundle, fingerprint = tampered(exports, tmp_path, how)
    code, output = run_verify(bundle, tools, tmp_path / "run", fingerprint, skip=SEAL_LINES)
    assert code != 0, output
    assert failing_line(output) == CAUGHT_BY[how], output


def test_the_phone_signature_check_is_what_catches_a_box_resigned_bad_signature(
    exports: Exports, tmp_path: Path
) -> None:
    """Everything the box signs is consistent; only the phone's signature is wrong."""
    bundle, _ = tampered(exports, tmp_path, "bad-phone-signature-box-resigned")
    _, files, _ = members(exports.genuine)
    record = sorted(n for n in files if n.startswith("records/") and n.endswith(".cbor"))[0]
    report = verify_bundle(bundle)
    assert not report.ok
    assert report.failing_files() == {record.replace(".cbor", ".sig")}, report.problems
    assert "phone's signature" in report.problems[0].message


def test_two_bundles_come_from_one_append_only_log(
    exports: Exports, tools: Path, tmp_path: Path
) -> None:
    """The later export proves its log extends the earlier export's signed head."""
    _, first, _ = members(exports.genuine)
    _, later, _ = members(exports.other)
    size = int(first[STH_TEXT].split(b"\n")[1])
    assert later[f"consistency/S{size:010d}.txt"] == first[STH_TEXT]  # the documented cmp
    code, output = run_verify(exports.other, tools, tmp_path / "ok", exports.fingerprint)
    assert code == 0, output
    assert f"extends the earlier head consistency/S{size:010d}.txt" in output
    assert verify_bundle(exports.other).consistency == 1


def test_a_forked_log_fails_the_consistency_check(
    exports: Exports, tools: Path, tmp_path: Path
) -> None:
    """A box that rewrote history cannot prove the extension, even signing everything."""
    _, later, _ = members(exports.other)
    (path,) = [n for n in later if n.startswith("consistency/") and n.endswith(".path")]
    forked = bytes([later[path][0] ^ 1]) + later[path][1:]
    bundle = reseal(exports.other, tmp_path / "forked.zip", exports.key,
                    genuine_head(exports.other), {path: forked})  # fmt: skip
    code, output = run_verify(bundle, tools, tmp_path / "run", exports.fingerprint)
    assert code != 0 and failing_line(output) == "sh check_proofs.sh", output
    assert "not a signed head this log is proven to extend" in output
    report = verify_bundle(bundle)
    assert report.failing_files() == {path.replace(".path", ".txt")}, report.problems
