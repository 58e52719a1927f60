"""The SSM layer: convolution vs recurrence, two-sided convolution, precision, tags, registry."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from common import UserError
from models import MODELS, build_layer
from models.registry import layer_defaults

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
RECURRENT = ["s4_legs", "s4_fout", "s4_random", "s4d_legs", "s4d_inv", "s4d_lin", "s4d_random"]
SSM_PARAMS = {
    "s4": {"ssm.log_dt", "ssm.log_A_real", "ssm.A_imag", "ssm.B", "ssm.P"},
    "s4d": {"ssm.log_dt", "ssm.log_A_real", "ssm.A_imag", "ssm.B"},
    "hope": {"ssm.log_dt", "ssm.markov"},
}
STATE_MATRIX = {
    "s4": {"ssm.log_A_real", "ssm.A_imag", "ssm.P"},
    "s4d": {"ssm.log_A_real", "ssm.A_imag"},
    "hope": {"ssm.markov"},
}


RECURRENT_CASES = [(name, {}) for name in RECURRENT] + [
    (name, {"disc": "bilinear"}) for name in RECURRENT if name.startswith("s4d")
]


@pytest.mark.parametrize(("name", "overrides"), RECURRENT_CASES)
def test_convolution_equals_recurrence_in_float32(name, overrides):
    """Same outputs to 1e-5 (atol and rtol). S4-FouT gets 1e-4: its zero-frequency pair sits at
    Re(Lambda) = -1e-4 (the reference's floor), so the float32 Woodbury correction at the DC
    frequency cancels two resolvent terms of size ~1/(1e-4 dt) and loses ~5e-4 in that bin."""
    torch.manual_seed(0)
    layer = build_layer(name, d_model=4, **overrides).eval()
    x = torch.randn(2, 4, 40)  # (B, H, L)
    with torch.no_grad():
        y_conv = layer(x)  # (B, H, L)
        state = layer.default_state(2)
        steps = []
        for t in range(x.shape[-1]):
            y_t, state = layer.step(x[..., t], state)  # (B, H)
            steps.append(y_t)
    tol = 1e-4 if name == "s4_fout" else 1e-5
    assert torch.allclose(torch.stack(steps, dim=-1), y_conv, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", ["s4_legs", "s4d_inv", "hope"])
def test_bidirectional_layer_is_causal_plus_shifted_anticausal_convolution(name):
    """y_t = sum_{s<=t} k0[t-s] u_s + sum_{s>t} k1[s-t-1] u_s: a dense two-sided Toeplitz matrix."""
    torch.set_default_dtype(torch.float64)
    try:
        extra = {"mode": "linear"} if name == "hope" else {}
        layer = build_layer(name, d_model=3, d_state=8, bidirectional=True, **extra).eval()
        L = 12
        x = torch.randn(2, 3, L)  # (B, H, L)
        with torch.no_grad():
            k = layer.kernel(L).numpy()  # (2, H, L)
            t = np.arange(L)
            lag = t[:, None] - t[None, :]  # t - s
            causal = np.where(lag >= 0, k[0][:, np.clip(lag, 0, L - 1)], 0.0)
            anti = np.where(lag < 0, k[1][:, np.clip(-lag - 1, 0, L - 1)], 0.0)
            y = np.einsum("hts,bhs->bht", causal + anti, x.numpy())  # (B, H, L)
            expected = layer.output_linear(
                layer.activation(torch.as_tensor(y) + x * layer.D.unsqueeze(-1))
            )
            assert torch.allclose(layer(x), expected, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_recurrent_mode_is_refused_where_undefined():
    with pytest.raises(UserError, match="bidirectional"):
        build_layer("s4d_lin", d_model=2, bidirectional=True).default_state(1)
    with pytest.raises(UserError, match="HOPE"):
        build_layer("hope", d_model=2).default_state(1)
    with pytest.raises(UserError, match="HOPE"):
        build_layer("hope_legs", d_model=2).ssm_matrices(4)
    with pytest.raises(UserError, match="default_state"):
        build_layer("s4d_lin", d_model=2).step(torch.zeros(1, 2), torch.zeros(1, 2, 32))


@pytest.mark.parametrize("name", ["s4_legs", "s4d_lin", "hope"])
def test_autocast_runs_kernel_and_convolution_in_float32(name):
    torch.manual_seed(0)
    layer = build_layer(name, d_model=8).eval()
    seen = []
    layer.ssm.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    x = torch.randn(2, 8, 64)  # (B, H, L)
    with torch.no_grad():
        reference = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = layer(x.bfloat16())
    assert seen == [torch.float32, torch.float32]
    assert mixed.dtype == torch.bfloat16
    assert torch.allclose(mixed.float(), reference, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("name", MODELS.names())
def test_ssm_parameters_carry_their_optimizer_settings(name):
    layer = build_layer(name, d_model=4, d_state=8, lr=0.0123)
    kind = MODELS[name]().family
    tagged = {n for n, p in layer.named_parameters() if hasattr(p, "_optim")}
    assert tagged == SSM_PARAMS[kind]
    for n, p in layer.named_parameters():
        if n in tagged:
            assert p._optim == {"lr": 0.0123, "weight_decay": 0.0}


@pytest.mark.parametrize("name", MODELS.names())
def test_freeze_A_freezes_exactly_the_state_matrix(name):
    torch.manual_seed(0)
    layer = build_layer(name, d_model=4, d_state=8, freeze_A=True)
    frozen = {n for n, p in layer.named_parameters() if not p.requires_grad}
    assert frozen == STATE_MATRIX[MODELS[name]().family]
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    layer(torch.randn(2, 4, 16)).square().sum().backward()
    optimizer.step()
    for n, p in layer.named_parameters():
        assert torch.equal(p, before[n]) == (n in frozen), n


def test_dropout_is_active_in_training_only():
    layer = build_layer("s4d_inv", d_model=8, dropout=0.5)
    x = torch.randn(2, 8, 32)  # (B, H, L)
    with torch.no_grad():
        assert not torch.equal(layer.train()(x), layer.train()(x))
        assert torch.equal(layer.eval()(x), layer.eval()(x))


def test_model_configs_compose_to_the_registry_defaults():
    """`model=<name>` (the schema's config, `harness.run.schema.model_node`) composes to the
    registry's defaults, key for key and in the same order."""
    with initialize_config_dir(str(CONFIGS.parent), version_base="1.3"):
        for name in MODELS.names():
            composed = compose("config", overrides=[f"model={name}"]).model
            config = OmegaConf.to_container(composed)
            assert config == {"name": name, "layer": layer_defaults(name)}, name
            assert list(config["layer"]) == list(layer_defaults(name)), name


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: build_layer("s5", d_model=4), "unknown model 's5'.*s4_legs"),
        (lambda: build_layer("s4_legs", d_model=4, d_state=7), "d_state=7"),
        (lambda: build_layer("hope", d_model=4, d_state=5), "d_state=5"),
        (lambda: build_layer("s4d_inv", d_model=4, dt_min=0.5, dt_max=0.1), "dt_min=0.5.*dt_max"),
        (lambda: build_layer("s4d_inv", d_model=4, dt_min=0.0), "dt_min"),
        (lambda: build_layer("s4_legs", d_model=4, disc="zoh"), "unknown layer option 'disc'"),
        (lambda: build_layer("s4d_lin", d_model=4, disc="euler"), "disc='euler'.*zoh"),
        (lambda: build_layer("hope", d_model=4, mode="wrap"), "mode='wrap'"),
        (lambda: build_layer("s4d_lin", d_model=4, d_state="64"), "'d_state'.*int"),
        (lambda: build_layer("s4d_lin", d_model=4, freeze_A=1), "'freeze_A'.*bool"),
        (lambda: build_layer("s4d_lin", d_model=4, activation="swish"), "activation='swish'"),
        (lambda: build_layer("s4d_lin", d_model=4, dropout=1.0), "dropout"),
        (lambda: build_layer("s4d_lin", d_model=0), "d_model"),
    ],
)
def test_invalid_requests_are_user_errors_naming_the_key(call, match):
    with pytest.raises(UserError, match=match):
        call()


def test_integer_values_are_accepted_for_float_options():
    layer = build_layer("hope", d_model=2, dt_min=1, dt_max=2)
    dt = torch.exp(layer.ssm.log_dt)
    assert torch.all((dt >= 1 - 1e-6) & (dt <= 2 + 1e-6))


def test_glu_projection_is_linear_then_glu_over_channels_and_reads_the_old_keys():
    """out[:, :, l] = GLU(W y[:, :, l] + b) at every position; a state dict of the earlier
    `Sequential(Linear, GLU)` projection (keys `0.weight`, `0.bias`) loads into it."""
    torch.manual_seed(0)
    layer = build_layer("s4d_lin", d_model=6, d_state=8)
    y = torch.randn(3, 6, 10)  # (B, H, L)
    W, b = layer.output_linear.weight, layer.output_linear.bias
    z = torch.einsum("oh,bhl->bol", W, y) + b.unsqueeze(-1)  # (B, 2H, L)
    expected = z[:, :6] * torch.sigmoid(z[:, 6:])
    torch.testing.assert_close(layer.output_linear(y), expected)
    torch.testing.assert_close(layer.output_linear(y[..., 4]), expected[..., 4])  # one step
    state = {
        k.replace("output_linear.", "output_linear.0."): v for k, v in layer.state_dict().items()
    }
    fresh = build_layer("s4d_lin", d_model=6, d_state=8)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.output_linear(y), expected)


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_tied_dropout_masks_are_constant_over_steps_and_drop_the_stated_fraction(p):
    """tie_dropout: the dropout after the activation multiplies x (B, H, L) by m / (1 - p), m in
    {0, 1} one value per (batch, channel) for every step, m = 0 for about a fraction p of them;
    the identity in eval mode. Untied, the mask varies along the steps."""
    torch.manual_seed(0)
    B, H, L = 200, 50, 30
    x = torch.ones(B, H, L)
    layer = build_layer("s4d_lin", d_model=H, dropout=p, tie_dropout=True)
    y = layer.dropout.train()(x)  # (B, H, L)
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    assert (y == y[..., :1]).all()  # constant over L for each (batch, channel)
    dropped = (y[..., 0] == 0).double().mean().item()  # over B * H = 10000 masks
    assert abs(dropped - p) < 4 * (p * (1 - p) / (B * H)) ** 0.5
    assert torch.equal(layer.dropout.eval()(x), x)
    untied = build_layer("s4d_lin", d_model=H, dropout=p).dropout.train()(x)
    assert not (untied == untied[..., :1]).all()


def test_dropout_sites_follow_the_references():
    """S4 and S4D layers also drop the convolution output before the activation, elementwise
    (state-spaces/s4 FFTConv.drop), HOPE layers do not (HOPE_SSM.py); conv_dropout switches it."""
    x = torch.ones(4, 6, 40)
    s4d = build_layer("s4d_lin", d_model=6, dropout=0.5)
    assert isinstance(s4d.conv_dropout, torch.nn.Dropout) and s4d.conv_dropout.p == 0.5
    y = s4d.conv_dropout.train()(x)
    assert not (y == y[..., :1]).all() and set(y.unique().tolist()) == {0.0, 2.0}
    assert isinstance(build_layer("hope", d_model=6, dropout=0.5).conv_dropout, torch.nn.Identity)
    off = build_layer("s4_legs", d_model=6, dropout=0.5, conv_dropout=False)
    assert isinstance(off.conv_dropout, torch.nn.Identity)


def test_n_ssm_shares_the_state_matrix_and_b_across_channels():
    """n_ssm = S: S trained copies of (Lambda, P, B), channel h using copy h mod S (the
    reference's repeat); dt and C stay per channel; S must divide d_model."""
    torch.manual_seed(0)
    layer = build_layer("s4_legs", d_model=6, d_state=8, n_ssm=2)
    ssm = layer.ssm
    assert (
        ssm.log_A_real.shape == (2, 4) and ssm.B.shape == (2, 4, 2) and ssm.P.shape == (1, 2, 4, 2)
    )
    assert ssm.log_dt.shape == (6,) and ssm.C.shape == (1, 6, 4, 2)
    with torch.no_grad():
        ssm.A_imag[1] += 1.0
    Lambda = ssm.Lambda().detach()
    for h in range(6):
        assert torch.equal(Lambda[h], Lambda[h % 2])
    assert not torch.equal(Lambda[0], Lambda[1])
    layer.kernel(16).sum().backward()
    assert ssm.A_imag.grad.shape == (2, 4)
    with pytest.raises(UserError, match="n_ssm=4 must divide d_model=6"):
        build_layer("s4_legs", d_model=6, n_ssm=4)


@pytest.mark.parametrize("name", ["s4_legs", "s4d_inv", "hope"])
def test_dt_softplus_draws_the_same_range_and_trains_the_inverse(name):
    """dt_transform softplus: dt = softplus(param) log-uniform in [dt_min, dt_max] at init."""
    torch.manual_seed(0)
    layer = build_layer(name, d_model=200, dt_min=0.01, dt_max=0.5, dt_transform="softplus")
    raw = layer.ssm.log_dt.detach().double()
    dt = torch.log1p(torch.exp(raw))  # softplus, written out
    assert dt.min() >= 0.01 * (1 - 1e-5) and dt.max() <= 0.5 * (1 + 1e-5)
    assert abs(torch.log(dt).mean().item() - (np.log(0.01) + np.log(0.5)) / 2) < 0.15
    assert not torch.allclose(torch.exp(raw), dt)


def test_dt_and_C_learning_rates_follow_the_reference_options():
    """lr_dt base: dt at the optimizer's lr (tag without lr) with weight decay 0; lr_C layer:
    C at the layer lr keeping the optimizer's weight decay (tag without weight_decay)."""
    plain = build_layer("s4_legs", d_model=2)
    assert not hasattr(plain.ssm.C, "_optim")
    assert plain.ssm.log_dt._optim == {"lr": 0.001, "weight_decay": 0.0}
    ref = build_layer("s4_legs", d_model=2, lr=0.002, lr_dt="base", lr_C="layer")
    assert ref.ssm.log_dt._optim == {"weight_decay": 0.0}
    assert ref.ssm.C._optim == {"lr": 0.002}
