"""`python -m devtools.runner`: the local Functions host (see devtools/runner/cli.py)."""

import sys

from devtools.runner import main

sys.exit(main())
