"""`digits_noise`: noise-padded sequential handwritten digits, a long-memory task with no download.

The 1797 8x8 digit images that scikit-learn ships (`sklearn.datasets.load_digits`, intensities
0..16, 10 classes) become pixel sequences exactly as `scifar_noise` treats CIFAR:
1. upscale by nearest neighbour to image_size x image_size, pixel centres aligned: pixel (r, c)
   of the large image is pixel (floor(8 (r + 1/2) / S), floor(8 (c + 1/2) / S)) of the small one
   (S = image_size; 32 -> every source pixel becomes a 4x4 block);
2. read row by row into a sequence of S^2 steps with 1 channel;
3. normalize: x = (v / 16 - mean) / std, with mean and std from the config (defaults: the pixel
   mean 0.305 and standard deviation 0.376 of all 1797 images, rounded);
4. pad with `noise_len` steps of U[0, 1) noise by `tasks.noise.pad_with_noise` (the decoder
   mean-pools over the noise part only).
Train / val / test are carved from the 1797 images by `tasks.arrays.three_way_split` (seeded).
"""

import numpy as np
import torch
from sklearn.datasets import load_digits

from common import UserError
from tasks.arrays import ArrayDataset, three_way_split
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.noise import pad_with_noise

SOURCE_SIZE = 8  # load_digits images are 8 x 8
MAX_INTENSITY = 16.0  # load_digits intensities are 0..16
N_CLASSES = 10


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscaling (n, 8, 8) -> (n, size, size) (rule 1 of the module docstring)."""
    rows = (2 * np.arange(size) + 1) * SOURCE_SIZE // (2 * size)  # (size,) source row per row
    return images[:, rows][:, :, rows]


def digit_sequences(image_size: int, mean: float, std: float) -> tuple[np.ndarray, np.ndarray]:
    """All digits as normalized sequences: x float32 (1797, image_size^2, 1), y int64 (1797,)."""
    digits = load_digits()
    large = upscale(digits.images, image_size)  # (n, S, S)
    x = (large.reshape(len(large), -1, 1) / MAX_INTENSITY - mean) / std  # (n, S^2, 1)
    return x.astype(np.float32), digits.target.astype(np.int64)


def as_float(row: np.ndarray) -> torch.Tensor:
    """A float32 (L, C) row as a tensor."""
    return torch.from_numpy(np.asarray(row, dtype=np.float32))


@TASKS.register("digits_noise")
def digits_noise(
    seed: int = 0,
    image_size: int = 32,
    mean: float = 0.305,
    std: float = 0.376,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    noise_len: int = 1024,
    placement: str = "after",
    fresh_noise: bool = True,
) -> TaskData:
    """Noise-padded sequential digits (module docstring); x (S^2 + noise_len, 1), y int64.

    seed: the split permutation and the noise (see `tasks.noise.NoisePadded`); fresh_noise: new
    training noise every epoch (reproducible from seed and epoch), else fixed per item.
    """
    if image_size < SOURCE_SIZE:
        raise UserError(f"task.image_size={image_size} is below the 8x8 source; use 8 or more")
    if std <= 0:
        raise UserError(f"task.std={std} must be positive")
    x, y = digit_sequences(image_size, mean, std)
    train, val, test = three_way_split(len(y), val_fraction, test_fraction, seed)
    info = TaskInfo(
        name="digits",
        input_kind="real",
        d_input=1,
        d_output=N_CLASSES,
        seq_len=image_size * image_size,
        pooling="mean",
    )
    splits = {
        s: ArrayDataset(x, y, i, as_float)
        for s, i in zip(("train", "val", "test"), (train, val, test), strict=True)
    }
    data = TaskData(**splits, info=info)
    return pad_with_noise(data, noise_len, placement, seed, "digits_noise", fresh_noise)
