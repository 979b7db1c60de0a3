"""The cache dir an rclone's command line and environment name, fed as values."""

from __future__ import annotations

import pytest

from shardproxy.tools.reshard.rclone_args import cache_dir_flag, cache_dir_of

HOME = {"HOME": "/root"}


def test_the_flag_with_an_equals_sign_names_the_dir() -> None:
    argv = ["rclone", "mount", "shard0:", "/mnt/s0", "--cache-dir=/srv/disk0/cache"]
    assert cache_dir_of(argv, {}, "/", rclone=True) == "/srv/disk0/cache"


def test_the_flag_followed_by_its_value_names_the_dir() -> None:
    argv = ["rclone", "mount", "--cache-dir", "/srv/disk0/cache", "shard0:", "/mnt/s0"]
    assert cache_dir_of(argv, {}, "/", rclone=True) == "/srv/disk0/cache"


@pytest.mark.parametrize(
    "argv",
    [
        ["rclone", "--cache-dir=/a", "--cache-dir", "/b"],
        ["rclone", "--cache-dir", "/a", "--cache-dir=/b"],
    ],
)
def test_the_last_flag_wins_whatever_its_spelling(argv: list[str]) -> None:
    assert cache_dir_flag(argv) == "/b"


def test_a_flag_without_a_value_names_nothing() -> None:
    assert cache_dir_flag(["rclone", "mount", "--cache-dir"]) is None


def test_arguments_after_a_double_dash_are_not_flags() -> None:
    assert cache_dir_flag(["rclone", "serve", "--", "--cache-dir=/a"]) is None


def test_a_flag_with_a_longer_name_is_another_flag() -> None:
    assert cache_dir_flag(["rclone", "--cache-dir-x=/a", "--cache-directory", "/b"]) is None


def test_the_environment_variable_names_the_dir_when_no_flag_does() -> None:
    environ = {"RCLONE_CACHE_DIR": "/srv/disk1/cache", **HOME}
    assert cache_dir_of(["media-server", "mount"], environ, "/", rclone=False) == (
        "/srv/disk1/cache"
    )


def test_the_flag_wins_over_the_environment_variable() -> None:
    environ = {"RCLONE_CACHE_DIR": "/env"}
    assert cache_dir_of(["rclone", "--cache-dir=/flag"], environ, "/", rclone=True) == "/flag"


def test_a_relative_dir_is_taken_from_the_working_folder() -> None:
    argv = ["rclone", "--cache-dir=cache/../s0"]
    assert cache_dir_of(argv, {}, "/srv/disk0", rclone=True) == "/srv/disk0/s0"


def test_rclone_naming_no_dir_uses_its_default_under_the_cache_home() -> None:
    assert cache_dir_of(["rclone", "mount"], HOME, "/", rclone=True) == "/root/.cache/rclone"
    xdg = {"XDG_CACHE_HOME": "/var/cache/u", **HOME}
    assert cache_dir_of(["rclone", "mount"], xdg, "/", rclone=True) == "/var/cache/u/rclone"


def test_another_program_naming_no_dir_uses_none() -> None:
    assert cache_dir_of(["sleep", "60"], HOME, "/", rclone=False) is None
