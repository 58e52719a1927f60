"""Fresh noise padding (tasks.noise): new training noise every epoch, reproducible from (seed,
epoch, item) so a resumed run trains on exactly the noise an uninterrupted one does; the fixed
kind (task.fresh_noise=false) and the val/test noise are the same at every read."""

import os
import signal

import numpy as np
import pytest
import torch

from harness import layout
from harness.run import checkpoint
from harness.run.checkpoint import Preempted
from harness.run.identity import run_dir
from harness.run.point import execute
from harness.run.train import Trainer
from tasks import build as build_task

SMALL = {"image_size": 8, "noise_len": 5, "seed": 3}


def noise_of(dataset, i: int) -> torch.Tensor:
    x, _ = dataset[i]
    return x[-SMALL["noise_len"] :]


def test_fresh_training_noise_changes_every_epoch_and_repeats_for_the_same_epoch():
    data = build_task("digits_noise", **SMALL)
    twin = build_task("digits_noise", **SMALL)  # another process of the same run (a resume)
    train = data.train
    first = noise_of(train, 0)
    assert torch.equal(first, noise_of(train, 0))  # the same read twice within an epoch
    train.set_epoch(1)
    second = noise_of(train, 0)
    assert not torch.equal(first, second)
    twin.train.set_epoch(1)
    assert torch.equal(second, noise_of(twin.train, 0))
    train.set_epoch(0)
    assert torch.equal(first, noise_of(train, 0))
    assert not torch.equal(noise_of(train, 0), noise_of(train, 1))  # per item too
    # the image part does not depend on the epoch
    train.set_epoch(5)
    assert torch.equal(train[0][0][:64], twin.train[0][0][:64])


def test_evaluation_and_fixed_noise_are_the_same_at_every_epoch():
    fresh = build_task("digits_noise", **SMALL)
    fixed = build_task("digits_noise", **SMALL, fresh_noise=False)
    for data in (fresh, fixed):
        for split in (data.val, data.test):
            before = noise_of(split, 2)
            split.set_epoch(7)
            assert torch.equal(before, noise_of(split, 2))
    before = noise_of(fixed.train, 2)
    fixed.train.set_epoch(7)
    assert torch.equal(before, noise_of(fixed.train, 2))
    # the fixed kind keeps its definition: item i's noise from default_rng([seed, stream, i])
    expected = np.random.default_rng([SMALL["seed"], 0, 2]).random((5, 1), dtype=np.float32)
    assert torch.equal(before, torch.from_numpy(expected))
    assert torch.equal(noise_of(fresh.val, 2), noise_of(fixed.val, 2))


DIGITS = [
    "task=digits_noise",
    "task.image_size=8",
    "task.noise_len=6",
    "task.val_fraction=0.02",
    "task.test_fraction=0.02",
]
RUN = [
    "model=s4d_lin",
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "trainer.max_steps=10",
    "trainer.batch_size=256",
    "trainer.checkpoint_every=1000",
]


def test_resumed_run_sees_the_noise_of_an_uninterrupted_one(make_cfg, tracking_env, monkeypatch):
    """Stopped in epoch 1 and resumed, a fresh-noise run ends with the uninterrupted weights; a
    run whose trainer never moved the noise to epoch 1 ends elsewhere (the epoch matters)."""
    reference = make_cfg(*RUN, f"paths.runs_dir={tracking_env.results_dir}/ref", task=DIGITS)
    execute(reference)
    expected = checkpoint.load(run_dir(reference) / layout.CHECKPOINT)["model"]

    cfg = make_cfg(*RUN, task=DIGITS)
    original = Trainer._optimizer_step

    def stop_mid_epoch_1(self: Trainer) -> None:
        original(self)
        if self.step == 9:  # 7 steps an epoch: mid epoch 1
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "_optimizer_step", stop_mid_epoch_1)
    with pytest.raises(Preempted):
        execute(cfg)
    monkeypatch.undo()
    execute(cfg)  # resumes at step 9 in a new trainer (a new dataset, at epoch 0 until told)
    final = checkpoint.load(run_dir(cfg) / layout.CHECKPOINT)["model"]
    for key, value in expected.items():
        assert torch.equal(final[key], value), key

    stale = make_cfg(*RUN, f"paths.runs_dir={tracking_env.results_dir}/stale", task=DIGITS)
    train_epoch = Trainer._train_epoch

    def without_dataset_epoch(self: Trainer, *args) -> None:
        self.train_loader.dataset.set_epoch = lambda epoch: None
        train_epoch(self, *args)

    monkeypatch.setattr(Trainer, "_train_epoch", without_dataset_epoch)
    execute(stale)
    monkeypatch.undo()
    other = checkpoint.load(run_dir(stale) / layout.CHECKPOINT)["model"]
    assert any(not torch.equal(other[k], v) for k, v in expected.items())
