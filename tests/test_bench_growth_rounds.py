"""The growth rows' rounds (scripts/bench_growth_rounds.py) ingest into an archive of
exactly the stated size each round: between rounds the scratch copy is rolled back to
the cached corpus. Here a real archive takes 300 records through the GroupCommitter
(the bench's own ingest), is rolled back, and must be the corpus again byte for byte,
opening with the corpus's records only; a second round then ingests into it again.

Run in a child interpreter (the scripts are not a package).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_RUN = """
import filecmp, json, shutil, sys
from pathlib import Path
sys.path.insert(0, "scripts")
sys.path.insert(0, "app")
import bench_archive as ba
import bench_growth as bg
import bench_growth_rounds as rounds

work = Path(sys.argv[1])
rounds.BIG_FILE = 0  # the block-by-block path for every file, as for a 5 GB archive
base = work / "corpus" / "data"
archive = ba.open_archive(base)
ba.add_phones(archive, bg.PRODUCERS)
archive.close()
data = work / "scratch" / "data"
shutil.copytree(base, data)

def count() -> int:
    archive = ba.open_archive(data)
    try:
        return archive.conn.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        archive.close()

out = {}
for n in range(2):
    run = bg.growth_ingest(work, data, 0, 300, in_place=True)
    out[f"ingested{n}"] = run.msgs_per_s > 0
    out[f"records_after{n}"] = count()
    # What a round killed mid-way leaves beside the database: must not survive.
    (data / "archive.db-wal").write_bytes(b"frames of a round that was killed")
    grown = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    out[f"rewritten{n}"] = rounds.rollback(base, data)
    out[f"grown{n}"] = grown
    names = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    out[f"same_names{n}"] = names == sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    out[f"same_bytes{n}"] = all(
        filecmp.cmp(base / name, data / name, shallow=False)
        for name in names
        if (base / name).is_file()
    )
    out[f"records_rolled_back{n}"] = count()
    shutil.rmtree(data)
    shutil.copytree(base, data)  # count() opened it: start the next round from the corpus
print(json.dumps(out))
"""


def test_rollback_gives_back_the_corpus_byte_for_byte(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for n in range(2):
        assert out[f"ingested{n}"]
        assert out[f"records_after{n}"] == 300
        assert out[f"same_names{n}"], "a WAL or other new file was left behind"
        assert out[f"same_bytes{n}"], "the copy differs from the corpus after the rollback"
        assert out[f"records_rolled_back{n}"] == 0
        # Only what the ingest changed is written back, not the whole file again.
        assert 0 < out[f"rewritten{n}"] <= out[f"grown{n}"]
