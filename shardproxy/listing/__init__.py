"""WebDAV listings (PROPFIND multistatus bodies) as shard views show them."""
