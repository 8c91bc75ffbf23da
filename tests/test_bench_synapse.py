"""The Synapse comparison of `make bench` (scripts/bench_synapse.py) never vanishes quietly:
a quick run without its cached venv, or an install that fails, is a row saying why.

Run in a child interpreter (the scripts are not a package), offline: pip is told to use
no index, so the failed install never leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_RUN = """
import json, sys
from pathlib import Path
sys.path.insert(0, "scripts")
import bench_synapse as b
venv = Path(sys.argv[1])
b.VENV, b.STAMP = venv, venv / ".installed"
if sys.argv[2] == "background":
    b.install_in_background()  # as make bench does before its corpus builds
print(json.dumps(b.bench_synapse(quick=sys.argv[2] == "quick", work_dir=venv.parent)))
"""


def _rows(tmp_path: Path, mode: str) -> list[dict[str, object]]:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(tmp_path / "synapse-venv"), mode],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, object]] = json.loads(done.stdout.splitlines()[-1])
    return rows


def test_a_quick_run_without_the_cached_venv_says_it_did_not_run(tmp_path: Path) -> None:
    [row] = _rows(tmp_path, "quick")
    assert row["value"] is None
    assert "Matrix Synapse" in str(row["name"])
    assert str(row["note"]).startswith("not run: full mode only")
    assert not (tmp_path / "synapse-venv").exists()  # nothing installed by make test


def test_a_failed_install_is_a_row_that_says_why(tmp_path: Path) -> None:
    [row] = _rows(tmp_path, "full")
    assert row["value"] is None
    assert str(row["note"]).startswith("FAILED: could not install Matrix Synapse")
    assert "matrix-synapse" in str(row["note"])  # pip's own reason follows
    assert not (tmp_path / "synapse-venv" / ".installed").exists()  # retried next run


def test_a_background_install_that_fails_is_the_same_row(tmp_path: Path) -> None:
    # make bench starts the cold install beside the corpus builds; the Synapse
    # section waits for it, and its failure still becomes the row saying why.
    [row] = _rows(tmp_path, "background")
    assert row["value"] is None
    assert str(row["note"]).startswith("FAILED: could not install Matrix Synapse")
    assert "matrix-synapse" in str(row["note"])
    assert not (tmp_path / "synapse-venv" / ".installed").exists()
