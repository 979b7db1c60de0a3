"""How one setting is declared: its spellings, kind, default and validator (``Option``).

A setting's name is its TOML key, ``SHARDPROXY_<NAME>`` in the environment and
``--name`` (dashes for underscores) on the command line. ``Given`` is one value as a
layer gave it, with where, so every error can name its source.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shardproxy.config.values import Kind, read_kind

ENV_PREFIX = "SHARDPROXY_"


class Layer(enum.IntEnum):
    """Where a value came from; a higher layer wins."""

    FILE = 0
    ENVIRONMENT = 1
    COMMAND_LINE = 2


@dataclass(frozen=True)
class Given:
    """One value as a layer gave it, and where, in words for error messages."""

    value: Any
    layer: Layer
    where: str


Validator = Callable[[Any, str], Any]
"""Turns a value already read by its kind into the Settings value, or raises ConfigError
naming ``where`` (the second argument)."""


@dataclass(frozen=True)
class Option:
    """How one setting is spelled, read and checked."""

    name: str
    kind: Kind
    help: str
    metavar: str = ""
    default: Any = None
    validate: Validator | None = None

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The command-line flag that sets it."""
        return "--" + self.name.replace("_", "-")

    @property
    def help_text(self) -> str:
        """The help, with the default when there is one worth saying."""
        if self.default is None or self.default in ({}, (), ""):
            return self.help
        if isinstance(self.default, float):
            shown = f"{self.default:g}"
        elif isinstance(self.default, tuple):
            shown = ",".join(str(item) for item in self.default)
        else:
            shown = str(self.default)
        return f"{self.help} (default {shown})"

    def read(self, given: Given) -> Any:
        """The Settings value for what a layer gave, or ConfigError naming where."""
        value = read_kind(self.kind, given.value, given.where)
        return value if self.validate is None else self.validate(value, given.where)


OPTION_METADATA = "shardproxy.option"
BUILT_FROM_METADATA = "shardproxy.built_from"


def setting(
    kind: Kind,
    help: str,
    metavar: str,
    *,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    validate: Validator | None = None,
) -> Any:
    """A Settings field that one setting of the same name sets (no default: required)."""
    shown = factory() if factory is not None else default
    option = Option(
        "", kind, help, metavar, None if shown is dataclasses.MISSING else shown, validate
    )
    metadata = {OPTION_METADATA: option}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class BuiltFrom:
    """A Settings field made from several settings by ``build`` (the shard map)."""

    options: tuple[Option, ...]
    build: Callable[[Mapping[str, Given]], Any]
