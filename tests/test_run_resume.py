"""Stop signals, checkpoints and resuming into the same MLflow run with identical results; what
survives a rerun, a kill, a damaged file and another store (issue 12's cases)."""

import errno
import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from common import UserError
from harness import layout
from harness.run import checkpoint, mlflow_run, tracking
from harness.run import point as runner
from harness.run.checkpoint import Preempted, StopSignals
from harness.run.config import flatten
from harness.run.identity import resolve, run_dir
from harness.run.point import execute
from harness.run.rundir import point_state
from harness.run.train import Trainer

# Deterministic CPU training with dropout (so the RNG state matters): 3 epochs of 4 steps.
COMMON = [
    "model=s4d_lin",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "backbone.dropout=0.1",
    "trainer.checkpoint_every=1000",
]


def _signal_after_step(monkeypatch: pytest.MonkeyPatch, step: int, signum: int) -> None:
    """Deliver `signum` to this process right after optimizer step `step`."""
    original = Trainer._optimizer_step

    def step_then_signal(self: Trainer) -> None:
        original(self)
        if self.step == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_signal)


@pytest.mark.parametrize(
    ("stop_step", "signum", "position"),
    [(6, signal.SIGTERM, (1, 2)), (4, signal.SIGUSR1, (0, 4))],  # mid-epoch; end of epoch 0
)
def test_interrupted_and_resumed_equals_uninterrupted(
    stop_step, signum, position, make_cfg, tracking_env, monkeypatch
):
    reference = execute(make_cfg(*COMMON, f"paths.runs_dir={tracking_env.results_dir}/ref"))
    cfg = make_cfg(*COMMON)

    _signal_after_step(monkeypatch, stop_step, signum)
    with pytest.raises(Preempted):
        execute(cfg)
    monkeypatch.undo()
    state = checkpoint.load(run_dir(cfg) / layout.CHECKPOINT)
    assert (state["step"], (state["epoch"], state["batch_in_epoch"])) == (stop_step, position)
    client = MlflowClient(tracking_uri=tracking_env.uri)
    killed = client.get_run(state["mlflow_run_id"])
    assert killed.info.status == "KILLED"
    assert killed.data.tags["status_reason"] == "preempted"
    assert point_state(resolve(cfg)) == "unfinished"

    resumed = execute(cfg)
    assert resumed["mlflow_run_id"] == state["mlflow_run_id"]
    run = client.get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["requeues"] == "1"
    for key in ("best/val_acc", "best/val_loss", "best/test_acc", "best/test_loss", "best/step"):
        assert resumed[key] == reference[key], key
    final = checkpoint.load(run_dir(cfg) / layout.CHECKPOINT)["model"]
    ref_dir = tracking_env.results_dir / "ref" / run_dir(cfg).name
    expected = checkpoint.load(ref_dir / layout.CHECKPOINT)["model"]
    for key, value in expected.items():
        assert torch.equal(final[key], value), key
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert max(m.step for m in losses) == 12


def test_stop_signal_waits_for_the_step_then_hands_over_to_the_previous_handler():
    received = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        with StopSignals() as stop:
            assert not stop.requested
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stop.requested and received == []  # only a flag until the step boundary
            with pytest.raises(Preempted, match="SIGUSR2"):
                stop.dispatch()
            assert received == [signal.SIGUSR2]
        os.kill(os.getpid(), signal.SIGUSR2)  # the previous handler is back in place
        assert received == [signal.SIGUSR2, signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, before)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "state.pt"
    checkpoint.save_atomic({"step": 1}, path)
    checkpoint.save_atomic({"step": 2}, path)
    assert checkpoint.load(path) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temporary left


# ---------------------------------------------------------------------------- helpers
class Crash(KeyboardInterrupt):
    """Stands for a hard kill: no checkpoint at the step where it happens, the run unfinished."""


def _crash_after_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    original = Trainer._optimizer_step

    def step_then_crash(self: Trainer) -> None:
        original(self)
        if self.step == step:
            raise Crash(f"killed after step {step}")

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_crash)


def _interrupted(cfg, monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Run `cfg` until a hard stop right after optimizer step `step`."""
    _crash_after_step(monkeypatch, step)
    with pytest.raises(Crash):
        execute(cfg)
    monkeypatch.undo()


def _histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(tracking_uri=uri)
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
        if not key.startswith(("perf/", "wall_time"))  # timings differ between runs
    }


def _store_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ssm-bench")
    return client.search_runs([experiment.experiment_id]) if experiment else []


# ---------------------------------------------------------------------------- 1. finished results
def test_point_finished_in_another_store_is_refused_and_its_results_kept(
    make_cfg, tracking_env, tmp_path
):
    cfg = make_cfg(*COMMON)
    first = execute(cfg)
    directory = run_dir(cfg)
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    other_uri = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"

    with pytest.raises(UserError, match="already finished in") as error:
        execute(make_cfg(*COMMON, f"tracking.uri={other_uri}"))
    assert tracking_env.uri in str(error.value) and "force=true" in str(error.value)
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    assert after == before  # checkpoint, best model and summary untouched
    assert _store_runs(other_uri) == []
    assert execute(cfg) == first  # back in the first store: still the one finished run
    assert len(_store_runs(tracking_env.uri)) == 1


def test_force_keeps_the_old_results_until_the_new_run_finished(
    make_cfg, tracking_env, monkeypatch
):
    cfg = make_cfg(*COMMON)
    first = execute(cfg)
    directory = run_dir(cfg)
    old_summary = (directory / "summary.json").read_bytes()
    old_checkpoint = (directory / layout.CHECKPOINT).read_bytes()

    forced = make_cfg(*COMMON, "force=true")
    _interrupted(forced, monkeypatch, 6)  # the forced attempt dies halfway
    assert (directory / "summary.json").read_bytes() == old_summary
    assert (directory / layout.CHECKPOINT).read_bytes() == old_checkpoint
    assert execute(cfg) == first  # without force the point is still the finished one

    second = execute(forced)
    assert second["mlflow_run_id"] != first["mlflow_run_id"]
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["mlflow_run_id"] == second["mlflow_run_id"]
    assert (directory / "previous" / "summary.json").read_bytes() == old_summary
    assert not (directory / ".force").exists()
    statuses = sorted(r.info.status for r in _store_runs(tracking_env.uri))
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]


def test_force_killed_while_its_results_replace_the_old_ones_is_completed_next_time(
    make_cfg, tracking_env, monkeypatch
):
    cfg = make_cfg(*COMMON, "trainer.max_epochs=1")
    first = execute(cfg)
    directory = run_dir(cfg)
    old_summary = (directory / "summary.json").read_bytes()
    real_replace, moved = os.replace, []

    def replace_then_die(src, dst):
        real_replace(src, dst)
        if Path(dst).parent.name == layout.OLD_DIR:
            moved.append(dst)
            if len(moved) == 3:
                raise Crash("killed while moving the old results aside")

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(Crash):
        execute(make_cfg(*COMMON, "trainer.max_epochs=1", "force=true"))
    monkeypatch.undo()
    (new_run,) = [
        r for r in _store_runs(tracking_env.uri) if r.info.run_id != first["mlflow_run_id"]
    ]
    assert new_run.info.status == "FINISHED"

    again = execute(cfg)  # no force: completes the replacement, trains nothing
    assert again["mlflow_run_id"] == new_run.info.run_id
    assert (directory / "previous" / "summary.json").read_bytes() == old_summary
    assert checkpoint.load(directory / layout.CHECKPOINT)["mlflow_run_id"] == again["mlflow_run_id"]
    assert not (directory / layout.OLD_DIR).exists() and not (directory / layout.FORCE_DIR).exists()
    assert len(_store_runs(tracking_env.uri)) == 2


def test_torn_summary_of_a_finished_run_is_one_error_naming_the_file(make_cfg, tracking_env):
    cfg = make_cfg(*COMMON, "trainer.max_epochs=1")
    execute(cfg)
    summary = run_dir(cfg) / "summary.json"
    summary.write_text(summary.read_text()[:20])
    with pytest.raises(UserError, match=rf"{summary} is damaged .*force=true"):
        execute(cfg)
    assert summary.read_text() and len(_store_runs(tracking_env.uri)) == 1


# ---------------------------------------------------------------------------- 2. no code runs
class Payload:
    """Unpickling this object writes `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "payload ran"))


def test_a_checkpoint_carrying_a_pickle_payload_is_refused_not_run(
    make_cfg, tracking_env, monkeypatch, tmp_path
):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "model": Payload(marker)}, path)
    with pytest.raises(checkpoint.Damaged, match="unreadable"):
        checkpoint.load(path)
    assert not marker.exists()

    cfg = make_cfg(*COMMON)
    _interrupted(cfg, monkeypatch, 6)
    torch.save({"step": 4, "model": Payload(marker)}, run_dir(cfg) / layout.CHECKPOINT)
    torch.save({"step": 4, "model": Payload(marker)}, run_dir(cfg) / layout.PREVIOUS_CHECKPOINT)
    with pytest.raises(UserError, match=r"checkpoint.pt is damaged .*resume=false starts over"):
        execute(cfg)
    assert not marker.exists()


# ---------------------------------------------------------------------------- 3. progress kept
def _reference(make_cfg, tracking_env, *overrides) -> dict:
    return execute(make_cfg(*COMMON, *overrides, f"paths.runs_dir={tracking_env.results_dir}/ref"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    torch.save({}, path)


def _huge_step(path: Path) -> None:
    state = checkpoint.load(path)
    torch.save({**state, "step": 10**6}, path)


@pytest.mark.parametrize("damage", [_truncate, _garble, _empty, _huge_step])
def test_damaged_newest_checkpoint_is_named_and_the_previous_one_resumes(
    damage, make_cfg, tracking_env, monkeypatch, caplog
):
    reference = _reference(make_cfg, tracking_env, "trainer.checkpoint_every=2")
    cfg = make_cfg(*COMMON, "trainer.checkpoint_every=2")
    _interrupted(cfg, monkeypatch, 7)  # checkpoints at steps 4 (and epoch end) and 6
    directory = run_dir(cfg)
    assert checkpoint.load(directory / layout.CHECKPOINT)["step"] == 6
    assert checkpoint.load(directory / layout.PREVIOUS_CHECKPOINT)["step"] == 4
    damage(directory / layout.CHECKPOINT)

    with caplog.at_level(logging.INFO):
        resumed = execute(cfg)
    assert f"{directory / layout.CHECKPOINT} is damaged" in caplog.text
    assert "resumed at step 4" in caplog.text
    assert (directory / (layout.CHECKPOINT + layout.DAMAGED_SUFFIX)).is_file()
    for key in ("best/val_acc", "best/val_loss", "best/test_acc", "best/step"):
        assert resumed[key] == reference[key], key


def test_both_checkpoints_damaged_is_one_error_naming_the_file(make_cfg, tracking_env, monkeypatch):
    cfg = make_cfg(*COMMON, "trainer.checkpoint_every=2")
    _interrupted(cfg, monkeypatch, 7)
    directory = run_dir(cfg)
    for name in layout.CHECKPOINTS:
        _truncate(directory / name)
    with pytest.raises(UserError, match=r"checkpoint.pt is damaged \(unreadable.*resume=false"):
        execute(cfg)
    assert execute(make_cfg(*COMMON, "trainer.checkpoint_every=2", "resume=false"))["step"] == 12


def test_failed_write_leaves_no_temporary_and_the_rerun_resumes_the_failed_run(
    make_cfg, tracking_env, monkeypatch, caplog
):
    """A full disk at the third checkpoint: the run fails, the intact checkpoint before it
    survives, no temporary file is left, and the rerun continues the FAILED run from it."""
    reference = _reference(make_cfg, tracking_env, "trainer.checkpoint_every=2")
    cfg = make_cfg(*COMMON, "trainer.checkpoint_every=2")
    real_save, writes = torch.save, []

    def full_disk(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj:
            writes.append(obj["step"])
            if len(writes) == 4:  # steps 2, 4, 4 (epoch end), then 6
                handle.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        execute(cfg)
    monkeypatch.undo()
    directory = run_dir(cfg)
    assert point_state(resolve(cfg)) == "failed"
    assert not list(directory.glob(".*.tmp"))
    assert checkpoint.load(directory / layout.PREVIOUS_CHECKPOINT)["step"] == 4
    failed_id = (directory / layout.RUN_ID_FILE).read_text()

    with caplog.at_level(logging.INFO):
        resumed = execute(cfg)
    assert "resumed at step 4" in caplog.text
    assert resumed["mlflow_run_id"] == failed_id
    run = MlflowClient(tracking_uri=tracking_env.uri).get_run(failed_id)
    assert run.info.status == "FINISHED" and run.data.tags["requeues"] == "1"
    for key in ("best/val_acc", "best/val_loss", "best/test_acc", "best/step"):
        assert resumed[key] == reference[key], key


def test_checkpoints_by_epoch_end_and_by_time_without_the_step_cadence(
    make_cfg, tracking_env, monkeypatch
):
    cfg = make_cfg(*COMMON)  # checkpoint_every=1000: never by steps in this 12-step run
    _interrupted(cfg, monkeypatch, 6)
    assert checkpoint.load(run_dir(cfg) / layout.CHECKPOINT)["step"] == 4  # epoch 0's end

    timed = make_cfg(*COMMON, "trainer.checkpoint_every_minutes=1e-9", "seed=1")
    _interrupted(timed, monkeypatch, 3)  # killed inside step 3: its checkpoint is not written
    assert checkpoint.load(run_dir(timed) / layout.CHECKPOINT)["step"] == 2


# ---------------------------------------------------------------------------- 4., 5., 6.
def test_resume_logs_one_value_per_step_and_matches_the_uninterrupted_history(
    make_cfg, tracking_env, monkeypatch
):
    """Killed after step 7 with the last checkpoint at step 4, resumed with another log cadence
    and progress setting (the same point): steps 5-7 are retrained but not logged twice."""
    reference = _reference(make_cfg, tracking_env, "trainer.log_every=1")
    cfg = make_cfg(*COMMON, "trainer.log_every=1")
    _interrupted(cfg, monkeypatch, 7)
    assert point_state(resolve(cfg)) == "unfinished"
    interrupted_id = (run_dir(cfg) / layout.RUN_ID_FILE).read_text()
    resumed = execute(make_cfg(*COMMON, "trainer.log_every=1", "trainer.progress=false"))
    assert resumed["mlflow_run_id"] == interrupted_id
    uri = tracking_env.uri
    got, expected = (
        _histories(uri, resumed["mlflow_run_id"]),
        _histories(uri, reference["mlflow_run_id"]),
    )
    assert set(got) == set(expected)
    for key, points in got.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step"
        assert points == expected[key], key


def test_run_killed_while_it_was_created_leaves_one_complete_run(
    make_cfg, tracking_env, monkeypatch
):
    cfg = make_cfg(*COMMON, "trainer.max_epochs=1")
    real_log_params = tracking.TrackedRun.log_params

    def killed(self, params):
        raise Crash("killed while logging params")

    monkeypatch.setattr(tracking.TrackedRun, "log_params", killed)
    with pytest.raises(Crash):
        execute(cfg)
    monkeypatch.setattr(tracking.TrackedRun, "log_params", real_log_params)
    assert point_state(resolve(cfg)) == "new"
    execute(cfg)
    (run,) = _store_runs(tracking_env.uri)
    _assert_complete(run, cfg, tracking_env.uri)


def test_resume_logs_the_params_and_artifacts_the_run_lacks(make_cfg, tracking_env, monkeypatch):
    """A run started by a process that logged nothing (cut off) is completed by the resume."""
    cfg = make_cfg(*COMMON, "trainer.max_epochs=1")
    monkeypatch.setattr(mlflow_run, "records", lambda cfg, trainer, n_params: ({}, {}))
    _signal_after_step(monkeypatch, 2, signal.SIGTERM)
    with pytest.raises(Preempted):
        execute(cfg)
    monkeypatch.undo()
    (run,) = _store_runs(tracking_env.uri)
    assert "n_params" not in run.data.params
    execute(make_cfg(*COMMON, "trainer.max_epochs=1", "trainer.log_every=3"))
    (run,) = _store_runs(tracking_env.uri)
    _assert_complete(run, cfg, tracking_env.uri)
    assert run.data.params["trainer.log_every"] == "3"


def _assert_complete(run, cfg, uri: str) -> None:
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert {k: params[k] for k in flatten(cfg) if k != "trainer.log_every"} == {
        k: v for k, v in flatten(cfg).items() if k != "trainer.log_every"
    }
    assert int(params["n_params"]) > 0
    names = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run.info.run_id)}
    assert {"config.yaml", "param_groups.json", "summary.json"} <= names


# ---------------------------------------------------------------------------- 8. setup stops
def test_stop_signal_during_setup_ends_the_run_killed_with_a_reason(
    make_cfg, tracking_env, monkeypatch
):
    cfg = make_cfg(*COMMON)
    _signal_after_step(monkeypatch, 2, signal.SIGTERM)
    with pytest.raises(Preempted):
        execute(cfg)
    monkeypatch.undo()
    real_build = runner._build

    def build_then_signal(cfg):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the resumed run is set up
        return real_build(cfg)

    monkeypatch.setattr(runner, "_build", build_then_signal)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the cluster's handler
    try:
        with pytest.raises(Preempted, match="during setup"):
            execute(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    (run,) = _store_runs(tracking_env.uri)
    assert run.info.status == "KILLED"
    assert run.data.tags["status_reason"] == "preempted during setup"
