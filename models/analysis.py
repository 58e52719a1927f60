"""Diagnostics of SSM initializations and kernels, for analysis and plots.

- `basis_functions`: the impulse response exp(tA)B of a continuous-time system, i.e. the basis
  functions an initialization projects its input onto (HTTYH, arXiv 2206.12037, Sec. 3).
- `basis_functions_at`: the same at arbitrary times (a log-spaced grid).
- `hankel_singular_values`: singular values of the Hankel matrix [K_{i+j}] of a kernel, the HOPE
  paper's (arXiv 2405.13975) diagnostic of how many states a kernel effectively uses.
"""

import numpy as np
import scipy.linalg
import torch
from torch import Tensor


def basis_functions(A: np.ndarray, B: np.ndarray, t_max: float, num: int) -> np.ndarray:
    """exp(t A) B on the uniform grid t = linspace(0, t_max, num), float64 (or complex128).

    A (N, N), B (N,) -> (num, N). One matrix exponential exp(dt A), dt = t_max / (num - 1), then
    x(t + dt) = exp(dt A) x(t).
    """
    A = np.asarray(A)
    dtype = np.result_type(A, B, np.float64)
    out = np.empty((num, A.shape[0]), dtype=dtype)
    out[0] = B
    if num > 1:
        step = scipy.linalg.expm(A * (t_max / (num - 1)))  # (N, N)
        for i in range(1, num):
            out[i] = step @ out[i - 1]
    return out


def basis_functions_at(A: np.ndarray, B: np.ndarray, t: np.ndarray) -> np.ndarray:
    """exp(t_i A) B at arbitrary times t (T,), e.g. a log-spaced grid: (N, N), (N,) -> (T, N).

    One matrix exponential per time (scipy's scaling and squaring), so no error accumulates
    between far-apart points.
    """
    A = np.asarray(A)
    return np.stack([scipy.linalg.expm(A * ti) @ B for ti in np.asarray(t, dtype=float)])


def hankel_matrix(kernel: Tensor) -> Tensor:
    """kernel (..., L) -> (..., n, n) with H[i, j] = K[i + j], n = ceil(L / 2)."""
    n = (kernel.shape[-1] + 1) // 2
    return kernel.unfold(-1, n, 1)[..., :n, :]  # (..., n, n)


def hankel_singular_values(kernel: Tensor) -> Tensor:
    """Singular values, descending, of the Hankel matrix of a kernel: (..., L) -> (..., ceil(L/2)).

    For a kernel K_l = C Abar^l Bbar of a stable system they converge, as L grows, to the system's
    Hankel singular values sqrt(eig(W_c W_o)) (controllability and observability Gramians).
    """
    return torch.linalg.svdvals(hankel_matrix(kernel))
