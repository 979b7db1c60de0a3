"""What the proxy records about itself: Prometheus counters (``metrics``) and
structured logs (``logs``).

May import ``config`` and ``core``.
"""
