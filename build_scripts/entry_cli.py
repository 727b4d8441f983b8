"""PyInstaller entry point of the `cssm` command."""

import sys

from cssm_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
