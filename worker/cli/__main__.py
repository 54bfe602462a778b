"""`python -m worker.cli`: the command line without the desktop launcher."""

import sys

from worker.cli.main import main

sys.exit(main())
