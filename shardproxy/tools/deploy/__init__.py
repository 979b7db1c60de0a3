"""``shardproxy gen``: the deployment model (``model``), the files it renders for the
units (``files``: rclone.conf, systemd units, shardproxy.toml) and for compose
(``compose``: compose.yaml, .env, the mergerfs recipe), every file by path (``bundle``)
and writing them (``gen``).
"""
