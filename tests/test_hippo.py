"""HiPPO operators against closed forms (HTTYH, arXiv 2206.12037); DPLR and S4D inits; float64."""

import numpy as np
import pytest
import torch
from scipy.special import eval_legendre

from common import UserError
from models import hippo
from models.analysis import basis_functions


def full_dplr(d: hippo.DPLR) -> tuple[np.ndarray, ...]:
    """Restore the conjugate halves: (Vf (N, N), A_diag_plus_low_rank (N, N), Bf (N,))."""
    Vf = np.concatenate([d.V, d.V.conj()], axis=1)
    Lf = np.concatenate([d.Lambda, d.Lambda.conj()])
    pf = np.concatenate([d.P, d.P.conj()], axis=1)  # (r, N)
    return Vf, np.diag(Lf) - pf.T @ pf.conj(), np.concatenate([d.B, d.B.conj()])


@pytest.mark.parametrize("N", [16, 64])
def test_legs_basis_is_scaled_legendre(N):
    """HTTYH Thm. 1: (exp(tA)B)_n = sqrt(2n+1) P_n(2 e^-t - 1) e^-t."""
    A, B = hippo.transition("legs", N)
    t = np.linspace(0.0, 6.0, 601)[:, None]
    n = np.arange(N)
    expected = np.sqrt(2 * n + 1) * eval_legendre(n, 2 * np.exp(-t) - 1) * np.exp(-t)
    assert np.abs(basis_functions(A, B, 6.0, 601) - expected).max() < 1e-10


def fout_limit_basis(N: int, t: np.ndarray) -> np.ndarray:
    """The N -> infinity FouT basis in the state-spaces/s4 normalization, (T, N).

    A = S - B B^T with S pairs rotating at pi k. Sherman-Morrison on the resolvent gives
    (s - A)^-1 B = R B / (1 + B^T R B), R = (s - S)^-1, and
    B^T R B = 1/s + sum_k 2s/(s^2 + pi^2 k^2) -> coth(s) (Mittag-Leffler), so
    (s - A)^-1 B -> R B (1 - e^{-2s}) / 2, i.e.
    exp(tA)B -> (exp(tS)B - 1[t >= 2] exp((t-2)S)B) / 2 = (1/2)(1, 0, sqrt2 cos(pi k t),
    sqrt2 sin(pi k t), ...) on [0, 2) and 0 after (exp(tS)B has period 2).
    """
    k = np.arange(N // 2)
    out = np.empty((len(t), N))
    out[:, 0::2] = np.sqrt(2) * np.cos(np.pi * k * t[:, None]) / 2
    out[:, 0] = 0.5
    out[:, 1::2] = np.sqrt(2) * np.sin(np.pi * k * t[:, None]) / 2
    return np.where(t[:, None] < 2, out, 0.0)


def test_fout_basis_is_fourier_on_a_window_and_vanishes_after():
    """The first 8 states (constant, then cos/sin for k = 1, 2, 3) of exp(tA)B for finite N.

    The truncation error of the coth series is O(1/N) away from the jumps at t = 0 and 2 (and
    their echoes at t = 4, 6, ...): we check |error| < 0.015 at N = 128 on the interior of the
    window t in [0.25, 1.75] and after it on t in [2.25, 3.75], and that doubling N halves it.
    """
    errors = {}
    for N in (64, 128):
        A, B = hippo.transition("fout", N)
        t = np.linspace(0.0, 4.0, 161)
        err = np.abs(basis_functions(A, B, 4.0, 161) - fout_limit_basis(N, t))[:, :8]
        inside = (t >= 0.25) & (t <= 1.75)
        after = (t >= 2.25) & (t <= 3.75)
        errors[N] = (err[inside].max(), err[after].max())
    assert max(errors[128]) < 0.015
    assert errors[128][0] < 0.6 * errors[64][0]
    assert errors[128][1] < 0.6 * errors[64][1]


@pytest.mark.parametrize("measure", hippo.MEASURES)
def test_rank_correction_makes_a_normal_matrix(measure):
    A, _ = hippo.transition(measure, 32)
    P = hippo.rank_correction(measure, 32)
    normal = A + P.T @ P
    assert np.abs(normal @ normal.T - normal.T @ normal).max() < 1e-9 * np.abs(normal).max() ** 2


@pytest.mark.parametrize("measure", hippo.MEASURES)
def test_dplr_is_unitarily_equivalent_to_the_hippo_system(measure):
    N = 64
    A, B = hippo.transition(measure, N)
    d = hippo.dplr(measure, N)
    Vf, A_dplr, Bf = full_dplr(d)
    assert np.abs(Vf.conj().T @ Vf - np.eye(N)).max() < 1e-10
    assert np.abs(Vf @ A_dplr @ Vf.conj().T - A).max() < 1e-10 * np.abs(A).max()
    assert np.abs(Vf @ Bf - B).max() < 1e-10 * np.abs(B).max()
    assert np.all(d.Lambda.imag <= 1e-12)  # one member of each conjugate pair


def test_legs_dplr_eigenvalues_are_the_hippo_eigenvalues():
    """Small N, where the non-normal LegS spectrum is well conditioned: eig = -1, ..., -N."""
    _, A_dplr, _ = full_dplr(hippo.dplr("legs", 8))
    assert np.allclose(np.sort(np.linalg.eigvals(A_dplr).real), -np.arange(8, 0, -1), atol=1e-8)
    assert np.abs(np.linalg.eigvals(A_dplr).imag).max() < 1e-8


def test_dplr_diagonal_part_matches_eigenvalues_of_the_normal_part():
    A, _ = hippo.transition("legs", 64)
    P = hippo.rank_correction("legs", 64)
    eig = np.linalg.eigvals(A + P.T @ P)
    lower = eig[eig.imag < 0]
    Lambda = hippo.dplr("legs", 64).Lambda
    assert np.allclose(np.sort(Lambda.imag), np.sort(lower.imag), atol=1e-9)
    assert np.allclose(lower.real, -0.5)


def test_s4d_diagonal_rules():
    N, n = 64, np.arange(32)
    inv, ones = hippo.diagonal_init("inv", N, 3)
    assert np.allclose(inv, -0.5 - 1j * N / np.pi * (N / (2 * n + 1) - 1)) and np.all(ones == 1)
    lin, _ = hippo.diagonal_init("lin", N, 3)
    assert np.allclose(lin, -0.5 - 1j * np.pi * n)
    legs, B_legs = hippo.diagonal_init("legs", N, 3)
    assert np.allclose(legs[1], hippo.dplr("legs", N).Lambda) and legs.shape == (3, 32)
    assert np.allclose(B_legs[2], hippo.dplr("legs", N).B)


def test_random_inits_are_stable_and_seeded():
    torch.manual_seed(0)
    A, B, p = hippo.random_nplr(16)
    assert np.linalg.eigvals(A).real.max() <= -0.5 + 1e-9
    Vf, A_dplr, _ = full_dplr(hippo.diagonalize_nplr(A, B, p))
    assert np.abs(Vf @ A_dplr @ Vf.conj().T - A).max() < 1e-10 * np.abs(A).max()
    torch.manual_seed(0)
    assert np.array_equal(hippo.random_nplr(16)[0], A)
    Lambda, B = hippo.diagonal_init("random", 16, 4)
    assert Lambda.shape == B.shape == (4, 8)
    assert np.all(Lambda.real < 0) and np.all(Lambda.real >= -1) and np.all(Lambda.imag < 0)
    assert len(np.unique(Lambda)) == Lambda.size  # independent per channel and state


def test_markov_parameters_are_impulse_response_of_the_bilinear_system():
    A, B = hippo.transition("legs", 8)
    dt = 0.1
    eye = np.eye(8)
    Ab = np.linalg.inv(eye - dt / 2 * A) @ (eye + dt / 2 * A)
    Bb = np.linalg.inv(eye - dt / 2 * A) @ (dt * B)
    C = np.random.default_rng(0).standard_normal((2, 8))
    h = hippo.markov_parameters("legs", 8, 5, dt, C)
    expected = np.stack([C @ np.linalg.matrix_power(Ab, j) @ Bb for j in range(5)], axis=-1)
    assert np.allclose(h, expected, rtol=1e-12, atol=1e-14)


def test_unknown_measure_and_odd_size_are_user_errors():
    with pytest.raises(UserError, match="unknown HiPPO measure 'legx'"):
        hippo.transition("legx", 8)
    with pytest.raises(UserError, match="d_state must be even"):
        hippo.dplr("legs", 7)


def reference_clipped_legs_B(N: int, bound: float) -> tuple[np.ndarray, int]:
    """The reference's rule (state-spaces/s4 hippo.nplr with B_clip), computed here from the
    closed-form LegS matrices with torch's Hermitian eigensolver as the reference does: the
    modes of negative frequency of A + P^T P, B = V^* B_legs, Im(B) clamped to [-bound, bound].
    Returns (clipped B (N/2,), number of modes whose Im(B) exceeded the bound)."""
    n = np.arange(N)
    A = -np.tril(np.sqrt(2 * n[:, None] + 1) * np.sqrt(2 * n[None, :] + 1), -1) - np.diag(n + 1)
    B = np.sqrt(2 * n + 1.0)
    p = np.sqrt(n + 0.5)
    normal = torch.as_tensor(A + np.outer(p, p), dtype=torch.float64)
    _, V = torch.linalg.eigh(normal * -1j)  # eigenvalues ascending, as the reference sorts
    V = V[:, : N // 2].numpy()
    Bh = V.conj().T @ B
    clipped = int((np.abs(Bh.imag) > bound).sum())
    return Bh.real + 1j * np.clip(Bh.imag, -bound, bound), clipped


@pytest.mark.parametrize(("N", "expected_clipped"), [(64, 11), (256, 44)])
def test_legs_b_clip_applies_the_reference_rule(N, expected_clipped):
    """b_clip 2.0 (the reference default): Im(B) bounded by 2, Re(B) untouched, the same modes
    clipped as the separate computation above (11 of 32 at N = 64, 44 of 128 at N = 256), the
    same clipped B; S4-LegS and S4D-LegS layers get it by default."""
    expected, n_clipped = reference_clipped_legs_B(N, 2.0)
    assert n_clipped == expected_clipped
    exact = hippo.dplr("legs", N, b_clip=None).B
    clipped = hippo.dplr("legs", N, b_clip=2.0).B
    assert np.abs(clipped.imag).max() <= 2.0
    assert np.array_equal(clipped.real, exact.real)
    assert int((clipped != exact).sum()) == expected_clipped
    assert np.allclose(clipped, expected, rtol=0, atol=1e-9)
    assert np.sum(np.abs(clipped) ** 2) == pytest.approx(np.sum(np.abs(expected) ** 2), rel=1e-12)
    _, B_diag = hippo.diagonal_init("legs", N, 1, b_clip=2.0)
    assert np.array_equal(B_diag[0], clipped)
    if N == 64:
        from models import build_layer

        for name in ("s4_legs", "s4d_legs"):
            B_layer = build_layer(name, d_model=2, d_state=N).ssm.B_c().detach().numpy()
            assert np.allclose(B_layer, clipped[None].astype(np.complex64), atol=1e-6), name


@pytest.mark.parametrize("N", [64, 256])
def test_no_b_clip_reconstructs_the_hippo_b(N):
    """b_clip null: V [B, conj B] is the HiPPO-LegS B to 1e-12, for the DPLR init and the layer."""
    _, B_legs = hippo.transition("legs", N)
    d = hippo.dplr("legs", N, b_clip=None)
    Vf = np.concatenate([d.V, d.V.conj()], axis=1)
    assert np.abs(Vf @ np.concatenate([d.B, d.B.conj()]) - B_legs).max() < 1e-12
    clipped = hippo.dplr("legs", N, b_clip=2.0)
    assert np.abs(Vf @ np.concatenate([clipped.B, clipped.B.conj()]) - B_legs).max() > 1.0
