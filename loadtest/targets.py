"""The issue's targets, judged from the figures of one run."""

from __future__ import annotations

from loadtest.client_costs import HEADER_TIMEOUT
from loadtest.figures import (
    BASELINE,
    FILTERED,
    HAPROXY,
    HAPROXY_SPLICE,
    NGINX,
    PASS_THROUGH,
    SHARDPROXY,
)
from loadtest.report import Table, Verdict


def judge(tables: dict[str, Table]) -> list[Verdict]:
    """One verdict per target whose figure was measured in this run."""
    found: list[Verdict] = []
    if "big" in tables:
        found += _streaming(tables["big"])
    if "small" in tables:
        found += _per_request(tables["small"], "small GETs", SHARDPROXY)
    if "propfind" in tables:
        found += _per_request(tables["propfind"], "Depth-1 shard PROPFINDs", FILTERED)
        found.append(_filtering(tables["propfind"]))
    if "walk" in tables:
        found.append(_walk(tables["walk"]))
    if "memory" in tables:
        found.append(_memory(tables["memory"]))
    if "heads" in tables:
        found.append(_heads(tables["heads"]))
    return found


def _streaming(big: Table) -> list[Verdict]:
    ours, splice = big.median(SHARDPROXY, "rate"), big.median(HAPROXY_SPLICE, "rate")
    cpu, theirs = big.median(SHARDPROXY, "cpu"), big.median(HAPROXY, "cpu")
    return [
        Verdict(
            "1 GiB GET throughput ≥ 0.95 x HAProxy splice",
            f"{ours:.0f} MiB/s vs {splice:.0f} MiB/s (ratio {ours / splice:.2f})",
            ours >= 0.95 * splice,
        ),
        Verdict(
            "proxy CPU per GiB ≤ HAProxy's",
            f"{cpu:.3f} s/GiB vs {theirs:.3f} s/GiB (ratio {cpu / theirs:.2f})",
            cpu <= theirs,
        ),
    ]


def _per_request(table: Table, what: str, ours: str) -> list[Verdict]:
    rps, before, nginx = (table.median(x, "rps") for x in (ours, BASELINE, NGINX))
    cpu, cpu_before = table.median(ours, "cpu"), table.median(BASELINE, "cpu")
    return [
        Verdict(
            f"{what}: ≥ 2.5 x the requests/s of before",
            f"{rps:.0f}/s vs {before:.0f}/s (ratio {rps / before:.2f})",
            rps >= 2.5 * before,
        ),
        Verdict(
            f"{what}: ≥ 0.3 x nginx's requests/s",
            f"{rps:.0f}/s vs {nginx:.0f}/s (ratio {rps / nginx:.2f})",
            rps >= 0.3 * nginx,
        ),
        Verdict(
            f"{what}: proxy CPU per request ≤ 0.4 x before",
            f"{cpu:.0f} µs vs {cpu_before:.0f} µs (ratio {cpu / cpu_before:.2f})",
            cpu <= 0.4 * cpu_before,
        ),
    ]


def _filtering(listing: Table) -> Verdict:
    passed_cpu, filtered_cpu = listing.median(PASS_THROUGH, "cpu"), listing.median(FILTERED, "cpu")
    cost = filtered_cpu / passed_cpu - 1
    return Verdict(
        "PROPFIND filtering costs ≤ 20% over pass-through of the same listing",
        f"CPU {filtered_cpu:.0f} µs/request filtered vs {passed_cpu:.0f} passed through "
        f"({cost:+.0%})",
        cost <= 0.2,
    )


def _walk(walk: Table) -> Verdict:
    ours, nginx = walk.median(SHARDPROXY, "seconds"), walk.median(NGINX, "seconds")
    return Verdict(
        "sequential walk ≤ 1.5 x the time through nginx",
        f"{ours:.2f} s vs {nginx:.2f} s (ratio {ours / nginx:.2f})",
        ours <= 1.5 * nginx,
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


def _heads(heads: Table) -> Verdict:
    rows = list(heads.rows)
    growth = max(heads.median(row, "growth") for row in rows)
    last = max(heads.median(row, "last") for row in rows)
    dropped = min(heads.median(row, "dropped") for row in rows)
    first, final = heads.median(rows[0], "before"), heads.median(rows[-1], "after")
    repeat = heads.median(rows[-1], "after") - heads.median(rows[-1], "before")
    return Verdict(
        "500 unfinished 1 MB heads: RSS grows < 50 MiB, dropped within the head timeout, "
        "RSS comes back",
        f"growth ≤ {growth:.1f} MiB; {dropped:.0f} of 500 dropped each time, the last after "
        f"{last:.1f} s (header_timeout {HEADER_TIMEOUT:g} s); RSS {first:.1f} MiB before, "
        f"{final:.1f} after all three rounds, {repeat:+.1f} MiB over the repeated round",
        growth < 50 and dropped == 500 and last <= HEADER_TIMEOUT + 2 and final - first < 5,
    )
