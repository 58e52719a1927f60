"""What every kernel kind shares: the layer options every model takes, and the `Kernel` record.

A kernel module (`models.kernels.dplr`, `diagonal`, `hope`) subclasses `LayerOptions` with its own
options, extends `validate` with their checks, and offers a `Kernel(family, build)`;
`models.registry` names models by pairing a `Kernel` with an initialization and option defaults.
Defaults follow the reference code and configs (state-spaces/s4 configs/model/layer/s4.yaml;
AnnanYu/HOPE-SSM models/s4/HOPE_SSM.py): d_state 64, dt in [0.001, 0.1], SSM learning rate 0.001
with weight decay 0, dt at that lr and C at the optimizer's (the reference's `lr: {dt, A, B}`
default), a dropout before and one after the activation.
"""

import types
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from common import UserError
from models.kernels.params import DT_TRANSFORMS, LR_CHOICES, SSMTraining
from models.layer import ACTIVATIONS


def check_choice(key: str, value: str, valid) -> None:
    """UserError naming the layer option `key` unless `value` is one of `valid`."""
    if value not in valid:
        raise UserError(
            f"layer option {key}={value!r} is invalid; valid values: {', '.join(valid)}"
        )


def check_b_clip(b_clip: float | None) -> None:
    """The bound on Im(V^* B) of the HiPPO inits that clip it: positive, or None (no clip)."""
    if b_clip is not None and b_clip <= 0:
        raise UserError(f"layer option b_clip={b_clip} must be positive or null (no clip)")


@dataclass(frozen=True)
class LayerOptions:
    """Options every layer takes (the `layer:` mapping of a model config)."""

    d_state: int = 64  # N: state size (S4/S4D); HOPE uses d_state / 2 Markov parameters
    dt_min: float = 0.001  # timescales log-uniform in [dt_min, dt_max], one per channel
    dt_max: float = 0.1
    dt_transform: str = "exp"  # dt = exp(param) | softplus(param) (the reference's LRA configs)
    lr: float = 0.001  # learning rate of the SSM parameters (weight decay 0)
    lr_dt: str = "layer"  # dt at `lr` | at the optimizer's lr ("base", reference lr.dt: null)
    lr_C: str = "base"  # C at the optimizer's lr | at `lr` ("layer", reference lr: <number>)
    n_ssm: int | None = None  # trained copies of (A, B) shared across channels; None: one each
    bidirectional: bool = False  # add a second kernel run on the reversed sequence
    dropout: float | None = None  # rate of the layer's dropouts; None: the backbone's dropout
    conv_dropout: bool = True  # also drop (elementwise) the convolution output before the
    #   activation (the reference FFTConv's dropout); the one after the activation is always there
    tie_dropout: bool | None = None  # one mask per (batch, channel) after the activation;
    #   None: the backbone's tie_dropout
    freeze_A: bool = False  # freeze the state matrix (HOPE: the Markov parameters)
    freeze_dt: bool = False  # freeze the timescales (the HOPE reference's noisy-sCIFAR setting)
    activation: str = "gelu"

    def validate(self) -> None:
        """UserError naming the first invalid option; a kernel's subclass adds its own checks
        after these (`super().validate()` first)."""
        if self.d_state < 2 or self.d_state % 2:
            raise UserError(
                f"layer option d_state={self.d_state} must be a positive even number "
                "(the state is stored as conjugate pairs)"
            )
        if self.dt_min <= 0:
            raise UserError(f"layer option dt_min={self.dt_min} must be positive")
        if self.dt_min > self.dt_max:
            raise UserError(
                f"layer option dt_min={self.dt_min} is larger than dt_max={self.dt_max}; "
                "set dt_min <= dt_max"
            )
        if self.lr < 0:
            raise UserError(f"layer option lr={self.lr} must be >= 0")
        if self.n_ssm is not None and self.n_ssm < 1:
            raise UserError(f"layer option n_ssm={self.n_ssm} must be a positive integer or null")
        check_choice("dt_transform", self.dt_transform, DT_TRANSFORMS)
        check_choice("lr_dt", self.lr_dt, LR_CHOICES)
        check_choice("lr_C", self.lr_C, LR_CHOICES)
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UserError(f"layer option dropout={self.dropout} must be in [0, 1)")
        check_choice("activation", self.activation, tuple(ACTIVATIONS))

    def validate_width(self, d_model: int) -> None:
        """The options against the layer's width H = d_model: n_ssm must divide it (each of the
        n_ssm state matrices is shared by d_model / n_ssm channels)."""
        if self.n_ssm is not None and d_model % self.n_ssm:
            raise UserError(
                f"layer option n_ssm={self.n_ssm} must divide d_model={d_model} (each of the "
                "n_ssm state matrices is shared by d_model / n_ssm channels)"
            )

    def training(self) -> SSMTraining:
        """How the kernel's SSM parameters train (timescales, learning rates, the frozen switch)."""
        return SSMTraining(
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            dt_transform=self.dt_transform,
            lr=self.lr,
            lr_dt=self.lr_dt,
            lr_C=self.lr_C,
            freeze_A=self.freeze_A,
        )


def _coerce(name: str, key: str, value, kind: type):
    """Check one override's type (ints are accepted for floats); UserError naming the key.

    An optional option (`float | None`) also accepts None.
    """
    if isinstance(kind, types.UnionType):
        if value is None:
            return None
        (kind,) = (t for t in kind.__args__ if t is not type(None))
    is_bool = isinstance(value, bool)  # bool is an int subclass: keep the two apart
    if kind is float and isinstance(value, int) and not is_bool:
        return float(value)
    if isinstance(value, kind) and is_bool == (kind is bool):
        return value
    raise UserError(
        f"layer option {key!r} of model {name!r} must be {kind.__name__}, got {value!r}"
    )


def with_overrides(name: str, options: LayerOptions, overrides: dict) -> LayerOptions:
    """`options` (the defaults of model `name`) with `overrides` type-checked, applied and the
    result validated; UserError naming the unknown, mistyped or invalid key."""
    valid = {f.name: f.type for f in fields(options)}
    for key in overrides:
        if key not in valid:
            raise UserError(
                f"unknown layer option {key!r} for model {name!r}; "
                f"valid options are: {', '.join(sorted(valid))}"
            )
    checked = {k: _coerce(name, k, v, valid[k]) for k, v in overrides.items()}
    opts = replace(options, **checked)
    opts.validate()
    return opts


KernelBuild = Callable[[str, LayerOptions, int, int | None], torch.nn.Module]
"""A kernel kind's builder: (init, options, H, l_max) -> a module whose forward(L) is the
(C, H, L) real kernel (C = 2 when bidirectional), with a `log_dt` parameter (H,) and a `circular`
flag (see `models.layer.SSMLayer`). init: the model's initialization rule; l_max: the longest
sequence the layer will see, None if unknown."""


@dataclass(frozen=True)
class Kernel:
    """A kernel kind: `family`, the run tag `kernel` (`s4`, `s4d`, `hope`, `plugin`), and its
    `build` (`KernelBuild`)."""

    family: str
    build: KernelBuild
