"""`python -m harness.status`: see `harness.cluster.status`."""

import sys

from harness.cluster.status import main

if __name__ == "__main__":
    sys.exit(main())
