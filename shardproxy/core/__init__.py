"""The pure decisions: who owns a UUID, what a view path means, what to ask NzbDav for.

Owns the shard map and view paths (``shards``, ``apportion``), the Range contract
(``ranges``), Location mapping (``location``), ``.rclonelink`` text (``rclonelink``),
which reads bypass a shard's cache (``failover``) and the request plan (``plan``).
No I/O: imports no I/O library and nothing else of shardproxy, so every rule here is
tested by feeding it values.
"""
