"""``shardproxy reshard``: move cached files to their new owner after the map changes.

``plan`` decides what moves where (pure); ``run`` moves data and vfsMeta together;
``command`` is the subcommand's options and report.
"""
