"""``shardproxy`` with the splice fast path switched off: the copying path, for comparison.

Run as ``python -m loadtest.copy_path serve ...`` with the same arguments as
``shardproxy serve``.
"""

from __future__ import annotations

import sys

from shardproxy.backend import splice
from shardproxy.cli import main

if __name__ == "__main__":
    splice.enabled = False
    sys.exit(main())
