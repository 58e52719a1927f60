"""Noise padding: the long-memory variant of a real-valued sequence task (HOPE paper, noisy sCIFAR).

The HOPE experiment (AnnanYu/HOPE-SSM, noisycifar_HOPE.py) appends `noise_len` steps of
uniform noise on [0, 1) to every normalized image sequence and lets the decoder mean-pool only
over the appended part, so the label must be carried across the whole noise span:

    x_padded = concat(x, u),  x (L, C),  u ~ U[0, 1)^(noise_len, C),  pooled over [L, L + noise_len)

The noise is not normalized (as in the reference). The reference draws fresh noise every time an
item is read, so a model cannot memorize it; here the training noise is fresh by default too, but
reproducible: a deterministic function of (seed, epoch, index), so a run resumed mid-training sees
the same noise as an uninterrupted one (the trainer calls `set_epoch` at each epoch, as it does on
its sampler). `fresh=False` (option `task.fresh_noise=false`) fixes the training noise per item,
a function of (seed, index) alone, which a model can memorize. Val and test noise is always fixed
per item, so every evaluation scores the same sets. placement "before"
puts the noise first (a distractor prefix) and pools over the data part instead. noise_len 0 is
the unpadded task, pooled over all its steps (the HOPE experiment's no-noise reference point).

Public API:
    PLACEMENTS
    NoisePadded(base, noise_len, placement, seed, stream, fresh)   a Dataset wrapper
    padded_info(info, noise_len, placement, name) -> TaskInfo
    pad_with_noise(data, noise_len, placement, seed, name, fresh) -> TaskData
"""

import dataclasses

import numpy as np
import torch
from torch.utils.data import Dataset

from common import UserError
from tasks.base import TaskData, TaskInfo

PLACEMENTS = ("after", "before")
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
FRESH_STREAM = 3
"""Entropy word that separates the fresh (per-epoch) noise from the fixed noise of any split."""


def _check(noise_len: int, placement: str) -> None:
    """`UserError` naming the config key for a negative length or an unknown placement."""
    if noise_len < 0:
        raise UserError(f"task.noise_len={noise_len} must be a number of steps >= 0")
    if placement not in PLACEMENTS:
        raise UserError(f"task.placement={placement!r} is not one of {list(PLACEMENTS)}")


class NoisePadded(Dataset):
    """Items `(x', y)` of `base` with x' (L + noise_len, C) float32: x and uniform noise joined.

    base: a Dataset of (x (L, C) float32, y); seed and stream (one per split) select the noise.
    Fixed (`fresh=False`): item i's noise is drawn from `np.random.default_rng([seed, stream,
    i])`, the same at every read. Fresh: from `default_rng([seed, FRESH_STREAM, stream, epoch,
    i])`, new at every epoch (`set_epoch`), the same for the same (seed, epoch, i).
    """

    def __init__(
        self,
        base: Dataset,
        noise_len: int,
        placement: str,
        seed: int,
        stream: int,
        fresh: bool = False,
    ):
        _check(noise_len, placement)
        self.base = base
        self.noise_len, self.placement = noise_len, placement
        self.seed, self.stream = seed, stream
        self.fresh = fresh
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose noise fresh items get (no effect on fixed noise)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def noise(self, i: int, channels: int) -> torch.Tensor:
        """The noise of item i: (noise_len, channels) float32 on [0, 1)."""
        words = (
            [self.seed, FRESH_STREAM, self.stream, self.epoch]
            if self.fresh
            else [
                self.seed,
                self.stream,
            ]
        )
        rng = np.random.default_rng([*words, i])
        return torch.from_numpy(rng.random((self.noise_len, channels), dtype=np.float32))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]  # x: (L, C)
        noise = self.noise(i, x.shape[-1])  # (noise_len, C)
        parts = (x, noise) if self.placement == "after" else (noise, x)
        return torch.cat(parts, dim=0), y  # (L + noise_len, C)


def padded_info(info: TaskInfo, noise_len: int, placement: str, name: str) -> TaskInfo:
    """`info` of the padded task: longer sequence, mean pooling over the noise ("after") part.

    "after": pool_start = info.seq_len (pool over the noise only, as the HOPE experiment);
    "before": pool_start = noise_len (pool over the data that follows the noise); noise_len 0:
    pool_start = 0 (no noise: pool over the data).
    """
    _check(noise_len, placement)
    if info.input_kind != "real":
        raise ValueError(f"noise padding needs a real-valued task, {info.name!r} has tokens")
    return dataclasses.replace(
        info,
        name=name,
        seq_len=info.seq_len + noise_len,
        pooling="mean",
        pool_start=info.seq_len if placement == "after" and noise_len else noise_len,
    )


def pad_with_noise(
    data: TaskData, noise_len: int, placement: str, seed: int, name: str, fresh: bool
) -> TaskData:
    """`data` with each split wrapped in `NoisePadded` (streams 0, 1, 2) and `padded_info`; the
    training split's noise is fresh every epoch when `fresh`, val and test noise fixed."""
    info = padded_info(data.info, noise_len, placement, name)

    def wrap(split: str) -> NoisePadded:
        stream = SPLIT_STREAMS[split]
        return NoisePadded(
            getattr(data, split), noise_len, placement, seed, stream, fresh and split == "train"
        )

    return TaskData(train=wrap("train"), val=wrap("val"), test=wrap("test"), info=info)
