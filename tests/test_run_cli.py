"""`python -m harness.run` as a user runs it: clear errors, exit codes, parallel runs, sweeps."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY, TINY_TASK
from mlflow import MlflowClient

from common import UserError
from harness.run import preflight


def _cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def test_unknown_task_and_model_names_are_answered_with_the_valid_names(tracking_env, tmp_path):
    done = _cli(["task=nosuch", *tracking_env.overrides], tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: unknown task 'nosuch'; valid task names are: ")
    assert "listops_gen" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(
        UserError, match=r"unknown model 'nosuch'; valid model names are: .*s4d_lin"
    ):
        preflight.check(["-m", "model=s4d_lin,nosuch"])
    preflight.check(["model=s4d_lin,hope", "task=copying", "model.layer.lr=0.1"])
    assert _all_runs(tracking_env.uri) == []


MEANT = "did you mean trainer.max_epochs?"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_epoch=3"], f"unknown key trainer.max_epoch; {MEANT}"),
        (["+trainer.max_epoch=3"], f"unknown key trainer.max_epoch; {MEANT}"),
        (["model.layer.dstate=8"], "unknown key model.layer.dstate; did you mean model.layer."),
        (["trainer.max_epochs=abc"], "trainer.max_epochs: 'abc' is not a valid int"),
        (["trainer.batch_size=1.5"], "trainer.batch_size: '1.5' is not a valid int"),
        (["trainer.max_epochs=0"], "trainer.max_epochs: must be >= 1, got 0"),
        (["optimizer.lr=-0.01"], "optimizer.lr: must be >= 0, got -0.01"),
        (["trainer.grad_accum=0"], "trainer.grad_accum: must be >= 1, got 0"),
        (["trainer.precision=fp16"], "trainer.precision: 'fp16' is not one of fp32, tf32, bf16"),
        (["trainer.compile=maybe"], "trainer.compile: 'maybe' is not a valid boolean"),
        (["scheduler=nosuch"], "unknown scheduler 'nosuch'; valid scheduler names are: "),
        (["-m", "seed=0,1", "trainer.max_epochs=1,0"], "trainer.max_epochs: must be >= 1, got 0"),
    ],
)  # fmt: skip
def test_a_bad_override_is_one_error_before_anything_runs(overrides, message, tracking_env):
    with pytest.raises(UserError) as caught:
        flags = [arg for arg in overrides if arg.startswith("-")]  # Hydra's flags come first
        rest = [arg for arg in overrides if not arg.startswith("-")]
        preflight.check([*flags, *TINY_TASK, *rest, *tracking_env.overrides])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not tracking_env.results_dir.exists()  # no store, run directory or log folder


def test_a_mistyped_key_on_the_command_line_exits_2_with_no_run(tracking_env, tmp_path):
    done = _cli([*TINY_TASK, "trainer.max_epoch=3", *tracking_env.overrides], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: unknown key trainer.max_epoch; did you mean trainer.max_epochs?"
    )
    assert not tracking_env.runs_dir.exists() and _all_runs(tracking_env.uri) == []


def test_missing_data_dir_fails_the_run_with_one_message(tracking_env, tmp_path):
    missing = tmp_path / "no" / "cifar"
    args = ["task=image", f"task.data_dir={missing}", "trainer.device=cpu"]
    done = _cli([*args, *tracking_env.overrides], tmp_path)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "task.data_dir" in errors[0] and str(missing) in errors[0]
    assert "Traceback" not in done.stderr
    assert not tracking_env.results_dir.exists(), "no store, run or log folder is left"


def test_a_training_set_without_images_is_one_error_and_no_run(tracking_env, tmp_path):
    """Issue 25: zero CIFAR training images trained 0 steps and finished with made-up numbers."""
    import pickle

    import lra_fixtures as fx
    import numpy as np

    folder = fx.write_cifar(tmp_path / "data")
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}, f)
    args = ["task=image", f"task.data_dir={folder.parent}", "trainer.device=cpu"]
    done = _cli([*args, *tracking_env.overrides], tmp_path)
    error = _one_error(done)
    assert f"{folder / 'data_batch_1'}: the batch holds no images" in error
    assert not tracking_env.results_dir.exists(), "no store, run or log folder is left"


def test_a_task_option_error_leaves_nothing_and_keeps_a_store_that_holds_runs(
    tracking_env, tmp_path
):
    """Issue 25: `task.seq_len=0` was refused only after the store, runs/ and Hydra's log folder
    were made. On a fresh root nothing is left; an existing store with a run keeps it."""
    bad = ["task=adding", "task.seq_len=0", "trainer.device=cpu", *tracking_env.overrides]
    assert "task.seq_len: 0 steps" in _one_error(_cli(bad, tmp_path))
    assert not tracking_env.results_dir.exists(), sorted(tracking_env.results_dir.rglob("*"))
    assert _cli([*TINY_TASK, *TINY, *tracking_env.overrides], tmp_path).returncode == 0
    before = sorted(p for p in tracking_env.results_dir.rglob("*") if "logs" not in p.parts)
    assert "task.seq_len: 0 steps" in _one_error(_cli(bad, tmp_path))
    after = sorted(p for p in tracking_env.results_dir.rglob("*") if "logs" not in p.parts)
    assert after == before and len(_all_runs(tracking_env.uri)) == 1
    logs = tracking_env.results_dir / "logs"
    assert len([p for p in logs.rglob("*") if p.is_dir() and (p / ".hydra").is_dir()]) == 1


def _free_loopback_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _one_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return errors[0]


def test_unreachable_tracking_server_is_one_error_within_seconds(tracking_env, tmp_path):
    uri = f"http://127.0.0.1:{_free_loopback_port()}"
    done = _cli([*TINY_TASK, *TINY, *tracking_env.overrides, f"tracking.uri={uri}"], tmp_path, 120)
    error = _one_error(done)
    assert f"cannot reach the MLflow tracking server {uri}" in error and "tracking.uri" in error


@pytest.mark.parametrize("key", ["tracking.uri", "paths.results_dir"])
def test_store_or_results_folder_that_cannot_be_created_is_one_error(key, tracking_env, tmp_path):
    plain = tmp_path / "a_file"
    plain.write_text("not a folder")
    target = f"sqlite:///{plain / 'mlflow.db'}" if key == "tracking.uri" else str(plain / "res")
    done = _cli([*TINY_TASK, *TINY, *tracking_env.overrides, f"{key}={target}"], tmp_path)
    error = _one_error(done)
    assert str(plain) in error and key in error


@pytest.mark.slow  # quick version: test_sweep_plain
def test_sweep_runs_every_point_and_tags_it_with_the_sweep(tracking_env, tmp_path):
    common = [*TINY_TASK, *TINY, *tracking_env.overrides]
    done = _cli(["-m", *common, "model=s4d_lin,hope"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _all_runs(tracking_env.uri)
    assert sorted(r.data.tags["model"] for r in runs) == ["hope", "s4d_lin"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    (sweep,) = {r.data.tags["sweep"] for r in runs}
    assert (tracking_env.results_dir / "sweeps" / sweep / "multirun.yaml").is_file()


# One process of the parallel test: the runner's tracking calls, in its order, on the default
# store (MLFLOW_TRACKING_URI), started when the file `go` appears so that all start together.
WORKER = """
import sys, time
from pathlib import Path
from harness.run import tracking

go, index = Path(sys.argv[1]), int(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
uri = tracking.resolve_uri(None)
experiment = tracking.prepare_store(uri, "ssm-bench")
run = tracking.TrackedRun.create(uri, experiment, f"worker-{index}", {"seed": str(index)})
run.log_params({"seed": str(index), "task.name": "copying"})
for step in range(1, 21):
    run.log_metrics({"train/loss": 1.0 / step, "train/acc": index / 10}, step)
run.end("FINISHED")
"""


@pytest.mark.slow  # quick version: test_tracking_store's processes at once
def test_eight_parallel_runs_on_a_fresh_default_store(tracking_env, tmp_path):
    """Eight processes create the store, the experiment and a run at the same moment; every run
    lands in `ssm-bench` (none in Default) with all its metrics."""
    assert not tracking_env.results_dir.exists()  # the store does not exist yet
    script, go = tmp_path / "worker.py", tmp_path / "go"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(go), str(i)], stderr=subprocess.PIPE)
        for i in range(8)
    ]
    go.touch()
    errors = [p.communicate(timeout=600)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e[-2000:] for e in errors]

    client = MlflowClient(tracking_uri=tracking_env.uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert not client.search_runs([experiments["Default"]])
    runs = client.search_runs([experiments["ssm-bench"]])
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(range(8))
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == list(range(1, 21))
        assert run.data.metrics["train/acc"] == pytest.approx(int(run.data.tags["seed"]) / 10)


def test_mlflow_http_waits_are_bounded_unless_the_environment_sets_them():
    """MLflow's own defaults retry an unreachable server for about 8 minutes."""
    script = "import os, harness.run.tracking as t; print(*(os.environ[k] for k in t.HTTP_LIMITS))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "5"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    timeout_s, retries, backoff = done.stdout.split()
    assert retries == "5"  # the user's setting wins
    assert float(timeout_s) <= 30 and float(backoff) <= 1
