"""The three core sums of the SSM kernels, blocked in plain differentiable torch: the CPU path.

They compute the sums of `models.kernels.naive` (the definitions, the tests' oracle) in bounded
memory; `models.kernels.ops` calls these unless a fused GPU kernel applies. Every function is
dtype-generic: complex64 inputs give complex64 / float32 outputs, complex128 inputs give
complex128 / float64 outputs. Leading `...`
dimensions are batch dimensions of the coefficients only; the points are shared across them.

None of them materializes a full (H, N2, L') matrix of powers or Cauchy terms:
  - the Vandermonde and Markov sums split each exponent into a block and an offset,
    z^(b T + t) = z^(b T) z^t with T ~ sqrt(number of powers), so only O(sqrt) powers per row
    are formed and the rest is a batched matmul; the Vandermonde powers are exponentials from
    real exp, cos and sin (`_cexp`, which torch vectorizes on CPU, unlike complex exp), the
    Markov powers short cumulative products of 1 / z;
  - the Cauchy and Markov sums run over the points in blocks (`TILE_ELEMENTS`) with hand-written
    backward passes (`_PairCauchy`, `_Markov`) that recompute a block's tiles instead of storing
    them; the Cauchy sum merges each conjugate pair into one real-coefficient term over one
    denominator and writes its tiles into reused buffers.
Memory is O(H N2 sqrt(L') + output) per call; the float64 results agree with `models.kernels.naive`
to rounding (tests/test_kernels.py).
"""

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# size of the blocks of the Cauchy and Markov sums: a block's (H, N2, l) Cauchy tile or
# (C, l, n_b T) power factors hold about this many complex elements (4 MiB in complex64); larger
# blocks mean fewer, better-threaded torch calls, smaller ones less memory traffic per block
TILE_ELEMENTS = 1 << 19


def _cexp(re: Tensor, im: Tensor) -> Tensor:
    """exp(re + i im) for real tensors of one shape, -> complex of that shape."""
    mag = torch.exp(re)
    return torch.complex(mag * torch.cos(im), mag * torch.sin(im))


def _block_split(n: int) -> tuple[int, int]:
    """(T, n_b): block length T = ceil(sqrt(n)) and n_b = ceil(n / T) blocks, n_b T >= n."""
    T = max(1, math.isqrt(max(n - 1, 0)) + 1)
    return T, -(-n // T)


def vandermonde_conj(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """Real Vandermonde product over conjugate pairs.

    out[..., h, l] = 2 Re( sum_n c[..., h, n] exp(log_z[h, n] * l) ),  l = 0, ..., L - 1

    With log_z = dt A (diagonal A) this is the S4D kernel K_l = 2 Re(C Abar^l Bbar) (S4D paper,
    eq. (5)), the factor 2 accounting for the conjugate half of the state that is not stored.

    Computed by blocks l = b T + t (T ~ sqrt(L)): with outer[h, n, b] = exp(log_z b T) and
    inner[h, n, t] = exp(log_z t),
        out[..., h, b T + t] = 2 Re( sum_n (c outer)[..., h, n, b] inner[h, n, t] )
                             = 2 sum_n Re(c outer) Re(inner) - Im(c outer) Im(inner),
    one real batched matmul over the stacked real and imaginary parts.

    Args:
        c: (..., H, N2) complex coefficients.
        log_z: (H, N2) complex logarithms of the nodes.
        L: number of powers.

    Returns:
        (..., H, L) real, of the real dtype matching `c`.
    """
    T, n_b = _block_split(L)
    real = log_z.real.dtype
    t = torch.arange(T, device=log_z.device, dtype=real)  # (T,)
    bT = T * torch.arange(n_b, device=log_z.device, dtype=real)  # (n_b,)
    re, im = log_z.real.unsqueeze(-1), log_z.imag.unsqueeze(-1)  # (H, N2, 1)
    inner = _cexp(re * t, im * t)  # (H, N2, T)
    outer = c.unsqueeze(-1) * _cexp(re * bT, im * bT)  # (..., H, N2, n_b)
    left = torch.cat([outer.real, -outer.imag], dim=-2).transpose(-1, -2)  # (..., H, n_b, 2 N2)
    right = torch.cat([inner.real, inner.imag], dim=-2)  # (H, 2 N2, T)
    out = 2.0 * torch.matmul(left, right)  # (..., H, n_b, T)
    return out.flatten(-2)[..., :L]  # (..., H, L)


def _power_tiles(z: Tensor, M: int) -> Iterator[tuple[slice, Tensor, Tensor]]:
    """Consecutive blocks of points with the block factors of the negative powers of the points.

    With T, n_b = `_block_split(M)` and u = 1 / z, every power u^j, j = 1, ..., n_b T, is
    u^(b T) u^(t + 1) for j - 1 = b T + t. For z (C, L') yields (sl, inner, outer) with
    inner (C, l, T) = u^(t + 1) and outer (C, l, n_b) = u^(b T) at the points z[:, sl], each
    from a short cumulative product, in blocks of about TILE_ELEMENTS / (C n_b T) points.
    """
    C, n_points = z.shape
    T, n_b = _block_split(M)
    size = max(1, min(n_points, TILE_ELEMENTS // (C * n_b * T)))
    for start in range(0, n_points, size):
        sl = slice(start, min(start + size, n_points))
        u = z[:, sl].reciprocal()  # (C, l)
        inner = torch.cumprod(u.unsqueeze(-1).expand(-1, -1, T), dim=-1)  # (C, l, T): u^(t+1)
        step = inner[..., -1:].expand(-1, -1, n_b - 1)  # (C, l, n_b - 1): u^T
        ones = torch.ones_like(u).unsqueeze(-1)  # (C, l, 1)
        yield sl, inner, torch.cat([ones, torch.cumprod(step, dim=-1)], dim=-1)  # u^(bT)


def _block_coefficients(h: Tensor, T: int, n_b: int) -> Tensor:
    """h (P, C, M) -> (C, T, n_b P): [c, t, b P + p] = h[p, c, b T + t] (zero past M)."""
    P, C, M = h.shape
    blocks = F.pad(h, (0, n_b * T - M)).view(P, C, n_b, T)
    return blocks.permute(1, 3, 2, 0).reshape(C, T, n_b * P)


def _block_sum(inner: Tensor, outer: Tensor, coef: Tensor) -> Tensor:
    """sum_b outer[c, l, b] sum_t inner[c, l, t] coef[c, t, b P + p] -> (C, l, P)."""
    C, n_points, n_b = outer.shape
    partial = torch.matmul(inner, coef).view(C, n_points, n_b, -1)  # (C, l, n_b, P)
    return (partial * outer.unsqueeze(-1)).sum(2)


class _Markov(torch.autograd.Function):
    """out[p, c, l] = sum_j h[p, c, j - 1] u[c, l]^j, u = 1 / z: h (P, C, M), z (C, L') complex.

    Computed block by block over l from the factors of `_power_tiles`, never forming all M
    powers: out = sum_b u^(b T) sum_t h[b T + t] u^(t + 1). The backward pass recomputes the
    factors. The sum is holomorphic in h and z, so with G the output gradient (torch's
    convention)
        grad h[p, c, b T + t] = sum_l G[p, c, l] conj(u^(b T)) conj(u^(t + 1))
        grad z[c, l]          = sum_p G[p, c, l] conj(d out / dz),
        d out / dz            = -u sum_j j h[p, c, j - 1] u^j.
    """

    @staticmethod
    def forward(ctx, h: Tensor, z: Tensor) -> Tensor:
        ctx.save_for_backward(h, z)
        P, C, M = h.shape
        coef = _block_coefficients(h, *_block_split(M))  # (C, T, n_b P)
        out = h.new_empty(C, z.shape[1], P)  # (C, L', P)
        for sl, inner, outer in _power_tiles(z, M):
            out[:, sl] = _block_sum(inner, outer, coef)
        return out.permute(2, 0, 1)  # (P, C, L')

    @staticmethod
    @once_differentiable  # first derivatives only: the blocks are written in place
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        h, z = ctx.saved_tensors
        need_h, need_z = ctx.needs_input_grad
        P, C, M = h.shape
        T, n_b = _block_split(M)
        j = torch.arange(1, M + 1, device=h.device, dtype=z.real.dtype)  # (M,)
        j_coef = _block_coefficients(h * j, T, n_b)  # (C, T, n_b P)
        g = grad.resolve_conj().permute(1, 0, 2)  # (C, P, L')
        grad_blocks = h.new_zeros(C, n_b * P, T) if need_h else None  # [c, b P + p, t]
        grad_z = torch.empty_like(z) if need_z else None  # (C, L')
        for sl, inner, outer in _power_tiles(z, M):
            g_tile = g[:, :, sl]  # (C, P, l)
            if need_h:
                weighted = outer.conj().transpose(1, 2).unsqueeze(2) * g_tile.unsqueeze(1)
                weighted = weighted.reshape(C, n_b * P, -1)  # (C, n_b P, l)
                grad_blocks += torch.matmul(weighted, inner.conj())  # (C, n_b P, T)
            if need_z:
                d_out = -inner[..., :1] * _block_sum(inner, outer, j_coef)  # (C, l, P)
                grad_z[:, sl] = (g_tile * d_out.conj().transpose(1, 2)).sum(1)
        grad_h = None
        if need_h:
            grad_h = grad_blocks.view(C, n_b, P, T).permute(2, 0, 1, 3).reshape(P, C, -1)
            grad_h = grad_h[..., :M]  # (P, C, M)
        return grad_h, grad_z


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """Transfer function of a Hankel operator given by its Markov parameters.

    out[..., c, l] = sum_{j=1}^{M} h[..., c, j - 1] * z[c, l]^(-j)

    This is HOPE's transfer function G(z) = sum_j h_j z^{-j} (HOPE paper, eq. (3)) evaluated at
    per-channel points (for points on the unit circle z^(-j) = exp(-i j arg z), as the HOPE
    reference code evaluates it). The powers z^(-j) are built by blocks of points and summed by
    a batched matmul (`_Markov`).

    Args:
        h: (..., C, M) complex Markov parameters h_1, ..., h_M.
        z: (C, L') complex nonzero evaluation points, one row per channel.

    Returns:
        (..., C, L') complex.
    """
    z = z.to(h.dtype)
    lead, (C, M) = h.shape[:-2], h.shape[-2:]
    out = _Markov.apply(h.reshape(-1, C, M), z)  # (P, C, L')
    return out.reshape(*lead, C, z.shape[1])


def _pair_tiles(w: Tensor, z: Tensor) -> Iterator[tuple[slice, Tensor]]:
    """Consecutive blocks of points with their conjugate-pair Cauchy tiles.

    Yields (sl, q), q (H, N2, l) = 1 / ((z[sl] - w) (z[sl] - conj(w))) for w (H, N2), z (L',),
    each block holding about TILE_ELEMENTS elements. q is a view of a buffer that the
    next block overwrites (the tiles are written in place so that no block allocates memory).
    """
    H, N2 = w.shape
    size = max(1, min(z.shape[0], TILE_ELEMENTS // (H * N2)))
    w_col, w_conj_col = w.unsqueeze(-1), torch.conj_physical(w).unsqueeze(-1)  # (H, N2, 1)
    den_buf, q_buf = w.new_empty(H, N2, size), w.new_empty(H, N2, size)
    for start in range(0, z.shape[0], size):
        sl = slice(start, min(start + size, z.shape[0]))
        den, q = den_buf[..., : sl.stop - start], q_buf[..., : sl.stop - start]  # (H, N2, l)
        torch.sub(z[sl], w_col, out=den)
        torch.sub(z[sl], w_conj_col, out=q)
        den.mul_(q)
        yield sl, torch.reciprocal(den, out=q)


def _flat_real(x: Tensor) -> Tensor:
    """(..., l) complex -> (..., 2 l) real view, real and imaginary parts interleaved."""
    return torch.view_as_real(x).flatten(-2)


class _PairCauchy(torch.autograd.Function):
    """out[p, h, l] = z_l X[p, h, l] - Y[p, h, l],  X = sum_n a[p] q,  Y = sum_n a[P + p] q,

    with q[h, n, l] the conjugate-pair tiles of `_pair_tiles`; a (2P, H, N2) real (the X rows,
    then the Y rows), w (H, N2) complex, z (L',) complex -> out (P, H, L') complex, computed block
    by block over l; the backward pass recomputes the tiles. Gradients (torch's convention,
    grad = dLoss/dRe + i dLoss/dIm), from dq/dw = q^2 (z - conj(w)), dq/dconj(w) = q^2 (z - w),
    dq/dz = -q^2 (2 z - 2 Re w), with G the output gradient, R the gradient of the rows
    (R[p] = G[p] conj(z), R[P + p] = -G[p]) and Re<x, y> = Re sum_l conj(x_l) y_l:
        grad a[k, n] = Re<R_k, q_n>
        grad w[n]    = 2 sum_k a[k, n] (Re<R_k, z q_n^2> - w[n] Re<R_k, q_n^2>)
        grad z[l]    = sum_{h, p} G[p, l] conj(X[p, l])
                       - sum_{h, k} R[k, l] conj(sum_n a[k, n] q_n[l]^2 (2 z_l - 2 Re w_n))
    Every Re<., .> over a block is a real matmul of the interleaved real views (`_flat_real`).
    """

    @staticmethod
    def forward(ctx, a: Tensor, w: Tensor, z: Tensor) -> Tensor:
        ctx.save_for_backward(a, w, z)
        P = a.shape[0] // 2
        a_h = a.transpose(0, 1).contiguous()  # (H, 2P, N2)
        out = w.new_empty(a.shape[1], P, z.shape[0])  # (H, P, L')
        for sl, q in _pair_tiles(w, z):
            xy = torch.matmul(a_h, _flat_real(q)).unflatten(-1, (-1, 2))  # (H, 2P, l, 2)
            xy = torch.view_as_complex(xy)  # (H, 2P, l)
            out[:, :, sl] = z[sl] * xy[:, :P] - xy[:, P:]
        return out.transpose(0, 1)  # (P, H, L')

    @staticmethod
    @once_differentiable  # first derivatives only: the blocks are written in place
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        a, w, z = ctx.saved_tensors
        need_a, need_w, need_z = ctx.needs_input_grad
        K, P = a.shape[0], a.shape[0] // 2
        a_h = a.transpose(0, 1).contiguous()  # (H, 2P, N2)
        grad_h = grad.resolve_conj().transpose(0, 1)  # (H, P, L')
        dots_q = torch.zeros_like(a_h)  # (H, 2P, N2): Re<R_k, q_n>
        dots_q2 = a_h.new_zeros(a_h.shape[0], 2 * K, a_h.shape[2])  # (H, 4P, N2): q^2, z q^2
        a_zw = torch.cat([a_h, a_h * w.real.unsqueeze(1)], dim=1) if need_z else None
        grad_z = torch.empty_like(z) if need_z else None  # (L',)
        q2_buf = zq2_buf = None  # (H, N2, l) buffers of q^2, z q^2 (sized by the first block)
        for sl, q in _pair_tiles(w, z):
            g = grad_h[:, :, sl]  # (H, P, l)
            rows = torch.cat([g * z[sl].conj(), -g], dim=1)  # (H, 2P, l)
            if need_a:
                dots_q += torch.matmul(_flat_real(rows), _flat_real(q).transpose(1, 2))
            if not (need_w or need_z):
                continue
            q2_buf = torch.empty_like(q) if q2_buf is None else q2_buf
            q2 = torch.mul(q, q, out=q2_buf[..., : q.shape[-1]])  # (H, N2, l)
            if need_w:
                # Re<R conj(z), q^2> as Re<R, z q^2>: z q^2 ~ 1 / z^3 stays small at the Nyquist
                # point z ~ 1e16, where R conj(z) could overflow
                zq2_buf = torch.empty_like(q) if zq2_buf is None else zq2_buf
                zq2 = torch.mul(q2, z[sl], out=zq2_buf[..., : q.shape[-1]])  # (H, N2, l)
                rows_flat = _flat_real(rows)  # (H, 2P, 2 l)
                dots_q2[:, :K] += torch.matmul(rows_flat, _flat_real(q2).transpose(1, 2))
                dots_q2[:, K:] += torch.matmul(rows_flat, _flat_real(zq2).transpose(1, 2))
            if need_z:
                y = torch.matmul(a_zw, _flat_real(q2)).unflatten(-1, (-1, 2))  # (H, 4P, l, 2)
                y = torch.view_as_complex(y)  # (H, 4P, l): sum_n a q^2, then sum_n a Re(w) q^2
                term = 2 * z[sl] * y[:, :K] - 2 * y[:, K:]  # (H, 2P, l)
                x = torch.matmul(a_h[:, :P], _flat_real(q)).unflatten(-1, (-1, 2))
                own = (g * torch.view_as_complex(x).conj()).sum((0, 1))  # (l,)
                grad_z[sl] = own - (rows * term.conj()).sum((0, 1))
        grad_a = dots_q.transpose(0, 1) if need_a else None
        grad_w = None
        if need_w:
            s0 = (a_h * dots_q2[:, :K]).sum(1)  # (H, N2): Re sum_l Bt
            s1 = (a_h * dots_q2[:, K:]).sum(1)  # (H, N2): Re sum_l Bt z_l
            grad_w = 2 * s1 - 2 * w * s0
        return grad_a, grad_w, grad_z


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """Cauchy sum over conjugate pairs of poles.

    out[..., h, l] = sum_n  v[..., h, n] / (z[l] - w[h, n])
                         + conj(v[..., h, n]) / (z[l] - conj(w[h, n]))

    This is the S4 paper's Cauchy kernel (S4, Lemma C.3) with the conjugate half of the
    diagonal restored, so that a real system's generating function is evaluated from the half of
    its eigenvalues that S4 stores.

    Each pair is summed over one denominator: v / (z - w) + conj(v) / (z - conj(w))
    = (2 Re(v) z - 2 Re(v conj(w))) q with q = 1 / ((z - w)(z - conj(w))), so
        out = z X - Y,   X = sum_n 2 Re(v) q,   Y = sum_n 2 Re(v conj(w)) q,
    real coefficients against one Cauchy-like tile (`_PairCauchy`).

    Args:
        v: (..., H, N2) complex residues.
        z: (L',) complex evaluation points.
        w: (H, N2) complex poles.

    Returns:
        (..., H, L') complex.
    """
    z = z.to(w.dtype)
    lead, (H, N2) = v.shape[:-2], w.shape
    v = v.reshape(-1, H, N2)  # (P, H, N2)
    coef = torch.cat([2 * v.real, 2 * (v * w.conj()).real])  # (2P, H, N2): X rows, then Y rows
    return _PairCauchy.apply(coef, w, z).reshape(*lead, H, z.shape[0])  # (..., H, L')
