"""What ``shardproxy relink`` does to one symlink, and its journal's records.

A library link made by NzbDav (or Sonarr/Radarr importing its ``.rclonelink`` files)
points at ``{mount}/.ids/<h1>/<h2>/<h3>/<h4>/<h5>/<uuid>``. Relinking points it at the
same file in its shard's view, ``{mount}/.ids-s<N>/...``; undoing points it back.
Targets stay under ``{mount}/.ids``: NzbDav's "remove unlinked files" keeps only items
whose link target starts with that, and ``{mount}/.ids-s<N>`` does. Pure: the decision
is made from the target text alone, never by following the link.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from shardproxy.core.shards import (
    IDS_NAME,
    IDS_ROOT,
    ShardMap,
    ViewPath,
    ViewPathError,
    is_ids_root_name,
    root_shard,
)

JOURNAL_VERSION = 1


class Outcome(enum.Enum):
    """How a link is counted."""

    CHANGE = "changed"
    RIGHT = "already right"
    SKIP = "skipped"
    BROKEN = "broken"


@dataclass(frozen=True)
class LinkPlan:
    """The decision for one link: its outcome, the new target, and why."""

    outcome: Outcome
    new_target: str = ""
    reason: str = ""


def normalize_mount(mount: str) -> str:
    """The mount directory as link targets spell it: absolute, no trailing slash."""
    trimmed = mount.rstrip("/")
    if not mount.startswith("/"):
        raise ValueError(f"mount dir {mount!r} must be an absolute path, e.g. /mnt/nzbdav")
    return trimmed


def plan_link(target: str, mount: str, shard_map: ShardMap, *, undo: bool) -> LinkPlan:
    """What to do with a link whose target is ``target`` (``mount`` as normalize_mount gives).

    Forward, a file under ``.ids`` (or under the wrong ``.ids-s<N>``, left by an older
    map) moves to its owner's view. With ``undo``, a file under any ``.ids-s<N>`` moves
    back to ``.ids``. Anything not under ``{mount}/.ids`` is skipped; a target under it
    that is not a file NzbDav makes (levels not matching the UUID, a shard that does not
    exist) is broken and left alone.
    """
    head = f"{mount}/"
    root, _, rest = target.removeprefix(head).partition("/")
    if not target.startswith(head) or not is_ids_root_name(root):
        return LinkPlan(Outcome.SKIP, reason=f"not under {mount}{IDS_ROOT}")
    try:
        shard = root_shard(root, shard_map)
        # Parsed as a path of the whole tree: a link into the wrong view is not broken,
        # it is moved to the right one.
        path = ViewPath.parse(IDS_NAME, rest.split("/"), shard_map)
    except ViewPathError as exc:
        return LinkPlan(Outcome.BROKEN, reason=str(exc))
    if not path.uuid:
        return LinkPlan(Outcome.BROKEN, reason="a folder, not a file NzbDav makes")
    wanted = None if undo else path.owner(shard_map)
    if shard == wanted:
        return LinkPlan(Outcome.RIGHT)
    return LinkPlan(Outcome.CHANGE, new_target=mount + str(replace(path, shard=wanted)))


# --- the journal ------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalHeader:
    """What a run was doing: a resumed run must be doing the same."""

    mount: str
    undo: bool
    owners: tuple[int, ...]
    version: int = JOURNAL_VERSION

    def describe(self) -> str:
        """``relink to shard views of /mnt/nzbdav`` or ``undo ...``, for messages."""
        return ("undo (back to .ids)" if self.undo else "relink into shard views") + (
            f" of {self.mount}"
        )


@dataclass(frozen=True)
class JournalEntry:
    """One link about to be changed: written before the rename, so a resume can clean up."""

    link: str  # relative to the library
    old: str
    new: str


@dataclass
class JournalState:
    """What a journal file says: the run, the links it touched, whether it finished."""

    header: JournalHeader | None = None
    entries: list[JournalEntry] | None = None
    finished: bool = False


def encode_header(header: JournalHeader) -> str:
    """The journal's first line."""
    fields = asdict(header)
    fields["owners"] = list(header.owners)
    return json.dumps({"header": fields}) + "\n"


def encode_entry(entry: JournalEntry) -> str:
    """One journal line for a link about to change."""
    return json.dumps(asdict(entry)) + "\n"


def encode_finished(counts: dict[str, int]) -> str:
    """The journal's last line, once every link is done."""
    return json.dumps({"finished": counts}) + "\n"


def decode_journal(text: str, where: str) -> JournalState:
    """Read a journal; a torn last line (the run was killed mid-write) is ignored."""
    state = JournalState(entries=[])
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record: Any = json.loads(line)
        except ValueError:
            if number == len(lines):  # the last line, cut short by a kill
                break
            raise ValueError(f"{where}: line {number} is not JSON; delete the file") from None
        if "header" in record:
            fields = record["header"]
            if fields.get("version") != JOURNAL_VERSION:
                raise ValueError(f"{where}: written by another version; delete the file")
            state.header = JournalHeader(
                fields["mount"], bool(fields["undo"]), tuple(fields["owners"])
            )
        elif "finished" in record:
            state.finished = True
        else:
            assert state.entries is not None
            state.entries.append(JournalEntry(record["link"], record["old"], record["new"]))
    return state


def resume_problem(previous: JournalState, header: JournalHeader) -> str:
    """Why ``header``'s run cannot go on over the unfinished ``previous`` run, or ''.

    The same run resumes; the opposite direction undoes it. The same direction with
    another mount or shard map would leave links of two runs mixed.
    """
    if previous.finished or previous.header is None or previous.header == header:
        return ""
    if previous.header.undo != header.undo:
        return ""
    return (
        f"an interrupted run ({previous.header.describe()}, shard map "
        f"{list(previous.header.owners)}) is not finished: run it again with the same "
        "settings to resume it, or with --undo to undo it"
    )
