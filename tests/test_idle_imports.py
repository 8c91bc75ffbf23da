"""A started box has not loaded fpdf2 (issue #20 item 7: idle RSS < 60 MiB).

fpdf2 (with fontTools and PIL behind it) is ~36 MiB of resident memory; only the
recovery kit's PDF and the register's PDF use it, so they import it when they run.
The box is started in a child process (a fresh interpreter, as at boot) and asked
which modules it holds once it serves its first page.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import asyncio, json, sys, urllib.request
sys.path.insert(0, sys.argv[2])
from box_child import _parse
from strongroom.devbox import prepare_dev_box
from strongroom.runtime import BoxRuntime

async def main(config) -> None:
    runtime = BoxRuntime(config.with_overrides(host="127.0.0.1", port=0))
    await runtime.start()
    try:
        status = await asyncio.to_thread(
            lambda: urllib.request.urlopen(runtime.url + "/", timeout=30).status
        )
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("fpdf", "fontTools", "PIL"))
        print(json.dumps({"status": status, "loaded": loaded}))
    finally:
        await runtime.stop()

config, _ = prepare_dev_box(_parse([sys.argv[1]]).data_dir)  # its own event loop: first
asyncio.run(main(config))
"""


def test_a_started_box_has_not_imported_fpdf(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "box"), str(REPO / "tests")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["loaded"] == [], "imported at start: " + ", ".join(result["loaded"][:10])
