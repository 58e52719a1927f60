"""The three core sums of the SSM kernels, in plain differentiable torch (the CPU path).

These are the reference semantics: `models.kernels.ops` may dispatch to faster implementations,
which must match these to rounding. Every function is dtype-generic: complex64 inputs give
complex64 / float32 outputs, complex128 inputs give complex128 / float64 outputs. Leading `...`
dimensions are batch dimensions of the coefficients only; the points are shared across them.

None of them materializes a full (H, N2, L') matrix of complex exponentials or Cauchy terms:
  - the Vandermonde and Markov sums split each exponent into a block and an offset,
    z^(b T + t) = z^(b T) z^t, so only O(sqrt) powers per row are exponentials and the rest is
    a batched matmul;
  - the Cauchy sum merges each conjugate pair into one real-coefficient term and runs over the
    points in cache-sized blocks, forward and backward (`_PairCauchy`), recomputing its tiles in
    the backward pass instead of storing them and writing them into reused buffers.
Complex exponentials are formed from real exp, cos and sin (`_cexp`), which torch vectorizes on
CPU, unlike complex exp and log.
"""

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

# points per block of the Cauchy sum: a block holds (H, N2, block) complex tiles, kept near
# this many elements (1 MiB in complex64) so that they stay in cache
CAUCHY_TILE_ELEMENTS = 1 << 17


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


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """Transfer function of a Hankel operator given by its Markov parameters.

    out[..., c, l] = sum_{j=1}^{M} h[..., c, j - 1] * z[c, l]^(-j)

    This is HOPE's transfer function G(z) = sum_j h_j z^{-j} (HOPE paper, eq. (3)) evaluated at
    per-channel points; z^(-j) = exp(-j log z) with log z = log|z| + i arg z, which for points on
    the unit circle is exp(-i j arg z), as the HOPE reference code evaluates it.

    Computed by blocks j - 1 = b T + t (T ~ sqrt(M), h zero-padded to n_b T):
        out[..., c, l] = sum_b z^(-b T) sum_t h[..., c, b T + t] z^(-(t + 1)),
    the inner sum a batched complex matmul.

    Args:
        h: (..., C, M) complex Markov parameters h_1, ..., h_M.
        z: (C, L') complex nonzero evaluation points, one row per channel.

    Returns:
        (..., C, L') complex.
    """
    z = z.to(h.dtype)
    M = h.shape[-1]
    T, n_b = _block_split(M)
    real = z.real.dtype
    t1 = torch.arange(1, T + 1, device=z.device, dtype=real)  # (T,)
    bT = T * torch.arange(n_b, device=z.device, dtype=real)  # (n_b,)
    log_abs, arg = torch.log(z.abs()).unsqueeze(-1), torch.angle(z).unsqueeze(-1)  # (C, L', 1)
    inner = _cexp(-log_abs * t1, -arg * t1)  # (C, L', T): z^-(t+1)
    outer = _cexp(-log_abs * bT, -arg * bT)  # (C, L', n_b): z^-(bT)
    blocks = F.pad(h, (0, n_b * T - M)).unflatten(-1, (n_b, T)).transpose(-1, -2)  # (..., C, T, n_b)
    partial = torch.matmul(inner, blocks)  # (..., C, L', n_b)
    return (partial * outer).sum(-1)  # (..., C, L')


def _pair_tiles(w: Tensor, z: Tensor) -> Iterator[tuple[slice, Tensor]]:
    """Consecutive blocks of points with their conjugate-pair Cauchy tiles.

    Yields (sl, q), q (H, N2, l) = 1 / ((z[sl] - w) (z[sl] - conj(w))) for w (H, N2), z (L',),
    each block holding about CAUCHY_TILE_ELEMENTS elements. q is a view of a buffer that the
    next block overwrites (the tiles are written in place so that no block allocates memory).
    """
    H, N2 = w.shape
    size = max(1, min(z.shape[0], CAUCHY_TILE_ELEMENTS // (H * N2)))
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
    """Y[k, h, l] = sum_n a[k, h, n] q[h, n, l], q the conjugate-pair tiles of `_pair_tiles`.

    a (K, H, N2) real, w (H, N2) complex, z (L',) complex -> Y (K, H, L') complex, computed block
    by block over l; the backward pass recomputes the tiles. Gradients (torch's convention,
    grad = dLoss/dRe + i dLoss/dIm), from dq/dw = q^2 (z - conj(w)), dq/dconj(w) = q^2 (z - w),
    dq/dz = -q^2 (2 z - 2 Re w), with G the output gradient and Re<x, y> = Re sum_l conj(x_l) y_l:
        grad a[k, n] = Re<G_k, q_n>
        grad w[n]    = 2 sum_k a[k, n] (Re<G_k conj(z), q_n^2> - w[n] Re<G_k, q_n^2>)
        grad z[l]    = -sum_{h, k} G[k, l] conj(sum_n a[k, n] q_n[l]^2 (2 z_l - 2 Re w_n))
    Every Re<., .> over a block is a real matmul of the interleaved real views.
    """

    @staticmethod
    def forward(ctx, a: Tensor, w: Tensor, z: Tensor) -> Tensor:
        ctx.save_for_backward(a, w, z)
        a_h = a.transpose(0, 1).contiguous()  # (H, K, N2)
        out = a.new_empty(a.shape[1], a.shape[0], z.shape[0], 2)  # (H, K, L', 2)
        for sl, q in _pair_tiles(w, z):
            out[:, :, sl] = torch.matmul(a_h, _flat_real(q)).unflatten(-1, (-1, 2))
        return torch.view_as_complex(out).transpose(0, 1)  # (K, H, L')

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        a, w, z = ctx.saved_tensors
        need_a, need_w, need_z = ctx.needs_input_grad
        K = a.shape[0]
        a_h = a.transpose(0, 1).contiguous()  # (H, K, N2)
        grad_h = grad.resolve_conj().transpose(0, 1)  # (H, K, L')
        dots_q = torch.zeros_like(a_h)  # (H, K, N2): Re<G_k, q_n>
        dots_q2 = a_h.new_zeros(a_h.shape[0], 2 * K, a_h.shape[2])  # (H, 2K, N2): with q^2
        a_zw = torch.cat([a_h, a_h * w.real.unsqueeze(1)], dim=1) if need_z else None
        grad_z = torch.empty_like(z) if need_z else None  # (L',)
        for sl, q in _pair_tiles(w, z):
            g = grad_h[:, :, sl]  # (H, K, l)
            if need_a:
                dots_q += torch.matmul(_flat_real(g.contiguous()), _flat_real(q).transpose(1, 2))
            if not (need_w or need_z):
                continue
            q2 = q * q  # (H, N2, l)
            if need_w:
                g2 = torch.cat([g, g * z[sl].conj()], dim=1)  # (H, 2K, l)
                dots_q2 += torch.matmul(_flat_real(g2), _flat_real(q2).transpose(1, 2))
            if need_z:
                y = torch.matmul(a_zw, _flat_real(q2)).unflatten(-1, (-1, 2))  # (H, 2K, l, 2)
                y = torch.view_as_complex(y)  # (H, 2K, l): sum_n a q^2, sum_n a Re(w) q^2
                term = 2 * z[sl] * y[:, :K] - 2 * y[:, K:]  # (H, K, l)
                grad_z[sl] = -(g * term.conj()).sum((0, 1))
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
    xy = _PairCauchy.apply(coef, w, z)  # (2P, H, L')
    P = v.shape[0]
    return (z * xy[:P] - xy[P:]).reshape(*lead, H, z.shape[0])  # (..., H, L')
