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
from dataclasses import asdict, dataclass, field, replace
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


# --- temporary names --------------------------------------------------------------------

NAME_MAX = 255  # bytes in one name, on every Linux filesystem a library lives on
TMP_SUFFIX = ".shardproxy-relink"


def _encoded(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def temporary_name(name: str, token: str) -> str:
    """The name of the new link made beside ``name`` before it is renamed over it.

    ``.{name}.{token}.shardproxy-relink``, with ``name`` cut short when the whole would
    not fit ``NAME_MAX`` bytes. ``token`` (random, recorded in the journal) keeps it apart
    from any name already there.
    """
    tail = f".{token}{TMP_SUFFIX}"
    room = NAME_MAX - 1 - len(_encoded(tail))
    head = name[:room]  # a character is at least one byte
    while len(_encoded(head)) > room:  # cut whole characters, never one in half
        head = head[:-1]
    return f".{head}{tail}"


def legacy_temporary_name(name: str) -> str | None:
    """The temporary name older versions used (no token, not recorded), if it can exist."""
    legacy = f".{name}{TMP_SUFFIX}"
    return legacy if len(_encoded(legacy)) <= NAME_MAX else None


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
    tmp: str = ""  # the temporary link's name beside it; "" in older journals


@dataclass
class LinkHistory:
    """What relink did to one link, by the journal.

    ``origin`` is its target before relink first changed it, ``current`` the one relink
    set last, ``before`` the one it had before that last change. The last change may not
    have happened (a kill between the journal line and the rename), so a link found at
    ``before`` is still relink's.
    """

    origin: str
    current: str
    before: str


@dataclass
class JournalState:
    """What a journal file says.

    ``header`` is the last run's, ``finished`` whether it finished, ``pending`` the
    entries of the runs since the last finished one (to resume and to clean up after),
    ``links`` each link's history over every run, ``problems`` the lines skipped.
    """

    header: JournalHeader | None = None
    finished: bool = True
    pending: list[JournalEntry] = field(default_factory=list)
    links: dict[str, LinkHistory] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def encode_header(header: JournalHeader) -> str:
    """A run's first line."""
    fields = asdict(header)
    fields["owners"] = list(header.owners)
    return json.dumps({"header": fields}) + "\n"


def encode_entry(entry: JournalEntry) -> str:
    """One journal line for a link about to change."""
    return json.dumps(asdict(entry)) + "\n"


def encode_finished(counts: dict[str, int]) -> str:
    """A run's last line, once every link is done."""
    return json.dumps({"finished": counts}) + "\n"


def _is_inside(relative: str) -> bool:
    parts = relative.split("/")
    return "\0" not in relative and all(part not in ("", ".", "..") for part in parts)


_FIELDS = ("link", "old", "new", "tmp")


def _entry(record: dict[str, Any]) -> JournalEntry | str:
    """The entry a journal line holds, or why it cannot be one."""
    link, old, new, tmp = (record.get(key, "" if key == "tmp" else None) for key in _FIELDS)
    if not (isinstance(link, str) and isinstance(old, str) and isinstance(new, str)):
        return "not a link entry"
    if not isinstance(tmp, str):
        return f"{link}: temporary name {tmp!r} is not text"
    if not _is_inside(link):
        return f"link {link!r} is not a path inside the library"
    if not old or not new or "\0" in old + new:
        return f"{link}: a target is empty or holds a NUL"
    if tmp and ("/" in tmp or not tmp.endswith(TMP_SUFFIX) or "\0" in tmp):
        return f"{link}: temporary name {tmp!r} is not one relink makes"
    return JournalEntry(link, old, new, tmp)


def _replay(links: dict[str, LinkHistory], entry: JournalEntry, *, undo: bool) -> None:
    """Add one entry of a run (an undo run when ``undo``) to the links' histories."""
    history = links.get(entry.link)
    if history is None or entry.old not in (history.current, history.before):
        if not undo:  # first changed by relink, or changed by someone else since
            links[entry.link] = LinkHistory(entry.old, entry.new, entry.old)
        return  # an undo of a link relink never changed: --all's, not the journal's
    if entry.old == history.current:
        history.before = history.current
    history.current = entry.new


def decode_journal(text: str, where: str) -> JournalState:
    """Read a journal of one or more runs.

    A torn last line (a kill mid-write) is ignored; any other line that is not an entry
    is skipped and named in ``problems``. A header that cannot be read stops it: the
    lines after it could not be told apart.
    """
    state = JournalState()
    undo: bool | None = None
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            record: Any = json.loads(line)
        except ValueError:
            if number < len(lines):  # not the last line, cut short by a kill
                state.problems.append(f"line {number}: not JSON, skipped")
            continue
        if not isinstance(record, dict):
            state.problems.append(f"line {number}: not a record, skipped")
        elif "header" in record:
            state.header = _header(record["header"], f"{where}: line {number}")
            state.finished, undo = False, state.header.undo
        elif "finished" in record:
            state.finished, state.pending = True, []
        else:
            entry = _entry(record)
            if isinstance(entry, str) or undo is None:
                why = entry if isinstance(entry, str) else "an entry before any run's header"
                state.problems.append(f"line {number}: {why}, skipped")
                continue
            state.pending.append(entry)
            _replay(state.links, entry, undo=undo)
    return state


def _header(fields: Any, where: str) -> JournalHeader:
    try:
        if fields.get("version") != JOURNAL_VERSION:
            raise ValueError(f"{where}: written by another version")
        return JournalHeader(fields["mount"], bool(fields["undo"]), tuple(fields["owners"]))
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: a run's header cannot be read ({exc})") from None


NOT_RELINKS = "in a shard view, but not put there by relink: left (--all moves it too)"


def plan_undo(
    target: str, history: LinkHistory | None, mount: str, shard_map: ShardMap, *, every: bool
) -> LinkPlan:
    """``--undo`` for one link: back to what the journal says it was before relink.

    A link relink changed goes back to its ``origin``, whatever view that is; one changed
    by someone since is left alone. A link in a shard view that relink did not put there
    (there before the first run, or made so by an import) stays. With ``every``
    (``--all``) every link in a shard view goes to ``.ids``, as ``plan_link`` says.
    """
    if every:
        return plan_link(target, mount, shard_map, undo=True)
    if history is not None and target != history.origin:
        if target in (history.current, history.before):
            return LinkPlan(Outcome.CHANGE, new_target=history.origin)
        return LinkPlan(Outcome.SKIP, reason="changed since relink changed it: left alone")
    plan = plan_link(target, mount, shard_map, undo=True)
    if plan.outcome is Outcome.CHANGE:
        return LinkPlan(Outcome.SKIP, reason=NOT_RELINKS)
    return plan


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
