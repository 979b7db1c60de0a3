"""docs/configuration.md has a row for every setting, with its flag, variable and default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shardproxy.config.option import Option
from shardproxy.config.settings import OPTIONS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def setting_rows(text: str) -> dict[str, list[str]]:
    """Each table row's cells, by every `name` in its first cell."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = cells
    return rows


ROWS = setting_rows(PAGE.read_text())


def shown_default(option: Option) -> str | None:
    """How the page writes the option's default, or None when it has none to show."""
    default = option.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"`{default:g}`"
    if default is None or default in ((), "", {}):
        return None
    if isinstance(default, tuple):  # as --help shows it
        return "`" + ",".join(str(item) for item in default) + "`"
    return f"`{default}`"


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_every_setting_has_a_row_with_its_flag_variable_and_default(option: Option) -> None:
    assert option.name in ROWS, f"docs/configuration.md has no row for `{option.name}`"
    _, flag, env, default, _ = ROWS[option.name]
    assert f"`{option.flag}" in flag
    assert option.env in env
    wanted = shown_default(option)
    if wanted is not None:
        assert wanted in default, f"{option.name}: default {wanted} not in {default!r}"


def test_every_row_names_a_setting_that_exists() -> None:
    known = {option.name for option in OPTIONS}
    assert sorted(set(ROWS) - known) == []


def test_rows_are_read_by_their_first_cell_only() -> None:
    rows = setting_rows(
        "| `a_b`, `c` | `--a-b` | `X` | | see `other` |\n| not a row |\n| `d` | f | e | - | m |\n"
    )
    assert sorted(rows) == ["a_b", "c", "d"]
    assert rows["c"][3:] == ["", "see `other`"]
