"""An export whose destination fails (a full card, a client gone) stops with that error,
logs nothing, and leaves no thread of its own behind: the bundle's hashing and
writing run on other threads (offload.py, seal.py), the error still comes back.
And an export that works gives the same bytes to any sink."""

from __future__ import annotations

import errno
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.office.export import ExportRequest, ExportScope, export_bundle, export_to_stream
from strongroom.office.verify_export import verify_bundle
from test_office_support import T0, Box, attach, conversation_id, new_box, new_phone, say


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    phone = new_phone(b.archive)
    for n in range(300):
        say(b, phone, f"message {n} : « dossier », ça presse — {'x' * (n % 50)}", at=T0 + n)
    attach(b, phone, bytes(range(256)) * 1024, "scan.pdf", at=T0 + 400)
    yield b
    b.close()


def _request(box: Box) -> ExportRequest:
    scope = ExportScope("conversation", conversation_id=conversation_id(box))
    return ExportRequest(scope, "me.durand", "Tribunal judiciaire", "instance 24/123")


class _FullCard:
    """A sink that takes `room` bytes, then fails as a full SD card does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.taken = io.BytesIO()

    def write(self, data: bytes) -> int:
        if self.taken.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.taken.write(data)

    def flush(self) -> None:
        pass


def _bundle_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bundle-member"]


def _exports_logged(box: Box) -> int:
    row = box.archive.conn.execute(
        "SELECT count(*) FROM audit_events WHERE action = 'export'"
    ).fetchone()
    return int(row[0])


@pytest.mark.parametrize("room", [0, 100_000, 400_000])
def test_a_full_destination_stops_the_export_with_its_error(box: Box, room: int) -> None:
    """At the start, among the records' files, in the attachment or the PDF."""
    before = _exports_logged(box)
    with pytest.raises(OSError) as raised:
        export_to_stream(box.archive, _request(box), _FullCard(room))
    assert raised.value.errno == errno.ENOSPC
    assert _exports_logged(box) == before  # no audit event for an export never made
    assert _bundle_threads() == []


def test_the_same_export_to_a_file_and_to_a_stream_verifies(box: Box, tmp_path: Path) -> None:
    out = tmp_path / "e.zip"
    export_bundle(box.archive, _request(box), out)
    streamed = io.BytesIO()

    class Sink:
        def write(self, data: bytes) -> int:
            return streamed.write(data)

        def flush(self) -> None:
            pass

    export_to_stream(box.archive, _request(box), Sink(), zip_name="s.zip")
    (tmp_path / "s.zip").write_bytes(streamed.getvalue())
    for bundle in (out, tmp_path / "s.zip"):
        report = verify_bundle(bundle)
        assert report.ok and report.records == 301, report
    assert _bundle_threads() == []
