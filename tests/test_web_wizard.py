"""The first-run wizard over HTTP: create (words, confirmation), restore, first admin."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from strongroom.archive.audit_reads import audit_events
from strongroom.box import Box
from strongroom.identity import entropy_to_words, new_entropy
from strongroom.unlock import BoxPhase
from strongroom.web.settings import PRACTICE_NAME, get_setting
from strongroom.web.users import get_user
from web_helpers import ADMIN_PASSWORD, Client, csrf_of, login, new_box, phase_of, web_app

WORD = re.compile(r'<span class="w">([^<]+)</span>')
POSITION = re.compile(r'name="word_(\d+)"')


@pytest.fixture
async def fresh_box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data", ready=False)
    yield box
    await box.stop()


@pytest.fixture
async def client(fresh_box: Box, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(fresh_box))


async def _post(client: Client, path: str, token: str, **fields: str) -> object:
    return await client.post(path, data={**fields, "csrf_token": token}, allow_redirects=False)


async def _start(client: Client, language: str) -> str:
    page = await client.get("/", allow_redirects=True)
    assert page.url.path == "/setup"
    token = csrf_of(await page.text())
    response = await _post(client, "/setup/language", token, language=language)
    assert response.headers["Location"] == "/setup/identity"  # type: ignore[attr-defined]
    return token


async def _create_and_read_words(client: Client, token: str) -> list[str]:
    await _post(client, "/setup/create", token)
    html = await (await client.get("/setup/words")).text()
    words = WORD.findall(html)
    assert len(words) == 24
    return words


async def test_create_identity_happy_path(client, fresh_box) -> None:
    token = await _start(client, "en")
    words = await _create_and_read_words(client, token)
    form_html = await (await client.get("/setup/confirm")).text()
    positions = [int(p) for p in POSITION.findall(form_html)]
    assert len(positions) == 3 and len(set(positions)) == 3
    answers = {f"word_{p}": words[p - 1].upper() for p in positions}  # case does not matter
    response = await _post(client, "/setup/confirm", token, **answers)
    assert response.headers["Location"] == "/setup/admin"  # type: ignore[attr-defined]
    # The words are shown once: after confirmation the page is gone.
    again = await client.get("/setup/words", allow_redirects=False)
    assert again.status == 303

    response = await _post(
        client,
        "/setup/admin",
        token,
        username="Gerante",
        password=ADMIN_PASSWORD,
        password_again=ADMIN_PASSWORD,
    )
    assert response.headers["Location"] == "/setup/practice"  # type: ignore[attr-defined]
    assert fresh_box.phase is BoxPhase.READY
    token = csrf_of(await (await client.get("/setup/practice")).text())
    response = await _post(
        client, "/setup/practice", token, practice_name="Cabinet Durand & <Associés>"
    )
    assert response.headers["Location"] == "/setup/done"  # type: ignore[attr-defined]
    done = await (await client.get("/setup/done")).text()
    assert 'href="/devices"' in done and "Pair your first phone" in done

    conn = fresh_box.require_archive().reader()
    user = get_user(conn, "gerante")
    assert user is not None and user.role == "admin"
    assert get_setting(conn, PRACTICE_NAME) == "Cabinet Durand & <Associés>"
    assert [e.action for e in audit_events(conn, action="setup.identity")] == ["setup.identity"]
    conn.close()
    dashboard = await (await client.get("/dashboard")).text()
    assert "Cabinet Durand &amp; &lt;Associés&gt;" in dashboard
    # The wizard is closed now.
    assert (await client.get("/setup/identity", allow_redirects=False)).status == 303


async def test_words_follow_the_chosen_language(client) -> None:
    token = await _start(client, "fr")
    words = await _create_and_read_words(client, token)
    from strongroom.identity import words_to_entropy

    entropy = words_to_entropy(" ".join(words))
    assert entropy_to_words(entropy, "french") == words


async def test_wrong_confirmation_is_refused_and_nothing_is_created(client, fresh_box) -> None:
    token = await _start(client, "en")
    words = await _create_and_read_words(client, token)
    positions = [
        int(p) for p in POSITION.findall(await (await client.get("/setup/confirm")).text())
    ]
    answers = {f"word_{p}": words[p - 1] for p in positions}
    wrong_position = positions[0]
    answers[f"word_{wrong_position}"] = words[wrong_position % 24]  # a real word, wrong place
    response = await _post(client, "/setup/confirm", token, **answers)
    assert response.status == 400  # type: ignore[attr-defined]
    assert "does not match" in await response.text()  # type: ignore[attr-defined]
    assert (await client.get("/setup/admin", allow_redirects=False)).status == 303
    assert fresh_box.phase is BoxPhase.UNINITIALISED
    assert not fresh_box.config.keystore_path.exists()


async def test_restore_from_words_gives_the_same_identity(client, fresh_box, tmp_path) -> None:
    entropy = new_entropy()
    words = entropy_to_words(entropy, "english")
    token = await _start(client, "en")
    numbered = "\n".join(f"{i}. {w}" for i, w in enumerate(words, 1))
    response = await _post(client, "/setup/restore", token, words=numbered)
    assert response.headers["Location"] == "/setup/admin"  # type: ignore[attr-defined]
    await _post(
        client,
        "/setup/admin",
        token,
        username="admin",
        password=ADMIN_PASSWORD,
        password_again=ADMIN_PASSWORD,
    )
    reference = new_box(tmp_path / "reference", ready=False)
    reference.initialise(entropy, ADMIN_PASSWORD, opslimit=1, memlimit=8192)
    assert fresh_box.fingerprint == reference.fingerprint
    await reference.stop()


async def test_restore_names_the_wrong_word(client, fresh_box) -> None:
    words = entropy_to_words(new_entropy(), "english")
    words[6] = "zzzzbogus"
    token = await _start(client, "en")
    response = await _post(client, "/setup/restore", token, words=" ".join(words))
    assert response.status == 400  # type: ignore[attr-defined]
    html = await response.text()  # type: ignore[attr-defined]
    assert "Word 7" in html and "zzzzbogus" in html
    assert fresh_box.phase is BoxPhase.UNINITIALISED


async def test_restore_error_in_french(client) -> None:
    token = await _start(client, "fr")
    response = await _post(client, "/setup/restore", token, words="abandon " * 5)
    assert "Il faut 24 mots\u202f; 5 ont été saisis." in await response.text()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("password", "again", "message"),
    [
        ("court1!", "court1!", "at least 12 characters"),
        ("onlylowercase", "onlylowercase", "Mix letters"),
        (ADMIN_PASSWORD, ADMIN_PASSWORD + "x", "differ"),
    ],
)
async def test_weak_or_mismatched_passphrase_is_refused(
    client, fresh_box, password, again, message
) -> None:
    token = await _start(client, "en")
    words = await _create_and_read_words(client, token)
    positions = [
        int(p) for p in POSITION.findall(await (await client.get("/setup/confirm")).text())
    ]
    await _post(client, "/setup/confirm", token, **{f"word_{p}": words[p - 1] for p in positions})
    response = await _post(
        client, "/setup/admin", token, username="admin", password=password, password_again=again
    )
    assert response.status == 400  # type: ignore[attr-defined]
    assert message in await response.text()  # type: ignore[attr-defined]
    assert fresh_box.phase is BoxPhase.UNINITIALISED


async def test_nothing_but_the_wizard_before_first_run(client) -> None:
    for path in ("/login", "/dashboard", "/unlock", "/archive"):
        response = await client.get(path, allow_redirects=False)
        assert response.headers["Location"] == "/setup", path


async def test_wizard_then_login_works(client, fresh_box, aiohttp_client) -> None:
    token = await _start(client, "en")
    await _post(
        client, "/setup/restore", token, words=" ".join(entropy_to_words(new_entropy(), "english"))
    )
    await _post(
        client,
        "/setup/admin",
        token,
        username="admin",
        password=ADMIN_PASSWORD,
        password_again=ADMIN_PASSWORD,
    )
    other = await aiohttp_client(client.app)
    await login(other, "admin", ADMIN_PASSWORD)
    assert (await other.get("/dashboard")).status == 200


async def _through_to_practice(client: Client) -> str:
    token = await _start(client, "en")
    words = await _create_and_read_words(client, token)
    form_html = await (await client.get("/setup/confirm")).text()
    answers = {f"word_{p}": words[int(p) - 1] for p in POSITION.findall(form_html)}
    await _post(client, "/setup/confirm", token, **answers)
    await _post(
        client,
        "/setup/admin",
        token,
        username="gerante",
        password=ADMIN_PASSWORD,
        password_again=ADMIN_PASSWORD,
    )
    return csrf_of(await (await client.get("/setup/practice")).text())


async def test_unattended_unlock_chosen_in_the_wizard_unlocks_the_next_boot(
    client, fresh_box, tmp_path
) -> None:
    token = await _through_to_practice(client)
    usb = tmp_path / "usb"
    usb.mkdir()
    keyfile = usb / "unlock.key"

    refused = await _post(
        client,
        "/setup/practice",
        token,
        practice_name="Cabinet Durand",
        unlock_mode="unattended",
        keyfile=str(keyfile),
        unlock_passphrase="not-the-passphrase-1",
    )
    assert refused.status == 400  # type: ignore[attr-defined]
    assert "Wrong passphrase." in await refused.text()  # type: ignore[attr-defined]
    assert not keyfile.exists()
    unmounted = await _post(
        client,
        "/setup/practice",
        token,
        practice_name="Cabinet Durand",
        unlock_mode="unattended",
        keyfile=str(tmp_path / "not-mounted" / "unlock.key"),
        unlock_passphrase=ADMIN_PASSWORD,
    )
    assert "plug in the USB key" in await unmounted.text()  # type: ignore[attr-defined]

    chosen = await _post(
        client,
        "/setup/practice",
        token,
        practice_name="Cabinet Durand",
        unlock_mode="unattended",
        keyfile=str(keyfile),
        unlock_passphrase=ADMIN_PASSWORD,
    )
    assert chosen.headers["Location"] == "/setup/done"  # type: ignore[attr-defined]
    assert keyfile.exists() and keyfile.stat().st_mode & 0o077 == 0

    # "Reboot": a new Box on the same data dir opens with the key file alone.
    rebooted = Box(fresh_box.config)
    assert rebooted.phase is BoxPhase.LOCKED
    rebooted.unlock_unattended()
    assert phase_of(rebooted) is BoxPhase.READY
    assert rebooted.fingerprint == fresh_box.fingerprint
    await rebooted.stop()


async def test_attended_is_the_default_and_needs_the_passphrase_after_a_reboot(
    client, fresh_box
) -> None:
    token = await _through_to_practice(client)
    done = await _post(client, "/setup/practice", token, practice_name="Cabinet Martin")
    assert done.headers["Location"] == "/setup/done"  # type: ignore[attr-defined]
    rebooted = Box(fresh_box.config)
    with pytest.raises(ValueError, match="key file"):
        rebooted.unlock_unattended()
    assert rebooted.phase is BoxPhase.LOCKED
    rebooted.unlock(ADMIN_PASSWORD)
    assert phase_of(rebooted) is BoxPhase.READY
    await rebooted.stop()


async def test_the_default_retention_policy_is_chosen_in_the_wizard(client, fresh_box) -> None:
    from strongroom.office.policies import list_assignments, list_policies

    token = await _through_to_practice(client)
    page = await (await client.get("/setup/practice")).text()
    assert "Default retention policy" in page and "Decide later" in page
    conn = fresh_box.require_archive().reader()
    general = next(p for p in list_policies(conn) if p.preset == "correspondance-generale")
    conn.close()
    assert f'<option value="{general.id}">Correspondance générale</option>' in page

    # A tampered choice: a clear refusal, the step shown again, nothing assigned.
    refused = await _post(
        client, "/setup/practice", token, practice_name="Cabinet Durand", default_policy="999"
    )
    assert refused.status == 400  # type: ignore[attr-defined]
    assert "Choose one of the listed retention policies." in await refused.text()  # type: ignore[attr-defined]

    response = await _post(
        client,
        "/setup/practice",
        token,
        practice_name="Cabinet Durand",
        default_policy=str(general.id),
    )
    assert response.headers["Location"] == "/setup/done"  # type: ignore[attr-defined]
    conn = fresh_box.require_archive().reader()
    try:
        defaults = [a for a in list_assignments(conn) if a.scope == "default"]
        assert [(a.policy_id, a.assigned_by) for a in defaults] == [(general.id, "gerante")]
        events = audit_events(conn, action="retention.assign")
        assert [e.actor for e in events] == ["gerante"]
    finally:
        conn.close()
    # The records office shows it as the default policy.
    office = await (await client.get("/office")).text()
    shown = re.search(r'<p id="default-policy">.*?</p>', office, re.S)
    assert shown is not None and "<strong>Correspondance générale</strong>" in shown.group(0)


async def test_deciding_the_retention_policy_later_assigns_nothing(client, fresh_box) -> None:
    from strongroom.office.policies import list_assignments

    token = await _through_to_practice(client)
    response = await _post(
        client, "/setup/practice", token, practice_name="Cabinet Durand", default_policy=""
    )
    assert response.headers["Location"] == "/setup/done"  # type: ignore[attr-defined]
    conn = fresh_box.require_archive().reader()
    try:
        assert list_assignments(conn) == []
    finally:
        conn.close()
