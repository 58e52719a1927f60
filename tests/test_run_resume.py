"""Stop signals, checkpoints and resuming into the same MLflow run with identical results."""

import os
import signal

import pytest
import torch
from mlflow import MlflowClient

from harness import layout
from harness.run import checkpoint
from harness.run.checkpoint import Preempted, StopSignals
from harness.run.point import execute, point_state, run_dir
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
    assert point_state(cfg) == "unfinished"

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
