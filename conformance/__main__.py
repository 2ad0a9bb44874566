"""``python -m conformance`` is ``chatcompat check``."""

from __future__ import annotations

import sys

from chatcompat.cli import main

if __name__ == "__main__":
    sys.exit(main(["check", *sys.argv[1:]]))
