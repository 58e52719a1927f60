"""The contract every registered task keeps (docs/interfaces.md, `tasks/`).

Parametrized over every name in `tasks.TASKS`: real-data tasks are built from the fixtures of
`lra_fixtures.py`, generated ones with small options. A new task fails here until it is given
one of the two.
"""

from pathlib import Path

import lra_fixtures as fx
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import models
import tasks
from common import OBJECTIVES, objective_named
from harness.run.config import model_args
from harness.run.metrics import batch_loss

# generated task -> small options
SMALL = {
    "listops_gen": {"n_train": 8, "n_val": 4, "n_test": 4, "min_length": 5, "max_length": 40},
    "pathfinder_gen": {"n_images": 20},
    "digits_noise": {"noise_len": 32},
    "copying": {"n_train": 8, "n_val": 4, "n_test": 4, "blank_len": 7},
    "delay": {"n_train": 8, "n_val": 4, "n_test": 4, "seq_len": 64, "lag": 8, "dt": 1 / 64,
              "freq": 16.0},
    "adding": {"n_train": 8, "n_val": 4, "n_test": 4, "seq_len": 30},
}  # fmt: skip
BATCH = 4


def build_small(name: str, tmp_path: Path) -> tasks.TaskData:
    """Task `name` from its fixture or with its small options, cached under tmp_path."""
    options = dict(SMALL.get(name, {}))
    if name in fx.WRITERS:
        options["data_dir"] = str(fx.WRITERS[name](tmp_path / "data"))
    elif name not in SMALL:
        pytest.fail(f"task {name!r} has neither a fixture nor small options in this test")
    if "cache_dir" in tasks.task_options(name):
        options["cache_dir"] = str(tmp_path / "cache")
    return tasks.build(name, **options)


@pytest.mark.parametrize("name", tasks.TASKS.names())
def test_task_configs_compose_to_the_task_signature(name, make_cfg):
    """`task=<name>` (the schema's config, `harness.run.schema.task_node`) holds the name and
    every option of the task's signature at its default."""
    composed = OmegaConf.to_container(make_cfg(task=[f"task={name}"]).task)
    assert composed.pop("name") == name
    defaults = tasks.task_options(name)
    assert composed == {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}


def check_info(info: tasks.TaskInfo, name: str) -> None:
    """The metadata is self-consistent."""
    assert info.name == name
    assert info.input_kind in ("tokens", "real") and info.d_input >= 1 and info.d_output >= 1
    assert info.pooling in ("mean", "last", "none")
    assert info.objective in OBJECTIVES
    assert 0 <= info.pool_start < info.seq_len
    if info.input_kind == "real":
        assert info.pad_id is None and not info.dual
    elif info.pad_id is not None:
        assert 0 <= info.pad_id < info.d_input
    if OBJECTIVES[info.objective].scores_accuracy:
        assert info.d_output >= 2


def check_batch(info: tasks.TaskInfo, x: torch.Tensor, y: torch.Tensor) -> None:
    """One DataLoader batch has the shapes and dtypes of docs/interfaces.md and valid labels."""
    b, length, kept = x.shape[0], info.seq_len, info.seq_len - info.pool_start
    if info.input_kind == "tokens":
        assert x.dtype == torch.int64
        assert x.shape == ((b, 2, length) if info.dual else (b, length))
        assert int(x.min()) >= 0 and int(x.max()) < info.d_input
    else:
        assert x.dtype == torch.float32 and x.shape == (b, length, info.d_input)
        assert bool(torch.isfinite(x).all())
    if OBJECTIVES[info.objective].scores_accuracy:
        assert y.dtype == torch.int64
        assert y.shape == ((b, kept) if info.pooling == "none" else (b,))
        assert int(y.min()) >= 0 and int(y.max()) < info.d_output
    else:
        assert y.dtype == torch.float32
        assert y.shape == (
            (b, kept, info.d_output) if info.pooling == "none" else (b, info.d_output)
        )
        assert bool(torch.isfinite(y).all())


@pytest.mark.parametrize("name", tasks.TASKS.names())
def test_task_yields_batches_of_the_declared_shape(name, tmp_path):
    data = build_small(name, tmp_path)
    assert isinstance(data.info, tasks.TaskInfo)
    check_info(data.info, name)
    for split in (data.train, data.val, data.test):
        assert len(split) >= 1
        x, y = next(iter(DataLoader(split, batch_size=BATCH, shuffle=False)))
        assert x.shape[0] == y.shape[0] == min(BATCH, len(split))
        check_batch(data.info, x, y)


@pytest.mark.parametrize("name", tasks.TASKS.names())
def test_task_trains_through_the_runner_model_arguments(name, tmp_path, make_cfg):
    """task -> the runner's `model_args` -> `build_model` -> one forward and backward.

    The model is built exactly as a run builds it (its config composed by Hydra for this task), so
    a task whose metadata the backbone cannot honour (retrieval's two towers, listops' padding,
    digits_noise's `pool_start`, per-step outputs) fails here.
    """
    data = build_small(name, tmp_path)
    cfg = make_cfg("model=s4d_lin", task=[f"task={name}"])
    model = models.build_model(**model_args(cfg, data.info))
    x, y = next(iter(DataLoader(data.train, batch_size=BATCH, shuffle=False)))
    out = model(x)
    kept = data.info.seq_len - data.info.pool_start
    per_step = (x.shape[0], kept, data.info.d_output)
    assert out.shape == (per_step if data.info.pooling == "none" else per_step[::2])
    loss = batch_loss(objective_named(data.info.objective), out, y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
