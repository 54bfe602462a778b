"""`python -m gui [FILE ...]`: the desktop app, with files queued at start."""

import sys

from gui.app import main

if __name__ == "__main__":  # not when a worker process (multiprocessing "spawn") re-imports the main module
    sys.exit(main(sys.argv[1:]))
