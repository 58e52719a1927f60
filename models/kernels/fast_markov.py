"""Fused Triton transfer function of a Hankel operator from its Markov parameters, with backward.

Computes the same function as `models.kernels.naive.markov_response` (HOPE paper, eq. (3)):

    out[b, c, l] = sum_{j=1}^{M} h[b, c, j-1] z[c, l]^(-j) = sum_j h[b, c, j-1] exp(-j u[c, l]),
    u = log z,

without materializing the (C, L', M) matrix of powers: each program owns one row (b, c) and a
block of points and builds the (M, block) tile of powers y^j, y = exp(-u), in registers by
binary powering (one exp/cos/sin per point, then about log2(M) complex multiplies per power
instead of a transcendental each). The logarithm is taken by torch outside the kernel, so
autograd carries the chain rule through it. Backward (PyTorch's conjugate-Wirtinger convention,
g = dLoss/d conj(out)):

    grad_h[b, c, j-1] = sum_l g[b, c, l] conj(exp(-j u[c, l]))   (fused, per run of blocks of l)
    grad_u[c, l] = -sum_b g[b, c, l] conj(Q[b, c, l]),  Q = sum_j j h_j exp(-j u)
                                                       (the forward kernel with coefficients j h_j)

Complex tensors travel as interleaved (real, imag) float32 pairs (`torch.view_as_real`).
Memory is O(B C (M + L')), never O(C L' M).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

# Block sizes and warps: the fastest of a sweep on an H100 at (H, N2, L) = (256, 32, 16384).
TILE = 2048  # elements of the (M, points) tile of powers held by one program
BLOCKS_PER_PROGRAM = 8  # blocks of points per program in the backward pass
MAX_PARAMS = 256  # M above this takes the blocked CPU sums
FWD_WARPS = 2  # warps per forward program
BWD_WARPS = 2  # warps per backward program


@triton.jit
def _powers(ur, ui, BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, BITS: tl.constexpr):
    """Tile (BLOCK_M, BLOCK_L) of y^(m+1), y = exp(-u), m = 0..BLOCK_M-1, u given as (1, BLOCK_L),
    by binary powering: y^(2^k) by repeated squaring, multiplied into the rows whose exponent
    has bit k set."""
    e = tl.arange(0, BLOCK_M)[:, None] + 1
    mag = tl.exp(-ur)
    qr = mag * tl.cos(ui)  # y = exp(-ur) (cos(ui) - i sin(ui)), (1, BLOCK_L)
    qi = -mag * tl.sin(ui)
    pr = tl.zeros([BLOCK_M, BLOCK_L], dtype=tl.float32) + 1.0
    pi = tl.zeros([BLOCK_M, BLOCK_L], dtype=tl.float32)
    for k in tl.static_range(BITS):
        on = ((e >> k) & 1) != 0  # (BLOCK_M, 1)
        nr = pr * qr - pi * qi
        ni = pr * qi + pi * qr
        pr = tl.where(on, nr, pr)
        pi = tl.where(on, ni, pi)
        qr, qi = qr * qr - qi * qi, 2.0 * qr * qi
    return pr, pi


@triton.jit
def _markov_fwd_kernel(
    h_ptr, u_ptr, out_ptr, C, M, L,
    BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, BITS: tl.constexpr,
):  # fmt: skip
    # every tensor is 2-D, (BLOCK_M, 1), (1, BLOCK_L) or (BLOCK_M, BLOCK_L): no layout conversions
    row = tl.program_id(1)  # b * C + c
    c = row % C
    offs_l = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)[None, :]
    mask_l = offs_l < L
    ur = tl.load(u_ptr + 2 * (c * L + offs_l), mask=mask_l, other=0.0)  # (1, BLOCK_L)
    ui = tl.load(u_ptr + 2 * (c * L + offs_l) + 1, mask=mask_l, other=0.0)
    m = tl.arange(0, BLOCK_M)[:, None]
    hr = tl.load(h_ptr + 2 * (row * M + m), mask=m < M, other=0.0)  # (BLOCK_M, 1)
    hi = tl.load(h_ptr + 2 * (row * M + m) + 1, mask=m < M, other=0.0)
    pr, pi = _powers(ur, ui, BLOCK_M, BLOCK_L, BITS)  # masked parameters have h = 0
    out = out_ptr + 2 * (row * L + offs_l)
    tl.store(out, tl.sum(hr * pr - hi * pi, axis=0, keep_dims=True), mask=mask_l)
    tl.store(out + 1, tl.sum(hr * pi + hi * pr, axis=0, keep_dims=True), mask=mask_l)


@triton.jit
def _markov_bwd_kernel(
    g_ptr, u_ptr, gh_ptr, C, M, L, ROWS,
    BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr, BITS: tl.constexpr, BLOCKS: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    row = tl.program_id(1)  # b * C + c
    c = row % C
    acc_r = tl.zeros([BLOCK_M, 1], dtype=tl.float32)
    acc_i = tl.zeros([BLOCK_M, 1], dtype=tl.float32)
    for b in range(BLOCKS):
        offs_l = (chunk * BLOCKS + b) * BLOCK_L + tl.arange(0, BLOCK_L)[None, :]
        mask_l = offs_l < L
        ur = tl.load(u_ptr + 2 * (c * L + offs_l), mask=mask_l, other=0.0)  # (1, BLOCK_L)
        ui = tl.load(u_ptr + 2 * (c * L + offs_l) + 1, mask=mask_l, other=0.0)
        gr = tl.load(g_ptr + 2 * (row * L + offs_l), mask=mask_l, other=0.0)
        gi = tl.load(g_ptr + 2 * (row * L + offs_l) + 1, mask=mask_l, other=0.0)
        pr, pi = _powers(ur, ui, BLOCK_M, BLOCK_L, BITS)  # masked points have g = 0
        # g conj(y^j) = (gr + i gi)(pr - i pi)
        acc_r += tl.sum(gr * pr + gi * pi, axis=1, keep_dims=True)
        acc_i += tl.sum(gi * pr - gr * pi, axis=1, keep_dims=True)
    m = tl.arange(0, BLOCK_M)[:, None]
    gh = gh_ptr + 2 * ((chunk * ROWS + row) * M + m)
    tl.store(gh, acc_r, mask=m < M)
    tl.store(gh + 1, acc_i, mask=m < M)


def _tile(M: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_L, BITS): all M parameters in one tile of TILE elements."""
    block_m = triton.next_power_of_2(M)
    return block_m, max(16, TILE // block_m), M.bit_length()


def _response(h: Tensor, u: Tensor) -> Tensor:
    """Launch the forward kernel: h (R, C, M), u (C, L') complex64 -> (R, C, L') complex64."""
    R, C, M = h.shape
    L = u.shape[-1]
    block_m, block_l, bits = _tile(M)
    out = torch.empty(R, C, L, dtype=h.dtype, device=h.device)  # (R, C, L')
    _markov_fwd_kernel[(triton.cdiv(L, block_l), R * C)](
        torch.view_as_real(h), torch.view_as_real(u), torch.view_as_real(out), C, M, L,
        BLOCK_M=block_m, BLOCK_L=block_l, BITS=bits, num_warps=FWD_WARPS,
        )  # fmt: skip
    return out


class _MarkovResponse(torch.autograd.Function):
    """Autograd wrapper: h (R, C, M), u = log z (C, L') complex64 -> (R, C, L') complex64."""

    @staticmethod
    def forward(ctx, h: Tensor, u: Tensor) -> Tensor:
        ctx.save_for_backward(h, u)
        return _response(h, u)

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, u = ctx.saved_tensors
        R, C, M = h.shape
        grad = grad.contiguous()
        grad_h = grad_u = None
        if ctx.needs_input_grad[0]:
            L = u.shape[-1]
            block_m, block_l, bits = _tile(M)
            chunks = triton.cdiv(L, block_l * BLOCKS_PER_PROGRAM)
            partial = torch.empty(chunks, R, C, M, dtype=h.dtype, device=h.device)
            _markov_bwd_kernel[(chunks, R * C)](
                torch.view_as_real(grad), torch.view_as_real(u), torch.view_as_real(partial),
                C, M, L, R * C,
                BLOCK_M=block_m, BLOCK_L=block_l, BITS=bits, BLOCKS=BLOCKS_PER_PROGRAM,
                num_warps=BWD_WARPS,
            )  # fmt: skip
            grad_h = partial.sum(0)  # (R, C, M)
        if ctx.needs_input_grad[1]:
            j = torch.arange(1, M + 1, device=h.device, dtype=torch.float32)  # (M,)
            q = _response((h * j).contiguous(), u)  # (R, C, L') = sum_j j h_j exp(-j u)
            grad_u = -(grad * q.conj()).sum(0)  # (C, L')
        return grad_h, grad_u


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """Fused `markov_response`: h (..., C, M), z (C, L') complex64 on CUDA -> (..., C, L')."""
    lead = h.shape[:-2]
    C, M = h.shape[-2:]
    u = torch.log(z).contiguous()  # (C, L')
    out = _MarkovResponse.apply(h.reshape(-1, C, M).contiguous(), u)
    return out.reshape(*lead, C, z.shape[-1])


def supports(h: Tensor, z: Tensor) -> bool:
    """Whether the fused path computes this call: complex64, matching channels, M <= 256 (the
    device is `models.kernels.ops`'s to check)."""
    return (
        all(t.dtype == torch.complex64 for t in (h, z))
        and z.dim() == 2
        and h.dim() >= 2
        and h.shape[-2] == z.shape[0]
        and h.shape[-1] <= MAX_PARAMS
    )
