"""What the connection caps may need in descriptors, and the generated unit's room for it."""

from __future__ import annotations

from pathlib import PurePosixPath

from yarl import URL

from shardproxy.config.settings import Settings
from shardproxy.listeners.descriptors import descriptors_needed
from shardproxy.tools.deploy.files import proxy_unit
from shardproxy.tools.deploy.model import Deployment, Programs


def test_each_webdav_connection_counts_four_and_the_others_one_plus_their_pools() -> None:
    assert descriptors_needed(100, None, None) == 64 + 400
    assert descriptors_needed(100, 10, None) == 64 + 400 + 10 + 64
    assert descriptors_needed(100, 10, 5) == 64 + 400 + 10 + 64 + 5 + 32


def test_the_generated_unit_gives_room_for_the_default_caps() -> None:
    defaults = Settings(backend=URL("http://127.0.0.1:3000"))
    need = descriptors_needed(
        defaults.max_connections, defaults.rc_max_connections, defaults.admin_max_connections
    )
    deployment = Deployment(
        proxy_url=URL("http://127.0.0.1:8765"),
        shard_count=2,
        mount_root=PurePosixPath("/mnt"),
        config_dir=PurePosixPath("/etc/shardproxy"),
        cache_dirs=(PurePosixPath("/srv/a"), PurePosixPath("/srv/b")),
        rest_cache_dir=PurePosixPath("/var/cache/shardproxy/rest"),
    )
    lines = proxy_unit(deployment, Programs()).splitlines()
    limits = [line for line in lines if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1
    assert int(limits[0].partition("=")[2]) >= need
