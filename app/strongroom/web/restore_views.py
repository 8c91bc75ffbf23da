"""First-run restore: the 24 words, and optionally a backup that brings the archive back.

Words only: the identity comes back (same key), the archive starts empty, and
the wizard goes on to the first administrator. Words + backup directory: the
visitor chooses the box passphrase, then a background job restores the newest
set (`strongroom.office.restore`) and seals the identity; the accounts come
back with the archive, so the wizard ends at the login page.

The data dir is not empty at this point (the TLS certificate, the web job
dir, maybe box.toml): the set is restored into a staging directory inside it
and moved into place once verified (`strongroom.office.restore_staged`, shared
with `strongroom restore-backup`). Any failure before that leaves the data dir
as it was: the wizard can be retried.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.identity import WordsError, words_to_entropy
from strongroom.office import restore
from strongroom.office.errors import (
    BackupCorrupted,
    NotABackup,
    RestoreTargetNotEmpty,
    WrongWords,
)
from strongroom.office.restore_staged import (
    DataDirHoldsArchive,
    RestoreRunning,
    SetUpMeanwhile,
    holds_archive,
    move_into_place,
    new_staging,
    restore_lock,
    restore_to_staging,
)
from strongroom.unlock import BoxPhase
from strongroom.web.auth import client_address
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import Job, JobBody, JobResult, JobState, Progress
from strongroom.web.mounts import NOT_MOUNTED, parse_directory
from strongroom.web.practice_views import UnlockChoiceForm
from strongroom.web.render import render, translator_of
from strongroom.web.setup_views import PASSPHRASE_ERRORS, WORDS_ERRORS, _wizard
from strongroom.web.state import state_of
from strongroom.web.users import passphrase_problem

routes = web.RouteTableDef()

RESTORE_KIND = "restore"
RESTORE_OWNER = "setup"  # nobody is logged in yet: the job belongs to the wizard session
# The page that follows a restore job; reachable once the box is READY (middleware).
OUTCOME_PATH = "/setup/restored"

NOT_A_BACKUP = N_("This directory holds no Strongroom backup.")
RESTORE_ERRORS = {
    "wrong_words": N_(
        "These 24 words do not open this backup: it was made by another box, or a word is "
        "wrong. Nothing was changed on this box."
    ),
    "not_a_backup": N_("This directory holds no Strongroom backup. Nothing was changed."),
    "corrupted": N_(
        "The backup is damaged or incomplete (truncated, altered or missing files). "
        "Nothing was changed on this box."
    ),
    "not_empty": N_(
        "This box's data directory already holds an archive: a restore never overwrites one. "
        "Nothing was changed."
    ),
    "set_up_meanwhile": N_("The box was set up meanwhile, from another page. Nothing was changed."),
    "restore_running": N_(
        "Another restore (from a terminal or another page) is running on this box. "
        "Nothing was changed."
    ),
    "failed": N_("The restore failed. Nothing was changed on this box."),
}

# Where each stage of restore.run sits on the job's progress bar.
_STAGES = {"database": (0.02, 0.4), "blobs": (0.4, 0.85), "verify": (0.85, 0.95)}


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, WrongWords):
        return "wrong_words"
    if isinstance(exc, NotABackup):
        return "not_a_backup"
    if isinstance(exc, BackupCorrupted):
        return "corrupted"
    if isinstance(exc, RestoreTargetNotEmpty | DataDirHoldsArchive):
        return "not_empty"
    if isinstance(exc, SetUpMeanwhile):
        return "set_up_meanwhile"
    if isinstance(exc, RestoreRunning):
        return "restore_running"
    return "failed"


def check_backup_dir(text: str, config: BoxConfig) -> Path | str:
    """The backup directory typed in the wizard, or the msgid of why it is refused (blocking)."""
    checked = parse_directory(text)
    if isinstance(checked, str):
        return checked
    try:
        restore.find_set(checked)
    except NotABackup:
        return NOT_A_BACKUP
    except OSError:  # unreadable (a share that went away): as good as not mounted
        return NOT_MOUNTED
    if holds_archive(config):
        return RESTORE_ERRORS["not_empty"]
    return checked


def _running_restore(jobs: list[Job]) -> Job | None:
    return next((j for j in jobs if j.kind == RESTORE_KIND and j.state is JobState.RUNNING), None)


# -- the form: 24 words and, optionally, the backup directory --------------------------------


def _restore_form(
    request: web.Request, *, error: str | None, typed: str, backup_dir: str, status: int = 200
) -> web.Response:
    context = {"step": 2, "error": error, "typed": typed, "backup_dir": backup_dir}
    return render(request, "setup_restore.html", context, status=status)


@routes.get("/setup/restore")
async def setup_restore_form(request: web.Request) -> web.StreamResponse:
    return _restore_form(request, error=None, typed="", backup_dir="")


@routes.post("/setup/restore")
async def setup_restore(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    typed = text_field(form, "words")
    backup_text = text_field(form, "backup_dir", 2000).strip()
    translate = translator_of(request)
    try:
        entropy = words_to_entropy(typed)
    except WordsError as exc:
        message = translate(
            WORDS_ERRORS.get(exc.reason, WORDS_ERRORS["bad_checksum"]),
            count=len(typed.split()),
            position=exc.position or "",
            word=exc.word or "",
        )
        return _restore_form(
            request, error=message, typed=typed, backup_dir=backup_text, status=400
        )
    wizard = _wizard(request)
    if not backup_text:
        wizard.update(mode="restore", entropy=entropy, confirmed=True)
        raise web.HTTPSeeOther("/setup/admin")
    config = state_of(request).box.config
    checked = await asyncio.to_thread(check_backup_dir, backup_text, config)
    if isinstance(checked, str):
        return _restore_form(
            request, error=translate(checked), typed=typed, backup_dir=backup_text, status=400
        )
    # What the backup holds, before anything is restored: its signed head, for the warning
    # the passphrase page gives (phones that saw a longer log must pair again).
    try:
        summary = await asyncio.to_thread(restore.describe, checked, entropy)
    except (WrongWords, NotABackup, BackupCorrupted) as exc:
        message = translate(RESTORE_ERRORS[_failure_reason(exc)])
        return _restore_form(
            request, error=message, typed=typed, backup_dir=backup_text, status=400
        )
    # confirmed=False: this path seals the identity itself, never through /setup/admin.
    wizard.update(
        mode="restore_backup",
        entropy=entropy,
        backup_dir=str(checked),
        backup_summary=summary.as_json(),
        confirmed=False,
    )
    raise web.HTTPSeeOther("/setup/restore/passphrase")


# -- the box passphrase, then the job ----------------------------------------------------------


def _passphrase_page(
    request: web.Request, wizard: dict[str, Any], error: str | None, status: int = 200
) -> web.Response:
    context = {
        "step": 2,
        "error": error,
        "backup_dir": wizard["backup_dir"],
        "summary": wizard.get("backup_summary") or {},
    }
    return render(request, "setup_restore_passphrase.html", context, status=status)


def _backup_wizard(request: web.Request) -> dict[str, Any]:
    wizard = _wizard(request)
    if wizard.get("mode") != "restore_backup" or "entropy" not in wizard:
        raise web.HTTPSeeOther("/setup/restore")
    return wizard


@routes.get("/setup/restore/passphrase")
async def restore_passphrase_form(request: web.Request) -> web.StreamResponse:
    return _passphrase_page(request, _backup_wizard(request), None)


@routes.post("/setup/restore/passphrase")
async def restore_passphrase(request: web.Request) -> web.StreamResponse:
    wizard = _backup_wizard(request)
    state = state_of(request)
    form = await request.post()
    passphrase = text_field(form, "password")
    problem = passphrase_problem(passphrase)
    key: str | None = None if problem is None else problem.value
    if key is None and passphrase != text_field(form, "password_again"):
        key = "mismatch"
    if key is not None:
        message = translator_of(request)(PASSPHRASE_ERRORS[key])
        return _passphrase_page(request, wizard, message, status=400)
    if _running_restore(state.jobs.for_owner(RESTORE_OWNER)) is not None:
        message = translator_of(request)("A restore is already running on this box.")
        return _passphrase_page(request, wizard, message, status=409)
    job = state.jobs.start(
        RESTORE_KIND,
        RESTORE_OWNER,
        _restore_job(
            state.box,
            Path(wizard["backup_dir"]),
            wizard.pop("entropy"),
            passphrase,
            limits=state.keystore_limits,
            wizard=wizard,
            actor=f"setup@{client_address(request)}",
        ),
    )
    wizard.pop("restore_failure", None)
    wizard["restore_job"] = job.id
    raise web.HTTPSeeOther(OUTCOME_PATH)


def _restore_job(
    box: Box,
    backup_dir: Path,
    entropy: bytes,
    passphrase: str,
    *,
    limits: dict[str, int],
    wizard: dict[str, Any],
    actor: str,
) -> JobBody:
    config = box.config
    staging = new_staging(config)

    async def body(progress: Progress) -> JobResult:
        def report(stage: str, done: int, total: int) -> None:
            start, end = _STAGES.get(stage, (0.95, 0.95))
            progress(start + (end - start) * (done / total if total > 0 else 1.0), stage)

        progress(0.01, "start")
        try:
            # Held until the identity is sealed: a `strongroom restore-backup` started
            # beside us (it refuses a running box, but may have probed before we started)
            # can neither remove our staging dir nor seal another identity.
            with restore_lock(config.data_dir) as lock:
                result = await asyncio.to_thread(
                    restore_to_staging, backup_dir, entropy, staging, config, report, lock=lock
                )
                progress(0.95, "seal")
                # From here on the loop thread, without an await until the box is READY:
                # no other wizard step (another visitor creating an identity) can interleave.
                _move_into_place(box, staging)
                box.initialise(entropy, passphrase, owner="", **limits)
        except BaseException as exc:
            wizard["restore_failure"] = {"reason": _failure_reason(exc), "detail": str(exc)}
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        details = {
            "set": result.set_name,
            "tree_size": result.tree_size,
            "records": result.records,
            "blobs": result.blobs,
            "backup_dir": str(backup_dir),
        }
        wizard["restore_result"] = details
        await box.audit(actor, "setup.restore", result.set_name, details)
        return JobResult(summary=N_("The archive is restored."))

    return body


def _move_into_place(box: Box, staging: Path) -> None:
    if box.phase is not BoxPhase.UNINITIALISED:
        raise SetUpMeanwhile("the box was given an identity while the restore ran")
    move_into_place(box.config, staging)


# -- progress and outcome ---------------------------------------------------------------------


def _wizard_job(request: web.Request) -> Job | None:
    job_id = _wizard(request).get("restore_job")
    job = state_of(request).jobs.get(job_id) if isinstance(job_id, str) else None
    return job if job is not None and job.kind == RESTORE_KIND else None


@routes.get(OUTCOME_PATH)
async def restore_outcome(request: web.Request) -> web.StreamResponse:
    job = _wizard_job(request)
    if job is None:
        ready = state_of(request).box.phase is BoxPhase.READY
        raise web.HTTPSeeOther("/" if ready else "/setup/restore")
    return _outcome_page(request, job)


@routes.post(OUTCOME_PATH + "/unlock")
async def restored_unlock_choice(request: web.Request) -> web.StreamResponse:
    """How the restored box unlocks after a power cut (the create path asks the same).

    Only the browser session that ran the restore, once it succeeded; choosing
    unattended also needs the box passphrase, which seals the key file.
    """
    job = _wizard_job(request)
    if job is None or job.state is not JobState.DONE:
        raise web.HTTPSeeOther("/setup/restore")
    choice = UnlockChoiceForm.posted(await request.post())
    refused = await choice.apply(request)
    if refused is not None:
        return _outcome_page(request, job, error=refused, choice=choice, status=400)
    await choice.audit(request)
    raise web.HTTPSeeOther("/login")


def _outcome_page(
    request: web.Request,
    job: Job,
    *,
    error: str | None = None,
    choice: UnlockChoiceForm | None = None,
    status: int = 200,
) -> web.Response:
    wizard = _wizard(request)
    failure = wizard.get("restore_failure") or {}
    context = {
        "step": 5 if job.state is JobState.DONE else 2,
        "job": job,
        "running": job.state is JobState.RUNNING,
        "failure": RESTORE_ERRORS.get(failure.get("reason", "failed"), RESTORE_ERRORS["failed"]),
        "failure_detail": failure.get("detail") or job.error or "",
        "restored": wizard.get("restore_result") or {},
        **(choice or UnlockChoiceForm()).context(),
        "error": error,
    }
    return render(request, "setup_restored.html", context, status=status)


@routes.get(OUTCOME_PATH + "/status")
async def restore_status(request: web.Request) -> web.StreamResponse:
    job = _wizard_job(request)
    if job is None:
        raise web.HTTPNotFound()
    return web.json_response(job.as_json(), headers={"Cache-Control": "no-store"})
