"""``shardproxy reshard``: move cached files to their new owner after the map changes.

``plan`` decides what moves where (pure); ``rclone_args`` reads the cache dir a command
line and environment give rclone (pure); ``busy`` finds the processes using a cache;
``run`` moves data and vfsMeta together; ``command`` is the subcommand's options and
report.
"""
