"""The ``shardproxy`` command: a thin layer over config, server and demo."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from shardproxy import __version__
from shardproxy.config.layers import load_settings
from shardproxy.config.settings import OPTIONS, ConfigError, Kind, Settings
from shardproxy.core.shards import view_root
from shardproxy.telemetry.logs import configure_logging
from shardproxy.tools.deploy.model import Layout
from shardproxy.tools.shard_of import LocateError, locate
from shardproxy.tools.shard_of import describe as describe_location

# The settings each subcommand reads (``--help`` lists only those). Every setting can
# still come from the TOML file and the environment; the flags are the top layer.
SHARD_MAP_SETTINGS = ("shards", "shard", "shard_weights")
RELINK_SETTINGS = (*SHARD_MAP_SETTINGS, "log_level", "log_format")
SHARD_OF_SETTINGS = SHARD_MAP_SETTINGS
HEALTHCHECK_SETTINGS = ("listen", "admin_listen")
ALL_SETTINGS = tuple(option.name for option in OPTIONS)


def serve_settings() -> tuple[str, ...]:
    """What ``serve`` reads: every setting but those only ``gen`` uses."""
    from shardproxy.tools.deploy.files import DEPLOY_ONLY

    return tuple(name for name in ALL_SETTINGS if name not in DEPLOY_ONLY)


def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One flag per setting in ``names``; the defaults stay None so lower layers fill them."""
    parser.add_argument(
        "--config", metavar="FILE.toml", help="TOML file with settings (env: SHARDPROXY_CONFIG)"
    )
    wanted = set(names)
    group = parser.add_argument_group("settings (also from the TOML file and the environment)")
    for option in OPTIONS:
        if option.name not in wanted:
            continue
        kwargs: dict[str, Any] = {"help": f"{option.help_text} [env {option.env}]"}
        kwargs["metavar"] = option.metavar or None
        if option.kind in (Kind.MAP, Kind.LIST):
            kwargs["action"] = "append"
        elif option.kind is Kind.BOOL and option.default is True:
            # On by default: --no-NAME turns it off.
            kwargs = {"help": kwargs["help"], "action": argparse.BooleanOptionalAction}
        elif option.kind is Kind.BOOL:
            # A bare flag turns it on; the environment or file may say false.
            kwargs = {"help": kwargs["help"], "action": "store_const", "const": True}
        group.add_argument(option.flag, dest=option.name, **kwargs)


def settings_from_args(args: argparse.Namespace, *, need_backend: bool = True) -> Settings:
    """Build validated settings from the parsed flags, the environment and the file."""
    # A subcommand without a setting's flag leaves it to the file and the environment.
    flags = {option.name: getattr(args, option.name, None) for option in OPTIONS}
    config_file = args.config or os.environ.get("SHARDPROXY_CONFIG")
    return load_settings(flags, config_file=config_file, need_backend=need_backend)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="shardproxy",
        description="Shard views of one NzbDav WebDAV library for several rclone caches.",
    )
    parser.add_argument("--version", action="version", version=f"shardproxy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the proxy in front of NzbDav")
    add_setting_flags(serve, serve_settings())

    check = commands.add_parser("check", help="validate the settings and print the shard map")
    add_setting_flags(check, ALL_SETTINGS)
    check.add_argument(
        "--probe", action="store_true", help="also ask NzbDav and every rclone RC if they answer"
    )

    shard_of = commands.add_parser(
        "shard-of", help="print which shard owns UUIDs, .ids paths or symlinks to them"
    )
    add_setting_flags(shard_of, SHARD_OF_SETTINGS)
    shard_of.add_argument("items", nargs="+", metavar="UUID_OR_PATH")

    health = commands.add_parser(
        "healthcheck",
        help="exit 0 when the admin listener's /healthz answers (a container's HEALTHCHECK)",
    )
    add_setting_flags(health, HEALTHCHECK_SETTINGS)

    relink = commands.add_parser(
        "relink",
        help="point library symlinks at {mount}/.ids-s<N>/... (or back with --undo)",
        description="Point every symlink under LIBRARY_DIR that targets {mount}/.ids/... at "
        "the owning shard's view {mount}/.ids-s<N>/... (with --undo: back where it was). Atomic "
        "per link, idempotent; an interrupted run resumes when run again.",
    )
    add_setting_flags(relink, RELINK_SETTINGS)
    relink.add_argument("library", metavar="LIBRARY_DIR", help="the folder Plex and *arr use")
    relink.add_argument(
        "--mount-dir", required=True, metavar="DIR", help="NzbDav's mount dir, e.g. /mnt/nzbdav"
    )
    relink.add_argument(
        "--undo", action="store_true", help="point the links relink changed back where they were"
    )
    relink.add_argument(
        "--all",
        dest="every",
        action="store_true",
        help="with --undo: also point at {mount}/.ids the shard-view links relink did not make",
    )
    relink.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    relink.add_argument(
        "--journal",
        metavar="FILE",
        help="journal file (default LIBRARY_DIR/.shardproxy-relink.journal)",
    )

    reshard = commands.add_parser(
        "reshard",
        help="move cached files between rclone caches after the shard map changed",
        description="Move every cached file (data and rclone's metadata together) into the "
        "cache of the shard that owns it under the new map. Stop the affected rclones first.",
    )
    reshard.add_argument("--from", dest="old", required=True, metavar="OLD.toml")
    reshard.add_argument("--to", dest="new", required=True, metavar="NEW.toml")
    reshard.add_argument(
        "--cache-dirs", nargs="+", required=True, metavar="DIR", help="each shard's --cache-dir"
    )
    reshard.add_argument(
        "--remotes", nargs="+", metavar="NAME", help="each shard's remote (default: found)"
    )
    reshard.add_argument("--dry-run", action="store_true", help="print the plan, move nothing")
    reshard.add_argument("--journal", metavar="FILE", help="default: in the first cache dir")

    rebalance = commands.add_parser(
        "rebalance",
        help="print a new shard map for new disk sizes that moves the least cached data",
    )
    rebalance.add_argument("--from", dest="old", required=True, metavar="OLD.toml")
    rebalance.add_argument(
        "--weights", required=True, metavar="W,W,...", help="one per shard, e.g. 4T,8T,12T,8T"
    )

    gen = commands.add_parser(
        "gen", help="write rclone.conf, systemd units and compose files for both layouts"
    )
    # gen writes every proxy setting it is given into shardproxy.toml.
    add_setting_flags(gen, ALL_SETTINGS)
    gen.add_argument("--out", required=True, metavar="DIR", help="directory to write them to")
    gen.add_argument(
        "--network",
        choices=["compose", "host"],
        default="compose",
        help="compose files: services on a compose network, NzbDav by name (default), or "
        "on the host's network for NzbDav outside compose",
    )
    gen.add_argument(
        "--force",
        action="store_true",
        help="replace files in DIR that differ from what gen makes (shown as a diff without it)",
    )

    demo = commands.add_parser(
        "demo", help="run the whole stack (NzbDav stand-in, proxy, rclone, mergerfs) in DIR"
    )
    demo.add_argument(
        "--mount", required=True, metavar="DIR", help="a new or empty folder for everything"
    )
    demo.add_argument(
        "--layout",
        choices=[layout.value for layout in Layout],
        default=Layout.LINKS_UNCHANGED.value,
        help="how symlinks reach the shards (default links-unchanged)",
    )
    demo.add_argument("--shards", type=int, default=4, help="number of shards (default 4)")
    demo.add_argument(
        "--once", action="store_true", help="show everything once, then stop and clean up"
    )
    return parser


def describe(settings: Settings) -> str:
    """The settings as a short human-readable summary."""
    lines = [f"backend  {settings.backend}", f"listen   {settings.listen}"]
    shard_map = settings.shard_map
    for shard in range(shard_map.count):
        # UUIDs are uniform, so a shard's share of characters is its share of the library.
        lines.append(
            f"shard {shard}  {view_root(shard)}  prefixes {shard_map.prefixes_of(shard)}  "
            f"({len(shard_map.chars_of(shard))}/16, {shard_map.share_of(shard):.1%} of the library)"
        )
    if settings.rc_listen:
        lines.append(f"rc       {settings.rc_listen}")
    return "\n".join(lines)


def link_chain(item: str, limit: int = 40) -> list[str]:
    """Where a symlink leads, link by link (``os.readlink``); empty when ``item`` is none.

    Targets need not exist: a library's links point into a mount that may be down.
    """
    chain: list[str] = []
    current = item
    while os.path.islink(current):
        if len(chain) == limit:
            raise LocateError(f"{item!r}: more than {limit} symlinks in a row; is there a loop?")
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
        chain.append(current)
    return chain


def shard_of_item(settings: Settings, item: str) -> str:
    """``shard-of``'s line for a UUID, a path into ``.ids`` or a symlink to one."""
    chain = link_chain(item)
    answer = locate(chain[-1] if chain else item, settings.shard_map)
    shown = " -> ".join([item, *chain])
    return describe_location(shown, answer, settings.shard_map)


def run_relink(args: argparse.Namespace, settings: Settings) -> int:
    """``shardproxy relink``: run it and print the counts."""
    from pathlib import Path

    from shardproxy.tools.relink.plan import normalize_mount
    from shardproxy.tools.relink.run import RelinkError, relink_library

    try:
        mount = normalize_mount(args.mount_dir)
        report = relink_library(
            Path(args.library),
            mount,
            settings.shard_map,
            undo=args.undo,
            every=args.every,
            dry_run=args.dry_run,
            journal_path=Path(args.journal) if args.journal else None,
        )
    except (RelinkError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shardproxy`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from shardproxy.tools.demo import run_demo

            return run_demo(
                mount=args.mount, layout=args.layout, shards=args.shards, once=args.once
            )
        if args.command in ("reshard", "rebalance"):
            from shardproxy.tools.reshard.command import run_rebalance, run_reshard

            return run_reshard(args) if args.command == "reshard" else run_rebalance(args)
        settings = settings_from_args(args, need_backend=args.command == "serve")
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "healthcheck":
            from shardproxy.ops.healthcheck import healthcheck

            return healthcheck(settings)
        if args.command == "check":
            from shardproxy.ops.probe import run_check

            return run_check(settings, describe(settings), probe=args.probe)
        if args.command == "gen":
            from pathlib import Path

            from shardproxy.tools.deploy.compose import Network
            from shardproxy.tools.deploy.gen import (
                find_programs,
                next_steps,
                warnings,
                write_generated,
            )

            out, network, programs = Path(args.out), Network(args.network), find_programs()
            for path in write_generated(settings, out, programs, network, force=args.force):
                print(path)
            print(next_steps(settings, out))
            for warning in warnings(settings, programs, network):
                print(warning, file=sys.stderr)
            return 0
        if args.command == "relink":
            return run_relink(args, settings)
        if args.command == "shard-of":
            failed = False
            for item in args.items:
                try:
                    print(shard_of_item(settings, item))
                except (LocateError, OSError) as exc:
                    print(f"shardproxy: error: {exc}", file=sys.stderr)
                    failed = True
            return 2 if failed else 0
        from shardproxy.process.server import run

        run(settings)
        return 0
    except ConfigError as exc:
        print(f"shardproxy: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
