"""Adding view folders to a root listing that lacks /.ids: the splice and the policy."""

from __future__ import annotations

from shardproxy.core.shards import ShardMap
from shardproxy.listing import filter_listing
from shardproxy.listing.insert import insert_responses
from shardproxy.listing.policy import ViewFoldersPolicy

START = b'<?xml version="1.0" encoding="utf-8" ?>\n<D:multistatus xmlns:D="DAV:">\n'
ROOT = START + b"<D:response><D:href>/</D:href></D:response>\n</D:multistatus>\n"
IDS = (
    START + b"<D:response><D:href>/.ids/</D:href><D:propstat><D:prop><D:resourcetype>"
    b"<D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
    b"</D:propstat></D:response>\n</D:multistatus>\n"
)


def test_responses_go_before_the_closing_tag_byte_for_byte() -> None:
    extra = START + b"<D:response><D:href>/x/</D:href></D:response>\n</D:multistatus>\n"
    assert insert_responses(ROOT, extra) == (
        START + b"<D:response><D:href>/</D:href></D:response>\n"
        b"<D:response><D:href>/x/</D:href></D:response>\n</D:multistatus>\n"
    )


def test_bodies_with_different_namespace_prefixes_are_not_spliced() -> None:
    other = b'<multistatus xmlns="DAV:"><response><href>/x/</href></response></multistatus>'
    assert insert_responses(ROOT, other) is None
    assert insert_responses(b"not xml", ROOT) is None


def test_the_ids_answer_becomes_one_folder_per_shard() -> None:
    views = filter_listing(ViewFoldersPolicy(ShardMap.even(2)), IDS)
    assert views.responses_out == 2
    combined = insert_responses(ROOT, views.body)
    assert combined is not None
    assert b"/.ids-s0" in combined and b"/.ids-s1" in combined
    assert b"<D:href>/.ids/</D:href>" not in combined
