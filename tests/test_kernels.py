"""Kernels against brute force in float64: the core sums, S4 / S4D kernels, HOPE responses."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from models import build_layer
from models.kernels import blocked, naive
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


def test_naive_sums_equal_their_defining_loops():
    """The oracle itself, against one Python loop term by term."""
    g = torch.Generator().manual_seed(0)
    v, w, z = crandn(2, 3, 4, generator=g), crandn(3, 4, generator=g), crandn(5, generator=g)
    out = naive.cauchy_conj(v, z, w)
    loop = torch.zeros(2, 3, 5, dtype=torch.complex128)
    for b, h, n, ell in np.ndindex(2, 3, 4, 5):
        loop[b, h, ell] += v[b, h, n] / (z[ell] - w[h, n])
        loop[b, h, ell] += v[b, h, n].conj() / (z[ell] - w[h, n].conj())
    assert torch.allclose(out, loop, rtol=1e-12)

    log_z = crandn(3, 4, generator=g) * 0.3
    out = naive.vandermonde_conj(v, log_z, 6)
    loop = torch.zeros(2, 3, 6, dtype=torch.float64)
    for b, h, n, ell in np.ndindex(2, 3, 4, 6):
        loop[b, h, ell] += 2 * (v[b, h, n] * torch.exp(log_z[h, n]) ** ell).real
    assert out.dtype == torch.float64 and torch.allclose(out, loop, rtol=1e-12)

    points = torch.exp(1j * torch.rand(3, 5, dtype=torch.float64, generator=g) * 6)
    out = naive.markov_response(v, points)
    loop = torch.zeros(2, 3, 5, dtype=torch.complex128)
    for b, c, ell, j in np.ndindex(2, 3, 5, 4):
        loop[b, c, ell] += v[b, c, j] * points[c, ell] ** (-(j + 1))
    assert torch.allclose(out, loop, rtol=1e-12)


def test_core_sums_are_differentiable_and_single_precision_in_single_precision():
    g = torch.Generator().manual_seed(1)
    v = crandn(2, 3, generator=g).requires_grad_()
    w = (crandn(2, 3, generator=g) - 2).requires_grad_()
    z = torch.exp(1j * torch.linspace(0, 3, 4, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda v, w: blocked.cauchy_conj(v, z, w), (v, w))
    assert torch.autograd.gradcheck(lambda v, w: blocked.vandermonde_conj(v, w * 0.1, 5), (v, w))
    assert torch.autograd.gradcheck(lambda v: blocked.markov_response(v, z.expand(2, 4)), (v,))
    v32, w32 = v.detach().to(torch.complex64), w.detach().to(torch.complex64)
    assert blocked.cauchy_conj(v32, z, w32).dtype == torch.complex64
    assert blocked.vandermonde_conj(v32, w32, 5).dtype == torch.float32
    assert blocked.markov_response(v32, z.expand(2, 4)).dtype == torch.complex64


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
    """Apply the layer's skip, activation and output projection to a convolution (B, H, L)."""
    y = torch.as_tensor(y_conv) + x * layer.D.unsqueeze(-1)
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
    x = torch.randn(2, 3, L)  # (B, H, L)
    y_conv = np.einsum("hts,bhs->bht", circulant, x.numpy())
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
    x = torch.randn(2, 3, L)  # (B, H, L)
    y_conv = np.einsum("hts,bhs->bht", toeplitz, x.numpy())
    with torch.no_grad():
        assert torch.allclose(layer(x), layer_output_from_conv(layer, x, y_conv), atol=1e-12)
        # strict causality: changing the future leaves the past unchanged
        x2 = x.clone()
        x2[..., 5:] += 1.0
        assert torch.allclose(layer(x2)[..., :5], layer(x)[..., :5], atol=1e-12)


def test_every_registered_name_builds_a_kernel_of_the_documented_shape():
    for name in MODELS.names():
        layer = build_layer(name, d_model=4, d_state=8)
        assert layer.kernel(12).shape == (1, 4, 12)
        assert torch.is_complex(layer.frequency_response(12))


# The CPU sums (`models.kernels.blocked`) are blocked (Vandermonde, Markov) and tiled over the
# points with hand-written backward passes (Cauchy, Markov); `models.kernels.naive` materializes
# every term, as the definitions read, and autograd differentiates it: the oracle below.
def rand64(*shape, generator, normal=False):
    draw = torch.randn if normal else torch.rand
    return draw(*shape, dtype=torch.float64, generator=generator)


def sum_inputs(name, lead, g):
    """Inputs (float64) of one core sum: S4-like poles, S4D-like nodes, near-circle points."""
    if name == "cauchy":
        w = torch.complex(
            -rand64(5, 7, generator=g) - 0.05, 3 * rand64(5, 7, generator=g, normal=True)
        )
        z = torch.complex(0.01 * rand64(43, generator=g), 4 * rand64(43, generator=g, normal=True))
        return crandn(*lead, 5, 7, generator=g), z, w
    if name == "vandermonde":
        log_z = torch.complex(
            -0.05 * rand64(5, 7, generator=g), rand64(5, 7, generator=g, normal=True)
        )
        return crandn(*lead, 5, 7, generator=g), log_z * 0.3, 301
    z = torch.polar(1 + 0.05 * rand64(5, 37, generator=g), 7 * rand64(5, 37, generator=g))
    return 0.2 * crandn(*lead, 5, 11, generator=g), z


DIRECT = {
    "cauchy": naive.cauchy_conj,
    "vandermonde": naive.vandermonde_conj,
    "markov": naive.markov_response,
}
BLOCKED = {
    "cauchy": blocked.cauchy_conj,
    "vandermonde": blocked.vandermonde_conj,
    "markov": blocked.markov_response,
}


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of a few points, so that every sum runs over several blocks and a ragged last one."""
    monkeypatch.setattr(blocked, "TILE_ELEMENTS", 200)


def assert_close(out, expected, rtol):
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert (out - expected).abs().max() <= rtol * expected.abs().max()


@pytest.mark.parametrize("name", sorted(DIRECT))
@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
def test_blocked_sums_equal_the_naive_sums_in_float64(small_tiles, name, lead):
    inputs = sum_inputs(name, lead, torch.Generator().manual_seed(len(lead)))
    assert_close(BLOCKED[name](*inputs), DIRECT[name](*inputs), 1e-12)


@pytest.mark.parametrize("L", [1, 2, 16, 17, 4097])
def test_blocked_vandermonde_covers_every_length(L):
    """L = 1, perfect squares and their neighbours: the blocks cover exactly l = 0..L-1."""
    c, log_z, _ = sum_inputs("vandermonde", (2,), torch.Generator().manual_seed(L))
    out = blocked.vandermonde_conj(c, log_z, L)
    assert out.shape == (2, 5, L)
    assert_close(out, naive.vandermonde_conj(c, log_z, L), 1e-12)


@pytest.mark.parametrize("M", [1, 2, 5, 9, 11])
def test_blocked_markov_covers_every_number_of_parameters(small_tiles, M):
    h, z = sum_inputs("markov", (2,), torch.Generator().manual_seed(M))
    assert_close(
        blocked.markov_response(h[..., :M], z), naive.markov_response(h[..., :M], z), 1e-12
    )


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_hand_written_backward_equals_autograd_of_the_naive_sum(small_tiles, name):
    """Gradients with respect to every tensor input (the points included), several tiles."""
    inputs = sum_inputs(name, (2,), torch.Generator().manual_seed(7))
    tensors = [i for i, x in enumerate(inputs) if torch.is_tensor(x)]

    def grads(fn):
        leaves = [x.clone().requires_grad_() if torch.is_tensor(x) else x for x in inputs]
        out = fn(*leaves)
        g = torch.Generator().manual_seed(0)
        cotangent = torch.randn(out.shape, dtype=out.dtype, generator=g)
        loss = (out * cotangent.conj()).real.sum()
        return torch.autograd.grad(loss, [leaves[i] for i in tensors])

    for mine, direct in zip(grads(BLOCKED[name]), grads(DIRECT[name]), strict=True):
        assert_close(mine, direct, 1e-10)


def test_tiled_sums_pass_gradcheck_across_tiles(small_tiles):
    g = torch.Generator().manual_seed(3)
    v, w, z = crandn(2, 3, 4, generator=g), crandn(3, 4, generator=g) - 2, crandn(9, generator=g)
    leaves = [x.requires_grad_() for x in (v, z, w)]
    assert torch.autograd.gradcheck(blocked.cauchy_conj, leaves)
    h = crandn(2, 3, 5, generator=g).requires_grad_()
    points = torch.polar(1 + 0.1 * rand64(3, 7, generator=g), 6 * rand64(3, 7, generator=g))
    assert torch.autograd.gradcheck(blocked.markov_response, (h, points.requires_grad_()))


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_single_precision_sums_are_accurate_against_float64(name):
    """The CPU sums are what the fused GPU kernels are tested against (to 1e-5 relative):
    in complex64 it must stay well inside that, measured against float64 on the same inputs."""
    inputs = sum_inputs(name, (2,), torch.Generator().manual_seed(11))
    single = [x.to(torch.complex64) if torch.is_tensor(x) else x for x in inputs]
    rounded = [x.to(torch.complex128) if torch.is_tensor(x) else x for x in single]
    out, exact = BLOCKED[name](*single), DIRECT[name](*rounded)
    assert out.dtype == (torch.float32 if name == "vandermonde" else torch.complex64)
    assert ((out.to(exact.dtype) - exact).norm() / exact.norm()).item() < 2e-6


def test_cauchy_gradients_stay_finite_at_huge_points():
    """The S4 grid of an even length ends at z = 2i tan(pi/2) ~ 3e16 i, where the S4 kernel's
    factor 2 / (1 + omega) = 1 + z / 2 scales the output gradient to ~1e16: in single precision
    the sum and its gradients must stay finite there."""
    g = torch.Generator().manual_seed(5)
    v = crandn(2, 3, 4, generator=g).to(torch.complex64).requires_grad_()
    w = (crandn(3, 4, generator=g) - 2).to(torch.complex64).requires_grad_()
    z = torch.tensor([0, 1j, 3.3e16j], dtype=torch.complex64)
    out = blocked.cauchy_conj(v, z, w)
    out.backward(torch.full_like(out, 1.6e16))
    assert torch.isfinite(torch.view_as_real(out)).all()
    assert torch.isfinite(torch.view_as_real(v.grad)).all()
    assert torch.isfinite(torch.view_as_real(w.grad)).all()


def test_s4_c_init_ties_the_drawn_c_at_the_first_call_and_truncates_later_kernels(float64):
    """c_init "c" (the reference): the first kernel is Re(C Abar^l Bbar) with the drawn C (brute
    force from the dense system), C tilde = C (I - Abar^T) for T = max(L, l_max), and shorter
    kernels are its first taps; a longer L doubles T and keeps the kernel. c_init "ctilde" uses
    the drawn value as C tilde, a different kernel."""
    torch.manual_seed(0)
    layer = build_layer("s4_legs", d_model=2, d_state=8, l_max=48, dt_min=0.05, dt_max=0.2)
    drawn = layer.ssm.C_c().detach().clone()  # (1, H, N2)
    m = layer.ssm_matrices(48)
    dense = type(m)(m.A, m.B, torch.cat([drawn, drawn.conj()], -1), m.dt, m.disc)
    with torch.no_grad():
        K = layer.kernel(20).numpy()
    assert int(layer.ssm.l_kernel) == 48
    expected = brute_force_kernel(dense, 100)
    assert np.abs(K - expected[..., :20]).max() <= 1e-9 * np.abs(expected).max()
    assert not torch.allclose(layer.ssm.C_c(), drawn)  # now C tilde
    with torch.no_grad():
        K_long = layer.kernel(100).numpy()  # doubles T to 192
    assert int(layer.ssm.l_kernel) == 192
    assert np.abs(K_long - expected).max() <= 1e-8 * np.abs(expected).max()
    torch.manual_seed(0)
    direct = build_layer("s4_legs", d_model=2, d_state=8, l_max=48, dt_min=0.05, dt_max=0.2,
                         c_init="ctilde")  # fmt: skip
    with torch.no_grad():
        K_direct = direct.kernel(20).numpy()
    assert torch.equal(direct.ssm.C_c(), drawn)
    assert np.abs(K_direct - K).max() > 1e-3 * np.abs(K).max()
