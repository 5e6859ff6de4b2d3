"""`python -m backend.entrypoints.cli`: the `trainbot` command without its console script."""

import sys

from backend.entrypoints.cli import main

sys.exit(main())
