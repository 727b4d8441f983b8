"""PyInstaller entry point of the desktop app."""

import sys

from cssm_desktop.gui.app import main

if __name__ == "__main__":
    sys.exit(main())
