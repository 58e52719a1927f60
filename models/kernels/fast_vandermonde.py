"""Fused Triton real Vandermonde product over conjugate pairs, with its backward pass.

Computes the same function as `models.kernels.naive.vandermonde_conj` (the S4D kernel,
S4D paper eq. (5), K_l = 2 Re(C Abar^l Bbar)):

    out[b, h, l] = 2 Re( sum_n c[b, h, n] exp(log_z[h, n] l) ),   l = 0, ..., L - 1

without materializing the (H, N2, L) Vandermonde matrix. Powers are split as x^(l0 + t) =
x^l0 x^t (x = exp(log_z), l0 a multiple of the block length, 0 <= t < block): each program owns
one row (b, h) and a run of blocks, evaluates the (N2, block) tile of x^t and x^l0 of its first
block once (the products log_z * l corrected by their rounding error, so large phases stay
accurate), and steps x^l0 from block to block by one complex multiply with x^block; the inner
loop is two multiply-adds per (n, l) and no transcendental.
The backward pass is two fused reductions over l (g = dLoss/d out, real):

    S1[b, h, n] = sum_l g_l conj(e_l),   S2[b, h, n] = sum_l l g_l conj(e_l),   e_l = exp(log_z l)
    grad_c = 2 S1,   grad_log_z[h, n] = 2 sum_b conj(c[b, h, n]) S2[b, h, n]

computed per run of blocks as sums over the tile and combined with conj(x^l0), then summed over
the runs. Complex tensors travel as interleaved (real, imag) float32 pairs
(`torch.view_as_real`). Memory is O(B H (N2 + L)), never O(H N2 L).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

# Block sizes and warps: the fastest of a sweep on an H100 at (H, N2, L) = (256, 32, 16384).
BLOCK_POWERS = 64  # powers l per block: the in-block powers form a (N2, BLOCK_POWERS) tile
BLOCKS_PER_PROGRAM = 16  # blocks of powers per program, all reusing the program's tile
MAX_NODES = 64  # N2 above this takes the blocked CPU sums (the tile would not fit in registers)
FWD_WARPS = 8  # warps per forward program
BWD_WARPS = 4  # warps per backward program


@triton.jit
def _exp_times(ar, ai, t):
    """exp((ar + i ai) t) as (real, imag), the products ar t and ai t corrected by their
    rounding error (TwoProduct through fma), so large phases stay accurate."""
    pa = ar * t
    pb = ai * t
    ea = tl.fma(ar, t, -pa)
    eb = tl.fma(ai, t, -pb)
    mag = tl.exp(pa) * (1.0 + ea)
    cos = tl.cos(pb)
    sin = tl.sin(pb)
    return mag * (cos - eb * sin), mag * (sin + eb * cos)


@triton.jit
def _vandermonde_fwd_kernel(
    c_ptr, logz_ptr, out_ptr, H, N, L,
    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, BLOCKS: tl.constexpr,
):  # fmt: skip
    # every tensor is 2-D, (BLOCK_N, 1), (1, BLOCK_L) or (BLOCK_N, BLOCK_L), so no per-block
    # layout conversions are needed
    row = tl.program_id(1)  # b * H + h
    h = row % H
    n = tl.arange(0, BLOCK_N)[:, None]
    mask_n = n < N
    t = tl.arange(0, BLOCK_L)[None, :]
    cr = tl.load(c_ptr + 2 * (row * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
    ci = tl.load(c_ptr + 2 * (row * N + n) + 1, mask=mask_n, other=0.0)
    ar = tl.load(logz_ptr + 2 * (h * N + n), mask=mask_n, other=0.0)
    ai = tl.load(logz_ptr + 2 * (h * N + n) + 1, mask=mask_n, other=0.0)
    pr, pi = _exp_times(ar, ai, t.to(tl.float32))  # (BLOCK_N, BLOCK_L) in-block powers x^t
    sr, si = _exp_times(ar, ai, BLOCK_L * 1.0)  # x^BLOCK_L, the step between blocks
    l_first = tl.program_id(0) * BLOCKS * BLOCK_L
    br, bi = _exp_times(ar, ai, l_first.to(tl.float32))  # x^l0 of the first block
    qr = cr * br - ci * bi  # c x^l0; masked nodes have c = 0
    qi = cr * bi + ci * br
    for b in range(BLOCKS):
        val = tl.sum(qr * pr - qi * pi, axis=0, keep_dims=True)  # Re sum_n c x^(l0 + t)
        offs_l = l_first + b * BLOCK_L + t
        tl.store(out_ptr + row * L + offs_l, 2.0 * val, mask=offs_l < L)
        qr, qi = qr * sr - qi * si, qr * si + qi * sr  # advance l0 by one block


@triton.jit
def _vandermonde_bwd_kernel(
    g_ptr, logz_ptr, s1_ptr, s2_ptr, H, N, L, ROWS,
    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, BLOCKS: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    row = tl.program_id(1)  # b * H + h
    h = row % H
    n = tl.arange(0, BLOCK_N)[:, None]
    mask_n = n < N
    t = tl.arange(0, BLOCK_L)[None, :]
    tf = t.to(tl.float32)
    ar = tl.load(logz_ptr + 2 * (h * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
    ai = tl.load(logz_ptr + 2 * (h * N + n) + 1, mask=mask_n, other=0.0)
    pr, pi = _exp_times(ar, ai, tf)  # (BLOCK_N, BLOCK_L) in-block powers x^t
    sr, si = _exp_times(ar, ai, BLOCK_L * 1.0)  # x^BLOCK_L
    l_first = chunk * BLOCKS * BLOCK_L
    br, bi = _exp_times(ar, ai, l_first.to(tl.float32))  # x^l0
    s1r = tl.zeros([BLOCK_N, 1], dtype=tl.float32)
    s1i = tl.zeros([BLOCK_N, 1], dtype=tl.float32)
    s2r = tl.zeros([BLOCK_N, 1], dtype=tl.float32)
    s2i = tl.zeros([BLOCK_N, 1], dtype=tl.float32)
    for b in range(BLOCKS):
        l0 = l_first + b * BLOCK_L
        offs_l = l0 + t
        g = tl.load(g_ptr + row * L + offs_l, mask=offs_l < L, other=0.0)  # (1, BLOCK_L)
        # in-block sums over t of g conj(x^t) and t g conj(x^t), conj(x^t) = pr - i pi
        ir = tl.sum(g * pr, axis=1, keep_dims=True)
        ii = -tl.sum(g * pi, axis=1, keep_dims=True)
        jr = tl.sum(g * tf * pr, axis=1, keep_dims=True)
        ji = -tl.sum(g * tf * pi, axis=1, keep_dims=True)
        # conj(x^l0) X = (br - i bi) X
        s1r += br * ir + bi * ii
        s1i += br * ii - bi * ir
        l0f = l0.to(tl.float32)
        kr = l0f * ir + jr  # sum_t (l0 + t) g conj(x^t)
        ki = l0f * ii + ji
        s2r += br * kr + bi * ki
        s2i += br * ki - bi * kr
        br, bi = br * sr - bi * si, br * si + bi * sr  # advance l0 by one block
    out = 2 * ((chunk * ROWS + row) * N + n)
    tl.store(s1_ptr + out, s1r, mask=mask_n)
    tl.store(s1_ptr + out + 1, s1i, mask=mask_n)
    tl.store(s2_ptr + out, s2r, mask=mask_n)
    tl.store(s2_ptr + out + 1, s2i, mask=mask_n)


def _chunks(L: int) -> int:
    return triton.cdiv(L, BLOCK_POWERS * BLOCKS_PER_PROGRAM)


class _VandermondeConj(torch.autograd.Function):
    """Autograd wrapper: c (R, H, N2), log_z (H, N2) complex64, L -> (R, H, L) float32."""

    @staticmethod
    def forward(ctx, c: Tensor, log_z: Tensor, L: int) -> Tensor:
        R, H, N = c.shape
        out = torch.empty(R, H, L, dtype=torch.float32, device=c.device)  # (R, H, L)
        _vandermonde_fwd_kernel[(_chunks(L), R * H)](
            torch.view_as_real(c), torch.view_as_real(log_z), out, H, N, L,
            BLOCK_N=triton.next_power_of_2(N), BLOCK_L=BLOCK_POWERS, BLOCKS=BLOCKS_PER_PROGRAM,
            num_warps=FWD_WARPS,
        )  # fmt: skip
        ctx.save_for_backward(c, log_z)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        c, log_z = ctx.saved_tensors
        R, H, N = c.shape
        L = grad.shape[-1]
        grad = grad.contiguous()
        # per-chunk partial sums, (chunks, R, H, N2) complex, reduced below
        s1 = torch.empty(_chunks(L), R, H, N, dtype=c.dtype, device=c.device)
        s2 = torch.empty_like(s1)
        _vandermonde_bwd_kernel[(_chunks(L), R * H)](
            grad, torch.view_as_real(log_z), torch.view_as_real(s1), torch.view_as_real(s2),
            H, N, L, R * H,
            BLOCK_N=triton.next_power_of_2(N), BLOCK_L=BLOCK_POWERS, BLOCKS=BLOCKS_PER_PROGRAM,
            num_warps=BWD_WARPS,
        )  # fmt: skip
        grad_c = 2.0 * s1.sum(0) if ctx.needs_input_grad[0] else None  # (R, H, N2)
        grad_log_z = None
        if ctx.needs_input_grad[1]:
            grad_log_z = 2.0 * (c.conj() * s2.sum(0)).sum(0)  # (H, N2)
        return grad_c, grad_log_z, None


def vandermonde_conj(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """Fused `vandermonde_conj`: c (..., H, N2), log_z (H, N2) complex64 on CUDA -> (..., H, L)."""
    lead = c.shape[:-2]
    H, N = log_z.shape
    out = _VandermondeConj.apply(c.reshape(-1, H, N).contiguous(), log_z.contiguous(), int(L))
    return out.reshape(*lead, H, int(L))


def supports(c: Tensor, log_z: Tensor, L: int) -> bool:
    """Whether the fused path computes this call: complex64, matching (H, N2), N2 <= 64 (the
    device is `models.kernels.ops`'s to check)."""
    return (
        all(t.dtype == torch.complex64 for t in (c, log_z))
        and log_z.dim() == 2
        and c.dim() >= 2
        and c.shape[-2:] == log_z.shape
        and log_z.shape[-1] <= MAX_NODES
    )
