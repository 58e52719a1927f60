"""Memory tasks: `copying`, `delay` (HTTYH's continuous copy) and `adding`, generated offline.

Every split is drawn once from its own stream of `numpy.random.SeedSequence(seed)` (train, val,
test: spawned children 0, 1, 2), kept as arrays in the processed-data cache and served from memory.

copying (Arjovsky et al. 2016, "Unitary evolution RNNs", sec. 4.1). Vocabulary: 0 = blank,
    1..n_symbols = data symbols, n_symbols + 1 = delimiter. Input of length L = 2M + T + 1
    (M = n_tokens, T = blank_len):

        x = [s_1 .. s_M, 0 x T, DELIM, 0 x M],    targets at the last M steps: s_1 .. s_M,

    so `pool_start = M + T + 1` and the class of step `pool_start + i` is `s_{i+1} - 1` (symbols
    are numbered from class 0).
delay (Gu et al. 2022, "How to Train Your HiPPO", sec. 5 / state-spaces/s4 `delay`): x is
    band-limited white noise sampled at `seq_len` points spaced `dt`; the target is x delayed by
    `lag` steps, y_t = x_{t - lag} for t >= lag and 0 before. Regression at every step.
adding (Hochreiter & Schmidhuber 1997, as in state-spaces/s4): channel 0 holds values
    U[0, 1), channel 1 marks one step in the first half and one in the second half of the
    sequence; the target is the sum of the two marked values, read at the last step.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import TensorDataset

from common import UserError
from tasks.base import TASKS, TaskData, TaskInfo
from tasks.cache import load_or_build

SPLITS = ("train", "val", "test")


def split_generators(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per split, spawned from `SeedSequence(seed)`."""
    children = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {s: np.random.default_rng(c) for s, c in zip(SPLITS, children, strict=True)}


def copying_arrays(
    rng: np.random.Generator, n: int, n_tokens: int, n_symbols: int, blank_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """`n` copy-memory items: x int64 (n, 2M + T + 1) tokens, y int64 (n, M) classes."""
    symbols = rng.integers(1, n_symbols + 1, size=(n, n_tokens))  # (n, M)
    x = np.zeros((n, 2 * n_tokens + blank_len + 1), dtype=np.int64)  # (n, L)
    x[:, :n_tokens] = symbols
    x[:, n_tokens + blank_len] = n_symbols + 1  # the delimiter
    return x, (symbols - 1).astype(np.int64)


def white_signal(
    rng: np.random.Generator, n: int, seq_len: int, dt: float, freq: float, rms: float
) -> np.ndarray:
    """Band-limited white noise, float64 (n, seq_len), starting at 0 (HTTYH's delay input).

    The spectrum is random on the rfft bins 0 < f_k <= freq (f_k = k / (seq_len dt), DC and the
    Nyquist bin excluded) and zero elsewhere; with K such bins each coefficient has independent
    N(0, s^2) real and imaginary parts, s = rms * seq_len / (2 sqrt(K)), so that
        x_t = (1 / L) sum_k c_k e^{2 pi i k t / L}  (irfft)
    has E[x_t^2] = 4 K s^2 / L^2 = rms^2. Finally x_t - x_0 is returned, as state-spaces/s4
    does, so every signal starts from 0.
    """
    freqs = np.fft.rfftfreq(seq_len, d=dt)  # (L // 2 + 1,)
    keep = (freqs > 0) & (freqs <= freq)
    if seq_len % 2 == 0:
        keep[-1] = False  # the Nyquist bin is real-valued; leaving it out keeps the rms exact
    n_keep = int(keep.sum())
    if n_keep == 0:
        raise ValueError(f"no frequency bin in (0, {freq}] for seq_len={seq_len}, dt={dt}")
    scale = rms * seq_len / (2.0 * np.sqrt(n_keep))
    coefficients = np.zeros((n, freqs.size), dtype=np.complex128)  # (n, L // 2 + 1)
    coefficients[:, keep] = scale * (
        rng.standard_normal((n, n_keep)) + 1j * rng.standard_normal((n, n_keep))
    )
    signal = np.fft.irfft(coefficients, n=seq_len, axis=-1)  # (n, L)
    return signal - signal[:, :1]


def delay_arrays(
    rng: np.random.Generator,
    n: int,
    seq_len: int,
    lag: int,
    dt: float,
    freq: float,
    rms: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` delay items: x float32 (n, L, 1) signal, y float32 (n, L, 1) with y_t = x_{t-lag}."""
    signal = white_signal(rng, n, seq_len, dt, freq, rms)  # (n, L)
    delayed = np.zeros_like(signal)  # (n, L)
    delayed[:, lag:] = signal[:, : seq_len - lag]
    return signal[..., None].astype(np.float32), delayed[..., None].astype(np.float32)


def adding_arrays(rng: np.random.Generator, n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` adding-problem items: x float32 (n, L, 2) (values, markers), y float32 (n, 1)."""
    half = seq_len // 2
    values = rng.random((n, seq_len))  # (n, L)
    first = rng.integers(0, half, size=n)  # (n,)
    second = rng.integers(half, seq_len, size=n)  # (n,)
    markers = np.zeros((n, seq_len))  # (n, L)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)  # (n, L, 2)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)  # (n, 1)
    return x, y


def check(condition: bool, key: str, problem: str) -> None:
    """A `UserError` naming config key `task.<key>` when `condition` is false."""
    if not condition:
        raise UserError(f"task.{key}: {problem}")


def build_splits(
    name: str,
    config: dict,
    make: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
    sizes: dict[str, int],
    cache_dir: str | None,
) -> dict[str, TensorDataset]:
    """Datasets of the three splits, `make(rng, n)` drawn once per split and cached.

    config: the generator options, `seed` included; with `sizes` (split -> number of items) it
    keys the cache entry.
    """
    for split, n in sizes.items():
        check(n >= 1, f"n_{split}", f"{n} items; give at least 1")

    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for split, rng in split_generators(config["seed"]).items():
            arrays[f"{split}_x"], arrays[f"{split}_y"] = make(rng, sizes[split])
        return arrays

    arrays = load_or_build(name, {**config, **sizes}, [], build, cache_dir)
    return {
        split: TensorDataset(
            torch.from_numpy(np.array(arrays[f"{split}_x"])),
            torch.from_numpy(np.array(arrays[f"{split}_y"])),
        )
        for split in SPLITS
    }


@TASKS.register("copying")
def copying(
    cache_dir: str | None = None,
    seed: int = 0,
    n_tokens: int = 10,
    n_symbols: int = 8,
    blank_len: int = 100,
    n_train: int = 10000,
    n_val: int = 1000,
    n_test: int = 1000,
) -> TaskData:
    """The copy-memory task (see the module docstring); items x (L,) int64, y (M,) int64."""
    check(n_tokens >= 1, "n_tokens", f"{n_tokens} symbols to copy; give at least 1")
    check(n_symbols >= 2, "n_symbols", f"alphabet of {n_symbols}; give at least 2 symbols")
    check(blank_len >= 0, "blank_len", f"{blank_len} blank steps; give 0 or more")
    config = {"seed": seed, "n_tokens": n_tokens, "n_symbols": n_symbols, "blank_len": blank_len}
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    splits = build_splits(
        "copying",
        config,
        lambda rng, n: copying_arrays(rng, n, n_tokens, n_symbols, blank_len),
        sizes,
        cache_dir,
    )
    info = TaskInfo(
        name="copying",
        input_kind="tokens",
        d_input=n_symbols + 2,
        d_output=n_symbols,
        seq_len=2 * n_tokens + blank_len + 1,
        pooling="none",
        pool_start=n_tokens + blank_len + 1,
    )
    return TaskData(**splits, info=info)


@TASKS.register("delay")
def delay(
    cache_dir: str | None = None,
    seed: int = 0,
    seq_len: int = 1024,
    lag: int = 256,
    dt: float = 0.0009765625,
    freq: float = 256.0,
    rms: float = 0.5,
    n_train: int = 4096,
    n_val: int = 512,
    n_test: int = 512,
) -> TaskData:
    """HTTYH's continuous delay task; items x (L, 1) float32, y (L, 1) float32 = x delayed."""
    check(seq_len >= 3, "seq_len", f"{seq_len} steps; give at least 3")
    check(0 < lag < seq_len, "lag", f"{lag} must lie in [1, seq_len={seq_len})")
    nyquist = 0.5 / dt
    check(
        1.0 / (seq_len * dt) <= freq <= nyquist,
        "freq",
        f"{freq} must lie in [1 / (seq_len * dt), 0.5 / dt] = [{1.0 / (seq_len * dt)}, {nyquist}]",
    )
    config = {"seed": seed, "seq_len": seq_len, "lag": lag, "dt": dt, "freq": freq, "rms": rms}
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    splits = build_splits(
        "delay",
        config,
        lambda rng, n: delay_arrays(rng, n, seq_len, lag, dt, freq, rms),
        sizes,
        cache_dir,
    )
    info = TaskInfo(
        name="delay",
        input_kind="real",
        d_input=1,
        d_output=1,
        seq_len=seq_len,
        pooling="none",
        pool_start=0,
        objective="regression",
    )
    return TaskData(**splits, info=info)


@TASKS.register("adding")
def adding(
    cache_dir: str | None = None,
    seed: int = 0,
    seq_len: int = 1000,
    n_train: int = 5000,
    n_val: int = 500,
    n_test: int = 500,
) -> TaskData:
    """The adding problem; items x (L, 2) float32 (values, markers), y (1,) float32."""
    check(seq_len >= 2, "seq_len", f"{seq_len} steps; give at least 2")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    splits = build_splits(
        "adding",
        {"seed": seed, "seq_len": seq_len},
        lambda rng, n: adding_arrays(rng, n, seq_len),
        sizes,
        cache_dir,
    )
    info = TaskInfo(
        name="adding",
        input_kind="real",
        d_input=2,
        d_output=1,
        seq_len=seq_len,
        pooling="last",
        objective="regression",
    )
    return TaskData(**splits, info=info)
