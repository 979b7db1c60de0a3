"""The issue's targets, judged from the figures of one run."""

from __future__ import annotations

from loadtest.figures import (
    FILTERED,
    HAPROXY,
    HAPROXY_SPLICE,
    NGINX,
    PASS_THROUGH,
    SHARDPROXY,
    SHARDPROXY_2W,
)
from loadtest.report import Table, Verdict, is_number


def judge(tables: dict[str, Table]) -> list[Verdict]:
    """One verdict per target whose figure was measured in this run."""
    found: list[Verdict] = []
    if "big" in tables:
        found += _streaming(tables["big"])
    if "small" in tables:
        found += _small(tables["small"])
    if "propfind" in tables:
        found.append(_filtering(tables["propfind"]))
    if "memory" in tables:
        found.append(_memory(tables["memory"]))
    return found


def _streaming(big: Table) -> list[Verdict]:
    ours = big.median(SHARDPROXY, "rate")
    rates = [(big.median(x, "rate"), x) for x in (HAPROXY, HAPROXY_SPLICE)]
    fastest, fastest_label = max(r for r in rates if is_number(r[0]))
    cpu, theirs = big.median(SHARDPROXY, "cpu"), big.median(HAPROXY, "cpu")
    return [
        Verdict(
            "1 GiB GET throughput ≥ HAProxy's (its faster variant)",
            f"{ours:.0f} MiB/s vs {fastest_label} {fastest:.0f} MiB/s (ratio {ours / fastest:.2f})",
            ours >= fastest,
        ),
        Verdict(
            "proxy CPU per GiB ≤ HAProxy's without splice",
            f"{cpu:.3f} s/GiB vs {theirs:.3f} s/GiB (ratio {cpu / theirs:.2f})",
            cpu <= theirs,
        ),
    ]


def _small(small: Table) -> list[Verdict]:
    nginx = small.median(NGINX, "rps")
    found = []
    for label in (SHARDPROXY, SHARDPROXY_2W):
        rps = small.median(label, "rps")
        found.append(
            Verdict(
                f"small GETs ≥ 0.8 of nginx's requests/s ({label})",
                f"{rps:.0f}/s vs {nginx:.0f}/s (ratio {rps / nginx:.2f})",
                rps >= 0.8 * nginx,
            )
        )
    return found


def _filtering(listing: Table) -> Verdict:
    passed, filtered = listing.median(PASS_THROUGH, "rps"), listing.median(FILTERED, "rps")
    passed_cpu, filtered_cpu = listing.median(PASS_THROUGH, "cpu"), listing.median(FILTERED, "cpu")
    cost = filtered_cpu / passed_cpu - 1
    return Verdict(
        "PROPFIND filtering costs ≤ 20% over pass-through of the same listing",
        f"CPU {filtered_cpu:.0f} µs/request filtered vs {passed_cpu:.0f} passed through "
        f"({cost:+.0%}); {filtered:.0f} vs {passed:.0f} requests/s",
        cost <= 0.2,
    )


def _memory(memory: Table) -> Verdict:
    peak = memory.median(SHARDPROXY, "peak")
    growth = memory.median(SHARDPROXY, "growth")
    settled = memory.median(SHARDPROXY, "settled")
    return Verdict(
        "200 slow readers: RSS ≤ 150 MiB, flat over time",
        f"peak {peak:.1f} MiB; {growth:+.1f} MiB from a quarter of the time to the end",
        peak <= 150 and growth <= max(2.0, 0.05 * settled),
    )
