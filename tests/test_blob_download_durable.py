"""A downloaded attachment is fsynced once, before it takes its final name, and the
name is made durable: after a crash a file under its final name is whole (restore_to
skips the files it finds, so a torn one would never be fetched again)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from peer_helpers import RunningBox, attachment_record, message, paired_phone, running_box

box = pytest.fixture(running_box)


async def test_a_download_is_fsynced_once_then_renamed_then_its_directory_fsynced(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await paired_phone(box, "claire")
    data = os.urandom(4 << 20)  # four write batches of ~1 MiB
    ack = await phone.upload_attachment(data)
    note = message("scan attached")
    await phone.push(note)
    await phone.push(attachment_record(note["id"], ack.ref, len(data)))

    files = tmp_path / "files"
    files.mkdir()
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(str(files)):  # the box, in this process, fsyncs its own files
            events.append(("fsync", Path(path).name))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        if str(dst).startswith(str(files)):
            events.append(("rename", f"{Path(src).name} -> {Path(dst).name}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    dest = files / "scan.pdf"
    assert await phone.download_blob(ack.ref, dest) == b""
    assert events == [
        ("fsync", "scan.pdf.partial"),
        ("rename", "scan.pdf.partial -> scan.pdf"),
        ("fsync", "files"),
    ]
    assert dest.read_bytes() == data
    await phone.close()


async def test_a_write_the_kernel_cuts_short_goes_on_where_it_stopped(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each ~1 MiB batch reaches the file in one writev of its pieces (not joined
    # first); a short write (a full disk's edge, a signal) must not tear the file.
    phone = await paired_phone(box, "claire")
    data = os.urandom(3 << 20)
    ack = await phone.upload_attachment(data)
    note = message("scan attached")
    await phone.push(note)
    await phone.push(attachment_record(note["id"], ack.ref, len(data)))
    real_writev = os.writev
    short: list[int] = []

    def writev(fd: int, buffers: Sequence[bytes | memoryview], /) -> int:
        # At most 100,000 bytes a call, often ending inside a piece.
        allowed, taken = 100_000, []
        for buffer in buffers:
            taken.append(memoryview(buffer)[:allowed])
            allowed -= len(taken[-1])
            if not allowed:
                break
        written = real_writev(fd, taken)
        short.append(sum(len(b) for b in buffers) - written)
        return written

    monkeypatch.setattr(os, "writev", writev)
    dest = tmp_path / "scan.pdf"
    await phone.download_blob(ack.ref, dest)
    await phone.close()
    assert dest.read_bytes() == data
    assert any(short)  # the kernel's short writes did happen
