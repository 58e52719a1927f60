"""Fused Triton Cauchy sum over conjugate pole pairs, with its backward pass.

Computes the same function as `models.kernels.naive.cauchy_conj` (S4, Lemma C.3, with the
conjugate half of the diagonal restored):

    out[b, h, l] = sum_n v[b, h, n] / (z[l] - w[h, n]) + conj(v[b, h, n]) / (z[l] - conj(w[h, n]))

without materializing the (H, N2, L') Cauchy matrix: each program owns one channel h and a block
of points, builds the (N2, block) tiles of 1/(z - w) and 1/(z - conj(w)) in registers once, and
reuses them for every residue row b (the DPLR kernel has 4 to 6 rows sharing the poles). The
backward pass is two reductions over the points, fused the same way per run of blocks and summed
over the runs (PyTorch's conjugate-Wirtinger convention, g = dLoss/d conj(out)):

    T1[b, h, n] = sum_l g conj(a) + conj(g) c,       a = 1 / (z_l - w),  c = 1 / (z_l - conj w)
    T2[b, h, n] = sum_l g conj(a)^2 + conj(g) c^2
    grad_v = T1,   grad_w[h, n] = sum_b conj(v[b, h, n]) T2[b, h, n]

Complex tensors travel as interleaved (real, imag) float32 pairs (`torch.view_as_real`).
Memory is O(B H (N2 + L')), never O(H N2 L').
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

# Block sizes and warps: the fastest of a sweep on an H100 at (H, N2, L) = (256, 32, 16384).
FWD_TILE = 2048  # (N2, points) elements of the Cauchy tiles held by one forward program
BWD_TILE = 512  # the same for the backward pass, which holds twice as many tiles
BLOCKS_PER_PROGRAM = 16  # blocks of points per backward program
MAX_POLES = 64  # N2 above this takes the blocked CPU sums (the tiles would not fit in registers)
FWD_WARPS = 4  # warps per forward program
BWD_WARPS = 2  # warps per backward program


@triton.jit
def _cauchy_tiles(zr, zi, wr, wi, mask_n):
    """(Re a, Im a, Re c, Im c) of a = 1/(z - w), c = 1/(z - conj(w)) on the (poles, points)
    tile from z (1, BLOCK_L) and w (BLOCK_N, 1); masked poles give 0."""
    dr = zr - wr  # (BLOCK_N, BLOCK_L)
    di = zi - wi
    ei = zi + wi
    inv = 1.0 / (dr * dr + di * di)
    inv_e = 1.0 / (dr * dr + ei * ei)
    return (
        tl.where(mask_n, dr * inv, 0.0),
        tl.where(mask_n, -di * inv, 0.0),
        tl.where(mask_n, dr * inv_e, 0.0),
        tl.where(mask_n, -ei * inv_e, 0.0),
    )


@triton.jit
def _cauchy_fwd_kernel(
    v_ptr, w_ptr, z_ptr, out_ptr, R, H, N, L, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr
):
    # every tensor is 2-D, (BLOCK_N, 1), (1, BLOCK_L) or (BLOCK_N, BLOCK_L): no layout conversions
    h = tl.program_id(1)
    offs_l = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)[None, :]
    mask_l = offs_l < L
    n = tl.arange(0, BLOCK_N)[:, None]
    mask_n = n < N
    zr = tl.load(z_ptr + 2 * offs_l, mask=mask_l, other=0.0)  # (1, BLOCK_L)
    zi = tl.load(z_ptr + 2 * offs_l + 1, mask=mask_l, other=0.0)
    wr = tl.load(w_ptr + 2 * (h * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
    wi = tl.load(w_ptr + 2 * (h * N + n) + 1, mask=mask_n, other=0.0)
    ar, ai, cr, ci = _cauchy_tiles(zr, zi, wr, wi, mask_n)  # (BLOCK_N, BLOCK_L) each
    sr = ar + cr
    si = ai + ci
    dr = ar - cr
    di = ci - ai
    for r in range(R):  # every residue row shares the tiles
        row = r * H + h
        vr = tl.load(v_ptr + 2 * (row * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
        vi = tl.load(v_ptr + 2 * (row * N + n) + 1, mask=mask_n, other=0.0)
        # v a + conj(v) c = vr (a + c) + vi (Im c - Im a) + i (vr (Im a + Im c) + vi (Re a - Re c))
        out = out_ptr + 2 * (row * L + offs_l)
        tl.store(out, tl.sum(vr * sr + vi * di, axis=0, keep_dims=True), mask=mask_l)
        tl.store(out + 1, tl.sum(vr * si + vi * dr, axis=0, keep_dims=True), mask=mask_l)


@triton.jit
def _cauchy_bwd_kernel(
    g_ptr, v_ptr, w_ptr, z_ptr, t1_ptr, gw_ptr, R, H, N, L,
    BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr, BLOCKS: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    h = tl.program_id(1)
    n = tl.arange(0, BLOCK_N)[:, None]
    mask_n = n < N
    wr = tl.load(w_ptr + 2 * (h * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
    wi = tl.load(w_ptr + 2 * (h * N + n) + 1, mask=mask_n, other=0.0)
    gwr = tl.zeros([BLOCK_N, 1], dtype=tl.float32)  # sum_r conj(v_r) T2_r
    gwi = tl.zeros([BLOCK_N, 1], dtype=tl.float32)
    for b in range(BLOCKS):
        offs_l = (chunk * BLOCKS + b) * BLOCK_L + tl.arange(0, BLOCK_L)[None, :]
        mask_l = offs_l < L
        zr = tl.load(z_ptr + 2 * offs_l, mask=mask_l, other=0.0)  # (1, BLOCK_L)
        zi = tl.load(z_ptr + 2 * offs_l + 1, mask=mask_l, other=0.0)
        ar, ai, cr, ci = _cauchy_tiles(zr, zi, wr, wi, mask_n)  # (BLOCK_N, BLOCK_L) each
        sr = ar + cr
        si = ai + ci
        dr = ar - cr
        di = ci - ai
        a2r = ar * ar - ai * ai
        a2i = 2.0 * ar * ai
        c2r = cr * cr - ci * ci
        c2i = 2.0 * cr * ci
        s2r = a2r + c2r
        s2i = a2i + c2i
        d2r = a2r - c2r
        d2i = c2i - a2i
        for r in range(R):
            row = r * H + h
            gr = tl.load(g_ptr + 2 * (row * L + offs_l), mask=mask_l, other=0.0)  # (1, BLOCK_L)
            gi = tl.load(g_ptr + 2 * (row * L + offs_l) + 1, mask=mask_l, other=0.0)
            # sum_l g conj(a) + conj(g) c = sum_l gr (a + c) + gi (Im a + Im c)
            #                              + i (gi (Re a - Re c) + gr (Im c - Im a))
            # and the same with a^2 and c^2 for T2; each (BLOCK_N, 1)
            p1r = tl.sum(gr * sr + gi * si, axis=1, keep_dims=True)
            p1i = tl.sum(gi * dr + gr * di, axis=1, keep_dims=True)
            p2r = tl.sum(gr * s2r + gi * s2i, axis=1, keep_dims=True)
            p2i = tl.sum(gi * d2r + gr * d2i, axis=1, keep_dims=True)
            # this program owns its T1 slots (chunk, r, h, :): accumulate in place
            t1 = t1_ptr + 2 * (((chunk * R + r) * H + h) * N + n)
            tl.store(t1, tl.load(t1, mask=mask_n, other=0.0) + p1r, mask=mask_n)
            tl.store(t1 + 1, tl.load(t1 + 1, mask=mask_n, other=0.0) + p1i, mask=mask_n)
            vr = tl.load(v_ptr + 2 * (row * N + n), mask=mask_n, other=0.0)  # (BLOCK_N, 1)
            vi = tl.load(v_ptr + 2 * (row * N + n) + 1, mask=mask_n, other=0.0)
            gwr += vr * p2r + vi * p2i  # conj(v) T2
            gwi += vr * p2i - vi * p2r
    gw = gw_ptr + 2 * ((chunk * H + h) * N + n)
    tl.store(gw, gwr, mask=mask_n)
    tl.store(gw + 1, gwi, mask=mask_n)


class _CauchyConj(torch.autograd.Function):
    """Autograd wrapper: v (R, H, N2), w (H, N2), z (L',) complex64 -> (R, H, L') complex64."""

    @staticmethod
    def forward(ctx, v: Tensor, z: Tensor, w: Tensor) -> Tensor:
        R, H, N = v.shape
        L = z.shape[0]
        block_n = triton.next_power_of_2(N)
        block_l = FWD_TILE // block_n
        out = torch.empty(R, H, L, dtype=v.dtype, device=v.device)  # (R, H, L')
        _cauchy_fwd_kernel[(triton.cdiv(L, block_l), H)](
            torch.view_as_real(v), torch.view_as_real(w), torch.view_as_real(z),
            torch.view_as_real(out), R, H, N, L, BLOCK_N=block_n, BLOCK_L=block_l,
            num_warps=FWD_WARPS,
        )  # fmt: skip
        ctx.save_for_backward(v, z, w)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, z, w = ctx.saved_tensors
        R, H, N = v.shape
        L = z.shape[0]
        block_n = triton.next_power_of_2(N)
        block_l = max(16, BWD_TILE // block_n)
        chunks = triton.cdiv(L, block_l * BLOCKS_PER_PROGRAM)
        grad = grad.contiguous()
        # per-chunk partial sums, reduced below: T1 (chunks, R, H, N2), grad_w (chunks, H, N2)
        t1 = torch.zeros(chunks, R, H, N, dtype=v.dtype, device=v.device)
        gw = torch.empty(chunks, H, N, dtype=v.dtype, device=v.device)
        _cauchy_bwd_kernel[(chunks, H)](
            torch.view_as_real(grad), torch.view_as_real(v), torch.view_as_real(w),
            torch.view_as_real(z), torch.view_as_real(t1), torch.view_as_real(gw), R, H, N, L,
            BLOCK_N=block_n, BLOCK_L=block_l, BLOCKS=BLOCKS_PER_PROGRAM, num_warps=BWD_WARPS,
        )  # fmt: skip
        grad_v = t1.sum(0) if ctx.needs_input_grad[0] else None  # (R, H, N2)
        grad_w = gw.sum(0) if ctx.needs_input_grad[2] else None  # (H, N2)
        return grad_v, None, grad_w


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """Fused `cauchy_conj`: v (..., H, N2), z (L',), w (H, N2) complex64 on CUDA -> (..., H, L').

    The points `z` are constants (no gradient flows to them); callers check `supports` first.
    """
    lead = v.shape[:-2]
    H, N = w.shape
    out = _CauchyConj.apply(v.reshape(-1, H, N).contiguous(), z.contiguous(), w.contiguous())
    return out.reshape(*lead, H, z.shape[0])


def supports(v: Tensor, z: Tensor, w: Tensor) -> bool:
    """Whether the fused path applies: complex64, matching (H, N2), N2 <= 64, constant z (the
    device is `models.kernels.ops`'s to check)."""
    tensors = (v, z, w)
    return (
        all(t.dtype == torch.complex64 for t in tensors)
        and w.dim() == 2
        and z.dim() == 1
        and v.dim() >= 2
        and v.shape[-2:] == w.shape
        and w.shape[-1] <= MAX_POLES
        and not z.requires_grad
    )
