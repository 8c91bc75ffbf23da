"""The recovery sheet: HTML print view and PDF (read back with pdftotext), FR and EN,
offered in the wizard only, never written to the box's disk."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from strongroom.box import Box
from strongroom.identity import entropy_to_words, new_entropy
from strongroom.web.i18n import translator
from strongroom.web.recovery_kit import KitSheet, kit_pdf
from strongroom.web.state import STATE
from strongroom.web.tls import ensure_certificate
from strongroom.web.tls_key import certificate_key_fingerprint
from web_helpers import ADMIN_PASSWORD, Client, csrf_of, login, new_box, web_app

WORD = re.compile(r'<span class="w">([^<]+)</span>')
POSITION = re.compile(r'name="word_(\d+)"')
TEXT = {
    "fr": {
        "title": "Fiche de secours Strongroom",
        "restore": "Comment restaurer",
        "fingerprint": "Empreinte du protocole (appairage des téléphones)",
        "date_month": "janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|"
        "novembre|décembre",
    },
    "en": {
        "title": "Strongroom recovery sheet",
        "restore": "How to restore",
        "fingerprint": "Protocol fingerprint (phone pairing)",
        "date_month": "January|February|March|April|May|June|July|August|September|"
        "October|November|December",
    },
}


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils", pytrace=False)
    path = tmp_path / "sheet.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    path.unlink()
    return " ".join(out.stdout.split())


async def post(client: Client, path: str, token: str, **fields: str) -> int:
    response = await client.post(path, data={**fields, "csrf_token": token}, allow_redirects=False)
    return response.status


async def start_wizard(client: Client, language: str) -> tuple[str, list[str]]:
    page = await client.get("/", allow_redirects=True)
    token = csrf_of(await page.text())
    await post(client, "/setup/language", token, language=language)
    await post(client, "/setup/create", token)
    words = WORD.findall(await (await client.get("/setup/words")).text())
    assert len(words) == 24
    return token, words


async def finish_wizard(client: Client, token: str, words: list[str]) -> None:
    form = await (await client.get("/setup/confirm")).text()
    answers = {f"word_{p}": words[int(p) - 1] for p in POSITION.findall(form)}
    assert await post(client, "/setup/confirm", token, **answers) == 303
    fields = {"username": "gerante", "password": ADMIN_PASSWORD, "password_again": ADMIN_PASSWORD}
    assert await post(client, "/setup/admin", token, **fields) == 303
    token = csrf_of(await (await client.get("/setup/practice")).text())
    assert (
        await post(
            client,
            "/setup/practice",
            token,
            practice_name="Cabinet Lætitia Brûlé",
            unlock_mode="attended",
        )
        == 303
    )


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("language", ["fr", "en"])
async def test_the_sheet_carries_the_words_fingerprint_date_and_instructions(
    tmp_path: Path, aiohttp_client: AiohttpClient, language: str
) -> None:
    text = TEXT[language]
    box = new_box(tmp_path / "data", ready=False)
    client = await aiohttp_client(web_app(box))
    token, words = await start_wizard(client, language)
    html = await (await client.get("/setup/kit")).text()
    assert WORD.findall(html) == words
    assert text["title"] in html and text["restore"] in html

    # During the words step: the practice is not named yet, a line is left to write it.
    early = pdf_text(await (await client.get("/setup/kit.pdf")).read(), tmp_path)
    assert text["title"] in early and "______" in early

    await finish_wizard(client, token, words)
    response = await client.get("/setup/kit.pdf")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    sheet = pdf_text(await response.read(), tmp_path)
    for number, word in enumerate(words, start=1):
        assert f"{number}. {word}" in sheet, word
    assert box.fingerprint is not None and box.fingerprint in sheet
    # Named as everywhere else (footer, /identity): the fingerprint phones check.
    assert text["fingerprint"] in " ".join(sheet.split())
    assert "Cabinet Lætitia Brûlé" in sheet
    assert re.search(rf"\d{{1,2}} ({text['date_month']})|({text['date_month']}) \d", sheet)
    assert text["restore"] in sheet

    # Nothing of the sheet was written to the box's disk.
    data = tmp_path / "data"
    assert files_containing(data, " ".join(words[:3]).encode()) == []
    assert list(data.rglob("*.pdf")) == []
    await client.close()
    await box.stop()


async def test_outside_the_wizard_nobody_can_print_the_words(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box: Box = new_box(tmp_path / "data")
    client = await aiohttp_client(web_app(box))
    await login(client, "admin", ADMIN_PASSWORD)
    assert (await client.get("/setup/kit.pdf", allow_redirects=False)).status == 404
    assert (await client.get("/setup/kit", allow_redirects=False)).status == 404
    await client.close()
    await box.stop()


def test_the_cli_writes_the_sheet_to_a_usb_key_never_into_the_box(tmp_path: Path) -> None:
    from test_cli_identity import PASSPHRASE, run_cli

    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    data = tmp_path / "box"
    inside = run_cli(
        "init",
        "--data",
        str(data),
        "--passphrase-file",
        str(secret),
        "--recovery-sheet",
        str(data / "sheet.pdf"),
    )
    assert inside.returncode == 2 and "must not be kept on the box" in inside.stderr
    assert not (data / "keystore.json").exists()

    usb = tmp_path / "usb"
    usb.mkdir()
    out = run_cli(
        "init",
        "--data",
        str(data),
        "--passphrase-file",
        str(secret),
        "--language",
        "en",
        "--recovery-sheet",
        str(usb / "sheet.pdf"),
    )
    assert out.returncode == 0, out.stderr
    words = [line.split(". ", 1)[1] for line in out.stdout.splitlines() if ". " in line[:4]]
    sheet = pdf_text((usb / "sheet.pdf").read_bytes(), tmp_path)
    assert "Strongroom recovery sheet" in sheet
    for number, word in enumerate(words, start=1):
        assert f"{number}. {word}" in sheet
    assert list(data.rglob("*.pdf")) == []
    assert "HTTPS public key" not in sheet  # this box never started: no certificate yet


def test_the_cli_sheet_carries_the_https_key_of_a_box_that_has_started(tmp_path: Path) -> None:
    """The appliance makes its certificate at its first start, before anyone runs
    `strongroom init`; the identity then has it issued again with the same key, so the
    key's fingerprint printed now is the one the browser will show."""
    from test_cli_identity import PASSPHRASE, run_cli

    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    data = tmp_path / "box"
    ensure_certificate(data / "tls", "strongroom")  # what the first start did
    key = certificate_key_fingerprint(data / "tls")
    assert key is not None
    usb = tmp_path / "usb"
    usb.mkdir()
    out = run_cli(
        "init", "--data", str(data), "--passphrase-file", str(secret), "--language", "fr",
        "--recovery-sheet", str(usb / "sheet.pdf"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sheet = pdf_text((usb / "sheet.pdf").read_bytes(), tmp_path)
    assert "Clé publique HTTPS (SHA-256, ne change pas)" in sheet
    assert key[:20] in sheet and "Elle reste la même quand le certificat" in sheet


@pytest.mark.parametrize(
    ("language", "note"),
    [
        ("fr", "Elle reste la même quand le certificat est émis à nouveau"),
        ("en", "It stays the same when the certificate is issued again"),
    ],
)
def test_a_sheet_with_the_https_key_fingerprint_says_what_to_compare_it_with(
    tmp_path: Path, language: str, note: str
) -> None:
    """The printed HTTPS key fingerprint comes with where to compare it and when another
    key is expected, so a browser warning naming another key is not taken for normal."""
    words = entropy_to_words(new_entropy(), "french" if language == "fr" else "english")
    key = "3f" * 32
    with_tls = KitSheet(words, "Cabinet", dt.date(2026, 12, 5), "ab" * 32, key)
    sheet = pdf_text(kit_pdf(with_tls, translator(language)), tmp_path)
    assert key[:20] in sheet and note in sheet
    plain = KitSheet(words, "Cabinet", dt.date(2026, 12, 5), "ab" * 32)  # served over http
    assert note not in pdf_text(kit_pdf(plain, translator(language)), tmp_path)


async def test_the_wizard_sheet_carries_the_https_key_fingerprint_never_the_certificates(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    """The certificate is issued again (same key) when the identity is made, minutes
    after the words step, and at each rename: its fingerprint on paper would soon be
    wrong. The key's is final from the first start, so the sheet carries it even at
    the words step, and never the certificate's."""
    box = new_box(tmp_path / "data", ready=False)
    client = await aiohttp_client(web_app(box))
    state = client.app[STATE]
    key = "4c" * 32
    first_run = ":".join(["1A"] * 32)  # the certificate's, before the identity
    state.tls_fingerprint, state.tls_key_fingerprint = first_run, key
    token, words = await start_wizard(client, "en")
    early = pdf_text(await (await client.get("/setup/kit.pdf")).read(), tmp_path)
    assert key[:20] in early and "HTTPS public key (SHA-256, stays the same)" in early
    assert first_run[:20] not in early and "HTTPS certificate (SHA-256)" not in early
    await finish_wizard(client, token, words)
    state.tls_fingerprint = ":".join(["2B"] * 32)  # issued again with the unique name
    sheet = pdf_text(await (await client.get("/setup/kit.pdf")).read(), tmp_path)
    assert key[:20] in sheet and "It stays the same when the certificate is issued" in sheet
    assert "2B:2B:2B" not in sheet
    page = await (await client.get("/setup/kit")).text()  # the print view says it too
    assert "The HTTPS public key" in page and key in page
    await client.close()
    await box.stop()
