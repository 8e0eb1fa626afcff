"""Entry point of ``python -m ddcore``; see ddcore/cli.py for the commands."""

import sys

from ddcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
