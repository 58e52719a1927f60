"""`python -m harness.study <name> [--quick] [--out DIR]`."""

from harness.study.command import main

raise SystemExit(main())
