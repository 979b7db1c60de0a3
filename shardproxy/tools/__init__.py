"""The subcommands besides ``serve``: ``relink`` (symlink migration), ``reshard`` (moving
cached files when the map changes), ``deploy`` (``gen``: rclone, systemd and compose
files), the demo and the runner of generated units, and ``shard-of``.

May import anything but ``cli``.
"""
