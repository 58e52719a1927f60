"""The three core sums of the SSM kernels, written as the papers state them: the test oracle.

Each function materializes every term of its sum, (..., H, N2, L) or (..., C, M, L), and adds them
up in one `sum`: no blocking, no hand-written backward, no reuse of powers. That costs memory
linear in every dimension at once, so it is for checking, not for training: the tests compare the
CPU path (`models.kernels.blocked`) and the fused GPU kernels (`models.kernels.fast_*`) against
these in float64. Shapes and dtypes are those of `models.kernels.ops`.
"""

import torch
from torch import Tensor


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """S4's Cauchy kernel with the conjugate half of the poles restored (S4, Lemma C.3).

    out[..., h, l] = sum_n  v[..., h, n] / (z[l] - w[h, n])
                         + conj(v[..., h, n]) / (z[l] - conj(w[h, n]))

    v (..., H, N2) complex, z (L',) complex, w (H, N2) complex -> (..., H, L') complex.
    """
    z = z.to(w.dtype)[:, None, None]  # (L', 1, 1)
    terms = v[..., None, :, :] / (z - w) + v.conj()[..., None, :, :] / (z - w.conj())
    return terms.sum(-1).movedim(-2, -1)  # (..., L', H) -> (..., H, L')


def vandermonde_conj(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """The S4D kernel K_l = 2 Re(sum_n C_n Abar_n^l Bbar_n) (S4D paper, eq. (5)).

    out[..., h, l] = 2 Re( sum_n c[..., h, n] exp(log_z[h, n] l) ),  l = 0, ..., L - 1

    c (..., H, N2) complex, log_z (H, N2) complex -> (..., H, L) real.
    """
    ell = torch.arange(L, dtype=log_z.real.dtype, device=log_z.device)  # (L,)
    powers = torch.exp(log_z[..., None] * ell)  # (H, N2, L)
    return 2 * (c[..., None] * powers).sum(-2).real  # (..., H, L)


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """HOPE's transfer function G(z) = sum_j h_j z^(-j) (HOPE paper, eq. (3)) per channel.

    out[..., c, l] = sum_{j=1}^{M} h[..., c, j - 1] z[c, l]^(-j)

    h (..., C, M) complex, z (C, L') complex nonzero -> (..., C, L') complex.
    """
    z = z.to(h.dtype)
    j = torch.arange(1, h.shape[-1] + 1, dtype=h.real.dtype, device=h.device)  # (M,)
    powers = z[:, None, :] ** (-j[:, None])  # (C, M, L')
    return (h[..., None] * powers).sum(-2)  # (..., C, L')
