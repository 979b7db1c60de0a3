"""What the proxy records about itself: Prometheus counters (``metrics``), structured
logs (``logs``), and fail-over reads counted and logged per shard (``failover``).

May import ``config`` and ``core``.
"""
