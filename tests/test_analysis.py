"""Diagnostics: basis functions and Hankel singular values against closed forms, float64."""

import numpy as np
import scipy.linalg
import torch

from models import build_layer
from models.analysis import basis_functions, hankel_matrix, hankel_singular_values


def test_basis_functions_of_a_damped_rotation():
    """A = [[-a, -w], [w, -a]], B = e_0: exp(tA)B = e^{-at} (cos wt, sin wt)."""
    a, w = 0.3, 2.0
    A = np.array([[-a, -w], [w, -a]])
    t = np.linspace(0, 5, 101)
    expected = np.exp(-a * t)[:, None] * np.stack([np.cos(w * t), np.sin(w * t)], axis=1)
    assert np.allclose(basis_functions(A, np.array([1.0, 0.0]), 5.0, 101), expected, atol=1e-12)
    diag = basis_functions(np.diag([-1 + 2j]), np.array([1.0 + 0j]), 1.0, 11)
    assert np.allclose(diag[:, 0], np.exp((-1 + 2j) * np.linspace(0, 1, 11)), atol=1e-13)


def test_hankel_matrix_layout():
    k = torch.arange(7.0).expand(2, 7)
    H = hankel_matrix(k)
    assert H.shape == (2, 4, 4)
    for i, j in np.ndindex(4, 4):
        assert H[1, i, j] == k[1, i + j]


def test_hankel_singular_values_of_a_geometric_kernel():
    """K_l = a^l: the Hankel matrix is v v^T with v_i = a^i, one singular value |v|^2."""
    a, L = 0.9, 41
    hsv = hankel_singular_values(torch.tensor(a ** np.arange(L), dtype=torch.float64))
    n = (L + 1) // 2
    assert np.isclose(hsv[0].item(), np.sum(a ** (2 * np.arange(n))), rtol=1e-12)
    assert hsv[1:].abs().max() < 1e-12 * hsv[0]


def test_hankel_singular_values_of_a_layer_kernel_are_the_gramian_values():
    """For a decayed kernel of an S4D system the HSVs equal sqrt(eig(W_c W_o)) of the discrete
    system with its conjugate half restored (W_c, W_o from discrete Lyapunov equations)."""
    torch.set_default_dtype(torch.float64)
    try:
        layer = build_layer("s4d_inv", d_model=2, d_state=8, dt_min=0.5, dt_max=1.0)
        with torch.no_grad():
            hsv = hankel_singular_values(layer.kernel(300))[0, 1].numpy()  # channel h = 1
            m = layer.ssm_matrices(300)
        A, B, C = (x[0, 1].detach().numpy() for x in (m.A, m.B, m.C))
        lam, C = np.diagonal(A), C / 2  # ssm_matrices folds the conjugate-pair factor 2 into C
        dt = m.dt[1].item()
        Ab = np.exp(dt * lam)
        Bb = (Ab - 1) / lam * B
        Af = np.diag(np.concatenate([Ab, Ab.conj()]))
        Bf = np.concatenate([Bb, Bb.conj()])[:, None]
        Cf = np.concatenate([C, C.conj()])[None, :]
        Wc = scipy.linalg.solve_discrete_lyapunov(Af, Bf @ Bf.conj().T)
        Wo = scipy.linalg.solve_discrete_lyapunov(Af.conj().T, Cf.conj().T @ Cf)
        expected = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert np.allclose(hsv[:8], expected, rtol=1e-8)
        assert hsv[8:].max() < 1e-10 * hsv[0]
    finally:
        torch.set_default_dtype(torch.float32)
