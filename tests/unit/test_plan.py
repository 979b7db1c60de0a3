"""The request planner, fed requests: what goes upstream and how its reply is treated."""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict

from shardproxy.core.plan import (
    ClientRequest,
    ListingFilter,
    PlanRules,
    RequestPlan,
    clamp_depth,
    plan_request,
)
from shardproxy.core.shards import Refused, ShardMap

FOUR = PlanRules(ShardMap.even(4))
LINKS = PlanRules(ShardMap.even(4), rewrite_rclonelinks=True)
TRUSTING = PlanRules(ShardMap.even(4), mount_header_from=(ipaddress.ip_network("192.0.2.0/24"),))
UUID = "961b0a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"  # first character 9: shard 2 of 4
FILE_IN_S2 = f"/.ids-s2/9/6/1/b/0/{UUID}"


def plan(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    rules: PlanRules = FOUR,
) -> RequestPlan:
    planned = plan_request(
        ClientRequest(method, target, CIMultiDict(headers or {}), "192.0.2.7"), rules
    )
    assert isinstance(planned, RequestPlan), planned
    return planned


def refused(method: str, target: str, headers: dict[str, str] | None = None) -> Refused:
    planned = plan_request(ClientRequest(method, target, CIMultiDict(headers or {}), ""), FOUR)
    assert isinstance(planned, Refused), planned
    return planned


@pytest.mark.parametrize(
    ("asked", "sent"),
    [(None, "1"), ("infinity", "1"), ("Infinity ", "1"), ("2", "1"), ("0", "0"), ("1", "1")],
)
def test_depth_is_clamped_to_one_unless_zero_or_one(asked: str | None, sent: str) -> None:
    headers = {} if asked is None else {"Depth": asked}
    assert plan("PROPFIND", "/content/", headers).headers["Depth"] == sent
    assert clamp_depth(asked) == sent


def test_depth_is_left_alone_outside_propfind() -> None:
    assert "Depth" not in plan("GET", "/content/a.mkv").headers


def test_a_shard_view_path_goes_upstream_in_the_ids_tree() -> None:
    planned = plan("GET", FILE_IN_S2 + "?x=1")
    assert planned.target == f"/.ids/9/6/1/b/0/{UUID}?x=1"
    assert planned.shard == 2


def test_a_path_of_another_shard_is_refused_with_404() -> None:
    answer = refused("GET", f"/.ids-s1/9/6/1/b/0/{UUID}")
    assert answer.status == 404
    assert ".ids-s2" in answer.reason


def test_a_dot_segment_is_refused_with_400() -> None:
    assert refused("GET", "/.ids-s2/9/%2e%2e/x").status == 400


def test_pass_through_paths_go_upstream_as_spelled_with_a_raw_hash_escaped() -> None:
    planned = plan("GET", "/content/Show #1/a%20b.mkv")
    assert planned.target == "/content/Show %231/a%20b.mkv"
    assert planned.shard is None


def test_an_absolute_form_target_sets_the_host() -> None:
    planned = plan("GET", f"http://proxy.example:8080{FILE_IN_S2}", {"Host": "other"})
    assert planned.headers["Host"] == "proxy.example:8080"
    assert planned.target == f"/.ids/9/6/1/b/0/{UUID}"


def test_an_absolute_form_target_that_is_no_http_url_is_refused() -> None:
    assert refused("GET", "ftp://host/x").status == 400


def test_a_destination_in_a_shard_view_is_mapped_to_the_ids_tree() -> None:
    destination = f"http://proxy{FILE_IN_S2}"
    planned = plan("MOVE", "/content/a", {"Destination": destination})
    assert planned.headers["Destination"] == f"http://proxy/.ids/9/6/1/b/0/{UUID}"


def test_a_destination_outside_the_views_is_kept() -> None:
    planned = plan("COPY", "/content/a", {"Destination": "http://proxy/content/b"})
    assert planned.headers["Destination"] == "http://proxy/content/b"


def test_a_destination_in_the_wrong_shard_is_refused() -> None:
    answer = refused("MOVE", "/content/a", {"Destination": f"http://p/.ids-s0/9/6/1/b/0/{UUID}"})
    assert answer.status == 400
    assert answer.reason.startswith("Destination")


def test_a_shard_listing_is_filtered_as_that_shards() -> None:
    planned = plan("PROPFIND", "/.ids-s2/9/", {"Depth": "1"})
    assert planned.listing is ListingFilter.SHARD
    assert planned.shard == 2
    assert planned.headers["Accept-Encoding"] == "identity"


def test_the_root_listing_at_depth_one_shows_the_views() -> None:
    assert plan("PROPFIND", "/", {"Depth": "1"}).listing is ListingFilter.ROOT
    assert plan("PROPFIND", "/", {"Depth": "0"}).listing is None


def test_pass_through_listings_are_not_filtered_or_forced_to_identity() -> None:
    planned = plan("PROPFIND", "/content/", {"Depth": "1", "Accept-Encoding": "gzip"})
    assert planned.listing is None
    assert planned.headers["Accept-Encoding"] == "gzip"


def test_symlink_listings_grow_link_sizes_only_with_rewriting_on() -> None:
    path = "/completed-symlinks/tv/"
    assert plan("PROPFIND", path, rules=LINKS).listing is ListingFilter.LINK_SIZES
    assert plan("PROPFIND", path).listing is None


def test_an_rclonelink_is_rewritten_only_with_rewriting_on_and_only_for_reads() -> None:
    path = "/completed-symlinks/tv/a.mkv.rclonelink"
    assert plan("GET", path, rules=LINKS).rewrite_link
    assert plan("HEAD", path, rules=LINKS).rewrite_link
    assert not plan("PUT", path, rules=LINKS).rewrite_link
    assert not plan("GET", path).rewrite_link


def test_a_read_through_the_ids_tree_is_a_fallback_read_of_its_owner() -> None:
    assert plan("GET", f"/.ids/9/6/1/b/0/{UUID}").fallback_shard == 2
    assert plan("GET", FILE_IN_S2).fallback_shard is None
    rest = {"X-Shardproxy-Mount": "rest"}
    assert plan("GET", FILE_IN_S2, rest, rules=TRUSTING).fallback_shard == 2


def test_the_rest_mounts_header_from_an_address_not_named_is_ignored() -> None:
    # The client, 192.0.2.7, is not in the default mount_header_from (loopback).
    assert plan("GET", FILE_IN_S2, {"X-Shardproxy-Mount": "rest"}).fallback_shard is None


def test_the_client_address_is_forwarded() -> None:
    assert plan("GET", "/content/a").headers.getall("X-Forwarded-For") == ["192.0.2.7"]
