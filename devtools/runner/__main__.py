"""`python -m devtools.runner`: the local Functions host's command line (devtools/runner/cli.py)."""

import sys

from devtools.runner.cli import main

sys.exit(main())
