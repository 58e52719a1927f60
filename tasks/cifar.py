"""Sequential CIFAR-10: LRA Image (grayscale), sCIFAR (RGB) and the HOPE noise-padded sCIFAR.

Layout (`task.data_dir` points at the unpacked `cifar-10-batches-py/` or the folder holding it):

    cifar-10-batches-py/data_batch_1 ... data_batch_5   test_batch

python pickles of dicts with b"data" (n, 3072) uint8, each row the 1024 red, 1024 green and
1024 blue values of a row-major 32 x 32 image, and b"labels" (n ints in 0-9). They are read by a
restricted unpickler that admits only what that format holds (dicts, lists, bytes, ints and numpy
arrays); a file naming any other type is refused before anything of it runs.

An image becomes a length-1024 sequence in row-major pixel order:
- `image` (LRA Image, S4 loader): grayscale by PIL's "L" conversion
  L = (19595 R + 38470 G + 7471 B + 2**15) >> 16  (ITU-R 601-2 luma 0.299, 0.587, 0.114),
  then (L / 255 - 122.6 / 255) / (61 / 255): x (1024, 1).
- `scifar` (S4 loader): RGB, (p / 255 - mean_c) / std_c with the CIFAR-10 channel statistics:
  x (1024, 3).
- `scifar_noise` (HOPE noisycifar_HOPE.py): RGB with the HOPE channel statistics, then
  `noise_len` steps of uniform noise (`tasks.noise`), pooled over the noise part.
Validation is carved from the 50000 training images by the S4 rule
(`tasks.arrays.carve_validation`); test_batch is the test split.
"""

import io
import pickle
from pathlib import Path

import numpy as np

from common import UserError
from tasks.arrays import ArrayDataset, Normalize, carve_validation
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build
from tasks.files import CIFAR_PAGE, dataset_folder, labels_array, read_bytes, require_files
from tasks.noise import pad_with_noise

N_CLASSES = 10
SIDE = 32
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILE = "test_batch"
FOLDER = "cifar-10-batches-py"
LAYOUT = "cifar-10-batches-py/{data_batch_1, ..., data_batch_5, test_batch} (python pickles)"
# The only globals a CIFAR-10 python batch refers to: numpy's array reconstruction (under its
# numpy 1 and numpy 2 module names), the array type and the dtype.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
BATCH_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; any other global is refused unloaded."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return BATCH_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a CIFAR-10 batch never holds; nothing of "
                "it was run"
            ) from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 pickle -> (images (n, 3, 32, 32) uint8, labels (n,) int64)."""
    try:
        batch = _BatchUnpickler(io.BytesIO(read_bytes(path)), encoding="bytes").load()
    except Exception as exc:  # garbage makes the unpickler raise almost any type
        reason = " ".join(str(exc).split())[:200]  # one line
        raise UserError(
            f"{path}: not a CIFAR-10 batch ({type(exc).__name__}: {reason}); the file is "
            f"truncated, corrupt or something else, re-extract it from {CIFAR_PAGE}"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise UserError(f"{path}: not a CIFAR-10 python batch (needs keys b'data', b'labels')")
    data = batch[b"data"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * SIDE * SIDE
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise UserError(
            f"{path}: b'data' is {found}, expected a uint8 array (n, {3 * SIDE * SIDE}); the "
            f"file is malformed, re-extract it from {CIFAR_PAGE}"
        )
    if len(data) == 0:
        raise UserError(f"{path}: the batch holds no images; re-extract it from {CIFAR_PAGE}")
    labels = labels_array(path, batch[b"labels"], N_CLASSES)
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(labels)} labels for {len(data)} images; the file is corrupt")
    return data.reshape(-1, 3, SIDE, SIDE), labels  # (n, 3, 32, 32)


def to_sequence(images: np.ndarray, grayscale: bool) -> np.ndarray:
    """(n, 3, 32, 32) uint8 -> (n, 1024, C) uint8 row-major pixels; C = 1 (PIL luma) or 3."""
    if grayscale:
        r, g, b = (images[:, c].astype(np.uint32) for c in range(3))  # (n, 32, 32) each
        luma = ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16).astype(np.uint8)
        return luma.reshape(len(images), SIDE * SIDE, 1)  # (n, 1024, 1)
    return images.reshape(len(images), 3, SIDE * SIDE).transpose(0, 2, 1)  # (n, 1024, 3)


def load_cifar(
    name: str,
    data_dir: str | None,
    grayscale: bool,
    val_fraction: float,
    seed: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    cache_dir: str | None,
) -> TaskData:
    """Sequential CIFAR-10 splits; items x (1024, C) float32 normalized, y int64 in [0, 10)."""
    channels = 1 if grayscale else 3
    if len(mean) != channels or len(std) != channels:
        raise UserError(
            f"task.mean and task.std of task {name!r} need {channels} value(s) each, got "
            f"{list(mean)} and {list(std)}"
        )
    if val_fraction == 0:
        raise UserError(
            f"task.val_fraction=0 leaves task {name!r} without a validation split (CIFAR-10 has "
            "none of its own); set it to a fraction in (0, 1), e.g. 0.1"
        )
    root = dataset_folder(name, data_dir, FOLDER, [*TRAIN_FILES, TEST_FILE], LAYOUT, CIFAR_PAGE)
    paths = require_files(name, root, [*TRAIN_FILES, TEST_FILE], LAYOUT, CIFAR_PAGE)

    def build() -> dict[str, np.ndarray]:
        train = [read_batch(path) for path in paths[:-1]]
        test_images, test_labels = read_batch(paths[-1])
        return {
            "train_x": to_sequence(np.concatenate([x for x, _ in train]), grayscale),
            "train_y": np.concatenate([y for _, y in train]),
            "test_x": to_sequence(test_images, grayscale),
            "test_y": test_labels,
        }

    arrays = load_or_build("cifar", {"grayscale": grayscale}, paths, build, cache_dir)
    train_index, val_index = carve_validation(len(arrays["train_y"]), val_fraction, seed)
    normalize = Normalize(list(mean), list(std))
    info = TaskInfo(
        name=name, input_kind="real", d_input=channels, d_output=N_CLASSES, seq_len=SIDE * SIDE
    )
    return TaskData(
        train=ArrayDataset(arrays["train_x"], arrays["train_y"], train_index, normalize),
        val=ArrayDataset(arrays["train_x"], arrays["train_y"], val_index, normalize),
        test=ArrayDataset(arrays["test_x"], arrays["test_y"], None, normalize),
        info=info,
    )


@TASKS.register("image")
def image(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    mean: tuple[float, ...] = (0.48078431372549016,),
    std: tuple[float, ...] = (0.23921568627450981,),
) -> TaskData:
    """LRA Image: grayscale CIFAR-10 as 1024 steps of 1 channel (see the module docstring)."""
    return load_cifar("image", data_dir, True, val_fraction, seed, mean, std, cache_dir)


@TASKS.register("scifar")
def scifar(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465),
    std: tuple[float, ...] = (0.247, 0.243, 0.261),
) -> TaskData:
    """Sequential CIFAR-10 in RGB: 1024 steps of 3 channels (see the module docstring)."""
    return load_cifar("scifar", data_dir, False, val_fraction, seed, mean, std, cache_dir)


@TASKS.register("scifar_noise")
def scifar_noise(
    data_dir: str | None = None,
    cache_dir: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465),
    std: tuple[float, ...] = (0.2023, 0.1994, 0.2010),
    noise_len: int = 1024,
    placement: str = "after",
    fresh_noise: bool = True,
) -> TaskData:
    """HOPE's noise-padded sCIFAR: 1024 RGB steps then `noise_len` steps of U[0, 1) noise.

    `seed` selects both the train/val split and the noise: fresh training noise every epoch
    (`fresh_noise`, as the reference draws it at every read, reproducible from seed and epoch),
    else fixed per item; val and test noise fixed per item (`tasks.noise.NoisePadded`).
    Items: x (1024 + noise_len, 3) float32; pooling "mean" from pool_start = 1024 ("after").
    """
    data = load_cifar("scifar_noise", data_dir, False, val_fraction, seed, mean, std, cache_dir)
    return pad_with_noise(data, noise_len, placement, seed, "scifar_noise", fresh_noise)
