"""What a newcomer reads first is true: README's documentation list names every document
in docs/ (a document it leaves out is one nobody finds), and each link opens."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_lists_every_document_in_docs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = _section(readme, "Documentation")
    listed = re.findall(r"^- \[(docs/[^\]]+)\]\(([^)]+)\) — \S", section, re.M)
    assert listed, "README's Documentation section lists no document"
    for name, target in listed:
        assert name == target, (name, target)
        assert (REPO / target).is_file(), target
    on_disk = {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")}
    assert {name for name, _ in listed} == on_disk


def test_readme_names_every_debian_package_make_test_installs() -> None:
    script = (REPO / "scripts" / "ensure-system-deps.sh").read_text(encoding="utf-8")
    installed = set(re.findall(r"needed\+=\(([a-z0-9.+-]+)\)", script))
    assert len(installed) > 10  # the script's form was understood
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    start = readme.index("also installs the Debian packages the tests need (")
    named = set(re.findall(r"`([a-z0-9.+-]+)`", readme[start : readme.index(")", start)]))
    assert named == installed
