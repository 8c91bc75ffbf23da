"""`scripts/bench.py --quick` (the smoke run of `make bench`) runs end to end and prints
a table with a row for every figure. Values are printed, never compared with the aims:
performance belongs to the benchmark report, not to a pass/fail test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Rows the archive benchmarks always fill with a number.
MEASURED_ROWS = [
    "archive ingest ceiling",
    "archive ingest through GroupCommitter",
    "GroupCommitter ack latency p50 (saturated)",
    "GroupCommitter ack latency p99 (saturated)",
    "GroupCommitter ack latency p99 at 1,000 msgs/s offered",
    "bench process RSS idle",
    "bench process peak RSS during committer ingest",
    "full-text search p50 over 20,000 messages",
    "full-text search p95 over 20,000 messages",
    "records office: holds page reads, 4 holds, 20,000 messages",
    "records office: load_facts (office pages, retention), 20,000 messages",
    "full verify per 100,000 records (both cores) / crypto ceiling",
    "incremental verify of one day (3,000 records) on a 20,000-record archive",
    "Archive.open + first signed tree head",
    "soak: RSS at end",
    "soak: open file descriptors at end",
    "ingest into an empty archive (growth reference)",
    "bytes written per 1 KiB record, empty archive",
    "ingest into a 20,000-record archive",
    "bytes written per 1 KiB record, 20,000-record archive",
    "bytes on disk per record, 20,000-record archive",
    "bench process RSS idle, 20,000-record archive open",
    "bench process peak RSS, ingest into 20,000-record archive",
    "box's share of peak RSS, ingest into 20,000-record archive",
    "corpus build, 20,000 messages",
    "corpus build, 30,000 messages",
    "the cached 30,000-message corpus's one-off full-text merge, bytes written",
    "ingest into a 30,000-record archive",
    "CPU per record, ingest into a 30,000-record archive",
    "bytes written per 1 KiB record, 30,000-record archive",
    "bytes on disk per record, 30,000-record archive",
    "box's share of peak RSS, ingest into 30,000-record archive",
    "full-text search p50 over 30,000 messages",
    "full-text search p95 over 30,000 messages",
    "full-text search p95 over 30,000 messages after 2,000 new records, no idle time",
    "full-text search p95 over 30,000 messages after 2,000 new records and the idle merge",
    "bytes written per 1 KiB record by the idle merge, after 2,000 new records,"
    " 30,000-record archive",
    "ack latency p99 of sporadic pushes during the idle merge, 30,000-record archive",
    "bytes written per 1 KiB record over 3 rounds of ingest + idle merge, 30,000-record archive",
    "full-text search p95 over 30,000 messages after 3 rounds of 2,000 new records, each with"
    " its idle merge",
    "new-phone restore",
    "history page at the start of a restore",
    "new-phone restore by the reference client over Noise, 2,000 messages",
    "new-phone restore of attachments over Noise",
    "box peak RSS during a 2,000-message matter export",
    "RSS growth during that export, per 1,000 records",
    "night: retention plan, nothing due, 30,000 records",
    "night: retention plan, 1,000 due, 30,000 records",
    "night: device events in the log (verify's fixed part), 30,000 records",
    "night: dashboard page reads, an empty archive",
    "night: holds page reads (/office), 30,000 records",
    "night: holds page pickers, a keystroke each, 30,000 records",
    "night: due queue page, 1,000 due, 30,000 records",
    "night: retention run, nothing due, 30,000 records",
    "night: verify --scheduled (incremental, one day), 30,000 records",
    "night: destruction of 1,000 records (retention run), 30,000 records",
    "night: box peak RSS during that destruction, 30,000 records",
    "night: MiB written by a destruction of 1,000 records the next night, 30,000 records",
]
# Rows that depend on parts other sessions are building: a number, or the reason there is none.
DEPENDENT_ROWS = [
    "service start to first HTTP 200",
    "sealed export of a 1,000-message",
]
# A number; "not measured" only with its one reason, and only on a machine where the
# reason holds (a box and a phone pinned to cores of their own need two).
PINNED_RESTORE = "new-phone restore of attachments over Noise, box and phone each pinned"
NO_SECOND_CORE = re.compile(r"^not measured: this machine has [01] usable core\(s\)")


def check_pinned_restore(cells: list[str], usable_cores: int) -> None:
    """The pinned restore row is a number, or says the machine has fewer than two
    usable cores when that is so; any other way of not measuring it fails."""
    if cells[1] != "—":
        float(cells[1].replace(",", ""))
        return
    assert usable_cores < 2, f"{usable_cores} usable cores, yet not measured: {cells[-1]!r}"
    assert NO_SECOND_CORE.match(cells[-1]), f"not measured for another reason: {cells[-1]!r}"


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not line.startswith(("| Figure", "|---")):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def find(rows: dict[str, list[str]], prefix: str) -> list[str]:
    matches = [cells for name, cells in rows.items() if name.startswith(prefix)]
    assert matches, f"no row for {prefix!r} in the bench table"
    return matches[0]


def test_quick_bench_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench.py"),
            "--quick",
            "--soak-seconds",
            "3",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| Figure | Value | Unit | Ceiling (same run) | Ratio value/ceiling |" in done.stdout
    assert re.search(r"Machine: \d+ CPU", done.stdout)
    assert "Commit: " in done.stdout and "Date: " in done.stdout
    rows = table_rows(done.stdout)
    for prefix in MEASURED_ROWS:
        cells = find(rows, prefix)
        float(cells[1].replace(",", ""))  # a number, whatever it is
    ratios = ("archive ingest through", "full-text search p50", "full verify", "incremental verify")
    for prefix in ratios:
        cells = find(rows, prefix)
        float(cells[4])  # a ratio to a ceiling measured in the same run
    for prefix in DEPENDENT_ROWS:
        cells = find(rows, prefix)
        assert cells[1] != "—" or cells[-1], f"{prefix!r} has neither a value nor a reason"
    check_pinned_restore(find(rows, PINNED_RESTORE), len(os.sched_getaffinity(0)))
    # The Synapse comparison: figures when its bench venv is cached, else a row saying why.
    synapse = [cells for name, cells in rows.items() if "Matrix Synapse" in name]
    assert synapse, "no Matrix Synapse row in the bench table"
    assert all(cells[1] != "—" or cells[-1] for cells in synapse)
    if not (REPO / "scripts" / "bench_peer.py").exists():
        assert "peer benchmarks: not available" in done.stdout
        assert "not available" in find(rows, "peer benchmarks")[-1]
    # The quick run prints; only the full run writes docs/benchmarks.md.
    assert not (tmp_path / "benchmarks.md").exists()


@pytest.mark.parametrize(
    ("value", "note", "cores", "accepted"),
    [
        ("382.5", "", 2, True),
        ("—", "not measured: this machine has 1 usable core(s), a box and a phone on cores"
         " of their own need two", 1, True),
        # The same reason on a machine where it is false: the row should have a figure.
        ("—", "not measured: this machine has 1 usable core(s), a box and a phone on cores"
         " of their own need two", 2, False),
        ("—", "not measured: the phone crashed", 1, False),
        ("—", "", 1, False),
    ],
)  # fmt: skip
def test_the_pinned_restore_row_is_excused_only_by_a_missing_second_core(
    value: str, note: str, cores: int, accepted: bool
) -> None:
    cells = [PINNED_RESTORE, value, "MiB/s", "—", "—", note]
    if accepted:
        check_pinned_restore(cells, cores)
    else:
        with pytest.raises(AssertionError):
            check_pinned_restore(cells, cores)
