"""Onboarding: no menu until the wizard ends, a "what next" page, and a dashboard
checklist that ticks itself from what the archive holds, until everything is done."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import new_phone
from strongroom.office.policies import Duration, PolicySpec, create_policy
from strongroom.web.settings import BACKUP_TARGET, set_setting_op
from web_helpers import ADMIN_PASSWORD, Client, csrf_of, new_box, web_app

WORD = re.compile(r'<span class="w">([^<]+)</span>')
POSITION = re.compile(r'name="word_(\d+)"')


async def post(client: Client, path: str, token: str, **fields: str) -> int:
    response = await client.post(path, data={**fields, "csrf_token": token}, allow_redirects=False)
    return response.status


def todo(html: str) -> list[str]:
    return re.findall(r'<li class="todo" data-step="([a-z_]+)">', html)


async def test_the_menu_waits_for_the_wizard_and_the_checklist_guides(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box = new_box(tmp_path / "data", ready=False)
    client = await aiohttp_client(web_app(box))
    token = csrf_of(await (await client.get("/", allow_redirects=True)).text())
    await post(client, "/setup/language", token, language="fr")
    await post(client, "/setup/create", token)
    words = WORD.findall(await (await client.get("/setup/words")).text())
    form = await (await client.get("/setup/confirm")).text()
    answers = {f"word_{p}": words[int(p) - 1] for p in POSITION.findall(form)}
    await post(client, "/setup/confirm", token, **answers)
    fields = {"username": "gerante", "password": ADMIN_PASSWORD, "password_again": ADMIN_PASSWORD}
    assert await post(client, "/setup/admin", token, **fields) == 303

    # Logged in as admin at step 4: still no menu, even on a page reached by URL.
    practice = await (await client.get("/setup/practice")).text()
    assert "<nav" not in practice
    assert "<nav" not in await (await client.get("/dashboard")).text()
    token = csrf_of(practice)
    await post(
        client, "/setup/practice", token, practice_name="Cabinet Durand", unlock_mode="attended"
    )
    done = await (await client.get("/setup/done")).text()
    assert "Et maintenant" in done and "<nav" in done
    assert todo(done) == ["backup", "phone", "retention", "second_admin"]
    assert "Il reste 4\u00a0étapes." in done

    dashboard = await (await client.get("/dashboard")).text()
    assert "Premiers pas" in dashboard and todo(dashboard) == todo(done)

    archive = box.require_archive()
    new_phone(archive)
    archive.write(set_setting_op(BACKUP_TARGET, str(tmp_path / "usb")))
    spec = PolicySpec("Dossiers clients", Duration(5, "years"), "record_date", "destroy")
    archive.write(create_policy(spec, "gerante"))
    dashboard = await (await client.get("/dashboard")).text()
    assert todo(dashboard) == ["second_admin"]
    assert "Il reste 1\u00a0étape." in dashboard

    token = csrf_of(dashboard)
    assert (
        await post(
            client, "/users", token, username="bruno", password="Bruno garde 2 clés", role="admin"
        )
        == 303
    )
    dashboard = await (await client.get("/dashboard")).text()
    assert "Premiers pas" not in dashboard  # all done: the checklist is gone
    await client.close()
    await box.stop()
