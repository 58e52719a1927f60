"""Datasets over cached numpy arrays, and the deterministic split rules of the reference loaders.

`__getitem__` only indexes arrays (tokenizing and decoding happen once, at cache-build time).
"""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from common import UserError


class ArrayDataset(Dataset):
    """Items `(transform(x[j]), y[j])` for j in `index`.

    x: (n, ...) array (often memory-mapped); y: (n,) integer labels; index: the rows of this
    split (all rows when None); transform: numpy row -> tensor (default: int64 tokens).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        index: np.ndarray | None = None,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
    ):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self.index = np.arange(len(y)) if index is None else np.asarray(index, dtype=np.int64)
        self.transform = transform or as_tokens

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.index[i]
        return self.transform(self.x[j]), torch.tensor(int(self.y[j]), dtype=torch.int64)


def as_tokens(row: np.ndarray) -> torch.Tensor:
    """A row of token ids (any integer dtype) as an int64 tensor of the same shape."""
    return torch.from_numpy(np.asarray(row, dtype=np.int64))


class Normalize:
    """uint8 pixels (L, C) -> float32 (L, C) equal to (p / 255 - mean) / std per channel.

    This is torchvision's ToTensor followed by Normalize(mean, std), as the S4 loaders apply it.
    """

    def __init__(self, mean: list[float], std: list[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32)  # (C,)
        self.std = torch.tensor(std, dtype=torch.float32)  # (C,)

    def __call__(self, row: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(row, dtype=np.float32)) / 255.0  # (L, C)
        return (pixels - self.mean) / self.std


def check_fraction(key: str, value: float) -> float:
    """`value` if it is a fraction in [0, 1), else a `UserError` naming config key task.`key`."""
    if not 0.0 <= value < 1.0:
        raise UserError(f"task.{key}={value} is not a fraction in [0, 1); set it to e.g. 0.1")
    return value


def _permutation(n: int, seed: int) -> np.ndarray:
    """The permutation `torch.utils.data.random_split` draws for n items with a seeded generator."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


def carve_validation(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices: the S4 rule, train length int(n * (1 - val_fraction)).

    Equal to `random_split(range(n), [train_len, n - train_len], Generator().manual_seed(seed))`.
    """
    check_fraction("val_fraction", val_fraction)
    perm = _permutation(n, seed)
    train_len = int(n * (1.0 - val_fraction))
    return perm[:train_len], perm[train_len:]


def three_way_split(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) row indices: the S4 Pathfinder rule.

    val length int(val_fraction * n), test length int(test_fraction * n), train the rest, in the
    order train, val, test of one seeded permutation (as `random_split` makes them).
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"task.val_fraction + task.test_fraction = {val_fraction + test_fraction} leaves no "
            "training data; make their sum less than 1"
        )
    perm = _permutation(n, seed)
    val_len, test_len = int(val_fraction * n), int(test_fraction * n)
    train_len = n - val_len - test_len
    return perm[:train_len], perm[train_len : train_len + val_len], perm[train_len + val_len :]
