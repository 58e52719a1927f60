"""Kernels against brute force in float64: the core sums, S4 / S4D kernels, HOPE responses."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from models import build_layer
from models.kernels import reference
from models.registry import MODELS

S4_NAMES = ["s4_legs", "s4_fout", "s4_random"]
S4D_NAMES = ["s4d_legs", "s4d_inv", "s4d_lin", "s4d_random"]


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def crandn(*shape, generator):
    return torch.randn(*shape, dtype=torch.complex128, generator=generator)


def test_cauchy_vandermonde_markov_equal_their_defining_loops():
    g = torch.Generator().manual_seed(0)
    v, w, z = crandn(2, 3, 4, generator=g), crandn(3, 4, generator=g), crandn(5, generator=g)
    out = reference.cauchy_conj(v, z, w)
    loop = torch.zeros(2, 3, 5, dtype=torch.complex128)
    for b, h, n, ell in np.ndindex(2, 3, 4, 5):
        loop[b, h, ell] += v[b, h, n] / (z[ell] - w[h, n])
        loop[b, h, ell] += v[b, h, n].conj() / (z[ell] - w[h, n].conj())
    assert torch.allclose(out, loop, rtol=1e-12)

    log_z = crandn(3, 4, generator=g) * 0.3
    out = reference.vandermonde_conj(v, log_z, 6)
    loop = torch.zeros(2, 3, 6, dtype=torch.float64)
    for b, h, n, ell in np.ndindex(2, 3, 4, 6):
        loop[b, h, ell] += 2 * (v[b, h, n] * torch.exp(log_z[h, n]) ** ell).real
    assert out.dtype == torch.float64 and torch.allclose(out, loop, rtol=1e-12)

    points = torch.exp(1j * torch.rand(3, 5, dtype=torch.float64, generator=g) * 6)
    out = reference.markov_response(v, points)
    loop = torch.zeros(2, 3, 5, dtype=torch.complex128)
    for b, c, ell, j in np.ndindex(2, 3, 5, 4):
        loop[b, c, ell] += v[b, c, j] * points[c, ell] ** (-(j + 1))
    assert torch.allclose(out, loop, rtol=1e-12)


def test_core_sums_are_differentiable_and_single_precision_in_single_precision():
    g = torch.Generator().manual_seed(1)
    v = crandn(2, 3, generator=g).requires_grad_()
    w = (crandn(2, 3, generator=g) - 2).requires_grad_()
    z = torch.exp(1j * torch.linspace(0, 3, 4, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda v, w: reference.cauchy_conj(v, z, w), (v, w))
    assert torch.autograd.gradcheck(lambda v, w: reference.vandermonde_conj(v, w * 0.1, 5), (v, w))
    assert torch.autograd.gradcheck(lambda v: reference.markov_response(v, z.expand(2, 4)), (v,))
    v32, w32 = v.detach().to(torch.complex64), w.detach().to(torch.complex64)
    assert reference.cauchy_conj(v32, z, w32).dtype == torch.complex64
    assert reference.vandermonde_conj(v32, w32, 5).dtype == torch.float32
    assert reference.markov_response(v32, z.expand(2, 4)).dtype == torch.complex64


def brute_force_kernel(m, L: int) -> np.ndarray:
    """K[c, h, l] = Re(C Abar^l Bbar) from dense matrices: scipy expm (ZOH) or the bilinear map."""
    A, B, C, dts = (x.detach().numpy() for x in (m.A, m.B, m.C, m.dt))
    Cn, H, N = B.shape
    Ab = np.empty((Cn, H, N, N), dtype=np.complex128)
    x = np.empty((Cn, H, N), dtype=np.complex128)  # Abar^l Bbar, starting at l = 0
    for c, h in np.ndindex(Cn, H):
        dt, eye = dts[h], np.eye(N)
        if m.disc == "zoh":
            Ab[c, h] = scipy.linalg.expm(dt * A[c, h])
            x[c, h] = np.linalg.solve(A[c, h], (Ab[c, h] - eye) @ B[c, h])
        else:
            inv = np.linalg.inv(eye - dt / 2 * A[c, h])
            Ab[c, h], x[c, h] = inv @ (eye + dt / 2 * A[c, h]), inv @ (dt * B[c, h])
    K = np.empty((Cn, H, L))
    for ell in range(L):
        K[..., ell] = np.einsum("chn,chn->ch", C, x).real
        x = np.einsum("chmn,chn->chm", Ab, x)
    return K


def assert_kernel_matches(name: str, overrides: dict, lengths) -> None:
    torch.manual_seed(0)
    layer = build_layer(name, d_model=2, **overrides)
    for L in lengths:
        with torch.no_grad():
            K = layer.kernel(L).numpy()
            expected = brute_force_kernel(layer.ssm_matrices(L), L)
        assert K.shape == expected.shape == (2 if overrides.get("bidirectional") else 1, 2, L)
        assert np.abs(K - expected).max() <= 1e-8 * np.abs(expected).max(), (name, L)


@pytest.mark.parametrize("name", S4_NAMES + S4D_NAMES)
def test_kernel_equals_brute_force_powers_of_the_dense_system(float64, name):
    assert_kernel_matches(name, {}, (1, 7, 64, 1000))


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("s4d_inv", {"disc": "bilinear"}),
        ("s4_legs", {"bidirectional": True}),
        ("s4d_lin", {"bidirectional": True}),
    ],
)
def test_kernel_options_equal_brute_force(float64, name, overrides):
    assert_kernel_matches(name, overrides, (7, 64))


def full_dplr_basis(measure, N):
    """Vf (N, N) unitary with A_hippo = Vf A_dplr Vf^*, from the public hippo module."""
    from models import hippo

    d = hippo.dplr(measure, N)
    return np.concatenate([d.V, d.V.conj()], axis=1)


@pytest.mark.parametrize(
    ("name", "measure", "shift"), [("s4_legs", "legs", 0.0), ("s4_fout", "fout", 1e-4)]
)
def test_s4_state_matrix_at_init_is_the_hippo_matrix(float64, name, measure, shift):
    """A_layer = Vf^* (A_hippo - shift I) Vf: same eigenvalues (FouT's zero real part is floored
    at -1e-4 as in the reference), checked as a unitary similarity, which is well conditioned."""
    from models import hippo

    layer = build_layer(name, d_model=2, d_state=32)
    A = layer.ssm_matrices(8).A.detach().numpy()  # (1, 2, 32, 32)
    Vf = full_dplr_basis(measure, 32)
    A_hippo, _ = hippo.transition(measure, 32)
    for h in range(2):
        back = Vf @ A[0, h] @ Vf.conj().T
        assert np.abs(back - (A_hippo - shift * np.eye(32))).max() < 1e-10 * np.abs(A_hippo).max()


def test_s4_random_state_matrix_is_the_random_nplr_draw(float64):
    from models import hippo

    torch.manual_seed(3)
    layer = build_layer("s4_random", d_model=2, d_state=16)
    torch.manual_seed(3)
    A_random, _, _ = hippo.random_nplr(16)
    eig = np.linalg.eigvals(layer.ssm_matrices(4).A[0, 1].detach().numpy())
    expected = np.linalg.eigvals(A_random)
    assert np.allclose(np.sort(eig.imag), np.sort(expected.imag), atol=1e-9)
    assert np.allclose(np.sort(eig.real), np.sort(expected.real), atol=1e-9)


def test_s4d_state_matrices_at_init_follow_the_diagonal_rules(float64):
    N, n = 64, np.arange(32)
    rules = {
        "s4d_inv": -0.5 - 1j * (N / np.pi) * (N / (2 * n + 1) - 1),
        "s4d_lin": -0.5 - 1j * np.pi * n,
    }
    for name, expected in rules.items():
        A = build_layer(name, d_model=3).ssm_matrices(4).A.detach().numpy()
        assert np.allclose(np.diagonal(A[0, 2]), expected, rtol=1e-12)
    from models import hippo

    A_legs, _ = hippo.transition("legs", N)
    P_legs = hippo.rank_correction("legs", N)
    eig = np.linalg.eigvals(A_legs + P_legs.T @ P_legs)
    A = build_layer("s4d_legs", d_model=3).ssm_matrices(4).A.detach().numpy()
    assert np.allclose(
        np.sort(np.diagonal(A[0, 1]).imag), np.sort(eig.imag[eig.imag < 0]), atol=1e-9
    )
    lam = np.diagonal(
        build_layer("s4d_random", d_model=3).ssm_matrices(4).A.detach().numpy()[0], 0, -2, -1
    )
    assert np.all((lam.real < 0) & (lam.real >= -1)) and np.all(lam.imag < 0)


def hope_response(h: np.ndarray, dt: np.ndarray, n: int) -> np.ndarray:
    """G(s_k) = sum_j h_j s_k^-j at the Moebius images of the n-th roots of unity, (H, n)."""
    w = np.exp(2j * np.pi * np.arange(n) / n)
    s = ((1 + dt[:, None]) * w + dt[:, None] - 1) / ((dt[:, None] - 1) * w + dt[:, None] + 1)
    j = np.arange(1, h.shape[-1] + 1)
    return np.einsum("hj,hkj->hk", h, s[..., None] ** (-j))


def hope_params(layer):
    h = torch.view_as_complex(layer.ssm.markov).detach().numpy()  # (S, H, M)
    return h, torch.exp(layer.ssm.log_dt).detach().numpy()  # (S, H)


@pytest.mark.parametrize("name", ["hope", "hope_legs"])
@pytest.mark.parametrize("L", [10, 11])
def test_hope_frequency_response_is_the_markov_sum_at_the_moebius_points(float64, name, L):
    for mode, two_sided in [("circular", False), ("linear", False), ("circular", True)]:
        layer = build_layer(
            name, d_model=3, d_state=8, mode=mode, bidirectional=two_sided, dt_min=0.01, dt_max=1
        )
        h, dt = hope_params(layer)
        G = layer.frequency_response(L).detach().numpy()
        if two_sided:
            first = hope_response(h[0], dt[0], math.ceil(L / 2))
            second = hope_response(h[1], dt[1], L // 2)
            expected = np.concatenate([first, second[:, ::-1]], axis=-1)
        else:
            expected = hope_response(h[0], dt[0], L if mode == "circular" else 2 * L)
        assert G.shape == (1, *expected.shape)
        assert np.allclose(G[0], expected, rtol=1e-12, atol=1e-14), (mode, two_sided)


def layer_output_from_conv(layer, x: torch.Tensor, y_conv: np.ndarray) -> torch.Tensor:
    """Apply the layer's skip, activation and output projection to a convolution (B, L, H)."""
    y = torch.as_tensor(y_conv) + x * layer.D
    return layer.output_linear(layer.activation(y))


@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("L", [10, 11])
def test_hope_layer_is_a_circular_convolution_with_the_inverse_fft_of_the_response(
    float64, two_sided, L
):
    layer = build_layer("hope", d_model=3, d_state=8, bidirectional=two_sided).eval()
    h, dt = hope_params(layer)
    if not two_sided:
        G = hope_response(h[0], dt[0], L)
    else:
        G = np.concatenate(
            [hope_response(h[0], dt[0], (L + 1) // 2), hope_response(h[1], dt[1], L // 2)[:, ::-1]],
            axis=-1,
        )
    k = np.fft.ifft(G).real  # (H, L)
    t = np.arange(L)
    circulant = k[:, (t[:, None] - t[None, :]) % L]  # (H, L, L): [h, t, s] = k[h, (t - s) mod L]
    x = torch.randn(2, L, 3)
    y_conv = np.einsum("hts,bsh->bth", circulant, x.numpy())
    with torch.no_grad():
        assert torch.allclose(layer(x), layer_output_from_conv(layer, x, y_conv), atol=1e-12)


def test_hope_linear_mode_is_a_causal_convolution(float64):
    L = 9
    layer = build_layer("hope_legs", d_model=3, d_state=8, mode="linear").eval()
    h, dt = hope_params(layer)
    k = np.fft.ifft(hope_response(h[0], dt[0], 2 * L)).real[:, :L]  # (H, L)
    t = np.arange(L)
    lag = t[:, None] - t[None, :]
    toeplitz = np.where(lag >= 0, k[:, np.clip(lag, 0, None)], 0.0)  # (H, L, L)
    x = torch.randn(2, L, 3)
    y_conv = np.einsum("hts,bsh->bth", toeplitz, x.numpy())
    with torch.no_grad():
        assert torch.allclose(layer(x), layer_output_from_conv(layer, x, y_conv), atol=1e-12)
        # strict causality: changing the future leaves the past unchanged
        x2 = x.clone()
        x2[:, 5:] += 1.0
        assert torch.allclose(layer(x2)[:, :5], layer(x)[:, :5], atol=1e-12)


def test_every_registered_name_builds_a_kernel_of_the_documented_shape():
    for name in MODELS.names():
        layer = build_layer(name, d_model=4, d_state=8)
        assert layer.kernel(12).shape == (1, 4, 12)
        assert torch.is_complex(layer.frequency_response(12))
