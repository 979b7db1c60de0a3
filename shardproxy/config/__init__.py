"""Settings: every option declared once, read from file (TOML) < environment < command line.

Owns how a setting is declared (``option``), its kinds and validators (``values``), the
``Settings`` table (``settings``) and reading the layers (``layers``). May import ``core``.
"""
