"""`python -m benchpeers` (what `scripts/bench` runs)."""

import sys

from benchpeers.harness import main

sys.exit(main())
