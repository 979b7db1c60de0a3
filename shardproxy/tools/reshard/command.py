"""The ``reshard`` and ``rebalance`` commands: argument handling around reshard_run."""

from __future__ import annotations

import argparse
from pathlib import Path

from shardproxy.config.layers import load_settings
from shardproxy.config.settings import ConfigError, Settings
from shardproxy.core.shards import ShardMap, ShardMapError
from shardproxy.tools.reshard.plan import CacheDir, check_cache_dirs
from shardproxy.tools.reshard.run import ReshardError, discover_remote, reshard_caches


def settings_of(path: str) -> Settings:
    """The settings a config file gives (the environment is not read: files only)."""
    return load_settings({}, config_file=path, environ={}, need_backend=False)


def map_of(path: str) -> ShardMap:
    """The shard map a config file defines."""
    return settings_of(path).shard_map


def run_reshard(args: argparse.Namespace) -> int:
    """``shardproxy reshard``: print the plan, then (unless --dry-run) move the files."""
    old_settings, new_settings = settings_of(args.old), settings_of(args.new)
    old, new = old_settings.shard_map, new_settings.shard_map
    # Either file may name a shard's RC; the new one wins (it may add the new disk's).
    rc_urls = {s: str(url) for s, url in {**old_settings.shard_rc, **new_settings.shard_rc}.items()}
    dirs = [d.rstrip("/") or "/" for d in args.cache_dirs]
    if args.remotes is not None and len(args.remotes) != len(dirs):
        raise ConfigError(
            f"{len(args.remotes)} --remotes for {len(dirs)} --cache-dirs: give one each"
        )
    try:
        remotes = args.remotes or [discover_remote(d, shard) for shard, d in enumerate(dirs)]
        caches = [CacheDir(d, remote) for d, remote in zip(dirs, remotes, strict=True)]
        problem = check_cache_dirs(caches, old, new)
        if problem:
            raise ConfigError(problem)
        _, report = reshard_caches(
            old,
            new,
            caches,
            dry_run=args.dry_run,
            journal_path=Path(args.journal) if args.journal else None,
            rc_urls=rc_urls,
        )
    except ReshardError as exc:
        raise ConfigError(str(exc)) from None
    if not args.dry_run:
        print(
            f"moved {report.moved} files"
            + (f", finished {report.resumed} interrupted moves" if report.resumed else "")
            + (
                f"; {report.conflicts} left alone: the new owner already caches them"
                if report.conflicts
                else ""
            )
        )
    return 0


def run_rebalance(args: argparse.Namespace) -> int:
    """``shardproxy rebalance``: the new ``[shard]`` table and how much of the library moves."""
    old = map_of(args.old)
    try:
        new = old.rebalanced(args.weights)
    except ShardMapError as exc:
        raise ConfigError(f"--weights: {exc}") from None
    moved = old.moved_chars(new)
    print("[shard]")
    for shard in range(new.count):
        print(f'{shard} = "{new.prefixes_of(shard)}"  # {new.share_of(shard):.1%} of the library')
    print(
        f"# {len(moved)} of 16 first characters change owner ({len(moved) / 16:.1%} of the "
        "library's cache moves with `shardproxy reshard`):"
    )
    for char, (source, target) in sorted(moved.items()):
        print(f"#   {char}: shard {source} -> shard {target}")
    return 0
