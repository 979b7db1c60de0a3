"""``shardproxy gen``: the deployment model (``model``), the files it renders
(``files``: rclone.conf, systemd units, compose, shardproxy.toml) and writing them
(``gen``).
"""
