"""scripts/bench_peer_harness.py's child processes: a result comes back, a failure is
raised, and a child that dies without a word (killed, out of memory, a crash in C) is
an error naming its exit status and the end of its stderr: `wait_for_child` used to
wait for it forever, and a whole `make bench` with it. What a child says on stderr
(bench_growth's progress) reaches the console while it runs, not only once it ends."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
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


PROGRESS = r"""
import json, sys
sys.path.insert(0, "scripts")
sys.path.insert(0, "app")
from bench_peer_harness import start_in_fresh_process, wait_for_child

# A bench child that reports progress, then works on (here: until the test has seen
# that progress on this process's console, at most 60 s), then dies.
WORK = '''
import os, sys, time
print("étape 1 : copie de l'archive de 5 000 000 enregistrements", file=sys.stderr, flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(GO) and time.monotonic() < deadline:
    time.sleep(0.05)
seen = "vue pendant le travail" if os.path.exists(GO) else "jamais vue avant la fin"
print("étape 2 : la progression a été " + seen, file=sys.stderr, flush=True)
os._exit(3)
'''

if __name__ == "__main__":
    work = "GO = " + repr(sys.argv[1]) + "\n" + WORK
    try:
        wait_for_child(start_in_fresh_process(exec, work), "the growth ingest")
    except RuntimeError as exc:
        print(json.dumps({"error": str(exc)}))
"""


def test_a_childs_progress_reaches_the_console_while_it_runs_and_its_tail_the_error(
    tmp_path: Path,
) -> None:
    # Review L3: the child's stderr went to a file replayed only when it ended, so a
    # `make bench` looked hung for its longest steps.
    script, go = tmp_path / "progress.py", tmp_path / "go"
    script.write_text(PROGRESS, encoding="utf-8")
    run = subprocess.Popen(
        [sys.executable, str(script), str(go)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_the_console() -> None:
        assert run.stderr is not None
        for line in run.stderr:
            lines.put(line)
        lines.put("")  # the end

    reader = threading.Thread(target=read_the_console, daemon=True)
    reader.start()
    console: list[str] = []
    try:
        while not any("étape 1" in line for line in console):
            line = lines.get(timeout=90)  # the child waits 60 s at most
            assert line, f"the console ended without the child's progress: {console}"
            console.append(line)
        go.touch()  # the progress was on the console while the child still worked
        assert run.stdout is not None
        out = run.stdout.read()
        assert run.wait(timeout=60) == 0
    finally:
        run.kill()
    reader.join(timeout=30)
    while (line := lines.get(timeout=30)) != "":
        console.append(line)
    said = "".join(console)
    assert "étape 2 : la progression a été vue pendant le travail" in said, said
    # Each line once on the console (copied as it came, not replayed again at the end).
    assert said.count("étape 1") == 1 and said.count("étape 2") == 1, said
    error = json.loads(out)["error"]
    assert "the growth ingest died without a result (exit status 3)" in error, error
    assert error.endswith(
        "étape 1 : copie de l'archive de 5 000 000 enregistrements\n"
        "étape 2 : la progression a été vue pendant le travail"
    ), error
