"""Each subcommand's --help is its manual: only the options it reads."""

from __future__ import annotations

import argparse

import pytest

from shardproxy.cli import build_parser


def options_of(command: str) -> set[str]:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = subcommands.choices[command]
    return {
        flag for action in sub._actions for flag in action.option_strings if flag.startswith("--")
    }


def test_relink_help_lists_its_own_options_and_the_shard_map_only() -> None:
    options = options_of("relink")
    assert {"--mount-dir", "--undo", "--dry-run", "--journal", "--shards"} <= options
    assert "--header-timeout" not in options
    assert "--backend" not in options
    assert len(options) <= 15


@pytest.mark.parametrize("command", ["shard-of", "healthcheck", "reshard", "rebalance", "demo"])
def test_small_subcommands_do_not_list_the_proxys_listener_settings(command: str) -> None:
    options = options_of(command)
    assert "--send-timeout" not in options
    assert "--rc-pending-max" not in options
    assert len(options) <= 15


def test_serve_lists_no_setting_only_gen_uses() -> None:
    options = options_of("serve")
    assert "--header-timeout" in options
    assert "--cache-dir" not in options
    assert "--mount-root" not in options


def test_gen_lists_what_it_writes_into_the_units_and_the_proxy_file() -> None:
    options = options_of("gen")
    assert {"--out", "--cache-dir", "--mount-root", "--listen"} <= options
