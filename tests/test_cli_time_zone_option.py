"""`--time-zone` names a zone the box knows, or the command is refused (exit 2, FR/EN
message) before anything is read or written: the days were silently read in Paris."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from strongroom.office.migrations import ensure_office_schema
from test_cli_exports import strongroom
from web_helpers import ADMIN_PASSWORD, new_box

DAY = "2026-10-25"


async def test_an_unknown_time_zone_is_refused_and_nothing_is_held(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    box = new_box(tmp_path / "data")
    ensure_office_schema(box.require_archive().conn)
    await box.stop()
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    common = ["--data", str(box.config.data_dir), "--passphrase-file", str(secret)]
    days = ["--from", DAY, "--to", DAY]

    for zone in ("Mars/Olympus", "Europe", "../etc/passwd"):
        held = await asyncio.to_thread(
            strongroom, "hold", "add", *days, "--reason", "x", "--time-zone", zone, *common
        )
        assert held.returncode == 2, (zone, held.stderr)
        assert "fuseau horaire inconnu / unknown time zone" in held.stderr
        assert repr(zone) in held.stderr
    audit = await asyncio.to_thread(strongroom, "audit", *days, "--time-zone", "Paris", *common)
    assert audit.returncode == 2 and "unknown time zone: 'Paris'" in audit.stderr
    for limit in ("0", "-5", "1001", "dix"):  # refused, not read as 200 or 1
        audit = await asyncio.to_thread(strongroom, "audit", "--limit", limit, *common)
        assert audit.returncode == 2 and "not a number from 1 to 1000" in audit.stderr, limit
    out = tmp_path / "out.zip"
    export = await asyncio.to_thread(
        strongroom, "export", "--person", "M. Martin", "--out", str(out), *days,
        "--recipient", "TJ", "--reason", "x", "--time-zone", "Paris", *common,
    )  # fmt: skip
    assert export.returncode == 2 and "unknown time zone: 'Paris'" in export.stderr
    assert not out.exists()

    listed = await asyncio.to_thread(strongroom, "hold", "list", *common, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["holds"] == []  # nothing was placed
    # A known zone is taken; the holds list shows the practice's zone (Paris), where
    # New York's 25 Oct is no whole day: its exact date-times.
    known = ["--time-zone", "America/New_York", *common, "--json"]
    held = await asyncio.to_thread(strongroom, "hold", "add", *days, "--reason", "x", *known)
    assert held.returncode == 0, held.stderr
    shown = ["2026-10-25 05:00:00", "2026-10-26 04:59:59.999", "Europe/Paris"]
    assert json.loads(held.stdout)["hold"]["days"] == shown
