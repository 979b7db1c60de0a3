"""The cache dir a process's command line and environment give rclone.

rclone takes ``--cache-dir DIR`` or ``--cache-dir=DIR`` (when given twice the last one
wins, as with every flag rclone parses), else the ``RCLONE_CACHE_DIR`` environment
variable, else its default under the user's cache folder. A relative dir is relative to
the process's working folder. Pure: argv, environment and working folder come as values.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

FLAG = "--cache-dir"
ENV = "RCLONE_CACHE_DIR"


def cache_dir_flag(argv: Sequence[str]) -> str | None:
    """The value of the last ``--cache-dir`` in ``argv`` (either spelling), or None.

    Parsing stops at ``--``: what follows is positional.
    """
    found = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == FLAG:
            if index + 1 < len(argv):
                found = argv[index + 1]
        elif arg.startswith(FLAG + "="):
            found = arg[len(FLAG) + 1 :]
    return found


def default_cache_dir(environ: Mapping[str, str]) -> str | None:
    """rclone's own default: ``$XDG_CACHE_HOME/rclone`` or ``$HOME/.cache/rclone``."""
    if environ.get("XDG_CACHE_HOME", "").startswith("/"):
        return posixpath.join(environ["XDG_CACHE_HOME"], "rclone")
    if environ.get("HOME", "").startswith("/"):
        return posixpath.join(environ["HOME"], ".cache", "rclone")
    return None


def cache_dir_of(
    argv: Sequence[str], environ: Mapping[str, str], cwd: str, *, rclone: bool
) -> str | None:
    """The absolute cache dir this process uses, or None when it names none.

    ``rclone`` says the program is rclone (whatever its file is called): only then does
    naming no dir mean rclone's default one.
    """
    value = cache_dir_flag(argv)
    if value is None:
        value = environ.get(ENV) or None
    if value is None and rclone:
        value = default_cache_dir(environ)
    if not value:
        return None
    return posixpath.normpath(posixpath.join(cwd, value))
