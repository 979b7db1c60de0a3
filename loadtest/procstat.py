"""CPU time and resident memory of a process and all its descendants, from /proc."""

from __future__ import annotations

import os
from collections.abc import Iterator


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                # The command name may hold spaces and parentheses: split after the last ')'.
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found = [root]
    for pid in found:
        found.extend(children.get(pid, ()))
    return found


def _task_dirs(pid: int) -> Iterator[str]:
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            yield f"/proc/{pid}/task/{task}"
    except OSError:
        return


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by ``root``'s tree, every thread counted.

    schedstat counts nanoseconds, where /proc/PID/stat counts 10 ms ticks: a 1 GiB
    transfer costs well under a second, so the ticks would be too coarse.
    """
    total = 0
    for pid in descendants(root):
        for task in _task_dirs(pid):
            try:
                with open(f"{task}/schedstat", "rb") as schedstat:
                    total += int(schedstat.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def rss_bytes(root: int) -> int:
    """Resident memory of ``root``'s tree (VmRSS summed over its processes)."""
    total = 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU time every CPU of the machine has spent not idle, from /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat", "rb") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / ticks


def memory_available() -> int:
    """The machine's MemAvailable, in bytes."""
    with open("/proc/meminfo", "rb") as meminfo:
        for line in meminfo:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(root: int) -> int:
    """Peak resident memory of ``root``'s tree (VmHWM summed over its live processes)."""
    total = 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmHWM:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total
