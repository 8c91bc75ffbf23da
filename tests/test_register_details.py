"""The art. 30 register names its controller and DPO: set on the web page (admins) or by
`strongroom register-details`, shown by the register in HTML and PDF."""

from __future__ import annotations

import asyncio
import html
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from e2e_helpers import prepare_data_dir
from strongroom.archive import writes
from strongroom.web.state import STATE
from web_helpers import ADMIN_PASSWORD, AUDITOR_PASSWORD, Client, csrf_of, login, new_box, web_app


async def test_an_admin_names_the_controller_and_dpo_on_the_web(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
) -> None:
    box = new_box(tmp_path / "data")
    try:
        client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
        await login(client, "auditeur", AUDITOR_PASSWORD)
        assert (await client.get("/report/details")).status == 403
        await client.post(
            "/logout",
            data={"csrf_token": csrf_of(await (await client.get("/report/details")).text())},
        )
        client2: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
        await login(client2, "admin", ADMIN_PASSWORD)
        register = await (await client2.get("/report")).text()
        assert 'href="/report/details"' in register
        page = await (await client2.get("/report/details")).text()
        assert "Délégué à la protection des données (nom et contact)" in page
        form = {
            "csrf_token": csrf_of(page),
            "practice_name": "Cabinet Durand & associés",
            "register_controller_address": "12 quai Saint-Antoine, 69002 Lyon",
            "register_dpo": "Mme Leroy, dpo@cabinet-durand.fr",
        }
        saved = await (await client2.post("/report/details", data=form)).text()
        assert "Informations du registre enregistrées." in saved
        register = html.unescape(await (await client2.get("/report")).text())
        for value in form.values():
            if value != form["csrf_token"]:
                assert value in register, value

        # The practice's time zone: a wrong one is refused, a right one shows in exports.
        page = await (await client2.get("/report/details")).text()
        form |= {"csrf_token": csrf_of(page), "time_zone": "Mars/Olympus"}
        refused = await (await client2.post("/report/details", data=form)).text()
        assert "Fuseau horaire inconnu" in refused
        form |= {"csrf_token": csrf_of(refused), "time_zone": "America/New_York"}
        await client2.post("/report/details", data=form)
        archive = box.require_archive()
        device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel")
        record = message(key, "Bonjour", at=1_700_000_000_000, peer="M. Martin")
        archive.write(writes.store_record(record, device_id, "maitre.durand"))
        exports = await (await client2.get("/exports")).text()
        start = {"kind": "conversation", "conversation": "1", "recipient": "Cour"}
        start |= {"reason": "RG", "csrf_token": csrf_of(exports)}
        job_path = (await client2.post("/exports", data=start, allow_redirects=False)).headers[
            "Location"
        ]
        await client2.app[STATE].jobs.wait(job_path.rsplit("/", 1)[1])
        bundle = await (await client2.get(f"{job_path}/download")).read()
        with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
            page_bytes = zf.read(next(n for n in zf.namelist() if n.endswith("records.html")))
        # 1_700_000_000_000 ms = 2023-11-14 22:13:20 UTC = 17:13:20 in New York
        assert "14/11/2023 17:13:20 (America/New_York)" in html.unescape(page_bytes.decode())
    finally:
        await box.stop()


def strongroom(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "strongroom", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def test_register_details_from_the_cli_reach_the_register(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    secret = tmp_path / "passphrase"
    await asyncio.to_thread(secret.write_text, ADMIN_PASSWORD + "\n", encoding="utf-8")
    common = ["--data", str(config.data_dir), "--passphrase-file", str(secret)]
    # No option: a look. It writes nothing (it was a register.details audit event) and
    # names the zone the practice's days are read in until one is set.
    shown = await asyncio.to_thread(strongroom, "register-details", *common)
    assert shown.returncode == 0, shown.stderr
    assert "time zone: Europe/Paris (par défaut / by default)" in shown.stdout
    trail = await asyncio.to_thread(strongroom, "audit", *common, "--json")
    assert [e["action"] for e in json.loads(trail.stdout)["events"]] == []
    done = await asyncio.to_thread(
        strongroom, "register-details", *common, "--dpo", "M. Petit, 01 02 03 04 05"
    )
    assert done.returncode == 0, done.stderr
    assert "Délégué à la protection des données / DPO: M. Petit, 01 02 03 04 05" in done.stdout
    trail = await asyncio.to_thread(strongroom, "audit", *common, "--json")
    assert [e["action"] for e in json.loads(trail.stdout)["events"]] == ["register.details"]
    wrong = await asyncio.to_thread(strongroom, "register-details", *common, "--zone", "Mars/X")
    assert wrong.returncode == 2 and "unknown time zone" in wrong.stderr
    out = tmp_path / "registre.pdf"
    done = await asyncio.to_thread(strongroom, "report", *common, "--out", str(out))
    assert done.returncode == 0, done.stderr
    command = ["pdftotext", "-enc", "UTF-8", str(out), "-"]
    text = (
        await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True)
    ).stdout.decode()
    assert "M. Petit, 01 02 03 04 05" in " ".join(text.split())
