"""`python -m harness.bench_curve`: see `harness.bench.curve`."""

import sys

from harness.bench.curve import main

if __name__ == "__main__":
    sys.exit(main())
