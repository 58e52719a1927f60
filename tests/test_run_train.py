"""Short runs end to end in-process: what MLflow and the run directory hold afterwards."""

import json
import pickle
import signal

import pytest
import torch
from mlflow import MlflowClient
from torch import nn

import models
from common import UserError
from harness import layout
from harness.run import checkpoint, metrics, tracking
from harness.run.config import config_hash, flatten
from harness.run.identity import resolve, run_dir
from harness.run.point import execute
from harness.run.rundir import point_state
from harness.run.train import NonFiniteLoss, _progress_bar

TAGS = {"task", "model", "kernel", "init", "objective", "seed", "config_hash", "git_commit"}
TAGS |= {"host", "device"}
TAGS |= {"world_size", "effective_batch_size", "requeues", "torch_threads"}
STEP_METRICS = {"train/loss", "train/acc", "lr/default", "perf/samples_per_s"}
EVAL_METRICS = {"val/loss", "val/acc", "test/loss", "test/acc", "epoch"}
FINAL_METRICS = {"best/val_acc", "best/val_loss", "best/test_acc", "best/test_loss", "best/step"}
FINAL_METRICS |= {"wall_time_s", "perf/mean_samples_per_s"}


def _runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ssm-bench")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.parametrize("model", models.MODELS.names())
def test_every_registered_model_finishes_a_short_run(model, make_cfg, tracking_env):
    summary = execute(make_cfg(f"model={model}"))
    (run,) = _runs(tracking_env.uri)
    assert run.info.status == "FINISHED"
    spec = models.MODELS[model]()
    assert run.data.tags["model"] == model and run.data.tags["init"] == spec.init
    assert run.data.tags["kernel"] == spec.family == model.split("_")[0]
    assert set(run.data.metrics) >= STEP_METRICS | EVAL_METRICS | FINAL_METRICS
    assert 0.0 <= summary["best/test_acc"] <= 100.0  # percent (ACC_UNIT)
    assert run.data.tags["acc_unit"] == summary["acc_unit"] == "percent"
    assert int(run.data.params["n_params"]) == summary["n_params"] > 0


def test_run_records_params_tags_metrics_artifacts_and_checkpoints(make_cfg, tracking_env):
    cfg = make_cfg("model=s4d_lin", "trainer.eval_every_steps=1", "trainer.log_every=1")
    summary = execute(cfg)
    (run,) = _runs(tracking_env.uri)
    client = MlflowClient(tracking_uri=tracking_env.uri)
    digest = config_hash(cfg)

    assert set(run.data.tags) >= TAGS
    assert run.info.run_name == "copying/s4d_lin/s0"
    # The experiment's saved runs-table view shows columns this run has.
    experiment = client.get_experiment(run.info.experiment_id)
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{tracking.RUNS_VIEW_KEY}"])
    have = {"tags": set(run.data.tags) | {"sweep"}, "metrics": set(run.data.metrics)}
    have |= {"params": set(run.data.params), "attributes": {"Duration"}}
    for kind, key in tracking.RUNS_VIEW_COLUMNS:
        assert f"{kind}.`{key}`" in view["selectedColumns"]
        assert key in have[kind], (kind, key)
    assert run.data.tags["config_hash"] == digest and run.data.tags["effective_batch_size"] == "8"
    assert "sweep" not in run.data.tags  # a single run outside a Hydra multirun
    params = run.data.params
    assert {k: params[k] for k in flatten(cfg)} == flatten(cfg)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "param_groups.json", "summary.json"} <= artifacts

    # Per-step metrics at steps 1..4 (log_every 1); the SSM group keeps its own learning rate.
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert sorted(history) == [1, 2, 3, 4]
    lr_ssm = client.get_metric_history(run.info.run_id, "lr/ssm")[0].value
    lr_default = client.get_metric_history(run.info.run_id, "lr/default")[0].value
    assert lr_ssm / lr_default == pytest.approx(0.001 / 0.01)

    # The reported test score is the test score at the best validation evaluation.
    val = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/acc")}
    test = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "test/acc")}
    best_step = min(s for s in val if val[s] == max(val.values()))
    assert summary["best/step"] == best_step
    assert summary["best/test_acc"] == pytest.approx(test[best_step])
    assert run.data.metrics["best/test_acc"] == pytest.approx(test[best_step])

    directory = run_dir(cfg)
    assert json.loads((directory / "summary.json").read_text())["mlflow_run_id"] == run.info.run_id
    groups = {g["name"]: g for g in json.loads((directory / "param_groups.json").read_text())}
    assert groups["ssm"]["lr"] == 0.001 and groups["ssm"]["weight_decay"] == 0.0
    state = checkpoint.load(directory / layout.CHECKPOINT)
    keys = {"model", "optimizer", "scheduler", "rng", "step", "epoch", "batch_in_epoch", "best"}
    keys |= {"mlflow_run_id", "config", "model_args"}
    assert keys <= set(state)
    assert state["step"] == 4 and state["mlflow_run_id"] == run.info.run_id
    assert set(state["rng"]) == {"torch", "numpy", "python", "cuda"}
    # A report rebuilds the model from model_args alone and loads every saved state into it.
    rebuilt = models.build_model(**state["model_args"])
    rebuilt.load_state_dict(state["model"])
    init = torch.load(directory / layout.MODEL_INIT)
    rebuilt.load_state_dict(init)
    assert any(not torch.equal(init[k], state["model"][k]) for k in init)
    rebuilt.load_state_dict(torch.load(directory / layout.MODEL_BEST))
    assert point_state(resolve(cfg)) == "finished"


def nan_loss_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the training loss non-finite at optimizer step `step` (one batch per step): the
    `step`-th loss computed with gradients on is multiplied by NaN."""
    batch_loss, calls = metrics.batch_loss, {"train": 0}

    def patched(objective, output, y):
        loss = batch_loss(objective, output, y)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == step:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(metrics, "batch_loss", patched)


def test_forced_nan_fails_the_run_with_its_step(make_cfg, tracking_env, monkeypatch):
    nan_loss_at_step(monkeypatch, 3)
    cfg = make_cfg("model=s4d_inv", "trainer.log_every=4")
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 3"):
        execute(cfg)
    (run,) = _runs(tracking_env.uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["status_reason"] == "non-finite loss at step 3"
    assert point_state(resolve(cfg)) == "failed"


def test_nan_at_an_epoch_end_is_caught_before_the_evaluation_and_the_best_model(
    make_cfg, tracking_env, monkeypatch
):
    """Step 4 ends epoch 0 inside an open log window: the NaN stops the run before the epoch's
    evaluation logs anything or writes model_best.pt, and before any checkpoint."""
    nan_loss_at_step(monkeypatch, 4)
    cfg = make_cfg("model=s4d_lin", "trainer.max_epochs=2", "trainer.log_every=50")
    with pytest.raises(NonFiniteLoss, match="non-finite loss at step 4"):
        execute(cfg)
    (run,) = _runs(tracking_env.uri)
    assert run.info.status == "FAILED"
    assert not any(key.startswith(("val/", "test/")) for key in run.data.metrics)
    directory = run_dir(cfg)
    assert not (directory / layout.MODEL_BEST).exists()
    assert not (directory / layout.CHECKPOINT).exists()


def test_finished_point_is_not_rerun_unless_forced(make_cfg, tracking_env):
    first = execute(make_cfg("model=s4d_lin"))
    again = execute(make_cfg("model=s4d_lin"))
    assert again == first
    assert len(_runs(tracking_env.uri)) == 1
    forced = execute(make_cfg("model=s4d_lin", "force=true"))
    runs = _runs(tracking_env.uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert forced["mlflow_run_id"] != first["mlflow_run_id"]
    assert forced["config_hash"] == first["config_hash"]


def test_regression_task_logs_only_losses(make_cfg, tracking_env):
    task = ["task=adding", "task.seq_len=16", "task.n_train=16", "task.n_val=8", "task.n_test=8"]
    summary = execute(make_cfg("model=s4d_lin", task=task))
    (run,) = _runs(tracking_env.uri)
    assert run.info.status == "FINISHED"
    assert {"train/loss", "val/loss", "best/val_loss", "best/test_loss"} <= set(run.data.metrics)
    assert not any(key.endswith("acc") for key in run.data.metrics)
    assert summary["best/val_loss"] >= 0.0


def test_gradient_accumulation_matches_the_full_batch(make_cfg, tracking_env):
    common = ["model=s4d_lin", "backbone.norm=layer", "trainer.max_steps=2", "seed=5"]
    execute(make_cfg(*common, "trainer.batch_size=8"))
    execute(make_cfg(*common, "trainer.batch_size=4", "trainer.grad_accum=2"))
    full = checkpoint.load(run_dir(make_cfg(*common, "trainer.batch_size=8")) / "checkpoint.pt")
    accum_cfg = make_cfg(*common, "trainer.batch_size=4", "trainer.grad_accum=2")
    accum = checkpoint.load(run_dir(accum_cfg) / "checkpoint.pt")
    assert full["step"] == accum["step"] == 2
    for key, value in full["model"].items():
        torch.testing.assert_close(accum["model"][key], value, rtol=1e-4, atol=1e-5)
    effective = {r.data.tags["effective_batch_size"] for r in _runs(tracking_env.uri)}
    assert effective == {"8"}


def test_early_stopping_ends_after_patience_evaluations(make_cfg, tracking_env):
    summary = execute(
        make_cfg(
            "model=s4d_lin",
            "optimizer.lr=0.0",
            "backbone.norm=layer",
            "model.layer.lr=0.0",
            "trainer.eval_every_steps=1",
            "trainer.early_stopping_patience=2",
        )
    )
    assert summary["step"] == 3  # val never improves after step 1: evaluations 2 and 3 exhaust it
    assert summary["best/step"] == 1


def test_run_errors_keep_their_message_across_a_process_boundary():
    """submitit pickles a job's exception back to the launcher; the message must survive intact."""
    for error in (NonFiniteLoss(7), checkpoint.Preempted(signal.SIGTERM)):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
    assert str(pickle.loads(pickle.dumps(NonFiniteLoss(7)))) == "non-finite loss at step 7"


def test_precision_switches_tf32_math_on_for_tf32_and_off_for_fp32(make_cfg, tracking_env):
    execute(make_cfg("model=s4d_lin", "trainer.precision=tf32", "trainer.max_steps=1"))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    execute(make_cfg("model=s4d_lin", "trainer.max_steps=1"))
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32  # cuDNN's default is on: fp32 must turn it off


def test_a_bad_value_stops_execute_before_any_run(make_cfg, tracking_env):
    """`execute` validates the config itself (callers other than the command line, e.g. a study)."""
    with pytest.raises(UserError, match=r"trainer.precision: 'fp16' is not one of fp32, tf32"):
        execute(make_cfg("model=s4d_lin", "trainer.precision=fp16"))
    assert not tracking_env.runs_dir.exists() and _runs(tracking_env.uri) == []


@pytest.mark.slow  # inductor compiles for a minute on 2 cores
def test_compiled_training_matches_eager_training(make_cfg, tracking_env, monkeypatch):
    """`trainer.compile=true` trains through torch.compile (inductor on CPU here) and reaches the
    parameters that eager training reaches."""
    compiled_modules = []
    real_compile = torch.compile

    def spy(module, *args, **kwargs):
        compiled_modules.append(module)
        return real_compile(module, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    common = ["model=s4d_lin", "trainer.max_steps=2", "seed=3"]
    execute(make_cfg(*common))
    assert compiled_modules == []
    execute(make_cfg(*common, "trainer.compile=true"))
    assert len(compiled_modules) == 1 and isinstance(compiled_modules[0], nn.Module)
    eager = checkpoint.load(run_dir(make_cfg(*common)) / "checkpoint.pt")
    compiled = checkpoint.load(run_dir(make_cfg(*common, "trainer.compile=true")) / "checkpoint.pt")
    assert eager["step"] == compiled["step"] == 2
    for key, value in eager["model"].items():
        torch.testing.assert_close(compiled["model"][key], value, rtol=1e-4, atol=1e-5)


def test_trivial_metrics_are_chance_and_the_training_mean_mse():
    from torch.utils.data import TensorDataset

    from harness.run.metrics import trivial_metrics
    from tasks import TaskInfo

    x = torch.zeros(3, 5, 1)
    train = TensorDataset(x, torch.tensor([[1.0], [2.0], [3.0]]))  # mean 2
    test = TensorDataset(x[:2], torch.tensor([[2.0], [5.0]]))  # errors 0 and 3
    regression = TaskInfo("r", "real", 1, 1, 5, objective="regression")
    splits = {"val": train, "test": test}  # val: errors -1, 0, 1
    expected = {"trivial/val_loss": 2 / 3, "trivial/test_loss": 4.5}
    assert trivial_metrics(regression, train, splits) == pytest.approx(expected)
    classes = TaskInfo("c", "tokens", 4, 8, 5)
    assert trivial_metrics(classes, train, splits) == {
        "trivial/val_acc": 12.5,  # percent
        "trivial/test_acc": 12.5,
    }
    assert trivial_metrics(regression, [], splits) == {}  # targets not in memory: nothing


@pytest.mark.parametrize(
    ("setting", "ci", "shown"),
    [(True, "1", True), ("auto", "", True), ("auto", "1", False), (False, "", False)],
)
def test_progress_off_a_terminal_is_plain_lines_without_carriage_returns(
    setting, ci, shown, capsys, monkeypatch
):
    """In a job's log (stderr not a terminal) the bar is one line per refresh, never a `\\r`
    redraw; under CI `auto` shows nothing."""
    monkeypatch.setenv("CI", ci)
    bar = _progress_bar(setting, True, total=40, initial=0)
    for _ in range(40):
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert (len(lines) >= 1 and all(line.startswith("train:") for line in lines)) == shown
    assert bool(lines) == shown
    if shown:
        assert "40/40" in lines[-1]
