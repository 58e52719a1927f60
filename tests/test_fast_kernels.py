"""Fused GPU kernels against the CPU path and the naive sums: values and gradients, fp32, on CUDA.

The GPU tests compare `models.kernels.ops` (fast path on) with `models.kernels.blocked`
(fast path off) to 1e-5 relative (Frobenius norm of the difference over the norm of the
other), and both with the naive sums of `models.kernels.naive` in float64, on fresh random
inputs with sizes that are not multiples of the kernels' block sizes. They are skipped with a
reason where there is no CUDA device or no Triton; the dispatch rules are checked on CPU everywhere.
"""

import importlib.util
import zlib

import pytest
import torch

from models.kernels import blocked, naive, ops

HAS_GPU = torch.cuda.is_available() and importlib.util.find_spec("triton") is not None
gpu = pytest.mark.skipif(
    not HAS_GPU,
    reason="fused kernels need a CUDA device and Triton; the CPU path is the blocked sums",
)
RTOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.to(torch.complex128), b.to(torch.complex128)
    return ((a - b).norm() / b.norm()).item()


def complex_randn(*shape, scale=1.0, device="cpu"):
    return scale * torch.randn(*shape, dtype=torch.complex64, device=device)


def cauchy_inputs(device, lead=(3,), H=7, N2=37, L=301):
    v = complex_randn(*lead, H, N2, device=device)
    # stable poles (negative real part, as S4 with dt folded in), points on the imaginary axis
    w = torch.complex(-torch.rand(H, N2) - 0.05, 3 * torch.randn(H, N2)).to(device)
    omega = torch.exp(-2j * torch.pi * torch.arange(L) / (2 * L - 2))
    z = (2 * (1 - omega) / (1 + omega + 1e-3)).to(torch.complex64).to(device)  # (L',)
    return [v, z, w]


def vandermonde_inputs(device, lead=(2,), H=7, N2=37, L=1001):
    c = complex_randn(*lead, H, N2, device=device)
    log_z = torch.complex(-0.5 * torch.rand(H, N2) * 0.05, torch.randn(H, N2) * 0.3).to(device)
    return [c, log_z, L]


def markov_inputs(device, lead=(2,), C=7, M=37, L=333):
    h = complex_randn(*lead, C, M, scale=0.2, device=device)
    angle = 2 * torch.pi * torch.rand(C, L)
    z = torch.polar(1 + 0.01 * torch.rand(C, L), angle).to(device)  # (C, L') near the unit circle
    return [h, z]


CASES = {
    "cauchy_conj": (cauchy_inputs, (0, 2)),  # (input maker, indices of differentiable inputs)
    "vandermonde_conj": (vandermonde_inputs, (0, 1)),
    "markov_response": (markov_inputs, (0, 1)),
}


def values_and_grads(fn, inputs, grad_idx, cotangent):
    """fn(*inputs) and the gradients of Re<out, cotangent> w.r.t. the inputs at grad_idx."""
    leaves = [x.detach().clone().requires_grad_(i in grad_idx) if torch.is_tensor(x) else x
              for i, x in enumerate(inputs)]  # fmt: skip
    out = fn(*leaves)
    cot = cotangent if out.is_complex() else cotangent.real
    loss = (out * cot.to(out.dtype).conj()).real.sum()
    grads = torch.autograd.grad(loss, [leaves[i] for i in grad_idx])
    return out.detach(), [g.detach() for g in grads]


def to64(x):
    if not torch.is_tensor(x):
        return x
    return x.to(torch.complex128 if x.is_complex() else torch.float64)


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
def test_fast_matches_reference_values_and_grads(name, lead):
    make, grad_idx = CASES[name]
    torch.manual_seed(zlib.crc32(f"{name}{lead}".encode()))
    inputs = make("cuda", lead=lead)
    fn = getattr(ops, name)
    with torch.no_grad(), ops.fast_paths(False):
        ref_shape = fn(*inputs).shape
    cotangent = torch.randn(ref_shape, dtype=torch.complex128, device="cuda")
    fast_out, fast_grads = values_and_grads(fn, inputs, grad_idx, cotangent)
    with ops.fast_paths(False):
        ref_out, ref_grads = values_and_grads(fn, inputs, grad_idx, cotangent)
    exact_out, exact_grads = values_and_grads(
        getattr(naive, name), [to64(x) for x in inputs], grad_idx, cotangent
    )
    assert fast_out.shape == ref_out.shape and fast_out.dtype == ref_out.dtype
    assert rel_err(fast_out, ref_out) < RTOL
    assert rel_err(fast_out, exact_out) < RTOL
    for fast_g, ref_g, exact_g in zip(fast_grads, ref_grads, exact_grads, strict=True):
        assert fast_g.shape == ref_g.shape and fast_g.dtype == ref_g.dtype
        assert rel_err(fast_g, ref_g) < RTOL
        assert rel_err(fast_g, exact_g) < RTOL


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_memory_is_linear_in_length(name):
    """At (H, N2, L) = (256, 32, 16384) one (H, N2, L) complex64 tensor is 1 GiB; the fused
    forward+backward (whose tensors are all O(H (N2 + L))) must not need even half of one,
    while the blocked CPU sums materialize several."""
    make, grad_idx = CASES[name]
    H, N2, L = 256, 32, 16384
    sizes = {"cauchy_conj": {"H": H, "N2": N2, "L": L // 2 + 1},
             "vandermonde_conj": {"H": H, "N2": N2, "L": L},
             "markov_response": {"C": H, "M": N2, "L": L}}[name]  # fmt: skip
    inputs = make("cuda", lead=(2,), **sizes)
    cotangent = torch.randn(2, H, sizes["L"], dtype=torch.complex64, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    values_and_grads(getattr(ops, name), inputs, grad_idx, cotangent)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    full_matrix = H * N2 * L * 8
    assert extra < full_matrix / 2, f"{name}: {extra / 2**20:.0f} MiB above inputs"


@pytest.mark.parametrize("name", sorted(CASES))
def test_cpu_calls_take_the_blocked_sums(name):
    make, _ = CASES[name]
    inputs = make("cpu")
    fast_on = getattr(ops, name)(*inputs)
    assert torch.equal(fast_on, getattr(blocked, name)(*inputs))


def test_fast_paths_switch_restores_state():
    before = ops.fast_paths_enabled()
    with ops.fast_paths(False):
        assert not ops.fast_paths_enabled()
        with pytest.raises(RuntimeError), ops.fast_paths(True):
            raise RuntimeError("inside")
        assert not ops.fast_paths_enabled()
    assert ops.fast_paths_enabled() == before
