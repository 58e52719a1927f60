"""The task registry and the types every task returns.

A task recipe is a function registered in `TASKS` whose keyword arguments are the task's options
(their defaults equal `configs/task/<name>.yaml`) and which returns a `TaskData`.
"""

import inspect
from dataclasses import dataclass
from typing import Literal

from torch.utils.data import Dataset

from common import Registry, UserError

TASKS: Registry = Registry("task", plugins="ssm_bench.tasks")
"""Every task name; installed packages add theirs through the entry point group `ssm_bench.tasks`
(`common.registry`)."""


@dataclass(frozen=True)
class TaskInfo:
    """What a model needs to know about a task's inputs and outputs.

    input_kind: "tokens" (int64 ids, `d_input` = vocabulary size incl. special tokens) or "real"
        (float32 with `d_input` channels).
    d_output: number of classes, or regression channels.
    seq_len: length L of every (padded) input sequence.
    dual: two inputs per item (LRA Retrieval), stacked as x of shape (2, L).
    pooling / pool_start: how the decoder reduces the sequence: "mean" over steps
        [pool_start, L), the "last" step, or "none" (one output per step in [pool_start, L)).
    objective: "classification" (cross-entropy, accuracy) or "regression" (mean squared error).
    pad_id: the padding token id, excluded from mean pooling; None for real-valued inputs.
    """

    name: str
    input_kind: Literal["tokens", "real"]
    d_input: int
    d_output: int
    seq_len: int
    dual: bool = False
    pooling: Literal["mean", "last", "none"] = "mean"
    pool_start: int = 0
    objective: Literal["classification", "regression"] = "classification"
    pad_id: int | None = None


@dataclass
class TaskData:
    """The three splits of a task and its metadata."""

    train: Dataset
    val: Dataset
    test: Dataset
    info: TaskInfo


def task_options(name: str) -> dict[str, object]:
    """The options of task `name` with their defaults (the keys its config file must carry)."""
    signature = inspect.signature(TASKS[name])
    return {key: param.default for key, param in signature.parameters.items()}


def build(name: str, **overrides) -> TaskData:
    """Build task `name` with `overrides` of its options; unknown option keys are a `UserError`,
    and so is a split without an item (`check_splits`)."""
    recipe = TASKS[name]
    valid = task_options(name)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise UserError(
            f"unknown option(s) {unknown} for task {name!r} (config key task.{unknown[0]}); "
            f"valid options are: {', '.join(sorted(valid))}"
        )
    data = recipe(**overrides)
    check_splits(name, data)
    return data


def check_splits(name: str, data: TaskData) -> None:
    """A `UserError` when a split of task `name` holds no item.

    A split without an item yields no batch: no training step, or validation and test numbers
    made from nothing. Checked for every task when it is built, before any run exists (a
    loader names its files earlier where it can: an empty file, a fraction leaving no item).
    """
    sizes = {split: len(getattr(data, split)) for split in ("train", "val", "test")}
    empty = [split for split, n in sizes.items() if n == 0]
    if empty:
        counts = ", ".join(f"{split} {n}" for split, n in sizes.items())
        raise UserError(
            f"task {name!r}: the {empty[0]} split holds no items ({counts}), so it would yield "
            "no batch; give it data (the files under task.data_dir, or the task's size options) "
            "or change the fraction options that carve it"
        )
