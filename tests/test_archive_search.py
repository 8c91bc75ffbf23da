"""Full-text search as an archivist uses it: French accents folded, filters, no syntax traps."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import db, writes
from strongroom.archive.record import parse_record, sign_record
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.search import SearchFilters, fts_query, search_messages
from strongroom.archive.store import Archive

DAY = 86_400_000
T0 = 1_700_000_000_000

TEXTS = {
    "reunion": "La réunion du conseil est reportée",
    "noel": "Joyeux Noël à toute l'étude",
    "oeuvre": "Une œuvre d'art saisie chez le client",
    "elision": "Il faut l'accord d'aujourd'hui",
    "upper": "ÉCHÉANCE DU BAIL À CÔTÉ",
    "english": "The meetings were running late",
    "nfd": unicodedata.normalize("NFD", "Le procès-verbal de la médiation"),
}


@pytest.fixture
def searchable(archive: Archive) -> Archive:
    phone, key = new_phone(archive, owner="maitre.durand", name="Pixel")
    for i, text in enumerate(TEXTS.values()):
        archive.write(writes.store_record(message(key, text, at=T0 + i), phone, "maitre.durand"))
    return archive


def texts(archive: Archive, query: str, filters: SearchFilters | None = None) -> set[str | None]:
    return {hit.text for hit in search_messages(archive.conn, query, filters)}


@pytest.mark.parametrize("query", ["réunion", "reunion", "RÉUNION", "Reunion", "REUNION"])
def test_accents_and_case_fold_both_ways(searchable: Archive, query: str) -> None:
    assert texts(searchable, query) == {TEXTS["reunion"]}


@pytest.mark.parametrize("query", ["noël", "noel", "NOËL", "NOEL"])
def test_trema_folds(searchable: Archive, query: str) -> None:
    assert texts(searchable, query) == {TEXTS["noel"]}


@pytest.mark.parametrize("query", ["echeance", "échéance", "cote", "côté", "a cote"])
def test_upper_case_accented_text_is_found_plain(searchable: Archive, query: str) -> None:
    assert texts(searchable, query) == {TEXTS["upper"]}


@pytest.mark.parametrize("query", ["œuvre", "ŒUVRE", "oeuvre", "OEUVRE", "Oeuv"])
def test_the_oe_ligature_matches_both_spellings(searchable: Archive, query: str) -> None:
    # Most keyboards have no œ: "oeuvre" must find "œuvre", and the other way round.
    assert texts(searchable, query) == {TEXTS["oeuvre"]}


def test_ligatures_typed_or_spelled_out_find_each_other(archive: Archive) -> None:
    phone, key = new_phone(archive, owner="maitre.durand", name="Pixel")
    spelled = "Courrier de la soeur du client, curriculum vitae joint"
    with_ligatures = "Le cœur du dossier : les vœux de Mme Lætitia"
    for i, text in enumerate((spelled, with_ligatures)):
        archive.write(writes.store_record(message(key, text, at=T0 + i), phone, "maitre.durand"))
    assert texts(archive, "sœur") == {spelled}
    assert texts(archive, "vitæ") == {spelled}
    assert texts(archive, "coeur voeux") == {with_ligatures}
    assert texts(archive, "laetitia") == {with_ligatures}
    # The signed text is kept as written: only the index spells ligatures out.
    (hit,) = search_messages(archive.conn, "coeur")
    assert hit.text == with_ligatures


def test_decomposed_unicode_matches_both_ways(searchable: Archive) -> None:
    # macOS and some copy-pastes give NFD (e + combining accent).
    assert texts(searchable, unicodedata.normalize("NFD", "réunion")) == {TEXTS["reunion"]}
    assert texts(searchable, "procès-verbal médiation") == {TEXTS["nfd"]}
    assert texts(searchable, "proces verbal mediation") == {TEXTS["nfd"]}


def test_elisions_and_words_are_anded(searchable: Archive) -> None:
    assert texts(searchable, "aujourd'hui") == {TEXTS["elision"]}
    assert texts(searchable, "l'accord") == {TEXTS["elision"]}
    assert texts(searchable, "accord réunion") == set()


def test_prefixes_match_but_there_is_no_stemming(searchable: Archive) -> None:
    assert texts(searchable, "meeting") == {TEXTS["english"]}  # prefix of "meetings"
    assert texts(searchable, "run") == {TEXTS["english"]}  # prefix of "running"
    assert texts(searchable, "ran") == set()  # no English stemming
    assert texts(searchable, "meet running") == {TEXTS["english"]}
    assert texts(searchable, "réunions") == set()  # a longer word is not a prefix


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('"réunion', True),
        ('réunion"', True),
        ("(réunion", True),
        ("réunion)", True),
        ("réun*", True),
        ("^réunion", True),
        ("réunion + conseil", True),
        ("réunion -conseil", True),  # not an exclusion: both words must match
        ("réunion conseil*)", True),
        # Operators and column filters are plain words: nothing here contains them.
        ("NEAR(réunion conseil)", False),
        ("réunion OR noël", False),
        ("réunion AND", False),
        ("NOT réunion", False),
        ("text:réunion", False),
        ("{text}: réunion", False),
    ],
)
def test_fts_syntax_is_treated_as_words(searchable: Archive, query: str, found: bool) -> None:
    assert texts(searchable, query) == ({TEXTS["reunion"]} if found else set())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_typed_text_never_raises(text: str) -> None:
    query = fts_query(text)
    if query is not None:
        assert query.count('"') % 2 == 0


def test_any_typed_text_runs_against_the_index(searchable: Archive) -> None:
    hostile = ['"', "*", "NEAR/3", "a:b:c", "''", '"""', "()", "\x00", "é" * 500, "x " * 100]
    for text in hostile:
        search_messages(searchable.conn, text)  # must not raise


@pytest.fixture
def filtered(archive: Archive) -> dict[str, int]:
    durand_phone, durand_key = new_phone(archive, owner="maitre.durand", name="Pixel")
    durand_tablet, tablet_key = new_phone(archive, owner="maitre.durand", name="iPad")
    roux_phone, roux_key = new_phone(archive, owner="dr.roux", name="Galaxy")
    ops = [
        writes.store_record(
            message(durand_key, "dossier alpha", conv="c1", direction="out", at=T0),
            durand_phone,
            "maitre.durand",
        ),
        writes.store_record(
            message(durand_key, "dossier beta", conv="c1", direction="in", at=T0 + DAY),
            durand_phone,
            "maitre.durand",
        ),
        writes.store_record(
            message(tablet_key, "dossier gamma", conv="c2", direction="out", at=T0 + 2 * DAY),
            durand_tablet,
            "maitre.durand",
        ),
        writes.store_record(
            message(roux_key, "dossier delta", conv="c3", direction="in", at=T0 + 3 * DAY),
            roux_phone,
            "dr.roux",
        ),
    ]
    archive.write_batch(ops)
    delta_id = archive.conn.execute(
        "SELECT client_id FROM records WHERE log_index = (SELECT max(log_index) FROM records)"
    ).fetchone()[0]
    raw, sig = sign_record(
        roux_key,
        {
            "v": 1,
            "kind": "attachment",
            "id": "att-1",
            "conv": "c3",
            "dir": "in",
            "from": "Patient",
            "at": T0 + 3 * DAY,
            "ref": delta_id,
            "blob": {"sha256": bytes(32), "size": 3, "name": "ordonnance.pdf", "mime": "x/y"},
        },
    )
    archive.write(
        writes.store_record(parse_record(raw, sig, max_blob_size=10), roux_phone, "dr.roux")
    )
    return {"durand_phone": durand_phone, "durand_tablet": durand_tablet, "roux": roux_phone}


def _words(archive: Archive, filters: SearchFilters, query: str = "dossier") -> list[str]:
    return [str(h.text).split()[1] for h in search_messages(archive.conn, query, filters)]


def test_filters_narrow_the_results(archive: Archive, filtered: dict[str, int]) -> None:
    everything = ["delta", "gamma", "beta", "alpha"]  # newest first
    assert _words(archive, SearchFilters()) == everything
    assert _words(archive, SearchFilters(), query="") == everything
    assert _words(archive, SearchFilters(owner="maitre.durand")) == ["gamma", "beta", "alpha"]
    assert _words(archive, SearchFilters(owner="dr.roux")) == ["delta"]
    assert _words(archive, SearchFilters(device_id=filtered["durand_tablet"])) == ["gamma"]
    assert _words(archive, SearchFilters(direction="in")) == ["delta", "beta"]
    assert _words(archive, SearchFilters(direction="out")) == ["gamma", "alpha"]
    assert _words(archive, SearchFilters(since_ms=T0 + DAY)) == ["delta", "gamma", "beta"]
    assert _words(archive, SearchFilters(until_ms=T0 + DAY)) == ["alpha"]  # end excluded
    assert _words(archive, SearchFilters(since_ms=T0 + DAY, until_ms=T0 + 3 * DAY)) == [
        "gamma",
        "beta",
    ]
    assert _words(archive, SearchFilters(has_attachment=True)) == ["delta"]
    assert _words(archive, SearchFilters(has_attachment=False)) == ["gamma", "beta", "alpha"]
    assert _words(
        archive, SearchFilters(owner="maitre.durand", direction="in", has_attachment=False)
    ) == ["beta"]
    assert _words(archive, SearchFilters(owner="nobody")) == []
    assert _words(archive, SearchFilters(owner="maitre.durand"), query="delta") == []


def test_paging_is_stable(archive: Archive, filtered: dict[str, int]) -> None:
    pages = [
        [h.text for h in search_messages(archive.conn, "dossier", limit=1, offset=i)]
        for i in range(5)
    ]
    assert pages == [
        ["dossier delta"],
        ["dossier gamma"],
        ["dossier beta"],
        ["dossier alpha"],
        [],
    ]


def test_an_archive_indexed_before_ligature_folding_is_reindexed_when_opened(
    tmp_path: Path, archive_keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_archive() -> Archive:
        return Archive.open(
            tmp_path / "data",
            archive_keys["archive"],
            archive_keys["blob"],
            SigningKey(archive_keys["sign_seed"]),
        )

    with monkeypatch.context() as older_software:
        older_software.setattr(db, "SCHEMA_VERSION", 2)  # before migration 3
        old = open_archive()
        phone, key = new_phone(old, owner="maitre.durand", name="Pixel")
        for i, text in enumerate(("Une œuvre saisie", "Le cœur du dossier", "Sans ligature")):
            old.write(writes.store_record(message(key, text, at=T0 + i), phone, "maitre.durand"))
        assert db.schema_version(old.conn) == 2
        old.close()
    archive = open_archive()  # this software migrates on open
    try:
        assert db.schema_version(archive.conn) == SCHEMA_VERSION
        assert texts(archive, "oeuvre") == {"Une œuvre saisie"}
        assert texts(archive, "cœur") == {"Le cœur du dossier"}
        assert texts(archive, "ligature") == {"Sans ligature"}
        # Deleting a message still removes it from the index (the trigger folds the same way).
        archive.conn.execute("DELETE FROM messages WHERE text = 'Le cœur du dossier'")
        assert texts(archive, "coeur") == set()
        # The index itself is sound (raises "database disk image is malformed" if not).
        archive.conn.execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 0)"
        )
    finally:
        archive.close()
