"""Hostile input from outside: parsers raise only their documented error, and bad records
pushed through the group committer leave the archive exactly as it was.

Records and Noise messages have their own property tests (test_archive_records,
test_noise_properties); here: box.toml, the 24 words typed by a person, the
export verifier given a damaged bundle, and the committer under a stream of
records it must refuse. `scripts/fuzz.py` runs the same parsers for longer.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.errors import RecordRejected
from strongroom.archive.store import Archive
from strongroom.config import BoxConfig, ConfigError, parse_config
from strongroom.identity.words import WordsError, entropy_to_words, words_to_entropy

DATA_DIR = Path("/srv/strongroom")

# -- box.toml -------------------------------------------------------------------------

KNOWN_KEYS = [
    "host",
    "port",
    "tls",
    "mock_gpio",
    "box_name",
    "advertise_mdns",
    "mdns_interfaces",
    "pairing_window_s",
    "unlock_mode",
    "unlock_keyfile",
    "backup_target",
    "data_dir",
]
LIMIT_KEYS = ["max_frame_bytes", "idle_timeout_s", "max_connections", "history_page_size"]

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))


def toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(c if c.isalnum() or c in " ._-/" else f"\\u{ord(c):04x}" for c in value)
            + '"'
        )
    return "[" + ", ".join(toml_literal(v) for v in value) + "]"


@settings(max_examples=300, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from([*KNOWN_KEYS, "colour", "Port"]), toml_values, max_size=6),
    limits=st.none() | st.dictionaries(st.sampled_from([*LIMIT_KEYS, "bogus"]), toml_values),
)
def test_any_well_formed_box_toml_gives_a_config_or_a_config_error(
    top: dict[str, Any], limits: dict[str, Any] | None
) -> None:
    text = "".join(f"{key} = {toml_literal(value)}\n" for key, value in top.items())
    if limits is not None:
        text += "[limits]\n" + "".join(f"{k} = {toml_literal(v)}\n" for k, v in limits.items())
    try:
        config = parse_config(text, DATA_DIR)
    except ConfigError:
        return
    # Accepted means every value was of the documented type and in range.
    assert isinstance(config, BoxConfig)
    assert 0 < config.port < 65536
    assert config.unlock_mode in ("attended", "unattended")
    assert all(value > 0 for value in vars(config.limits).values())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_as_box_toml_raises_only_config_error(text: str) -> None:
    try:
        parse_config(text, DATA_DIR)
    except ConfigError:
        pass


# -- 24 words ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_as_words_raises_only_words_error(text: str) -> None:
    try:
        entropy = words_to_entropy(text)
    except WordsError:
        return
    assert len(entropy) == 32


@settings(max_examples=200, deadline=None)
@given(
    entropy=st.binary(min_size=32, max_size=32),
    language=st.sampled_from(["english", "french"]),
    position=st.integers(min_value=0, max_value=23),
    typed=st.text(min_size=1, max_size=12),
)
def test_one_word_replaced_by_anything_is_refused_or_still_decodes(
    entropy: bytes, language: str, position: int, typed: str
) -> None:
    words = entropy_to_words(entropy, language)
    words[position] = typed
    try:
        decoded = words_to_entropy(" ".join(words))
    except WordsError as error:
        # Every refusal that is about one word points at a word that was given.
        assert error.position is None or 1 <= error.position <= 24 + len(typed.split())
        return
    assert len(decoded) == 32


# -- the export verifier --------------------------------------------------------------------


@functools.cache
def sealed_bundle() -> bytes:
    from strongroom.office.export import ExportRequest, ExportScope, export_bundle

    with tempfile.TemporaryDirectory() as tmp:
        box = Archive.open(
            Path(tmp) / "data", os.urandom(32), os.urandom(32), SigningKey.generate()
        )
        try:
            device, key = new_phone(box)
            for n in range(3):
                box.write(writes.store_record(message(key, f"pièce {n}"), device, "maitre.durand"))
            (conversation,) = box.conn.execute("SELECT id FROM conversations").fetchone()
            scope = ExportScope("conversation", conversation_id=int(conversation))
            out = Path(tmp) / "bundle.zip"
            export_bundle(box, ExportRequest(scope, "test", "court", "fuzz"), out)
            return out.read_bytes()
        finally:
            box.close()


def extracted(path: Path) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist()}
    except Exception:
        return None


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_bundles_never_crash_the_verifier_and_changed_files_are_flagged(
    tmp_path: Path, data: st.DataObject
) -> None:
    from strongroom.office.verify_export import verify_bundle

    original = sealed_bundle()
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del damaged[data.draw(st.integers(0, len(damaged))) :]
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(damaged))
    report = verify_bundle(path)  # must return a report, whatever the bytes
    path_ok = tmp_path / "original.zip"
    path_ok.write_bytes(original)
    if extracted(path) != extracted(path_ok):
        assert not report.ok, "a bundle whose files changed was reported intact"


def test_a_member_with_an_unknown_compression_method_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    from strongroom.office.verify_export import verify_bundle

    damaged = bytearray(sealed_bundle())
    central = damaged.index(b"PK\x01\x02")  # first central directory entry
    damaged[central + 10 : central + 12] = (99).to_bytes(2, "little")  # AES: not in zipfile
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(damaged))
    report = verify_bundle(path)
    assert not report.ok


# -- the committer under bad records --------------------------------------------------------


def archive_content(archive: Archive) -> str:
    """A digest of every row of every table, FTS index included."""
    digest = hashlib.sha256()
    tables = [
        name
        for (name,) in archive.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    for table in tables:
        digest.update(table.encode())
        rows = archive.conn.execute(f'SELECT * FROM "{table}"')
        for row in sorted(repr(row) for row in rows):  # some tables are WITHOUT ROWID
            digest.update(row.encode())
    return digest.hexdigest()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_thousand_bad_records_leave_the_archive_unchanged_and_memory_flat(
    archive: Archive,
) -> None:
    device, key = new_phone(archive)
    revoked, revoked_key = new_phone(archive, name="Stolen")
    archive.write(writes.store_record(message(key, "avant / before"), device, "maitre.durand"))
    archive.write(writes.revoke_device(revoked, "stolen"))
    head = archive.latest_tree_head()
    content = archive_content(archive)
    committer = GroupCommitter(archive)
    committer.start()
    # 60 KB per input: a leak of the inputs would show as ~60 MiB, far above the allocator's
    # own ups and downs (a few MiB either way).
    padding = "x" * 60_000

    async def push_bad(n: int) -> None:
        if n % 3 == 0:  # garbage never gets past the parser, so never reaches the archive
            from strongroom.archive.record import parse_record

            try:
                parse_record(
                    os.urandom(200) + padding.encode()[:90_000], os.urandom(64), max_blob_size=1
                )
            except RecordRejected:
                return
            raise AssertionError("random bytes parsed as a record")
        if n % 3 == 1:  # a well-formed record from a revoked phone
            record, who = message(revoked_key, padding + str(n)), revoked
        else:  # a well-formed record naming a device that was never paired
            record, who = message(key, padding + str(n)), 999_999
        try:
            await committer.submit(writes.store_record(record, who, "maitre.durand"))
        except RecordRejected:
            return
        raise AssertionError("a bad record was acked")

    try:
        for start in range(0, 200, 50):  # warm-up: allocator pools, statement caches
            await asyncio.gather(*(push_bad(n) for n in range(start, start + 50)))
        gc.collect()
        before = rss_kib()
        for start in range(0, 1000, 50):
            await asyncio.gather(*(push_bad(n) for n in range(start, start + 50)))
        gc.collect()
        growth = rss_kib() - before
    finally:
        await asyncio.to_thread(committer.stop)
    assert archive.latest_tree_head() == head
    assert archive_content(archive) == content
    assert growth < 20 * 1024, f"RSS grew by {growth} KiB over 1,000 bad records"
