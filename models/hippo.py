"""HiPPO operators and the initializations of S4, S4D and their random ablations, in float64 numpy.

Conventions (those of state-spaces/s4, so that published dt ranges and learning rates transfer):

- `transition(measure, N)` returns the continuous-time operator x'(t) = A x(t) + B u(t).
  LegS (HiPPO paper, eq. (2) / HTTYH Thm. 1), B_n = sqrt(2n+1):
      A_nk = -sqrt(2n+1) sqrt(2k+1) for n > k,  -(n+1) for n = k,  0 for n < k.
  LegT, halved as in state-spaces/s4 ("for timescale correctness"), B_n = sqrt(2n+1) / 2:
      A_nk = -(1/2) sqrt(2n+1) sqrt(2k+1) * (1 if n >= k else (-1)^(n-k)).
  LagT: A = I/2 - tril(ones), B = ones.
  FouT (HTTYH Sec. 4.2, in the halved normalization of state-spaces/s4): states (0, 1, 2, 3, ...)
  are (cos 0, sin 0, cos 1, sin 1, ...); the normal part couples pair k by [[0, -pi k], [pi k, 0]],
  B = (1, 0, sqrt 2, 0, sqrt 2, 0, ...), and A = normal part - B B^T.
- `rank_correction(measure, N)` returns P (r, N) with A + P^T P normal (each row one rank-1 term).
- `dplr(measure, N)` diagonalizes the normal part: A = V (diag(Lambda) - p p^*) V^*, where V is
  unitary, Lambda holds the eigenvalues in conjugate pairs. Only the half with negative imaginary
  part is kept (Lambda, p, B of length N/2), exactly as state-spaces/s4 `nplr` does: the real part
  of Lambda is the mean of the diagonal of the normal part (-1/2 for LegS, 0 for FouT), the
  imaginary part comes from a Hermitian eigensolver of the skew part, a zero-eigenvalue pair (FouT)
  is kept as one mode (n1 + i n2)/sqrt(2) built from a real basis of the null space.
  Eigenvectors are defined up to a phase; we keep the phases of LAPACK's Hermitian eigensolver
  (numpy `eigh`; the reference calls `torch.linalg.eigh` on the same matrix, and the two agree on
  the LegS B and its clipped modes at N = 64 and 256, see tests/test_hippo.py), so B = V^* B_hippo
  is the reference's B before its clip.
- The B clip (state-spaces/s4 `nplr(..., B_clip=2.0)`, also used for S4D-LegS): Im(V^* B) is
  clamped to [-b_clip, b_clip]. For LegS at N = 64 it changes 11 of the 32 kept modes (sum |B|^2
  over them 74.9 instead of the exact 2048), at N = 256 44 of 128. `b_clip=None` keeps the exact
  HiPPO B (V B reconstructs B_hippo).
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from common import UserError

MEASURES = ("legs", "legt", "lagt", "fout")


def transition(measure: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous-time HiPPO operator (A (N, N), B (N,)), float64 numpy (see the module doc)."""
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)  # (N,)
    row, col = np.meshgrid(n, n, indexing="ij")  # (N, N) each
    if measure == "legs":
        A = -np.where(row > col, np.outer(r, r), 0.0) - np.diag(n + 1)
        B = r.copy()
    elif measure == "legt":
        sign = np.where(row >= col, 1.0, (-1.0) ** (row - col))
        A = -0.5 * np.outer(r, r) * sign
        B = 0.5 * r
    elif measure == "lagt":
        A = np.eye(N) / 2 - np.tril(np.ones((N, N)))
        B = np.ones(N)
    elif measure == "fout":
        B = _fout_b(N)
        A = _fout_skew(N) - np.outer(B, B)
    else:
        raise UserError(
            f"unknown HiPPO measure {measure!r}; valid measures are: {', '.join(MEASURES)}"
        )
    return A, B


def _fout_b(N: int) -> np.ndarray:
    """FouT input vector (1, 0, sqrt 2, 0, sqrt 2, 0, ...), (N,)."""
    B = np.zeros(N)
    B[0::2] = np.sqrt(2.0)
    B[0] = 1.0
    return B


def _fout_skew(N: int) -> np.ndarray:
    """FouT normal part: pair (2k, 2k+1) rotates at angular frequency pi k, (N, N)."""
    S = np.zeros((N, N))
    k = np.arange(1, N // 2)
    S[2 * k + 1, 2 * k] = np.pi * k
    S[2 * k, 2 * k + 1] = -np.pi * k
    return S


def rank_correction(measure: str, N: int) -> np.ndarray:
    """P (r, N) such that A + sum_i P_i P_i^T is normal (state-spaces/s4 `rank_correction`)."""
    n = np.arange(N, dtype=np.float64)
    if measure == "legs":
        return np.sqrt(n + 0.5)[None, :]
    if measure == "legt":
        r = np.sqrt(2 * n + 1) / np.sqrt(2.0)
        return np.stack([np.where(n % 2 == 0, 0.0, r), np.where(n % 2 == 1, 0.0, r)])
    if measure == "lagt":
        return np.sqrt(0.5) * np.ones((1, N))
    if measure == "fout":
        return _fout_b(N)[None, :]
    raise UserError(f"unknown HiPPO measure {measure!r}; valid measures are: {', '.join(MEASURES)}")


@dataclass(frozen=True)
class DPLR:
    """Half of a conjugate-symmetric diagonal-plus-low-rank system, complex128 numpy.

    Lambda (N2,), P (r, N2), B (N2,), V (N, N2) with N2 = N/2. With the conjugate halves restored,
    Vf = [V, conj V], Lf = [Lambda, conj Lambda], pf = [P, conj P], Bf = [B, conj B]:
        A_real = Vf (diag(Lf) - pf^T conj(pf)) Vf^*,   B_real = Vf Bf   (up to the B clip).
    """

    Lambda: np.ndarray
    P: np.ndarray
    B: np.ndarray
    V: np.ndarray


def clip_imag(B: np.ndarray, bound: float | None) -> np.ndarray:
    """B with Im(B) clamped to [-bound, bound] (state-spaces/s4 `nplr` B_clip); None: B."""
    if bound is None:
        return B
    return B.real + 1j * np.clip(B.imag, -bound, bound)


def diagonalize_nplr(
    A: np.ndarray, B: np.ndarray, P: np.ndarray, b_clip: float | None = None
) -> DPLR:
    """Diagonalize the normal part A + P^T P of a real NPLR system and keep one of each pair.

    A (N, N), B (N,), P (r, N) real with A + P^T P = lambda_re I + S, S skew-symmetric.
    b_clip: bound on Im(V^* B) (`clip_imag`), None for the exact B.
    """
    N = A.shape[0]
    if N % 2:
        raise UserError(f"d_state must be even for a conjugate-pair system, got {N}")
    normal = A + P.T @ P  # (N, N)
    re = float(np.mean(np.diag(normal)))
    skew = normal - re * np.eye(N)
    if not np.allclose(skew, -skew.T, atol=1e-8 * max(1.0, np.abs(skew).max())):
        raise ValueError("A + P^T P is not a multiple of I plus a skew-symmetric matrix")
    # S = V diag(i mu) V^*  <=>  (-i S) V = V diag(mu), -i S Hermitian
    mu, vecs = np.linalg.eigh(-1j * skew)  # (N,), (N, N)
    tol = 1e-8 * max(1.0, np.abs(mu).max())
    negative = mu < -tol
    keep_mu = list(mu[negative])
    keep_v = [vecs[:, negative]]
    null = scipy.linalg.null_space(skew, rcond=1e-8)  # (N, z) real
    if null.shape[1] == 2:
        keep_mu.append(0.0)
        keep_v.append(((null[:, 0] + 1j * null[:, 1]) / np.sqrt(2.0))[:, None])
    elif null.shape[1] != 0:
        raise ValueError(
            f"the skew part has a {null.shape[1]}-dimensional null space; 0 or 2 supported"
        )
    V = np.concatenate(keep_v, axis=1)  # (N, N2)
    if V.shape[1] != N // 2:
        raise ValueError("eigenvalues of the skew part do not come in conjugate pairs")
    Lambda = re + 1j * np.asarray(keep_mu)  # (N2,)
    Bh = clip_imag(V.conj().T @ B, b_clip)  # (N2,) V^* B
    return DPLR(Lambda=Lambda, P=P @ V.conj(), B=Bh, V=V)


def dplr(measure: str, N: int, b_clip: float | None = None) -> DPLR:
    """The S4 (DPLR) form of a HiPPO operator, as state-spaces/s4 `nplr(measure, N, B_clip)`."""
    A, B = transition(measure, N)
    return diagonalize_nplr(A, B, rank_correction(measure, N), b_clip)


def random_nplr(N: int, generator: torch.Generator | None = None) -> tuple[np.ndarray, ...]:
    """Random Gaussian NPLR system (A (N, N), B (N,), P (1, N)), stable by construction.

    A = S - I/2 - p p^T with S = (G - G^T)/sqrt(2), G_ij ~ N(0, 1), p_n ~ N(0, 1), B_n ~ N(0, 1).
    A + A^T = -I - 2 p p^T is negative definite, so every eigenvalue has real part <= -1/2.
    """
    G = torch.randn(N, N, generator=generator, dtype=torch.float64).numpy()
    p = torch.randn(1, N, generator=generator, dtype=torch.float64).numpy()
    B = torch.randn(N, generator=generator, dtype=torch.float64).numpy()
    S = (G - G.T) / np.sqrt(2.0)
    return S - np.eye(N) / 2 - p.T @ p, B, p


B_INITS = ("ones", "normal")


def diagonal_init(
    init: str,
    N: int,
    H: int,
    generator: torch.Generator | None = None,
    b_clip: float | None = None,
    b_init: str = "ones",
):
    """Diagonal state matrix and input of the S4D inits, (Lambda (H, N2), B (H, N2)) complex128.

    S4D paper (arXiv 2206.11893), Sec. 4, with n = 0, ..., N/2 - 1:
      legs:   Lambda = diagonal part of DPLR-LegS (-1/2 + i Im), B = V^* B_LegS (not halved),
              Im(B) clipped to b_clip (the reference clips at 2.0; None: exact)
      inv:    Lambda_n = -1/2 - i (N/pi) (N/(2n+1) - 1),  B_n = 1
      lin:    Lambda_n = -1/2 - i pi n,                   B_n = 1
      random: Lambda_n = -U(0, 1) - i exp(N(0, 1)) per (h, n), real part floored at 1e-4
              (state-spaces/s4 `dplr(init="rand", real_random=True)`); B_n = 1 (b_init "ones",
              the reference's B_init="constant") or B_n ~ CN(0, 1) (b_init "normal").
    Every init has Im(Lambda) <= 0 (one member of each conjugate pair), as state-spaces/s4.
    """
    n = np.arange(N // 2, dtype=np.float64)
    if init == "legs":
        d = dplr("legs", N, b_clip)
        Lambda, B = d.Lambda, d.B
    elif init == "inv":
        Lambda = -0.5 - 1j * (N / np.pi) * (N / (2 * n + 1) - 1)
        B = np.ones(N // 2, dtype=np.complex128)
    elif init == "lin":
        Lambda = -0.5 - 1j * np.pi * n
        B = np.ones(N // 2, dtype=np.complex128)
    elif init == "random":
        re = -torch.rand(H, N // 2, generator=generator, dtype=torch.float64).clamp(min=1e-4)
        im = -torch.exp(torch.randn(H, N // 2, generator=generator, dtype=torch.float64))
        if b_init not in B_INITS:
            raise UserError(f"unknown B init {b_init!r}; valid: {', '.join(B_INITS)}")
        if b_init == "normal":
            B = torch.randn(H, N // 2, generator=generator, dtype=torch.complex128).numpy()
        else:
            B = np.ones((H, N // 2), dtype=np.complex128)
        return (re + 1j * im).numpy(), B
    else:
        raise UserError(f"unknown diagonal init {init!r}; valid: legs, inv, lin, random")
    return np.broadcast_to(Lambda, (H, N // 2)).copy(), np.broadcast_to(B, (H, N // 2)).copy()


def discretize_bilinear(A: np.ndarray, B: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (Tustin) discretization of (A (N, N), B (N,)).

    Abar = (I - dt/2 A)^-1 (I + dt/2 A),  Bbar = (I - dt/2 A)^-1 dt B.
    """
    eye = np.eye(A.shape[0])
    left = eye - dt / 2 * A
    return np.linalg.solve(left, eye + dt / 2 * A), np.linalg.solve(left, dt * B)


def markov_parameters(measure: str, N: int, M: int, dt: float, C: np.ndarray) -> np.ndarray:
    """Markov parameters h_j = C Abar^(j-1) Bbar, j = 1..M, of a bilinear-discretized HiPPO system.

    C (..., N) complex -> (..., M) complex.
    """
    A, B = transition(measure, N)
    Ab, Bb = discretize_bilinear(A, B, dt)
    impulse = np.empty((N, M))  # column j - 1 = Abar^(j-1) Bbar
    x = Bb
    for j in range(M):
        impulse[:, j] = x
        x = Ab @ x
    return C @ impulse
