"""Shared fixtures: an isolated MLflow store, runs directory and data cache under tmp_path."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from harness.layout import PROJECT_ROOT
from harness.run import schema

schema.register()


@dataclass(frozen=True)
class TrackingEnv:
    """A fresh SQLite tracking store and results folder; `overrides` points a run at them."""

    uri: str
    results_dir: Path
    runs_dir: Path
    cache_dir: Path

    @property
    def overrides(self) -> list[str]:
        """Hydra overrides that send a run's tracking, run directories and logs here."""
        return [f"tracking.uri={self.uri}", f"paths.results_dir={self.results_dir}"]


@pytest.fixture
def tracking_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrackingEnv:
    """A fresh store `<tmp>/results/mlflow.db`, runs in `<tmp>/results/runs`, cache `<tmp>/cache`.

    `MLFLOW_TRACKING_URI` and `SSM_BENCH_CACHE` are set for this test (subprocesses inherit them),
    so nothing reaches the project's own results/ or the user's cache.
    """
    results = tmp_path / "results"
    env = TrackingEnv(
        uri=f"sqlite:///{results / 'mlflow.db'}",
        results_dir=results,
        runs_dir=results / "runs",
        cache_dir=tmp_path / "cache",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.uri)
    monkeypatch.setenv("SSM_BENCH_CACHE", str(env.cache_dir))
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    return env


# A model and task small enough for a few optimizer steps in about a second on a busy CPU:
# copy memory with 3 symbols over 10 blanks (L = 17, per-step classes), width 8, one layer.
TINY_TASK = [
    "task=copying",
    "task.n_tokens=3",
    "task.blank_len=10",
    "task.n_train=32",
    "task.n_val=16",
    "task.n_test=16",
]
TINY = [
    "backbone.d_model=8",
    "backbone.n_layers=1",
    "model.layer.d_state=4",
    "trainer.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.log_every=2",
    "trainer.device=cpu",
]


@pytest.fixture
def make_cfg(tracking_env: TrackingEnv):
    """`make_cfg(*overrides, task=TINY_TASK)`: the root config with TINY, the store, overrides."""

    def compose_cfg(*overrides: str, task: list[str] = TINY_TASK) -> DictConfig:
        with initialize_config_dir(str(PROJECT_ROOT / "configs"), version_base="1.3"):
            chosen = [*task, *TINY, *tracking_env.overrides, *overrides]
            return compose("config", overrides=chosen)

    return compose_cfg
