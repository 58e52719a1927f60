"""Reproduction studies: `python -m harness.study <name> [--quick]`.

A study is one declared experiment sweep (`harness.study.specs`: its config
`configs/experiment/study/<name>.yaml`, models, setting key, metric, baseline and the paper's
claim) run through the local launcher like any sweep (resumable, finished points skipped), read
back from MLflow with `harness.report`'s loader, tables and figures, and written to
`results/studies/<name>/` (`harness.study.write`): `summary.csv`, `table.{md,tex}`,
`figure.{png,pdf}` and a `README.md` with the claim, the setup, the command, the machine, the wall
time, the table and a verdict computed from the paired tests.
"""
