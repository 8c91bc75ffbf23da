"""scripts/bench_peer_harness.py's child processes: a result comes back, a failure is
raised, and a child that dies without a word (killed, out of memory, a crash in C) is
an error naming its exit status and the end of its stderr: `wait_for_child` used to
wait for it forever, and a whole `make bench` with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
sys.path.insert(0, "scripts")
sys.path.insert(0, "app")
from bench_peer_harness import start_in_fresh_process, wait_for_child

def outcome(child, who):
    try:
        return {"ok": wait_for_child(child, who)}
    except RuntimeError as exc:
        return {"error": str(exc)}

if __name__ == "__main__":
    dies = (
        "import os, sys; print('plus de mémoire', file=sys.stderr); sys.stderr.flush();"
        " os._exit(3)"
    )
    print(json.dumps({
        "result": outcome(start_in_fresh_process(divmod, 7, 2), "the sum"),
        "raised": outcome(start_in_fresh_process(int, "x"), "the parse"),
        "died": outcome(start_in_fresh_process(exec, dies), "the ingest"),
    }))
"""


def test_a_child_that_dies_is_an_error_with_its_exit_status_and_stderr(tmp_path: Path) -> None:
    script = tmp_path / "children.py"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,  # the old wait never returned
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["result"] == {"ok": [3, 1]}
    assert found["raised"]["error"].startswith("the parse failed: ValueError")
    died = found["died"]["error"]
    assert "the ingest died without a result (exit status 3)" in died, died
    assert died.endswith("plus de mémoire")
    # What the children wrote on stderr still reaches the console.
    assert "ValueError" in done.stderr and "plus de mémoire" in done.stderr
