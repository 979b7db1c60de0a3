"""The server's lifecycle: wiring the listeners (``app``), signals, start and shutdown
(``server``), and worker processes (``workers``).

May import ``ops`` and everything below it.
"""
