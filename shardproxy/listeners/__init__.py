"""What every listening socket shares: the HTTP listener with its limits and timeouts
(``listener``), requests in progress for a graceful shutdown (``drain``), Basic auth
(``basicauth``) and tasks that live as long as a listener (``side_task``).

May import ``telemetry``, ``config`` and ``core``.
"""
