"""`python -m harness.bench_data`: see `harness.bench.data`."""

import sys

from harness.bench.data import main

if __name__ == "__main__":
    sys.exit(main())
