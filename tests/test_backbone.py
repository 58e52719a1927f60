"""The backbone's own behaviour, independent of the SSM math: pooling, pad masking, the
Retrieval head, norm placement and axis, option checking.

The SSM layer is replaced by small layers whose output is known in closed form, so every
expectation below is computed by hand (float64) from the definitions in models/backbone.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import UserError
from models import backbone
from models.backbone import ChannelNorm, build_model
from models.pooling import pool, retrieval_features


@pytest.fixture(autouse=True)
def float64():
    """Run every test of this module in float64 and restore the default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class Scale(nn.Module):
    """A layer with a known output: y = factor * x, (B, H, L) -> (B, H, L)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


class PerStep(nn.Module):
    """A trainable layer that mixes channels but never steps: y[..., l] = tanh(W x[..., l]),
    (B, H, L) -> (B, H, L)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        return torch.tanh(self.proj(x.transpose(-1, -2))).transpose(-1, -2)


@pytest.fixture
def layer_calls(monkeypatch):
    """Swap the registry's build_layer for one that records its options and returns PerStep."""
    calls = []

    def fake_build_layer(name, d_model, **options):
        calls.append((name, d_model, options))
        return PerStep(d_model)

    monkeypatch.setattr(backbone, "build_layer", fake_build_layer)
    return calls


def scale_layers(monkeypatch, factor):
    monkeypatch.setattr(backbone, "build_layer", lambda name, d_model, **opts: Scale(factor))


def identity_encoder(model, h):
    with torch.no_grad():
        model.encoder.proj.weight.copy_(torch.eye(h))
        model.encoder.proj.bias.zero_()


# ---------------------------------------------------------------- pooling against hand loops


def hand_pool(y, pooling, start, keep):
    """Loop implementation of the pooling rules of models/pooling.py."""
    rows = []
    for b in range(y.shape[0]):
        kept = [step for step in range(start, y.shape[1]) if keep[b, step]]
        if not kept:
            rows.append(torch.zeros(y.shape[2]))
        elif pooling == "mean":
            rows.append(sum(y[b, step] for step in kept) / len(kept))
        else:
            rows.append(y[b, kept[-1]])
    return torch.stack(rows)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("start", [0, 3])
def test_pool_matches_hand_computation(pooling, start):
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(4, 9, 5, generator=gen)
    keep = torch.rand(4, 9, generator=gen) > 0.4
    keep[0] = True  # every step kept
    keep[1, start:] = False  # nothing kept in the window -> zeros
    expected = hand_pool(y, pooling, start, keep)
    torch.testing.assert_close(pool(y, pooling, start, keep), expected, rtol=1e-12, atol=1e-12)
    everything = torch.ones(4, 9, dtype=torch.bool)
    torch.testing.assert_close(
        pool(y, pooling, start, None), hand_pool(y, pooling, start, everything)
    )


def test_pool_none_returns_the_steps_after_pool_start():
    y = torch.randn(2, 6, 3)
    torch.testing.assert_close(pool(y, "none", 4, None), y[:, 4:])
    assert pool(y, "none", 0, None).shape == (2, 6, 3)


def test_pool_mean_and_last_of_a_known_sequence():
    y = torch.arange(6.0).reshape(1, 6, 1)  # steps hold 0, 1, ..., 5
    keep = torch.tensor([[True, True, True, True, False, False]])
    assert pool(y, "mean", 2, keep).item() == pytest.approx((2 + 3) / 2)
    assert pool(y, "last", 2, keep).item() == 3.0
    single = torch.tensor([[False, False, False, True, False, False]])
    assert pool(y, "mean", 0, single).item() == 3.0
    assert pool(y, "mean", 0, None).item() == pytest.approx(2.5)
    assert pool(y, "last", 0, None).item() == 5.0


# ---------------------------------------------------------------- pad masking in the model


def test_pad_tokens_do_not_change_the_mean_pooled_logits(layer_calls):
    """With per-step layers and layer norm, padding a sequence with pad_id must be invisible,
    as the reference's `use_lengths` pooling over the true length."""
    short = torch.tensor([[4, 7, 2, 9], [1, 5, 5, 3]])  # (B, 4)
    padded = torch.cat([short, torch.zeros(2, 5, dtype=torch.int64)], dim=1)  # (B, 9)
    for pooling in ("mean", "last"):
        torch.manual_seed(0)
        model = build_model(
            "stub",
            11,
            3,
            d_model=8,
            n_layers=2,
            norm="layer",
            encoder="embedding",
            pad_id=0,
            pooling=pooling,
        ).eval()
        torch.testing.assert_close(model(padded), model(short))


def test_without_pad_id_pad_tokens_count(layer_calls):
    torch.manual_seed(0)
    model = build_model("stub", 11, 3, d_model=8, norm="layer", encoder="embedding").eval()
    short = torch.tensor([[4, 7, 2, 9]])
    padded = torch.cat([short, torch.zeros(1, 3, dtype=torch.int64)], dim=1)
    assert not torch.allclose(model(padded), model(short))


# ---------------------------------------------------------------- Retrieval two-tower head


def test_retrieval_features_are_the_nli_concatenation():
    x1 = torch.tensor([[1.0, 2.0]])
    x2 = torch.tensor([[3.0, -1.0]])
    expected = torch.tensor([[1.0, 2.0, 3.0, -1.0, -2.0, 3.0, 3.0, -2.0]])
    torch.testing.assert_close(retrieval_features(x1, x2), expected)


def test_dual_model_pools_each_tower_and_applies_the_mlp(layer_calls):
    torch.manual_seed(0)
    h = 6
    model = build_model(
        "stub", 13, 2, d_model=h, n_layers=2, norm="batch", encoder="embedding", dual=True
    )
    model.eval()  # batch-norm running statistics: towers can be evaluated separately
    pairs = torch.randint(0, 13, (3, 2, 10))  # (B, 2, L)
    x1 = model.features(pairs[:, 0]).mean(dim=1)  # (B, H)
    x2 = model.features(pairs[:, 1]).mean(dim=1)  # (B, H)
    first, act, second = model.head.mlp
    assert (first.in_features, first.out_features) == (4 * h, h)
    assert isinstance(act, nn.GELU)
    hidden = F.gelu(torch.cat([x1, x2, x1 - x2, x1 * x2], dim=1) @ first.weight.T + first.bias)
    expected = hidden @ second.weight.T + second.bias  # (B, 2)
    torch.testing.assert_close(model(pairs), expected)


def test_dual_towers_share_statistics_in_training(layer_calls):
    """Both documents form one batch of 2B sequences (batch norm sees all of them)."""
    torch.manual_seed(0)
    model = build_model("stub", 13, 2, d_model=4, encoder="embedding", dual=True)
    pairs = torch.randint(0, 13, (2, 2, 5))
    model(pairs)
    stacked = torch.cat([pairs[:, 0], pairs[:, 1]])  # (2B, L)
    embedded = model.encoder(stacked)  # (2B, L, H)
    first_norm = model.blocks[0].norm.norm
    momentum = first_norm.momentum
    torch.testing.assert_close(first_norm.running_mean, momentum * embedded.mean(dim=(0, 1)))


# ---------------------------------------------------------------- norm placement and axis


@pytest.mark.parametrize("prenorm", [True, False])
def test_norm_order_with_a_known_layer(monkeypatch, prenorm):
    h, factor = 5, 2.0
    scale_layers(monkeypatch, factor)
    model = build_model("stub", h, 1, d_model=h, n_layers=2, norm="layer", prenorm=prenorm)
    identity_encoder(model, h)
    x = torch.randn(3, 7, h)

    def ln(t):
        return F.layer_norm(t, (h,))

    u = x
    for _ in range(2):
        u = u + factor * ln(u) if prenorm else ln(u + factor * u)
    if prenorm:
        u = ln(u)  # final norm of a pre-norm stack
    torch.testing.assert_close(model.features(x), u)


def test_batch_norm_normalizes_each_channel_over_batch_and_steps():
    gen = torch.Generator().manual_seed(1)
    shift = torch.tensor([1.0, -2.0, 5.0]).unsqueeze(-1)  # (H, 1)
    x = 3.0 * torch.randn(4, 3, 50, generator=gen) + shift  # (B, H, L)
    norm = ChannelNorm("batch", 3)
    mean = x.mean(dim=(0, 2), keepdim=True)  # (1, H, 1)
    var = x.var(dim=(0, 2), unbiased=False, keepdim=True)  # (1, H, 1)
    expected = (x - mean) / torch.sqrt(var + norm.norm.eps)
    torch.testing.assert_close(norm(x), expected)
    assert norm.norm.running_mean.shape == (3,)


def test_layer_norm_normalizes_each_step_over_channels():
    x = torch.randn(2, 6, 4)  # (B, H, L)
    out = ChannelNorm("layer", 6)(x)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 4), atol=1e-12, rtol=0)
    expected_var = x.var(dim=1, unbiased=False) / (x.var(dim=1, unbiased=False) + 1e-5)
    torch.testing.assert_close(out.var(dim=1, unbiased=False), expected_var)


# ---------------------------------------------------------------- decoder shapes and options


def test_per_step_output_is_the_decoder_on_steps_after_pool_start(layer_calls):
    torch.manual_seed(0)
    model = build_model("stub", 3, 4, d_model=8, pooling="none", pool_start=5).eval()
    x = torch.randn(2, 12, 3)
    out = model(x)
    assert out.shape == (2, 7, 4)
    torch.testing.assert_close(out, model.head(model.features(x)[:, 5:]))


def test_layers_and_layer_options(layer_calls):
    model = build_model("stub", 3, 2, d_model=8, n_layers=3, dropout=0.25, layer={"lr": 1e-3})
    assert [type(layer) for layer in model.layers] == [PerStep] * 3
    assert all(call[:2] == ("stub", 8) for call in layer_calls)
    inherited = {"l_max": None, "tie_dropout": False, "linear": False}
    assert layer_calls[0][2] == {"dropout": 0.25, "lr": 1e-3, **inherited}
    build_model("stub", 3, 2, dropout=0.25, layer={"dropout": 0.0})
    assert layer_calls[-1][2] == {"dropout": 0.0, **inherited}
    build_model("stub", 3, 2, dropout=0.25, layer={"dropout": None})  # as the model configs say
    assert layer_calls[-1][2] == {"dropout": 0.25, **inherited}
    build_model("stub", 3, 2, tie_dropout=True, l_max=40, layer={"tie_dropout": None})
    assert layer_calls[-1][2] == {**inherited, "dropout": 0.0, "tie_dropout": True, "l_max": 40}
    build_model("stub", 3, 2, tie_dropout=True, layer={"tie_dropout": False})
    assert layer_calls[-1][2]["tie_dropout"] is False


def test_linear_model_is_encoder_convolution_and_per_step_readout():
    """backbone linear=true (HTTYH's delay model): out_t = W_o (sum_{s<=t} k[t-s] u_s + D u_t)
    + b_o with u = W_e x + b_e, computed here by brute force over steps from the layer's own
    kernel; no norm, residual, activation or GLU parameters exist."""
    torch.manual_seed(0)
    B, L, H = 2, 10, 3
    options = {"d_model": H, "n_layers": 1, "pooling": "none", "linear": True}
    model = build_model("s4d_lin", 1, 1, layer={"activation": "identity", "d_state": 8}, **options)
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if "norm" in n or "output_linear" in n]
    x = torch.randn(B, L, 1)
    layer = model.layers[0]
    with torch.no_grad():
        u = model.encoder(x)  # (B, L, H)
        k = layer.kernel(L)[0]  # (H, L)
        y = torch.stack(
            [
                sum(k[:, t - s] * u[:, s] for s in range(t + 1)) + layer.D * u[:, t]
                for t in range(L)
            ],
            dim=1,
        )  # (B, L, H)
        expected = model.head(y)  # (B, L, 1)
        torch.testing.assert_close(model(x), expected)


def test_linear_model_refuses_an_activation_or_dropout():
    with pytest.raises(UserError, match=r"model\.layer\.activation=identity"):
        build_model("s4d_lin", 1, 1, d_model=2, linear=True)
    with pytest.raises(UserError, match="dropout"):
        build_model(
            "s4d_lin", 1, 1, d_model=2, linear=True, dropout=0.1, layer={"activation": "identity"}
        )


def test_tied_residual_dropout_masks_whole_channels():
    """The residual dropout with tie_dropout: in train mode the block (identity norm, identity
    layer) returns x + m x / (1 - p) with m in {0, 1} constant over the steps of each (batch,
    channel), keeping about 1 - p of them; elementwise dropout (tied false) varies along steps."""
    p, B, H, L = 0.25, 64, 32, 50
    for tied in (True, False):
        torch.manual_seed(0)
        block = backbone.ResidualBlock(Scale(1.0), nn.Identity(), p, True, tied).train()
        x = torch.rand(B, H, L) + 0.5  # (B, H, L), no zeros
        scaled = (block(x) - x) * (1 - p) / x  # the mask m, elementwise
        assert torch.allclose(scaled, scaled.round(), atol=1e-12)
        kept = scaled.round()
        assert set(kept.unique().tolist()) == {0.0, 1.0}
        constant_over_steps = bool((kept == kept[..., :1]).all())
        assert constant_over_steps == tied
        assert abs(kept.mean().item() - (1 - p)) < 0.03  # 2048 (or 102400) draws


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"n_layer": 2}, "n_layer"),
        ({"norm": "group"}, "norm"),
        ({"pooling": "max"}, "pooling"),
        ({"encoder": "conv"}, "encoder"),
        ({"dropout": 1.5}, "dropout"),
        ({"d_model": 0}, "d_model"),
        ({"prenorm": "yes"}, "prenorm"),
        ({"layer": [1, 2]}, "layer"),
        ({"dual": True, "pooling": "none"}, "dual"),
        ({"pad_id": 0}, "pad_id"),
        ({"pool_start": -1}, "pool_start"),
    ],
)
def test_invalid_options_raise_user_error_naming_the_key(layer_calls, options, key):
    with pytest.raises(UserError, match=key):
        build_model("stub", 3, 2, **options)


def test_errors_at_forward_name_the_key(layer_calls):
    model = build_model("stub", 3, 2, d_model=4, pool_start=8)
    with pytest.raises(UserError, match="pool_start"):
        model(torch.randn(1, 8, 3))
    with pytest.raises(UserError, match="encoder"):
        model(torch.zeros(1, 10, dtype=torch.int64))
    tokens = build_model("stub", 5, 2, d_model=4, encoder="embedding")
    with pytest.raises(UserError, match="encoder"):
        tokens(torch.randn(1, 10, 3))
    with pytest.raises(UserError, match="vocabulary"):
        tokens(torch.tensor([[1, 5]]))
    dual = build_model("stub", 5, 2, d_model=4, encoder="embedding", dual=True)
    with pytest.raises(UserError, match="dual"):
        dual(torch.zeros(2, 10, dtype=torch.int64))
