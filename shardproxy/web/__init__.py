"""The WebDAV front: plan a request (``core.plan``), send it upstream, relay the reply.

Owns the handler (``proxy``), streamed bodies (``bodies``), which headers cross
(``headers``), the ``.rclonelink`` rewrite (``links``) and the root listings that show
the views (``rootviews``). May import ``listeners``, ``backend``, ``telemetry``,
``config``, ``listing`` and ``core``.
"""
