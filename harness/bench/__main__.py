"""`python -m harness.bench`: see `harness.bench.command`."""

import sys

from harness.bench.command import main

sys.exit(main())
