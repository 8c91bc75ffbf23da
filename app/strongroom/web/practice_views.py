"""Wizard step 4: the practice's name, the backup drive, how the box unlocks.

Drives are chosen from those actually plugged in (drives.py), never typed as
Linux paths: the backup drive receives the nightly encrypted copies, and for
unattended unlock the key file is written on a drive picked from the same list.
A path can still be typed under "Another location" (a share, an unusual mount).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from strongroom.identity import WrongPassphrase
from strongroom.unlock import DEFAULT_KEYFILE, choose_attended, choose_unattended
from strongroom.web import settings, setup_retention
from strongroom.web.auth import ADMIN, require_role
from strongroom.web.drives import BACKUP_DIR_NAME, KEYFILE_NAME, Drive, chosen, removable_drives
from strongroom.web.forms import text_field
from strongroom.web.render import render, translator_of
from strongroom.web.state import audit, state_of, submit

routes = web.RouteTableDef()


async def plugged_drives(request: web.Request) -> list[Drive]:
    state = state_of(request)
    return await asyncio.to_thread(
        removable_drives, state.drive_roots, mounts_only=state.drives_mounts_only
    )


@dataclass(frozen=True)
class UnlockChoiceForm:
    """The unlock-mode fieldset (macros.html unlock_choice), as posted.

    The create path asks it with the practice name, the restore path once the
    backup is restored; both read, apply and audit it the same way.
    """

    mode: str = "attended"
    keyfile: str = ""
    passphrase: str = ""
    drive: str = ""  # the listed drive the key file goes on, if one was picked

    @classmethod
    def posted(cls, form: Any, drives: list[Drive] | None = None) -> UnlockChoiceForm:
        mode = "unattended" if text_field(form, "unlock_mode") == "unattended" else "attended"
        keyfile = text_field(form, "keyfile").strip()
        picked = chosen(drives or [], text_field(form, "keyfile_drive"))
        if picked is not None:
            keyfile = str(picked.path / KEYFILE_NAME)
        drive = str(picked.path) if picked else ""
        return cls(mode, keyfile, text_field(form, "unlock_passphrase"), drive)

    def context(self) -> dict[str, Any]:
        return {
            "unlock_mode": self.mode,
            "keyfile": "" if self.drive else (self.keyfile or str(DEFAULT_KEYFILE)),
            "keyfile_drive": self.drive,
        }

    async def apply(self, request: web.Request) -> str | None:
        """Record the unlock mode; return why it was refused (translated), or None."""
        return await asyncio.to_thread(self._apply, request)

    async def audit(self, request: web.Request) -> None:
        keyfile = self.keyfile if self.mode == "unattended" else None
        details = {"mode": self.mode, "keyfile": keyfile}
        await audit(request, "settings.change", "unlock_mode", details)

    def _apply(self, request: web.Request) -> str | None:
        translate = translator_of(request)
        config = state_of(request).box.config
        if self.mode != "unattended":
            choose_attended(config)
            return None
        path = Path(self.keyfile)
        if not path.is_absolute() or ".." in path.parts:
            return translate("Choose the USB key that will hold the key file.")
        if not path.parent.is_dir():
            return translate("Nothing is mounted there: plug in the USB key and try again.")
        try:
            choose_unattended(config, self.passphrase, path)
        except WrongPassphrase:
            return translate("Wrong passphrase.")
        except OSError:
            return translate("The key file cannot be written there.")
        return None


def _practice_context(
    drives: list[Drive],
    error: str | None,
    name: str = "",
    choice: UnlockChoiceForm | None = None,
    backup_drive: str = "",
) -> dict[str, Any]:
    choice = choice or UnlockChoiceForm()
    return {
        "step": 4,
        "error": error,
        "practice_name": name,
        "drives": drives,
        "backup_drive": backup_drive,
        **choice.context(),
    }


@routes.get("/setup/practice")
@require_role(ADMIN)
async def setup_practice_form(request: web.Request) -> web.StreamResponse:
    drives = await plugged_drives(request)
    context = {**_practice_context(drives, None), **await setup_retention.choices(request)}
    return render(request, "setup_practice.html", context)


@routes.post("/setup/practice")
@require_role(ADMIN)
async def setup_practice(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    drives = await plugged_drives(request)
    name = " ".join(text_field(form, "practice_name").split())
    choice = UnlockChoiceForm.posted(form, drives)
    backup = chosen(drives, text_field(form, "backup_drive"))
    backup_posted = str(backup.path) if backup else ""

    async def refuse(message: str) -> web.Response:
        context = _practice_context(drives, message, name, choice, backup_posted)
        context |= await setup_retention.choices(request, form)
        return render(request, "setup_practice.html", context, status=400)

    if not 1 <= len(name) <= settings.MAX_VALUE_CHARS:
        return await refuse(translator_of(request)("Please give the practice a name."))
    # A tampered retention choice is refused before the step changes anything.
    tampered = await setup_retention.refusal(request, form)
    if tampered is not None:
        return await refuse(tampered)
    target: Path | None = None
    if backup is not None:
        target = backup.path / BACKUP_DIR_NAME
        try:
            await asyncio.to_thread(target.mkdir, exist_ok=True)
        except OSError:
            return await refuse(translator_of(request)("The backup drive cannot be written to."))
    refused = await choice.apply(request)
    refused = refused or await setup_retention.apply_default(request, form)
    if refused is not None:
        return await refuse(refused)
    await submit(request, settings.set_setting_op(settings.PRACTICE_NAME, name))
    await audit(request, "settings.change", settings.PRACTICE_NAME, {"value": name})
    if target is not None:
        await submit(request, settings.set_setting_op(settings.BACKUP_TARGET, str(target)))
        await audit(request, "settings.change", settings.BACKUP_TARGET, {"value": str(target)})
    await choice.audit(request)
    raise web.HTTPSeeOther("/setup/done")
