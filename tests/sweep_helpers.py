"""Shared by the sweep tests (test_slurm, test_sweep_local, test_ddp): tiny runs in subprocesses.

Every run writes under the test's own `root` (`paths.root=<root>`, an SQLite MLflow store there),
uses a tiny offline config (the adding problem, a one-block width-8 model, 4 optimizer steps on
the CPU, deterministic) and is started the way a user starts it: `python -m harness.run`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

PROJECT = Path(__file__).resolve().parents[1]
EXPERIMENT = "ssm-bench"


def store_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def tiny(
    root: Path, steps: int = 4, seq_len: int = 64, n_train: int = 64, cache: Path | None = None
) -> list[str]:
    """Overrides of a run that takes a few seconds, writing only under `root`.

    The data cache (`root/cache` unless given) is part of the config hash: two roots that must
    run the same point share one `cache`.
    """
    return [
        "task=adding",
        f"task.seq_len={seq_len}",
        f"task.n_train={n_train}",
        "task.n_val=16",
        "task.n_test=16",
        f"task.cache_dir={cache or root / 'cache'}",
        "backbone.d_model=8",
        "backbone.n_layers=1",
        "backbone.norm=layer",
        f"trainer.max_steps={steps}",
        "trainer.batch_size=16",
        "trainer.device=cpu",
        "trainer.log_every=1",
        "trainer.progress=false",
        "trainer.deterministic=true",
        f"paths.root={root}",
        f"tracking.uri={store_uri(root)}",
    ]


def env(**overrides: str) -> dict[str, str]:
    """The subprocess environment: one thread per process, no inherited tracking store."""
    values = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    values["OMP_NUM_THREADS"] = "1"
    return values | overrides


def run_module(
    module: str, args: list[str], root: Path, timeout: float, **environment: str
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in `root` (`environment` added); output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=root,
        env=env(**environment),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def harness_run(
    args: list[str], root: Path, timeout: float, **environment: str
) -> subprocess.CompletedProcess:
    """`python -m harness.run <args>` in `root` (`environment` added)."""
    return run_module("harness.run", args, root, timeout, **environment)


def harness_run_background(args: list[str], root: Path) -> subprocess.Popen:
    """`python -m harness.run <args>` started in `root` without waiting (output to root/*.log)."""
    log = open(root / "launcher.log", "w")  # noqa: SIM115 (closed when the process is reaped)
    return subprocess.Popen(
        [sys.executable, "-m", "harness.run", *args],
        cwd=root,
        env=env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def harness_status(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m harness.cluster.status <args> paths.root=<root>`."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cluster.status", *args, f"paths.root={root}"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def runs(root: Path) -> list[Run]:
    """Every (not deleted) MLflow run in the store under `root`."""
    client = MlflowClient(tracking_uri=store_uri(root))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no experiment {EXPERIMENT!r} in {store_uri(root)}"
    return client.search_runs([experiment.experiment_id], max_results=1000)


def loss_curve(root: Path, run_id: str, key: str = "train/loss") -> dict[int, float]:
    """step -> value of a metric's history (the last value logged at each step)."""
    history = MlflowClient(tracking_uri=store_uri(root)).get_metric_history(run_id, key)
    return {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}


def job_record(root: Path, config_hash: str) -> dict:
    """The launcher's `job.json` of one point."""
    return json.loads((root / "results" / "runs" / config_hash / "job.json").read_text())


def manifest(root: Path) -> dict:
    """The newest sweep manifest under `root`."""
    found = sorted((root / "results" / "sweeps").glob("*/sweep.json"), key=os.path.getmtime)
    assert found, f"no sweep manifest under {root}"
    return json.loads(found[-1].read_text())
