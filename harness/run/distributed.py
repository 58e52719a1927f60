"""Data-parallel context: one process per device, set up from the environment torchrun writes.

With `WORLD_SIZE` unset (or 1) everything here is the plain single-process path: no process
group, no wrapper, reductions are identities. Otherwise `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
`MASTER_ADDR` and `MASTER_PORT` define the group (NCCL on CUDA, gloo on CPU).
"""

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Sampler

from common import UserError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the data-parallel group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone talks to MLflow and writes checkpoints."""
        return self.rank == 0


def resolve_device(
    preference: str, option: str = "trainer.device", local_rank: int = 0
) -> torch.device:
    """The device of `preference` (`auto` | `cpu` | `cuda`), the one resolver of every command.

    `auto` is the GPU `local_rank` when CUDA is available, else the CPU. `option` names the key or
    flag the preference came from in the error of an unknown value or of `cuda` without a GPU.
    """
    given = f"{option} " if option.startswith("--") else f"{option}="  # a flag or a config key
    if preference not in DEVICE_CHOICES:
        raise UserError(f"{given}{preference!r} is not one of {', '.join(DEVICE_CHOICES)}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{given}cuda but no CUDA device is visible; use {given}cpu")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def setup(device_pref: str = "auto") -> DistContext:
    """Read the rank layout from the environment and join the process group when there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local_rank=local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        log.info("joined %s process group: rank %d of %d", backend, rank, world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel when there are several processes, else the model itself."""
    if ctx.world_size == 1:
        return model
    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum `t` over all ranks, in place; returns it."""
    if ctx.world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class ShardedSampler(Sampler[int]):
    """This rank's indices of one epoch, reproducible from (seed, epoch) and resumable mid-epoch.

    Training (`pad=True`): the epoch's order is a permutation drawn from a generator seeded with
    (seed, epoch), padded by wrapping to a multiple of the world size. Global batch i is the slice
    [i G, (i + 1) G) of that order with G = batch_size * world_size, and rank r takes the r-th equal
    part of it, so the union of the ranks' batches is exactly the single-process batch of size G.
    Evaluation (`pad=False`, no shuffle): rank r takes indices r, r + W, r + 2W, ... (no repeats).
    """

    def __init__(
        self, n: int, ctx: DistContext, shuffle: bool, seed: int, batch_size: int, pad: bool
    ):
        self.n = n
        self.rank = ctx.rank
        self.world_size = ctx.world_size
        self.shuffle = shuffle
        self.seed = seed
        self.batch_size = batch_size
        self.pad = pad
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and skip its first `start_batch` batches of this rank."""
        self.epoch = epoch
        self.start_batch = start_batch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=generator).tolist()

    def _indices(self) -> list[int]:
        order = self._order()
        if not self.pad:
            return order[self.rank :: self.world_size]
        total = math.ceil(self.n / self.world_size) * self.world_size
        order = (order * math.ceil(total / max(self.n, 1)))[:total]
        global_batch = self.batch_size * self.world_size
        mine: list[int] = []
        for start in range(0, total, global_batch):
            chunk = order[start : start + global_batch]
            part = len(chunk) // self.world_size
            mine.extend(chunk[self.rank * part : (self.rank + 1) * part])
        return mine

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        if self.pad:
            per_rank = math.ceil(self.n / self.world_size)
        else:
            per_rank = len(range(self.rank, self.n, self.world_size))
        return max(per_rank - self.start_batch * self.batch_size, 0)


def sampler(
    dataset: Dataset, ctx: DistContext, shuffle: bool, seed: int, batch_size: int = 1
) -> ShardedSampler:
    """Training sampler of `dataset` for this rank (see `ShardedSampler`); call `set_epoch`."""
    return ShardedSampler(len(dataset), ctx, shuffle, seed, batch_size, pad=True)


def eval_sampler(dataset: Dataset, ctx: DistContext) -> ShardedSampler:
    """Evaluation sampler: in order, each example on exactly one rank."""
    return ShardedSampler(len(dataset), ctx, shuffle=False, seed=0, batch_size=1, pad=False)
