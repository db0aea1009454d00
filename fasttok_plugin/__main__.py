"""``python -m fasttok_plugin``: the ``fasttok`` command (same arguments, same exit status)."""

from __future__ import annotations

import sys

from fasttok_plugin.cli import main

if __name__ == "__main__":
    sys.exit(main())
