"""`python -m harness.report`: see `harness.report.command`."""

import sys

from harness.report.command import main

sys.exit(main())
