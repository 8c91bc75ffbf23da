"""The report of `make bench`: the machine it ran on, and the markdown table."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path

from bench_archive import Figure

REPO = Path(__file__).resolve().parent.parent


# -- the machine -------------------------------------------------------------------------


def machine() -> str:
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPU ({model}), {ram} RAM, Python {platform.python_version()}"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out + (" (with uncommitted changes)" if dirty else "")


# -- the report -----------------------------------------------------------------------------


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) or value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(figures: list[Figure], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append(
        "| Figure | Value | Unit | Ceiling (same run) | Ratio value/ceiling | Aim (issue) | Notes |"
    )
    lines.append("|---|---:|---|---:|---:|---|---|")
    for f in figures:
        ceiling = _num(f.ceiling) + (f" ({f.ceiling_what})" if f.ceiling_what else "")
        ratio = "—" if f.ratio is None else f"{f.ratio:.2f}"
        cells = [f.name, _num(f.value), f.unit, ceiling, ratio, f.aim or "—", f.note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


KEEP_MARK = "<!-- notes below are kept by bench.py -->"


def kept_notes(path: Path) -> str:
    """What follows KEEP_MARK in the current report (measurements by hand, their sizes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    at = text.find(KEEP_MARK)
    return "" if at < 0 else "\n" + text[at:]
