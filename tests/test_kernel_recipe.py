"""docs/DESIGN.md's "Adding a kernel" recipe, followed once: a toy kernel in one file plus one
registration trains through `models.build_model`; each kernel module owns its options' checks."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

import models
from common import UserError
from harness.layout import PROJECT_ROOT
from harness.run import schema
from models.registry import MODELS, ModelSpec, layer_defaults

# The one new file of the recipe: options (a LayerOptions subclass with its checks), the kernel
# module, its builder and its Kernel record, beside each other.
TOY_KERNEL = '''
"""Toy kernel: a real diagonal SSM, K[c, h, l] = sum_n C[c, h, n] exp(-a[h, n] dt[h] l)."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from common import UserError
from models.options import Kernel, LayerOptions


@dataclass(frozen=True)
class ToyOptions(LayerOptions):
    decay_max: float = 8.0  # decay rates a_n log-spaced in [1, decay_max]

    def validate(self) -> None:
        super().validate()
        if self.decay_max < 1:
            raise UserError(f"layer option decay_max={self.decay_max} must be >= 1")


class ToyKernel(nn.Module):
    circular = False

    def __init__(self, opts: ToyOptions, H: int):
        super().__init__()
        n, channels = opts.d_state // 2, 2 if opts.bidirectional else 1
        training = opts.training()
        self.log_dt = training.dt_parameter((H,))  # (H,)
        self.training_options = training
        self.log_a = nn.Parameter(torch.linspace(0.0, math.log(opts.decay_max), n).repeat(H, 1))
        self.log_a._optim = training.ssm_optim()
        self.C = nn.Parameter(torch.randn(channels, H, n) / math.sqrt(n))  # (C, H, n)

    def forward(self, L: int) -> torch.Tensor:
        dt = self.training_options.dt(self.log_dt)  # (H,)
        t = torch.arange(L, device=self.C.device) * dt[:, None]  # (H, L)
        decay = torch.exp(-self.log_a.exp()[:, :, None] * t[:, None, :])  # (H, n, L)
        return torch.einsum("chn,hnl->chl", self.C, decay)  # (C, H, L)


def build(init: str, opts: ToyOptions, H: int, l_max: int | None) -> ToyKernel:
    return ToyKernel(opts, H)


KERNEL = Kernel("toy", build)
'''


@pytest.fixture
def toy_model(tmp_path, monkeypatch):
    """The toy kernel module written to tmp and imported; `toy_decay` registered (the recipe's
    one registry line) in a copy of the registry that the test's end throws away."""
    path = tmp_path / "toy_kernel.py"
    path.write_text(TOY_KERNEL)
    spec = importlib.util.spec_from_file_location("toy_kernel", path)
    toy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_kernel", toy)
    spec.loader.exec_module(toy)
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))

    @MODELS.register("toy_decay")
    def toy_decay() -> ModelSpec:
        """Toy: real diagonal SSM with log-spaced decay rates."""
        return ModelSpec(toy.KERNEL, "decay", toy.ToyOptions())

    return toy


def test_a_kernel_from_one_file_and_one_registration_trains_through_build_model(toy_model):
    torch.manual_seed(0)
    net = models.build_model("toy_decay", 3, 2, d_model=8, n_layers=2, layer={"d_state": 8})
    x = torch.randn(16, 24, 3)  # (B, L, d_input)
    y = (x[:, :, 0].mean(dim=1) > 0).long()  # (B,)
    optimizer = torch.optim.AdamW(models.param_groups(net, lr=0.01, weight_decay=0.0))
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert net(x).shape == (16, 2)
    assert losses[-1] < 0.5 * losses[0]
    kernel = net.blocks[0].layer.ssm
    assert isinstance(kernel, toy_model.ToyKernel) and kernel.log_a.grad is not None
    assert MODELS["toy_decay"]().family == "toy"


def test_the_toy_kernels_options_are_checked_typed_and_in_the_schema(toy_model):
    assert layer_defaults("toy_decay")["decay_max"] == 8.0
    layer = models.build_layer("toy_decay", 4, decay_max=3)  # an int is accepted for a float
    assert layer.ssm.log_a.exp().max().item() == pytest.approx(3.0)
    with pytest.raises(UserError, match=re.escape("decay_max=0.5 must be >= 1")):
        models.build_layer("toy_decay", 4, decay_max=0.5)
    with pytest.raises(UserError, match="d_state=3 must be a positive even number"):
        models.build_layer("toy_decay", 4, d_state=3)  # LayerOptions' own checks still run
    with pytest.raises(UserError, match="n_ssm=3 must divide d_model=4"):
        models.build_layer("toy_decay", 4, n_ssm=3)
    node = schema.model_node("toy_decay")
    assert node.name == "toy_decay" and node.layer.decay_max == 8.0


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("s4_legs", {"c_init": "x"}, "c_init='x' is invalid"),
        ("s4_legs", {"b_clip": 0.0}, "b_clip=0.0 must be positive"),
        ("s4d_legs", {"b_clip": -1.0}, "b_clip=-1.0 must be positive"),
        ("s4d_inv", {"disc": "euler"}, "disc='euler' is invalid"),
        ("s4d_random", {"b_init": "zeros"}, "b_init='zeros' is invalid"),
        ("hope", {"mode": "other"}, "mode='other' is invalid"),
        ("hope_legs", {"legs_horizon": 0.0}, "legs_horizon=0.0 must be positive"),
        ("hope_legs", {"dt_min": 0.0}, "dt_min=0.0 must be positive"),
    ],
)
def test_each_kernel_modules_options_check_their_own_values(name, override, message):
    with pytest.raises(UserError, match=re.escape(message)):
        models.build_layer(name, 4, **override)


def test_hope_uses_no_shared_state_matrices_so_n_ssm_need_not_divide_the_width():
    models.build_layer("hope", 4, d_state=4, n_ssm=3)  # no error: HOPE keeps per-channel params
    with pytest.raises(UserError, match="n_ssm=3 must divide d_model=4"):
        models.build_layer("s4d_lin", 4, d_state=4, n_ssm=3)


def test_design_md_shows_the_recipe_this_test_follows():
    design = (PROJECT_ROOT / "docs" / "DESIGN.md").read_text()
    recipe = design.split("## Adding a kernel", 1)[1].split("\n## ", 1)[0]
    for step in ("LayerOptions", "def validate", "def build(", "KERNEL = Kernel(", "ModelSpec("):
        assert step in recipe, step
    registry = Path(models.registry.__file__).read_text()
    for module in ("dplr", "diagonal", "hope"):  # the built-ins follow it too
        text = (PROJECT_ROOT / "models" / "kernels" / f"{module}.py").read_text()
        assert "KERNEL = Kernel(" in text and "def build(" in text
        assert f"from models.kernels.{module} import KERNEL" in registry
