"""Search expands typed prefixes into indexed words: same results, bounded cost.

The oracle is the query search ran before (search.fts_query: each word a prefix
term), so every comparison below fails if the expansion adds, drops or reorders a
single hit. The cost test counts the bytes SQLite reads, not time: a prefix term
makes FTS5 read the whole doclist of every word it starts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archive_helpers import message, new_archive, new_phone
from strongroom.archive import search, writes
from strongroom.archive.db import Connection
from strongroom.archive.fts_terms import MAX_COMPLETIONS, completions
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive

T0 = 1_700_000_000_000
# Words sharing prefixes (dossier/dossiers/dossieriste, re-...), accented ones, and
# one (dossier) in every message so its doclist spans many pages and segments.
WORDS = (
    "dossiers dossieriste audience audiences audit tribunal tribune reunion reunions "
    "report reporter rendez rendu echeance echeances notaire notaires succession "
    "expert expertise hearing heard allergy allergie greffe greffier mutuelle huissier "
    "ordonnance radiographie prud prudhommes custody settlement notary facture "
    "honoraires plaidoirie a an and analyse annuler aller"
).split()
ACCENTED = ("réunion", "échéance", "Échéances", "prud'hommes", "côté")
COUNT = 6000


def _text(rng: random.Random) -> str:
    # dossier many times: its doclist (positions included) then spans enough pages
    # that FTS5 gives it a doclist index, as every common word has at 1M messages.
    words = ["dossier"] * 100 + rng.sample(WORDS, 6)
    if rng.random() < 0.1:
        words.append(rng.choice(ACCENTED))
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    archive = new_archive(Path(tmp_path_factory.mktemp("search-cost")) / "data")
    rng = random.Random(20)
    owners = [new_phone(archive, owner=o, name=o) for o in ("maitre.durand", "dr.roux")]
    # Many small commits: each leaves an FTS5 segment, so several segments (merged
    # and not) hold the same words, as on a box that ingests all day.
    for start in range(0, COUNT, 250):
        ops = []
        for i in range(start, start + 250):
            phone, key = owners[i % 2]
            owner = ("maitre.durand", "dr.roux")[i % 2]
            record = message(key, _text(rng), direction=("in", "out")[i % 3 == 0], at=T0 + i * 1000)
            ops.append(writes.store_record(record, phone, owner))
        archive.write_batch(ops)
    yield archive
    archive.close()


def _old(conn: Connection, text: str, filters: SearchFilters | None, offset: int) -> list[int]:
    """search_messages as it was: every word a prefix term (the oracle)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "_expanded_query", lambda _conn, typed: search.fts_query(typed))
        return [h.record_row for h in search_messages(conn, text, filters, offset=offset)]


def _new(conn: Connection, text: str, filters: SearchFilters | None, offset: int) -> list[int]:
    return [h.record_row for h in search_messages(conn, text, filters, offset=offset)]


def _typed_queries() -> list[str]:
    every_prefix = sorted({w[:n] for w in [*WORDS, "dossier"] for n in range(1, len(w) + 1)})
    rng = random.Random(5)
    pairs = [" ".join(rng.sample(every_prefix, 2)) for _ in range(60)]
    odd = [*ACCENTED, "RÉUNION", "Echéa", "ÉCH", "cô", "zz", "dossierz", "dossier zz", "a an"]
    return every_prefix + pairs + odd


def test_same_hits_as_the_prefix_query_on_every_prefix_and_pairs(corpus: Archive) -> None:
    conn = corpus.conn
    expanded = 0
    for text in _typed_queries():
        assert _new(conn, text, None, 0) == _old(conn, text, None, 0), text
        expanded += "*" not in str(search._expanded_query(conn, text))
    # The fast path is really taken, not the fallback that trivially agrees.
    assert expanded > len(_typed_queries()) * 0.8


@pytest.mark.parametrize("offset", [0, 50, 120, COUNT - 30])
def test_pages_and_filters_match_the_prefix_query(corpus: Archive, offset: int) -> None:
    conn = corpus.conn
    device = int(conn.execute("SELECT min(id) FROM devices").fetchone()[0])
    for filters in (
        None,
        SearchFilters(owner="dr.roux"),
        SearchFilters(direction="out"),
        SearchFilters(device_id=device),
        SearchFilters(since_ms=T0 + 1_000_000, until_ms=T0 + 4_000_000),
    ):
        for text in ("dossier", "d", "report", "rep", "echeance", "audi tri", "a"):
            old = _old(conn, text, filters, offset)
            assert _new(conn, text, filters, offset) == old, (text, filters, offset)


def test_completions_list_exactly_the_indexed_words(corpus: Archive) -> None:
    conn = corpus.conn
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, messages_fts, 'row')"
    )
    indexed = [str(r[0]) for r in conn.execute("SELECT term FROM temp.vocab")]
    for prefix in sorted({t[:n] for t in indexed for n in range(1, len(t) + 1)}):
        want = [t for t in indexed if t.startswith(prefix)]
        got = completions(conn, "messages_fts", prefix)
        if len(want) <= MAX_COMPLETIONS:
            assert got == want, prefix
        else:
            assert got is None, prefix
    assert completions(conn, "messages_fts", "zzz") == []


def _bytes_read(conn: Connection, match: Callable[[Connection], str | None]) -> int:
    """Bytes this thread read from the database file to find the newest 50 matches
    (building the MATCH expression included). The page cache is shrunk to a few
    pages, so that every page FTS5 touches is a read: a count, not a timing."""
    io = Path("/proc/thread-self/io")

    def rchar() -> int:
        line = next(x for x in io.read_text().splitlines() if x.startswith("rchar:"))
        return int(line.split()[1])

    before = rchar()
    conn.execute(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT 50",
        (match(conn),),
    ).fetchall()
    return rchar() - before


@pytest.mark.skipif(not Path("/proc/thread-self/io").exists(), reason="needs Linux /proc")
def test_a_common_word_reads_a_bounded_part_of_the_index(corpus: Archive) -> None:
    for text in ("dossier", "dos", "dossier report"):
        costs = []
        old_query: Callable[[Connection], str | None] = lambda _c: search.fts_query(text)  # noqa: E731
        new_query: Callable[[Connection], str | None] = lambda c: search._expanded_query(c, text)  # noqa: E731
        for build in (old_query, new_query):
            reader = corpus.reader()  # a cold cache each time: neither warms the other
            try:
                reader.execute("PRAGMA cache_size = 64").fetchall()
                reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # schema
                costs.append(_bytes_read(reader, build))
            finally:
                reader.close()
        old, new = costs
        # The prefix query reads every page of dossier's doclist (6,000 messages, in
        # every segment); the expanded one a few index pages and the newest end.
        assert new * 4 < old, (text, new, old)


def test_segments_trimmed_by_an_unfinished_merge_are_read_from_their_new_head(
    archive: Archive,
) -> None:
    # As on a big box (4 of 11 segments at 5M): FTS5 merges a level a few pages at
    # a time, deleting the input pages it has copied and rewriting the first one
    # left, while the _idx rows of the deleted pages stay behind.
    archive.conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES('automerge', 0)")
    phone, key = new_phone(archive)
    rng = random.Random(3)
    for batch in range(12):  # one segment each, fewer than crisismerge (16)
        ops = [
            writes.store_record(
                message(key, _text(rng), at=T0 + batch * 1000 + i), phone, "maitre.durand"
            )
            for i in range(100)
        ]
        archive.write_batch(ops)
    conn = archive.conn
    conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES('merge', -3)")
    heads = []
    for (segid,) in conn.execute("SELECT DISTINCT segid FROM messages_fts_idx"):
        base = segid << 37
        (first,) = conn.execute(
            "SELECT min(id) FROM messages_fts_data WHERE id >= ? AND id < ?",
            (base, base + (1 << 31)),
        ).fetchone()
        heads.append(first - base)
    assert max(heads) > 1, heads  # the state this test is about was reached
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, messages_fts, 'row')"
    )
    indexed = [str(r[0]) for r in conn.execute("SELECT term FROM temp.vocab")]
    for prefix in sorted({t[:n] for t in indexed for n in range(1, len(t) + 1)}):
        want = [t for t in indexed if t.startswith(prefix)]
        if len(want) <= MAX_COMPLETIONS:
            assert completions(conn, "messages_fts", prefix) == want, prefix
            assert _new(conn, prefix, None, 0) == _old(conn, prefix, None, 0), prefix


def test_many_segments_keep_the_fast_path(tmp_path: Path) -> None:
    """One page per segment is read whatever the prefix: 70 unmerged segments (more
    than the page budget alone) still expand a rare prefix instead of falling back."""
    archive = new_archive(tmp_path / "data")
    try:
        archive.conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 0)")
        archive.conn.execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('crisismerge', 1000)"
        )
        phone, key = new_phone(archive)
        for n in range(70):
            text = f"dossier numéro {n}" + (" expertise" if n % 10 == 0 else "")
            archive.write(writes.store_record(message(key, text, at=T0 + n), phone, "o"))
        conn = archive.conn
        segments = conn.execute("SELECT count(DISTINCT segid) FROM messages_fts_idx").fetchone()
        assert segments[0] >= 70
        assert completions(conn, "messages_fts", "exper") == ["expertise"]
        assert _new(conn, "exper", None, 0) == _old(conn, "exper", None, 0)
        assert len(_new(conn, "exper", None, 0)) == 7
    finally:
        archive.close()
