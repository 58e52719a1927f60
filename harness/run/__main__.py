"""`python -m harness.run`: see `harness.run.command`."""

from harness.run.command import cli

cli()
