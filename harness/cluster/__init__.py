"""Sweeps on a cluster or this machine: a Hydra multirun as submitit jobs.

- `launcher`: the local and SLURM launchers (skip finished points, resume unfinished ones,
  requeue limits, the sweep manifest).
- `jobs`: which submitit job runs a point (`job.json`) and its scheduler state now.
- `progress`: a line per finished point and the sweep's summary table.
- `task_env`: torch.distributed's environment inside a multi-task submitit job.
- `status`: `python -m harness.cluster.status`, one row per point of a sweep.
"""
