"""``python -m mockserver`` is ``chatcompat mock``."""

from __future__ import annotations

import sys

from chatcompat.cli import main

if __name__ == "__main__":
    sys.exit(main(["mock", *sys.argv[1:]]))
