"""The harness: runs, sweeps, reports and benchmarks around `models` and `tasks`.

The flow of one run, by subpackage (docs/DESIGN.md draws it):

- `harness.run`: one training run (`python -m harness.run`): plan the point, build task and model,
  train, checkpoint, track in MLflow.
- `harness.cluster`: sweeps as submitit jobs on this machine or SLURM, their job records and
  `python -m harness.cluster.status`.
- `harness.report`: the MLflow store read back into tables and figures (`python -m harness.report`).
- `harness.bench`: performance benchmarks (`python -m harness.bench`, `harness.bench.curve`,
  `harness.bench.data`).
- `harness.study`: reproduction studies (`python -m harness.study`).
- `harness.plotting`: the figure style and the benchmark figure that report, study and bench share.

`harness.layout` (file names of run and sweep directories), `harness.cli` (how a command answers
a user error, KEY=VALUE options, creating a folder) and `harness.provenance` (the checked-out
commit) are shared by all and import nothing heavy; `harness.console` is the `ssm-bench` command
that dispatches to them. Who may import whom: docs/DESIGN.md, checked by `lint-imports`.
"""
