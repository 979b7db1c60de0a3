"""For the operator: the admin listener (``admin``: status page, ``/metrics``,
``/healthz``, ``/readyz``), per-shard status (``status``), the container healthcheck
(``healthcheck``) and ``check --probe`` (``probe``).

May import ``web``, ``rc`` and everything below them.
"""
