"""For the operator: the admin listener (``admin``: status page, ``/metrics``,
``/healthz``, ``/readyz``), per-shard status (``status``), the container healthcheck
(``healthcheck``), ``check --probe`` (``probe``) and the installed rclone's version
(``rclonebin``).

May import ``web``, ``rc`` and everything below them.
"""
