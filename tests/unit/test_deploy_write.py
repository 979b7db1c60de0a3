"""What gen shows a person about a file it will not replace, and the obscured password it
writes again unchanged: fed as text."""

from __future__ import annotations

import os

import pytest

from shardproxy.tools.deploy.files import obscure
from shardproxy.tools.deploy.gen import reused_iv
from shardproxy.tools.deploy.write import HIDDEN, describe_difference, hide_secrets


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("pass = AbCdEf", f"pass = {HIDDEN}"),
        ('nzbdav_pass = "pw"', f"nzbdav_pass = {HIDDEN}"),
        ("secret_access_key = abc", f"secret_access_key = {HIDDEN}"),
        ('token = {"access_token":"x"}', f"token = {HIDDEN}"),
        ('0 = "http://rclone:rcpw@127.0.0.1:5570"', f'0 = "http://rclone:{HIDDEN}@127.0.0.1:5570"'),
        ("ExecStart=rclone --rc-pass rcpw x:", f"ExecStart=rclone --rc-pass {HIDDEN} x:"),
        ("url = http://127.0.0.1:8080/.ids-s0", "url = http://127.0.0.1:8080/.ids-s0"),
    ],
)
def test_password_looking_values_are_hidden(line: str, shown: str) -> None:
    assert hide_secrets([line], []) == [shown]


def test_a_known_secret_is_hidden_wherever_it_is() -> None:
    shown = hide_secrets(["user = rclone", "x rcpw y"], ["rcpw"])
    assert shown == ["user = rclone", f"x {HIDDEN} y"]


def test_the_value_after_an_rc_pass_in_a_json_compose_list_is_hidden() -> None:
    lines = ['        "--rc-pass",', '        "rcpw",', '        "--cache-dir",']
    assert hide_secrets(lines, []) == [lines[0], f'        "{HIDDEN}",', lines[2]]


def test_the_value_after_an_rc_pass_in_a_yaml_compose_list_is_hidden() -> None:
    lines = ["      - --rc-pass", "      - rcpw", "      - --cache-dir"]
    assert hide_secrets(lines, []) == [lines[0], f"      - {HIDDEN}", lines[2]]


def test_the_difference_names_the_lines_a_person_would_lose() -> None:
    now = "[shard0]\ntype = webdav\n\n[mine]\ntype = s3\nsecret_access_key = abc\n"
    made = "[shard0]\ntype = webdav\n"
    diff = describe_difference("rclone.conf", now, made, [])
    assert "-[mine]" in diff and f"-secret_access_key = {HIDDEN}" in diff
    assert not any("abc" in line for line in diff)


def test_a_long_difference_is_cut_short() -> None:
    diff = describe_difference("x", "".join(f"{n}\n" for n in range(200)), "", [])
    assert len(diff) == 41 and diff[-1].startswith("... ")


def test_an_unchanged_password_is_obscured_with_the_iv_it_had() -> None:
    iv = os.urandom(16)
    conf = f"[shard0]\ntype = webdav\npass = {obscure('pw', iv)}\n"
    assert reused_iv(conf, "pw") == iv


@pytest.mark.parametrize("conf", [None, "", "pass = not-base64!!", "pass = c2hvcnQ"])
def test_no_iv_is_reused_from_a_file_without_the_password(conf: str | None) -> None:
    assert reused_iv(conf, "pw") is None


def test_no_iv_is_reused_when_the_password_changed() -> None:
    conf = f"pass = {obscure('old', os.urandom(16))}\n"
    assert reused_iv(conf, "new") is None
