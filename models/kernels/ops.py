"""The three core sums of the SSM kernels, dispatched to a fused GPU path where one applies.

Kernel modules call `cauchy_conj`, `vandermonde_conj` and `markov_response` from here; the
semantics and shapes are those of `models.kernels.naive` (the sums as the papers write them). A
call goes to the fused Triton kernel of `models.kernels.fast_<name>` when Triton is installed,
fast paths are enabled, its tensors are on a CUDA device, and that module's `supports(...)`
accepts the arguments (complex64 tensors of the documented shapes); otherwise to the blocked
plain-PyTorch sums of `models.kernels.blocked`, the CPU path. The fast modules are imported on
first use only, so CPU-only installs never import Triton.

Under Triton's interpreter (`TRITON_INTERPRET=1` in the environment before the process imports
Triton: every kernel program is executed in NumPy, one after another) calls on CPU tensors take
the fused kernels too, so their index arithmetic, masks and backward passes can be run and checked
without a GPU (`tests/triton_interp_worker.py`). That is slow (seconds for a small layer) and
meant for checking kernels only.

`fast_paths(False)` (a context manager) or `set_fast_paths(False)` routes every call to the
blocked PyTorch sums, e.g. to benchmark or test one against the other.
"""

import contextlib
import functools
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from types import ModuleType

import torch
from torch import Tensor

from models.kernels import blocked

HAVE_TRITON = importlib.util.find_spec("triton") is not None
FUNCTIONS = {
    "cauchy": "cauchy_conj",
    "vandermonde": "vandermonde_conj",
    "markov": "markov_response",
}
_state = {"enabled": True}


def set_fast_paths(enabled: bool) -> None:
    """Enable or disable the fused GPU kernels for every later call."""
    _state["enabled"] = bool(enabled)


def fast_paths_enabled() -> bool:
    """Whether calls on CUDA tensors may take the fused kernels (Triton present and enabled)."""
    return HAVE_TRITON and _state["enabled"]


def interpreting() -> bool:
    """Whether Triton's interpreter is on (`TRITON_INTERPRET`, read as Triton reads it): the
    fused kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")


@contextlib.contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """Context manager: fused kernels on (`True`) or off (`False`) inside the block."""
    before = _state["enabled"]
    set_fast_paths(enabled)
    try:
        yield
    finally:
        set_fast_paths(before)


@functools.cache
def _fast(name: str) -> ModuleType:
    return importlib.import_module(f"models.kernels.fast_{name}")


@functools.cache
def _compiler_opaque(name: str) -> Callable[..., Tensor]:
    """The fused function of `fast_<name>`, kept out of torch.compile graphs (a graph break at
    kernel generation: Triton launches inside autograd Functions are not traced)."""
    return torch.compiler.disable(getattr(_fast(name), FUNCTIONS[name]))


def _fast_fn(name: str, first: Tensor, *args) -> Callable[..., Tensor] | None:
    """The fused function that computes this call, or None for the blocked CPU sums."""
    if not fast_paths_enabled():
        return None
    devices = {t.device.type for t in (first, *args) if torch.is_tensor(t)}
    if devices != {"cuda"} and not (devices == {"cpu"} and interpreting()):
        return None
    return _compiler_opaque(name) if _fast(name).supports(first, *args) else None


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """v (..., H, N2), z (L',), w (H, N2) complex -> (..., H, L'); see `naive.cauchy_conj`."""
    fast = _fast_fn("cauchy", v, z, w)
    return blocked.cauchy_conj(v, z, w) if fast is None else fast(v, z, w)


def vandermonde_conj(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """c (..., H, N2), log_z (H, N2) complex -> real (..., H, L); see `naive.vandermonde_conj`."""
    fast = _fast_fn("vandermonde", c, log_z, L)
    return blocked.vandermonde_conj(c, log_z, L) if fast is None else fast(c, log_z, L)


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """h (..., C, M), z (C, L') complex -> (..., C, L'); see `naive.markov_response`."""
    fast = _fast_fn("markov", h, z)
    return blocked.markov_response(h, z) if fast is None else fast(h, z)


__all__ = [
    "cauchy_conj",
    "fast_paths",
    "fast_paths_enabled",
    "interpreting",
    "markov_response",
    "set_fast_paths",
    "vandermonde_conj",
]
