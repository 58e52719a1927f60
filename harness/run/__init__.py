"""One training run, end to end: `python -m harness.run task=<name> model=<name> [overrides]`.

- `command`: the Hydra entry point; user errors become `error: ...` and exit 2.
- `schema`: the typed option dataclasses (every default) in Hydra's ConfigStore, and `validate`.
- `preflight`: the command line composed and checked against the schema before anything runs.
- `config`: the resolved config's identity (`config_hash`) and its MLflow params (`flatten`).
- `point`: plan a point (new / resume / skip), build task and model, train, record.
- `train`: the training loop (optimizer, schedule, evaluation, early stopping).
- `metrics`: the objectives and their running statistics.
- `checkpoint`: checkpoint files and clean stops on cluster signals.
- `tracking`: the MLflow store and the client side of one run.
- `callbacks`: the Hydra callback that prepares the store before any job starts.
- `precision`: fp32 / tf32 / bf16 switches.
- `distributed`: the data-parallel context (one process per device) and the device resolver.
- `parity`: `python -m harness.run.parity`, docs/parity.md (each recipe against the reference).

Importing this package imports nothing; each module loads its own dependencies.
"""
