"""The UI reads well in French and English: plurals, French typography and units,
codes and audit events by their names rather than their stored values."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.web.i18n import french_typography, translator
from web_helpers import ADMIN_PASSWORD, login, new_box, web_app

NBSP, NNBSP = "\u00a0", "\u202f"


@pytest.fixture
async def seeded(tmp_path: Path, aiohttp_client) -> tuple[Box, TestClient]:  # type: ignore[misc]
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="claire", name="Pixel de Claire")
    archive.write(writes.store_record(message(key, "seul", conv="un"), device_id, "claire"))
    for n in range(2):
        record = message(key, f"deux {n}", conv="deux")
        archive.write(writes.store_record(record, device_id, "claire"))
    client = await aiohttp_client(web_app(box))
    await login(client, "admin", ADMIN_PASSWORD)
    yield box, client
    await box.stop()


async def text_of(client: TestClient, path: str, language: str) -> str:
    response = await client.get(path, headers={"Cookie": f"lang={language}"})
    return html_lib.unescape(await response.text())


async def test_plurals_follow_the_count_in_both_languages(seeded) -> None:
    _box, client = seeded
    french = await text_of(client, "/archive", "fr")
    assert "1\u00a0message ·" in french and "2\u00a0messages ·" in french
    assert "1\u00a0messages" not in french
    assert "3\u00a0enregistrements" in french  # count and unit held together
    english = await text_of(client, "/archive", "en")
    assert "1 message ·" in english and "2 messages ·" in english
    # French counts 0 and 1 as singular, English only 1.
    records = ("%(num)s record", "%(num)s records")
    assert translator("fr").ngettext(*records, 0) == "0\u00a0enregistrement"
    assert translator("en").ngettext(*records, 0) == "0 records"


async def test_french_typography_and_units(seeded) -> None:
    _box, client = seeded
    dashboard = await text_of(client, "/dashboard", "fr")
    assert f"Empreinte du protocole (appairage des téléphones){NBSP}:" in dashboard
    assert any(f"{NBSP}{unit}" in dashboard for unit in ("Gio", "Mio", "Kio", "Tio"))
    assert "GiB" not in dashboard and "MiB" not in dashboard
    english = await text_of(client, "/dashboard", "en")
    assert "Protocol fingerprint (phone pairing):" in english
    assert french_typography("Vraiment ? Oui ! Ensuite : fin ; à 10:30, http://x") == (
        f"Vraiment{NNBSP}? Oui{NNBSP}! Ensuite{NBSP}: fin{NNBSP}; à 10:30, http://x"
    )


async def test_codes_and_audit_events_are_named(seeded) -> None:
    _box, client = seeded
    devices = await text_of(client, "/devices", "fr")
    assert "collaborateur" in devices and ">staff<" not in devices
    assert "appairage de test" in devices
    audit = await text_of(client, "/audit", "fr")
    assert "Connexion" in audit  # the "login" event
    assert f"depuis{NBSP}: 127.0.0.1" in audit  # its JSON details, labelled
    assert '{"from"' not in audit
    english = await text_of(client, "/audit", "en")
    assert "Logged in" in english and "from: 127.0.0.1" in english


async def test_the_record_page_names_things_instead_of_showing_ids(seeded) -> None:
    _box, client = seeded
    page = await text_of(client, "/archive/records/1", "fr")
    heading = page.split("<h1", 1)[1].split("</h1>", 1)[0]
    assert "Maître Durand" in heading and "#1" not in heading
    assert "claire ↔ un" in page and "↔ —" not in page


async def test_audit_targets_are_named(seeded) -> None:
    box, client = seeded
    await box.revoke_device(1, "admin", "perdu")
    audit = await text_of(client, "/audit", "fr")
    rows = audit.split("<tbody>", 1)[1].split("<tr>")
    row = next(line for line in rows if "device.revoke" in line)
    assert "<td>Pixel de Claire</td>" in row
    assert "<td>1</td>" not in row
