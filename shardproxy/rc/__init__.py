"""The RC endpoint: shardproxy as "the one rclone" NzbDav talks to.

Pure model and planning (``route``, ``bounds``, ``fanout``, ``inflight``: which rclone
owns a path, the per-rclone calls, the merged reply) beside the I/O (``server``: the
listener; ``send``: the calls to the rclones; ``queue`` and ``store``: the durable retry
queue; ``pending``: what waits in it). May import ``listeners``, ``telemetry``,
``config`` and ``core``; the pure modules import no I/O library.
"""
