"""Medians, ratios, target verdicts and the markdown that shows them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Series:
    """Repeated measurements of one figure for one proxy."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def spread(self, digits: int) -> str:
        """``median (min-max)``, or the median alone for a single value."""
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.values[0]:.{digits}f}"
        low, high = min(self.values), max(self.values)
        return f"{self.median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


@dataclass
class Column:
    """One measured column of a table: its heading, its key and how to print it."""

    heading: str
    key: str
    digits: int


@dataclass
class Table:
    """A figure: rows of proxies, columns of measurements, and ratios to one row."""

    title: str
    note: str
    columns: list[Column]
    rows: dict[str, dict[str, Series]] = field(default_factory=dict)
    ratio_of: str = ""
    ratio_keys: tuple[str, ...] = ()

    def record(self, row: str, key: str, value: float) -> None:
        self.rows.setdefault(row, {}).setdefault(key, Series()).add(value)

    def median(self, row: str, key: str) -> float:
        series = self.rows.get(row, {}).get(key)
        return series.median if series is not None else float("nan")

    def markdown(self) -> str:
        """The table in markdown: medians with (min-max), then ratios to ``ratio_of``."""
        headings = [c.heading for c in self.columns]
        ratio_headings = [
            f"{self.ratio_of} / this, {self._column(key).heading}" for key in self.ratio_keys
        ]
        lines = [f"### {self.title}", "", self.note, ""]
        lines.append("| proxy | " + " | ".join(headings + ratio_headings) + " |")
        lines.append("|---" * (1 + len(headings) + len(ratio_headings)) + "|")
        for row, series in self.rows.items():
            cells = [
                series[c.key].spread(c.digits) if c.key in series else "n/a" for c in self.columns
            ]
            for key in self.ratio_keys:
                ours, theirs = self.median(self.ratio_of, key), self.median(row, key)
                cells.append(f"{ours / theirs:.2f}" if theirs else "n/a")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def _column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass
class Verdict:
    """One target of the issue, what was measured against it, and whether it was met."""

    target: str
    measured: str
    met: bool | None

    def markdown_row(self) -> str:
        mark = {True: "met", False: "missed", None: "not measured"}[self.met]
        return f"| {self.target} | {self.measured} | {mark} |"


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    lines = ["| target | measured (medians) | verdict |", "|---|---|---|"]
    lines += [v.markdown_row() for v in verdicts]
    return "\n".join(lines) + "\n"


def is_number(value: float) -> bool:
    return not math.isnan(value)
