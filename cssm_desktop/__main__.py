"""`python -m cssm_desktop` opens the desktop app."""

import sys

from cssm_desktop.gui.app import main

sys.exit(main())
