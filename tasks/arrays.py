"""Datasets over cached numpy arrays, the batching of padded token rows, and the deterministic
split rules of the reference loaders.

`__getitem__` only indexes arrays (tokenizing and decoding happen once, at cache-build time).
A dataset's `collate` (None: torch's default) is the collate function its loaders use.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from common import UserError


class ArrayDataset(Dataset):
    """Items `(transform(x[j]), y[j])` for j in `index`.

    x: (n, ...) array (often memory-mapped); y: (n,) integer labels; index: the rows of this
    split (all rows when None); transform: numpy row -> tensor (default: int64 tokens);
    collate: the loaders' collate function for batches of these items (None: torch's default).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        index: np.ndarray | None = None,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
        collate: Callable | None = None,
    ):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self.index = np.arange(len(y)) if index is None else np.asarray(index, dtype=np.int64)
        self.transform = transform or as_tokens
        self.collate = collate

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.index[i]
        return self.transform(self.x[j]), torch.tensor(int(self.y[j]), dtype=torch.int64)


def as_tokens(row: np.ndarray) -> torch.Tensor:
    """A row of token ids (any integer dtype) as an int64 tensor of the same shape."""
    return torch.from_numpy(np.asarray(row, dtype=np.int64))


PAD_TO = ("batch", "seq_len")


class TrimPadding:
    """Collate of right-padded token items: stack them, then drop the trailing steps that are
    padding in every item of the batch, so a batch is padded to its longest sequence (the
    reference loaders' `pad_sequence`; for pairs both documents to the longer, as its AAN loader).

    items: (x (L,) or (2, L) int64, y) -> (x (B, L') or (B, 2, L'), y (B,)), L' >= 1.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = default_collate(items)
        used = (x != self.pad_id).flatten(0, -2).any(0)  # (L,): a step some item uses
        length = int(used.nonzero().max()) + 1 if used.any() else 1
        return x[..., :length], y


def token_collate(pad_to: str, pad_id: int) -> TrimPadding | None:
    """The collate of token rows for `task.pad_to`: "batch" trims to the batch's longest, and
    "seq_len" keeps every row at the task's seq_len (torch's default collate)."""
    if pad_to not in PAD_TO:
        raise UserError(f"task.pad_to={pad_to!r} is unknown; use one of {', '.join(PAD_TO)}")
    return TrimPadding(pad_id) if pad_to == "batch" else None


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

    An empty train split is a `UserError`; an empty val split (val_fraction 0) is the caller's
    to handle.

    Equal to `random_split(range(n), [train_len, n - train_len], Generator().manual_seed(seed))`.
    """
    check_fraction("val_fraction", val_fraction)
    perm = _permutation(n, seed)
    train_len = int(n * (1.0 - val_fraction))
    if train_len == 0:
        raise UserError(
            f"task.val_fraction={val_fraction} of {n} training item(s) leaves none to train on; "
            "lower it or add data"
        )
    return perm[:train_len], perm[train_len:]


def split_lengths(
    n: int, val_fraction: float, test_fraction: float, source: str | None = None
) -> tuple[int, int, int]:
    """(train, val, test) lengths of the S4 Pathfinder rule: val int(val_fraction * n), test
    int(test_fraction * n), train the rest. A split left empty is a `UserError` naming the
    option, and `source` (what holds the n items) when given: a split without an item yields
    no batch. Callers check it before any data is decoded or generated."""
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise UserError(
            f"task.val_fraction + task.test_fraction = {val_fraction + test_fraction} leaves no "
            "training data; make their sum less than 1"
        )
    val_len, test_len = int(val_fraction * n), int(test_fraction * n)
    for key, fraction, length in (
        ("val_fraction", val_fraction, val_len),
        ("test_fraction", test_fraction, test_len),
    ):
        if length == 0:
            where = f"{source}: " if source else ""
            raise UserError(
                f"{where}task.{key}={fraction} of {n} item(s) gives an empty split, which would "
                "yield no batch; raise it (to at least 1 item) or add data"
            )
    return n - val_len - test_len, val_len, test_len


def three_way_split(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) row indices: the S4 Pathfinder rule (`split_lengths`), in the order
    train, val, test of one seeded permutation (as `random_split` makes them)."""
    train_len, val_len, _ = split_lengths(n, val_fraction, test_fraction)
    perm = _permutation(n, seed)
    return perm[:train_len], perm[train_len : train_len + val_len], perm[train_len + val_len :]
