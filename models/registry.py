"""The model registry: one typed spec per name (kernel kind, initialization, layer defaults).

`build_layer(name, d_model, d_state=64, **overrides)` validates the overrides against the name's
options and builds an `SSMLayer`; `layer_defaults(name)` is what `configs/model/<name>.yaml` holds
under `layer:`. Defaults follow the reference configs (state-spaces/s4 configs/model/layer/s4.yaml
and configs/experiment/lra/; AnnanYu/HOPE-SSM run scripts): d_state 64, dt in [0.001, 0.1],
SSM learning rate 0.001 with weight decay 0.
"""

import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch

from common import Registry, UserError
from models import hippo
from models.kernels.diagonal import DISCRETIZATIONS, DiagonalKernel
from models.kernels.dplr import DPLRKernel
from models.kernels.hope import MODES, HopeKernel
from models.layer import ACTIVATIONS, SSMLayer


@dataclass(frozen=True)
class LayerOptions:
    """Options every layer takes (the `layer:` mapping of a model config)."""

    d_state: int = 64  # N: state size (S4/S4D); HOPE uses d_state / 2 Markov parameters
    dt_min: float = 0.001  # timescales log-uniform in [dt_min, dt_max], one per channel
    dt_max: float = 0.1
    lr: float = 0.001  # learning rate of the SSM parameters (weight decay 0)
    bidirectional: bool = False  # add a second kernel run on the reversed sequence
    dropout: float | None = None  # after the activation; None: the backbone's dropout (0 alone)
    freeze_A: bool = False  # freeze the state matrix (HOPE: the Markov parameters)
    freeze_dt: bool = False  # freeze the timescales (the HOPE reference's noisy-sCIFAR setting)
    activation: str = "gelu"


@dataclass(frozen=True)
class DiagonalOptions(LayerOptions):
    disc: str = "zoh"  # zoh | bilinear


@dataclass(frozen=True)
class HopeOptions(LayerOptions):
    mode: str = "circular"  # circular | linear (see models.kernels.hope)


@dataclass(frozen=True)
class HopeLegsOptions(HopeOptions):
    legs_horizon: float = 1.0  # the Markov parameters sample LegS with step legs_horizon / M


KernelBuilder = Callable[[LayerOptions, int], torch.nn.Module]
"""A plugin's own kernel: (options, H) -> a module whose forward(L) is the (C, H, L) real kernel
(C = 2 when bidirectional), with a `log_dt` parameter (H,) and a `circular` flag (see
`models.layer.SSMLayer`)."""


@dataclass(frozen=True)
class ModelSpec:
    """kernel: "dplr" | "diagonal" | "hope", or a plugin's `KernelBuilder`; init: the name of
    the initialization rule (the run's `init` tag); options: the layer options' defaults."""

    kernel: str | KernelBuilder
    init: str
    options: LayerOptions


MODELS: Registry = Registry("model", plugins="ssm_bench.models")
"""Every model name; installed packages add theirs through the entry point group
`ssm_bench.models` (`common.registry`)."""


@MODELS.register("s4_legs")
def s4_legs() -> ModelSpec:
    """S4: DPLR kernel (Cauchy sum + Woodbury), HiPPO-LegS init."""
    return ModelSpec("dplr", "legs", LayerOptions())


@MODELS.register("s4_fout")
def s4_fout() -> ModelSpec:
    """S4: DPLR kernel, HiPPO-FouT init."""
    return ModelSpec("dplr", "fout", LayerOptions())


@MODELS.register("s4_random")
def s4_random() -> ModelSpec:
    """S4: DPLR kernel, random normal-plus-low-rank init (ablation)."""
    return ModelSpec("dplr", "random", LayerOptions())


@MODELS.register("s4d_legs")
def s4d_legs() -> ModelSpec:
    """S4D: diagonal kernel (Vandermonde sum), the diagonal of DPLR-LegS."""
    return ModelSpec("diagonal", "legs", DiagonalOptions())


@MODELS.register("s4d_inv")
def s4d_inv() -> ModelSpec:
    """S4D: diagonal kernel, S4D-Inv init (imaginary parts ~ N/(2n+1))."""
    return ModelSpec("diagonal", "inv", DiagonalOptions())


@MODELS.register("s4d_lin")
def s4d_lin() -> ModelSpec:
    """S4D: diagonal kernel, S4D-Lin init (imaginary parts pi n)."""
    return ModelSpec("diagonal", "lin", DiagonalOptions())


@MODELS.register("s4d_random")
def s4d_random() -> ModelSpec:
    """S4D: diagonal kernel, random init (ablation)."""
    return ModelSpec("diagonal", "random", DiagonalOptions())


@MODELS.register("hope")
def hope() -> ModelSpec:
    """HOPE: transfer function from Markov parameters (Hankel operator), random init."""
    return ModelSpec("hope", "random", HopeOptions())


@MODELS.register("hope_legs")
def hope_legs() -> ModelSpec:
    """HOPE: Markov parameters of a bilinear-discretized HiPPO-LegS system."""
    return ModelSpec("hope", "legs", HopeLegsOptions())


def layer_defaults(name: str) -> dict:
    """The default layer options of a registered model, as a plain dict."""
    return asdict(MODELS[name]().options)


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


def _choice(key: str, value: str, valid) -> None:
    if value not in valid:
        raise UserError(
            f"layer option {key}={value!r} is invalid; valid values: {', '.join(valid)}"
        )


def resolve_options(name: str, **overrides) -> tuple[ModelSpec, LayerOptions]:
    """The spec of `name` and its options with `overrides` applied and validated."""
    spec = MODELS[name]()
    valid = {f.name: f.type for f in fields(spec.options)}
    for key in overrides:
        if key not in valid:
            raise UserError(
                f"unknown layer option {key!r} for model {name!r}; "
                f"valid options are: {', '.join(sorted(valid))}"
            )
    checked = {k: _coerce(name, k, v, valid[k]) for k, v in overrides.items()}
    opts = replace(spec.options, **checked)
    if opts.d_state < 2 or opts.d_state % 2:
        raise UserError(
            f"layer option d_state={opts.d_state} must be a positive even number "
            "(the state is stored as conjugate pairs)"
        )
    if opts.dt_min <= 0:
        raise UserError(f"layer option dt_min={opts.dt_min} must be positive")
    if opts.dt_min > opts.dt_max:
        raise UserError(
            f"layer option dt_min={opts.dt_min} is larger than dt_max={opts.dt_max}; "
            "set dt_min <= dt_max"
        )
    if opts.lr < 0:
        raise UserError(f"layer option lr={opts.lr} must be >= 0")
    if opts.dropout is not None and not 0 <= opts.dropout < 1:
        raise UserError(f"layer option dropout={opts.dropout} must be in [0, 1)")
    _choice("activation", opts.activation, tuple(ACTIVATIONS))
    if isinstance(opts, DiagonalOptions):
        _choice("disc", opts.disc, DISCRETIZATIONS)
    if isinstance(opts, HopeOptions):
        _choice("mode", opts.mode, MODES)
    if isinstance(opts, HopeLegsOptions) and opts.legs_horizon <= 0:
        raise UserError(f"layer option legs_horizon={opts.legs_horizon} must be positive")
    return spec, opts


def build_layer(name: str, d_model: int, d_state: int | None = None, **overrides) -> SSMLayer:
    """One SSM layer of model `name`, input and output (B, L, d_model).

    d_state defaults to the name's default (64 for every registered name); `overrides` are the
    layer options of `LayerOptions` and the name's kernel-specific ones (`disc`, `mode`, ...).
    """
    if d_state is not None:
        overrides["d_state"] = d_state
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1:
        raise UserError(f"d_model must be a positive integer, got {d_model!r}")
    spec, opts = resolve_options(name, **overrides)
    ssm = _build_kernel(spec, opts, d_model)
    ssm.log_dt.requires_grad_(not opts.freeze_dt)  # every kernel kind keeps its dt as log_dt
    return SSMLayer(ssm, d_model, opts.bidirectional, opts.dropout or 0.0, opts.activation)


def _build_kernel(spec: ModelSpec, opts: LayerOptions, H: int) -> torch.nn.Module:
    if callable(spec.kernel):
        return spec.kernel(opts, H)
    N, channels = opts.d_state, 2 if opts.bidirectional else 1
    common = dict(dt_min=opts.dt_min, dt_max=opts.dt_max, lr=opts.lr, freeze_A=opts.freeze_A)
    if spec.kernel == "dplr":
        if spec.init == "random":
            d = hippo.diagonalize_nplr(*hippo.random_nplr(N))
        else:
            d = hippo.dplr(spec.init, N)
        Lambda, P, B = (
            np.broadcast_to(x[..., None, :], (*x.shape[:-1], H, N // 2)).copy()
            for x in (d.Lambda, d.P, d.B)
        )  # one system copied to every channel
        return DPLRKernel(Lambda, P, B, channels, **common)
    if spec.kernel == "diagonal":
        Lambda, B = hippo.diagonal_init(spec.init, N, H)
        return DiagonalKernel(Lambda, B, channels, disc=opts.disc, **common)
    sets = 2 if opts.bidirectional else 1
    return HopeKernel(
        _markov_init(spec.init, opts, sets, H), opts.mode, opts.bidirectional, **common
    )


def _markov_init(init: str, opts: LayerOptions, sets: int, H: int) -> np.ndarray:
    """Initial HOPE Markov parameters (sets, H, M) complex, M = d_state / 2.

    random (as the reference): h_j ~ CN(0, 1) / (2 sqrt(N)), so E ||h||^2 = M / (4 N).
    legs: h_j = C Abar^(j-1) Bbar of HiPPO-LegS (size N) discretized bilinearly with step
    legs_horizon / M, C ~ CN(0, 1) per channel, rescaled per channel to ||h||^2 = M / (4 N).
    """
    N, M = opts.d_state, opts.d_state // 2
    if init == "random":
        return (torch.randn(sets, H, M, dtype=torch.complex128) / (2 * np.sqrt(N))).numpy()
    C = torch.randn(sets, H, N, dtype=torch.complex128).numpy()
    h = hippo.markov_parameters("legs", N, M, opts.legs_horizon / M, C)  # (sets, H, M)
    return h * np.sqrt(M / (4 * N)) / np.linalg.norm(h, axis=-1, keepdims=True)
