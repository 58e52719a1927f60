"""The contract every registered model meets (docs/interfaces.md, `models/`), at the shape of
issue 2: B=2, L=257, H=16 on CPU, for real, token, paired inputs and every pooling."""

import pytest
import torch

import models
from common import UserError
from models.optim import param_groups

B, L, H = 2, 257, 16
VOCAB, CLASSES = 11, 5
NAMES = models.MODELS.names()
CONTRACT_NAMES = {
    "s4_legs",
    "s4_fout",
    "s4_random",
    "s4d_legs",
    "s4d_inv",
    "s4d_lin",
    "s4d_random",
    "hope",
    "hope_legs",
}
SMALL = {"d_model": H, "n_layers": 1}  # stacking is covered by test_backbone.py
LAYER = {"d_state": 8}


def tokens(shape, gen):
    """Token ids (..., L) in [1, VOCAB) followed by a tail of pad id 0."""
    x = torch.randint(1, VOCAB, shape, generator=gen)  # (..., L) int64
    x[..., -40:] = 0
    return x


CASES = {
    "real-mean": ({"encoder": "linear"}, lambda g: torch.randn(B, L, 3, generator=g), (B, CLASSES)),
    "real-none": (
        {"encoder": "linear", "pooling": "none", "pool_start": 200},
        lambda g: torch.randn(B, L, 3, generator=g),
        (B, L - 200, CLASSES),
    ),
    "tokens-last": (
        {"encoder": "embedding", "pooling": "last", "pad_id": 0, "norm": "layer", "prenorm": False},
        lambda g: tokens((B, L), g),
        (B, CLASSES),
    ),
    "dual-mean": (
        {"encoder": "embedding", "dual": True, "pad_id": 0},
        lambda g: tokens((B, 2, L), g),
        (B, CLASSES),
    ),
}


def make(name, layer=None, **options):
    d_input = VOCAB if options.get("encoder") == "embedding" else 3
    return models.build_model(
        name, d_input, CLASSES, **SMALL, layer={**LAYER, **(layer or {})}, **options
    )


def test_registry_holds_the_contract_names():
    assert set(NAMES) == CONTRACT_NAMES


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_finite(name, case):
    options, inputs, shape = CASES[case]
    torch.manual_seed(0)
    model = make(name, **options)
    out = model(inputs(torch.Generator().manual_seed(1)))
    assert out.shape == shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for param_name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, param_name
            assert torch.isfinite(param.grad).all(), param_name
    assert len(model.layers) == SMALL["n_layers"]
    assert model.layers[0].kernel(L).shape[1:] == (H, L)


@pytest.mark.parametrize("name", NAMES)
def test_kernel_gradients_are_finite_at_every_length(name):
    """Lengths where roots of unity, odd sizes and blocking edge cases meet (1, 2, 7, 64, 1000)."""
    torch.manual_seed(0)
    for bidirectional in (False, True):
        layer = models.build_layer(name, d_model=8, d_state=16, bidirectional=bidirectional)
        for L in (1, 2, 7, 64, 1000):
            layer.zero_grad()
            layer.kernel(L).square().sum().backward()
            bad = [n for n, p in layer.named_parameters() if p.grad is not None
                   and not torch.isfinite(p.grad).all()]  # fmt: skip
            assert not bad, (L, bidirectional, bad)


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_carry_the_configured_ssm_settings(name):
    ssm_lr = 0.0123
    model = make(name, layer={"lr": ssm_lr})
    groups = param_groups(model, lr=0.01, weight_decay=0.05)
    tagged = {id(p) for p in model.parameters() if p.requires_grad and hasattr(p, "_optim")}
    assert tagged, "the SSM layers tag no parameter with _optim"
    ssm_groups = [g for g in groups if g["name"].startswith("ssm")]
    assert {id(p) for g in ssm_groups for p in g["params"]} == tagged
    for group in ssm_groups:
        assert group["lr"] == pytest.approx(ssm_lr)
        assert group["weight_decay"] == 0.0


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("switch", ["freeze_A", "freeze_dt"])
@pytest.mark.parametrize("name", NAMES)
def test_freeze_switch_keeps_the_frozen_tensors_bit_identical(name, switch):
    torch.manual_seed(0)
    frozen_model = make(name, layer={switch: True})
    frozen = trainable_names(make(name)) - trainable_names(frozen_model)
    assert frozen, f"{switch}=True froze no tensor"
    if switch == "freeze_dt":
        assert all(key.endswith(".log_dt") for key in frozen), frozen
    else:
        assert not any(key.endswith(".log_dt") for key in frozen), frozen
    before = {k: v.clone() for k, v in frozen_model.state_dict().items()}
    x = torch.randn(B, L, 3, generator=torch.Generator().manual_seed(1))
    frozen_model(x).square().mean().backward()
    optimizer = torch.optim.AdamW(param_groups(frozen_model, lr=0.01, weight_decay=0.05))
    optimizer.step()
    after = frozen_model.state_dict()
    for key in frozen:
        assert torch.equal(after[key], before[key]), key
    for key, param in frozen_model.named_parameters():
        if param.requires_grad:
            assert param.grad.abs().sum() > 0, key
            assert not torch.equal(after[key], before[key]), key


def test_unknown_model_name_is_a_user_error():
    with pytest.raises(UserError, match="s4_nope"):
        models.build_model("s4_nope", 3, CLASSES, **SMALL)


def test_unknown_backbone_key_is_a_user_error():
    with pytest.raises(UserError, match="n_layer'"):
        models.build_model("s4d_lin", 3, CLASSES, n_layer=2)
