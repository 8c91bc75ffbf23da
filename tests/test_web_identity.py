"""The Identity page: the two fingerprints, each labelled for its use, the signing one
equal to what openssl computes from the box.pem the page offers (and every sealed
export holds); the footer of every page uses the same labels."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from strongroom.box import Box
from strongroom.office.sealed import box_key_fingerprint
from web_helpers import ARCHIVIST_PASSWORD, AUDITOR_PASSWORD, Client, login, new_box, web_app

SIGNING_FR = "Empreinte de la clé de signature (exports scellés, SHA-256)"
PROTOCOL_FR = "Empreinte du protocole (appairage des téléphones)"


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data")
    yield box
    await box.stop()


async def test_identity_page_shows_the_openssl_fingerprint_beside_the_phones_one(
    box: Box,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> None:
    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(client, "auditeur", AUDITOR_PASSWORD)
    page = await (await client.get("/identity")).text()
    assert box.keys is not None
    signing = box_key_fingerprint(box.keys.signing_public)
    assert f"<h2>{SIGNING_FR}</h2>" in page.replace("&#39;", "'")
    assert f'data-fingerprint="signing">{signing}<' in page
    assert f"<h2>{PROTOCOL_FR}</h2>" in page
    assert f'data-fingerprint="protocol">{box.fingerprint}<' in page
    assert 'href="/identity"' in page  # in the menu and the footer

    pem = await client.get("/identity/box.pem")
    assert pem.status == 200
    (tmp_path / "box.pem").write_bytes(await pem.read())
    printed = await asyncio.to_thread(
        subprocess.run,
        "openssl pkey -pubin -in box.pem -outform DER | sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.split()[0] == signing


async def test_every_footer_names_both_fingerprints_with_the_same_labels(
    box: Box,
    aiohttp_client: AiohttpClient,
) -> None:
    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    assert box.keys is not None
    signing = box_key_fingerprint(box.keys.signing_public)
    for path in ("/archive", "/exports"):
        page = await (await client.get(path)).text()
        footer = page.split('<footer class="footer">', 1)[1]
        assert SIGNING_FR in footer and signing in footer, path
        assert PROTOCOL_FR in footer and str(box.fingerprint) in footer, path
        assert "Empreinte de la clé du boîtier" not in footer  # the old, ambiguous label
