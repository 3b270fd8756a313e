"""`python -m connector`: the operator commands (connector/ops)."""

import sys

from connector.ops.cli import main

sys.exit(main())
