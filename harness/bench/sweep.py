"""Local-launcher overhead: a sweep of `--seeds` points as local jobs against the same points run
one after another in one process (`python -m harness.bench.sweep`).

Both ways start `python -m harness.run -m ... seed=0,1,...` in a fresh results folder each (so no
point is skipped as finished): once with the default sequential launcher (the points in order in
one process, torch with its default threads), once with `hydra/launcher=local` (the points as
submitit jobs, as many at once as `harness.cluster.launcher.local_slots` allows, each capped at
its `cpus_per_task` threads). Prints both wall times, their ratio and the per-point training
times from the runs' `summary.json`. `--set KEY=VALUE` overrides the run (default: a small
adding-problem model that trains for about 10 s on one core).

    python -m harness.bench.sweep --seeds 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.cli import exits_on_user_error
from harness.layout import SUMMARY_FILE

DEFAULT_RUN = [
    "task=adding",
    "task.seq_len=512",
    "task.n_train=1024",
    "task.n_val=128",
    "task.n_test=128",
    "backbone.d_model=32",
    "backbone.n_layers=2",
    "model=s4d_lin",
    "model.layer.d_state=16",
    "trainer.max_epochs=1",
    "trainer.batch_size=32",
    "trainer.device=cpu",
    "trainer.progress=false",
]


def _sweep(root: Path, overrides: list[str], seeds: int, launcher: list[str]) -> float:
    """Wall seconds of one `harness.run -m` sweep over `seeds` seeds writing under `root`."""
    command = [
        sys.executable,
        "-m",
        "harness.run",
        "-m",
        *launcher,
        *overrides,
        f"seed={','.join(str(s) for s in range(seeds))}",
        f"paths.root={root}",
        f"task.cache_dir={root.parent / 'cache'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"sweep failed ({done.returncode}): {' '.join(command)}")
    return wall


def _train_times(root: Path) -> list[float]:
    """`wall_time_s` of every run's summary under `root`."""
    runs = sorted((root / "results" / "runs").glob(f"*/{SUMMARY_FILE}"))
    return [json.loads(p.read_text())["wall_time_s"] for p in runs]


@exits_on_user_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ssm-bench bench sweep", description=__doc__)
    p.add_argument("--seeds", type=int, default=2, help="points of the sweep (seeds 0..N-1)")
    p.add_argument("--set", nargs="*", default=[], help="extra run overrides KEY=VALUE")
    args = p.parse_args(argv)
    overrides = [*DEFAULT_RUN, *args.set]
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        base = Path(tmp)
        # Generate the data once so that neither measurement pays for it.
        _sweep(base / "warmup", [*overrides, "trainer.max_steps=1"], 1, [])
        serial = _sweep(base / "serial", overrides, args.seeds, [])
        local = _sweep(base / "local", overrides, args.seeds, ["hydra/launcher=local"])
        serial_train = _train_times(base / "serial")
        local_train = _train_times(base / "local")
    print(f"machine: {os.cpu_count()} CPU(s); run: {' '.join(overrides)}")
    print(f"{args.seeds} points one after another in one process: {serial:.1f} s")
    print(f"{args.seeds} points as local-launcher jobs:             {local:.1f} s")
    print(f"local / in-process: {local / serial:.2f}")
    print(
        "training wall time per point, in-process: " + ", ".join(f"{t:.1f}" for t in serial_train)
    )
    print("training wall time per point, local jobs: " + ", ".join(f"{t:.1f}" for t in local_train))
    return 0


if __name__ == "__main__":
    sys.exit(main())
