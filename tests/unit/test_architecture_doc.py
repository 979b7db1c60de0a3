"""docs/architecture.md names every package and every module of shardproxy."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def named_in_doc() -> set[str]:
    """Every `name` and `pkg/name` in backticks, split at "/" and "." too."""
    names: set[str] = set()
    prose = re.sub(r"```.*?```", "", DOC, flags=re.S)
    for quoted in re.findall(r"`([^`]+)`", prose):
        names.add(quoted.strip("/"))
        names.update(part for part in re.split(r"[/.]", quoted) if part)
    return names


def test_every_package_and_module_is_named() -> None:
    named = named_in_doc()
    missing = []
    for path in sorted((ROOT / "shardproxy").rglob("*.py")):
        relative = path.relative_to(ROOT / "shardproxy")
        wanted = relative.parent.name if path.name == "__init__.py" else path.stem
        if wanted and wanted not in named:
            missing.append(str(relative))
    assert not missing, f"docs/architecture.md does not name: {missing}"
