"""The import contracts (import-linter, pyproject.toml) hold, and would catch a breach.

Each breach is planted in a copy of the package, so a contract that checks nothing (a
wrong module name, a layer left out) fails here instead of passing quietly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the ``shardproxy`` package under ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        check=False,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml."""
    shutil.copytree(ROOT / "shardproxy", tmp_path / "shardproxy")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(module: Path, line: str) -> None:
    text = module.read_text()
    head, _, rest = text.partition("from __future__ import annotations\n")
    module.write_text(f"{head}from __future__ import annotations\n{line}\n{rest}")


def test_the_package_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_pure_module_that_imports_asyncio_breaks_the_no_io_contract(tree: Path) -> None:
    plant(tree / "shardproxy/core/shards.py", "import asyncio  # noqa")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "shardproxy.core.shards -> asyncio" in result.stdout


def test_a_lower_layer_that_imports_a_higher_one_breaks_the_layers(tree: Path) -> None:
    plant(tree / "shardproxy/listing/policy.py", "import shardproxy.web.proxy  # noqa")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "shardproxy.listing is not allowed to import shardproxy.web" in result.stdout


def test_two_modules_importing_each_other_break_the_cycle_contract(tree: Path) -> None:
    plant(tree / "shardproxy/rc/targets.py", "import shardproxy.rc.route  # noqa")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "No cycles are allowed in shardproxy.rc" in result.stdout
