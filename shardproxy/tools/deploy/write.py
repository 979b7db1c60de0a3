"""Writing ``gen``'s files: never through a link, never over a person's changes.

Each new file is created at mode 600 with ``O_EXCL | O_NOFOLLOW``, so its secrets are
never readable by others, not even for a moment, and nothing already there is opened. A
file already there with the same text is left as it is. A file with other text, or a
link, stops the run before anything is written, with a diff of what would change (its
passwords hidden); ``--force`` replaces such files with a new file renamed over the name,
which replaces a link itself, never what it points at.

Why ``--force`` and not ``NAME.new`` beside each file: the files work as a set (units
name each other, ``rclone.conf``'s remotes are the units' remotes), and a set of
``.new`` files is easy to half-apply. The diff shows what a person would lose; the
choice to replace is theirs, made once for the set.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK, S_ISREG

from shardproxy.config.settings import ConfigError

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIFF_LINES = 40
HIDDEN = "<hidden>"


class Found(enum.Enum):
    """What is at a generated file's name before writing."""

    NOTHING = "nothing"
    SAME = "the same text"
    OTHER_TEXT = "other text"
    LINK = "a symlink"
    NOT_A_FILE = "not a regular file"


@dataclass(frozen=True)
class Existing:
    """What is at a name, with its text when it is a regular file."""

    found: Found
    text: str = ""


# --- pure: what a person is shown ------------------------------------------------------

_SECRET_PATTERNS = (
    # rclone.conf and TOML keys: pass, password2, secret_access_key, token, client_secret...
    re.compile(r'^(\s*"?[\w-]*(?:pass|secret|token|key)[\w-]*"?\s*[=:]\s*).+', re.IGNORECASE),
    re.compile(r"(//[^/:@\s]+:)[^@/\s]+(@)"),  # user:password@ in a URL
    re.compile(r"(--rc-pass[= ]\s*)\S+"),  # a unit's command line
)


_FLAG_AT_END = re.compile(r'--rc-pass"?,?\s*$')


def hide_secrets(lines: Iterable[str], known: Sequence[str]) -> list[str]:
    """``lines`` with every known secret and every password-looking value hidden.

    A line right after one ending in ``--rc-pass`` (a compose command list, in JSON or
    YAML) is its value.
    """
    shown: list[str] = []
    after_flag = False
    for line in lines:
        hidden = line
        for secret in known:
            if secret:
                hidden = hidden.replace(secret, HIDDEN)
        for pattern in _SECRET_PATTERNS:
            hidden = pattern.sub(_hide_match, hidden)
        if after_flag:  # the value of a flag that ended the line before
            if '"' in hidden:
                hidden = re.sub(r'"[^"]*"', f'"{HIDDEN}"', hidden, count=1)
            else:
                hidden = re.sub(r"^(\s*-\s*).+", rf"\g<1>{HIDDEN}", hidden)
        after_flag = _FLAG_AT_END.search(hidden) is not None
        shown.append(hidden)
    return shown


def _hide_match(match: re.Match[str]) -> str:
    return match.group(1) + HIDDEN + (match.group(2) if match.lastindex == 2 else "")


def describe_difference(name: str, now: str, made: str, known: Sequence[str]) -> list[str]:
    """A unified diff from the file ``name`` as it is to what gen makes, secrets hidden."""
    diff = list(
        difflib.unified_diff(
            hide_secrets(now.splitlines(), known),
            hide_secrets(made.splitlines(), known),
            fromfile=f"{name} (as it is)",
            tofile=f"{name} (as gen makes it)",
            lineterm="",
        )
    )
    if len(diff) > _DIFF_LINES:
        diff = [*diff[:_DIFF_LINES], f"... {len(diff) - _DIFF_LINES} more lines"]
    return diff


# --- I/O --------------------------------------------------------------------------------


def _lstat(name: str, folder: int) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=folder)
    except FileNotFoundError:
        return None


def existing(name: str, folder: int, text: str) -> Existing:
    """What is at ``name`` in ``folder`` compared with ``text``; nothing is followed."""
    stat = _lstat(name, folder)
    if stat is None:
        return Existing(Found.NOTHING)
    if S_ISLNK(stat.st_mode):
        return Existing(Found.LINK, os.readlink(name, dir_fd=folder))
    if not S_ISREG(stat.st_mode):
        return Existing(Found.NOT_A_FILE)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as stream:
        now = stream.read()
    return Existing(Found.SAME if now == text else Found.OTHER_TEXT, now)


def read_existing(out: Path, name: str) -> str | None:
    """The text of ``out/name`` when it is a regular file (never through a link), else None."""
    try:
        folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        found = existing(name, folder, "")
    except OSError:
        return None
    finally:
        os.close(folder)
    return found.text if found.found in (Found.SAME, Found.OTHER_TEXT) else None


def _open_out(out: Path) -> int:
    """``out``, made when missing, opened as a folder; a clear error when it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"--out {out}: it (or a folder above it) is a file, not a folder; name a folder "
            "(it is made when missing)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot make or open it ({exc.strerror})") from None
    try:  # a probe, so that nothing is half-written into a folder that takes no files
        probe = f".shardproxy-gen-probe.{secrets.token_hex(4)}"
        os.close(os.open(probe, _NEW_FILE, 0o600, dir_fd=folder))
        os.unlink(probe, dir_fd=folder)
    except OSError as exc:
        os.close(folder)
        raise ConfigError(
            f"--out {out}: cannot write in it ({exc.strerror}); choose a folder you can write"
        ) from None
    return folder


def _subfolder(folder: int, name: str, shown: str, *, make: bool) -> int | None:
    """The folder ``name`` in ``folder``, never through a link; None when it is missing
    and not ``make``."""
    if make:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=folder)
    try:
        return os.open(name, _FOLDER, dir_fd=folder)
    except FileNotFoundError:
        if make:
            raise
        return None
    except OSError:
        raise ConfigError(
            f"{shown} is a link or a file, not a folder; gen never writes through links: "
            "remove it, or choose another --out"
        ) from None


def _write_new(name: str, folder: int, text: str) -> None:
    """Create ``name`` (mode 600, never over anything) with ``text``; on failure (a full
    disk) the file just made is removed, so no half file is left."""
    fd = os.open(name, _NEW_FILE, 0o600, dir_fd=folder)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        data = text.encode("utf-8", "surrogateescape")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError:
        os.unlink(name, dir_fd=folder)
        raise
    finally:
        os.close(fd)


def _replace(name: str, folder: int, text: str) -> None:
    temporary = f".{name}.{secrets.token_hex(4)}.shardproxy-gen"
    _write_new(temporary, folder, text)
    try:
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError:
        os.unlink(temporary, dir_fd=folder)
        raise


def write_files(
    out: Path, files: Mapping[str, str], *, force: bool, known_secrets: Sequence[str]
) -> list[Path]:
    """Write ``files`` (relative name -> text) under ``out``; the paths written or kept.

    Raises ConfigError, before writing anything, when a name holds something else
    (without ``force``) or something that is not a file or link (always).
    """
    root = _open_out(out)
    folders: dict[str, int | None] = {"": root}
    try:
        plan: list[tuple[str, str, Existing]] = []
        for relative, text in files.items():
            parent, _, name = relative.rpartition("/")
            if parent not in folders:
                folders[parent] = _subfolder(root, parent, str(out / parent), make=False)
            folder = folders[parent]
            found = Existing(Found.NOTHING) if folder is None else existing(name, folder, text)
            plan.append((relative, text, found))
        _refuse_differences(out, plan, force=force, known=known_secrets)
        for relative, text, found in plan:
            parent, _, name = relative.rpartition("/")
            folder = folders[parent]
            if folder is None:
                folder = _subfolder(root, parent, str(out / parent), make=True)
                assert folder is not None  # made, or an error was raised
                folders[parent] = folder
            if found.found is Found.NOTHING:
                _write_new(name, folder, text)
            elif found.found is not Found.SAME:
                _replace(name, folder, text)
    except OSError as exc:
        raise ConfigError(
            f"--out {out}: {exc}; the files written before it are complete, the one being "
            "written was removed: run again once it is fixed"
        ) from None
    finally:
        for fd in folders.values():
            if fd is not None:
                os.close(fd)
    return [out / relative for relative in files]


def _refuse_differences(
    out: Path, plan: list[tuple[str, str, Existing]], *, force: bool, known: Sequence[str]
) -> None:
    blocking = [
        (relative, text, found)
        for relative, text, found in plan
        if found.found is Found.NOT_A_FILE
        or (not force and found.found in (Found.OTHER_TEXT, Found.LINK))
    ]
    if not blocking:
        return
    lines = [f"{len(blocking)} of the files to write are already in {out}; nothing was written:"]
    for relative, text, found in blocking:
        if found.found is Found.LINK:
            lines.append(f"{out / relative} is a symlink (to {found.text}); it is never followed")
        elif found.found is Found.NOT_A_FILE:
            lines.append(f"{out / relative} is not a regular file: remove it first")
        else:
            lines.append(f"{out / relative} has other text:")
            lines.extend(describe_difference(relative, found.text, text, known))
    lines.append(
        "Keep what you need from them, then run again with --force to replace them (a link is "
        "replaced itself, never what it points at), or choose another --out."
    )
    raise ConfigError("\n".join(lines))
