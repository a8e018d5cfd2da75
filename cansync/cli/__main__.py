"""`python -m cansync.cli`: the same entry point as the cansync console script."""

import sys

from cansync.cli import main

sys.exit(main())
