"""The three core sums of the SSM kernels, in plain differentiable torch.

These are the reference semantics: `models.kernels.ops` may dispatch to faster implementations,
which must match these to rounding. Every function is dtype-generic: complex64 inputs give
complex64 / float32 outputs, complex128 inputs give complex128 / float64 outputs. Leading `...`
dimensions are batch dimensions of the coefficients only; the points are shared across them.

Each function materializes one (H, N2, L') complex matrix (the Cauchy, Vandermonde or power
matrix) and contracts it with the coefficients, so memory is O(H * N2 * L') for any batch shape.
"""

import torch
from torch import Tensor


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """Cauchy sum over conjugate pairs of poles.

    out[..., h, l] = sum_n  v[..., h, n] / (z[l] - w[h, n])
                         + conj(v[..., h, n]) / (z[l] - conj(w[h, n]))

    This is the S4 paper's Cauchy kernel (S4, Lemma C.3) with the conjugate half of the
    diagonal restored, so that a real system's generating function is evaluated from the half of
    its eigenvalues that S4 stores.

    Args:
        v: (..., H, N2) complex residues.
        z: (L',) complex evaluation points.
        w: (H, N2) complex poles.

    Returns:
        (..., H, L') complex.
    """
    z = z.to(w.dtype)
    r = 1.0 / (z - w.unsqueeze(-1))  # (H, N2, L')
    r_conj = 1.0 / (z - w.conj().unsqueeze(-1))  # (H, N2, L')
    return torch.einsum("...hn,hnl->...hl", v, r) + torch.einsum(
        "...hn,hnl->...hl", v.conj(), r_conj
    )


def vandermonde_conj(c: Tensor, log_z: Tensor, L: int) -> Tensor:
    """Real Vandermonde product over conjugate pairs.

    out[..., h, l] = 2 Re( sum_n c[..., h, n] exp(log_z[h, n] * l) ),  l = 0, ..., L - 1

    With log_z = dt A (diagonal A) this is the S4D kernel K_l = 2 Re(C Abar^l Bbar) (S4D paper,
    eq. (5)), the factor 2 accounting for the conjugate half of the state that is not stored.

    Args:
        c: (..., H, N2) complex coefficients.
        log_z: (H, N2) complex logarithms of the nodes.
        L: number of powers.

    Returns:
        (..., H, L) real, of the real dtype matching `c`.
    """
    ell = torch.arange(L, device=log_z.device, dtype=log_z.real.dtype)  # (L,)
    vander = torch.exp(log_z.unsqueeze(-1) * ell)  # (H, N2, L)
    return 2.0 * torch.einsum("...hn,hnl->...hl", c, vander).real


def markov_response(h: Tensor, z: Tensor) -> Tensor:
    """Transfer function of a Hankel operator given by its Markov parameters.

    out[..., c, l] = sum_{j=1}^{M} h[..., c, j - 1] * z[c, l]^(-j)

    This is HOPE's transfer function G(z) = sum_j h_j z^{-j} (HOPE paper, eq. (3)) evaluated at
    per-channel points; for points on the unit circle z^(-j) = exp(-i j arg z), which is how the
    HOPE reference code evaluates it.

    Args:
        h: (..., C, M) complex Markov parameters h_1, ..., h_M.
        z: (C, L') complex nonzero evaluation points, one row per channel.

    Returns:
        (..., C, L') complex.
    """
    z = z.to(h.dtype)
    j = torch.arange(1, h.shape[-1] + 1, device=z.device, dtype=z.real.dtype)  # (M,)
    powers = torch.exp(-torch.log(z).unsqueeze(-1) * j)  # (C, L', M)
    return torch.einsum("...cm,clm->...cl", h, powers)
