"""The model registry: one typed spec per name (kernel kind, initialization, layer defaults).

`build_layer(name, d_model, d_state=None, **overrides)` validates the overrides against the name's
options and builds an `SSMLayer`; `layer_defaults(name)` is what `model=<name>` composes to under
`layer:` (the config schema, `harness.run.schema`, stores each spec's options). Defaults follow the
reference code and configs (state-spaces/s4 configs/model/layer/s4.yaml, src/models/sequence/;
AnnanYu/HOPE-SSM models/s4/HOPE_SSM.py): d_state 64, dt in [0.001, 0.1] (HOPE: [0.0001, 0.1]), SSM
learning rate 0.001 with weight decay 0, dt at that lr and C at the optimizer's (the reference's
`lr: {dt, A, B}` default), the LegS B clipped at 2.0, C drawn before C tilde, a dropout before and
one after the activation (HOPE: after only). Each of these is an option a user can ablate;
`docs/parity.md` lists what the published recipes set.
"""

import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch

from common import Registry, UserError
from models import hippo
from models.kernels.diagonal import DISCRETIZATIONS, DiagonalKernel
from models.kernels.dplr import C_INITS, DPLRKernel
from models.kernels.hope import MODES, HopeKernel
from models.kernels.params import DT_TRANSFORMS, LR_CHOICES, SSMTraining
from models.layer import ACTIVATIONS, SSMLayer


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


@dataclass(frozen=True)
class DPLROptions(LayerOptions):
    c_init: str = "c"  # c: draw C, C tilde = C (I - Abar^L) (reference) | ctilde: draw C tilde
    b_clip: float | None = 2.0  # clip Im(V^* B) to [-b_clip, b_clip] (reference); None: exact


@dataclass(frozen=True)
class DiagonalOptions(LayerOptions):
    disc: str = "zoh"  # zoh | bilinear


@dataclass(frozen=True)
class DiagonalLegsOptions(DiagonalOptions):
    b_clip: float | None = 2.0  # as DPLROptions (the reference clips the S4D-LegS B too)


@dataclass(frozen=True)
class DiagonalRandomOptions(DiagonalOptions):
    b_init: str = "ones"  # ones (reference B_init="constant") | normal: B ~ CN(0, 1)


@dataclass(frozen=True)
class HopeOptions(LayerOptions):
    dt_min: float = 0.0001  # the HOPE reference's default (HOPE_SSM_Kernel dt_min)
    conv_dropout: bool = False  # the HOPE reference drops after the activation only
    mode: str = "circular"  # circular | linear (see models.kernels.hope)


@dataclass(frozen=True)
class HopeLegsOptions(HopeOptions):
    legs_horizon: float = 1.0  # the Markov parameters sample LegS with step legs_horizon / M


KERNEL_FAMILIES = {"dplr": "s4", "diagonal": "s4d", "hope": "hope"}
"""The model family each kernel kind belongs to: S4 (DPLR), S4D (diagonal), HOPE (Hankel)."""

KernelBuilder = Callable[[LayerOptions, int], torch.nn.Module]
"""A plugin's own kernel: (options, H) -> a module whose forward(L) is the (C, H, L) real kernel
(C = 2 when bidirectional), with a `log_dt` parameter (H,) and a `circular` flag (see
`models.layer.SSMLayer`)."""


@dataclass(frozen=True)
class ModelSpec:
    """kernel: "dplr" | "diagonal" | "hope", or a plugin's `KernelBuilder`; init: the
    initialization rule (the HiPPO measure `legs` | `fout` | `inv` | `lin`, or `random`; the run's
    `init` tag); options: the layer options' defaults."""

    kernel: str | KernelBuilder
    init: str
    options: LayerOptions

    @property
    def family(self) -> str:
        """`s4` | `s4d` | `hope` (`KERNEL_FAMILIES`), or `plugin` for a plugin's own kernel: the
        run tag `kernel`."""
        return KERNEL_FAMILIES[self.kernel] if isinstance(self.kernel, str) else "plugin"


MODELS: Registry = Registry("model", plugins="ssm_bench.models")
"""Every model name; installed packages add theirs through the entry point group
`ssm_bench.models` (`common.registry`)."""


@MODELS.register("s4_legs")
def s4_legs() -> ModelSpec:
    """S4: DPLR kernel (Cauchy sum + Woodbury), HiPPO-LegS init."""
    return ModelSpec("dplr", "legs", DPLROptions())


@MODELS.register("s4_fout")
def s4_fout() -> ModelSpec:
    """S4: DPLR kernel, HiPPO-FouT init."""
    return ModelSpec("dplr", "fout", DPLROptions())


@MODELS.register("s4_random")
def s4_random() -> ModelSpec:
    """S4: DPLR kernel, random normal-plus-low-rank init (ablation)."""
    return ModelSpec("dplr", "random", DPLROptions(b_clip=None))  # no reference draw to clip


@MODELS.register("s4d_legs")
def s4d_legs() -> ModelSpec:
    """S4D: diagonal kernel (Vandermonde sum), the diagonal of DPLR-LegS."""
    return ModelSpec("diagonal", "legs", DiagonalLegsOptions())


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
    return ModelSpec("diagonal", "random", DiagonalRandomOptions())


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
    if opts.n_ssm is not None and opts.n_ssm < 1:
        raise UserError(f"layer option n_ssm={opts.n_ssm} must be a positive integer or null")
    _choice("dt_transform", opts.dt_transform, DT_TRANSFORMS)
    _choice("lr_dt", opts.lr_dt, LR_CHOICES)
    _choice("lr_C", opts.lr_C, LR_CHOICES)
    if opts.dropout is not None and not 0 <= opts.dropout < 1:
        raise UserError(f"layer option dropout={opts.dropout} must be in [0, 1)")
    _choice("activation", opts.activation, tuple(ACTIVATIONS))
    if isinstance(opts, DiagonalOptions):
        _choice("disc", opts.disc, DISCRETIZATIONS)
    if isinstance(opts, HopeOptions):
        _choice("mode", opts.mode, MODES)
    if isinstance(opts, DPLROptions):
        _choice("c_init", opts.c_init, C_INITS)
    if getattr(opts, "b_clip", None) is not None and opts.b_clip <= 0:
        raise UserError(f"layer option b_clip={opts.b_clip} must be positive or null (no clip)")
    if isinstance(opts, DiagonalRandomOptions):
        _choice("b_init", opts.b_init, hippo.B_INITS)
    if isinstance(opts, HopeLegsOptions) and opts.legs_horizon <= 0:
        raise UserError(f"layer option legs_horizon={opts.legs_horizon} must be positive")
    return spec, opts


def build_layer(
    name: str,
    d_model: int,
    d_state: int | None = None,
    l_max: int | None = None,
    linear: bool = False,
    **overrides,
) -> SSMLayer:
    """One SSM layer of model `name`, input and output (B, d_model, L).

    d_state defaults to the name's default (64 for every registered name); `overrides` are the
    layer options of `LayerOptions` and the name's kernel-specific ones (`disc`, `mode`, ...).
    l_max: the longest sequence the layer will see (the task's length), to which an S4 kernel
    ties its C tilde (see `models.kernels.dplr`); None: the first call's length. linear: the
    bare SSM without the GLU projection (`SSMLayer`; the backbone's `linear` option).
    """
    if d_state is not None:
        overrides["d_state"] = d_state
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1:
        raise UserError(f"d_model must be a positive integer, got {d_model!r}")
    spec, opts = resolve_options(name, **overrides)
    if spec.kernel != "hope" and opts.n_ssm is not None and d_model % opts.n_ssm:
        raise UserError(
            f"layer option n_ssm={opts.n_ssm} must divide d_model={d_model} (each of the "
            "n_ssm state matrices is shared by d_model / n_ssm channels)"
        )
    ssm = _build_kernel(spec, opts, d_model, l_max)
    ssm.log_dt.requires_grad_(not opts.freeze_dt)  # every kernel kind keeps its dt as log_dt
    return SSMLayer(
        ssm,
        d_model,
        opts.bidirectional,
        opts.dropout or 0.0,
        opts.activation,
        tie_dropout=bool(opts.tie_dropout),
        conv_dropout=opts.conv_dropout,
        linear=linear,
    )


def _training(opts: LayerOptions) -> SSMTraining:
    """How the kernel's SSM parameters train (timescales, learning rates, the frozen switch)."""
    return SSMTraining(
        dt_min=opts.dt_min,
        dt_max=opts.dt_max,
        dt_transform=opts.dt_transform,
        lr=opts.lr,
        lr_dt=opts.lr_dt,
        lr_C=opts.lr_C,
        freeze_A=opts.freeze_A,
    )


def _dplr_kernel(init: str, opts: DPLROptions, H: int, l_max: int | None) -> DPLRKernel:
    """S4: S = n_ssm (default H) copies of one DPLR system (Lambda, P, B) of the HiPPO measure
    `init` (or a random normal-plus-low-rank one), each copy trained on its own."""
    N, S = opts.d_state, opts.n_ssm or H
    if init == "random":
        d = hippo.diagonalize_nplr(*hippo.random_nplr(N), b_clip=opts.b_clip)
    else:
        d = hippo.dplr(init, N, opts.b_clip)
    Lambda, P, B = (
        np.broadcast_to(x[..., None, :], (*x.shape[:-1], S, N // 2)).copy()
        for x in (d.Lambda, d.P, d.B)
    )  # one system copied to every trained copy
    channels = 2 if opts.bidirectional else 1
    return DPLRKernel(Lambda, P, B, H, channels, _training(opts), opts.c_init, l_max)


def _diagonal_kernel(init: str, opts: DiagonalOptions, H: int, l_max: int | None) -> DiagonalKernel:
    """S4D: S = n_ssm (default H) diagonal systems (Lambda, B) of the init rule `init`."""
    extra = {key: getattr(opts, key) for key in ("b_clip", "b_init") if hasattr(opts, key)}
    Lambda, B = hippo.diagonal_init(init, opts.d_state, opts.n_ssm or H, **extra)
    channels = 2 if opts.bidirectional else 1
    return DiagonalKernel(Lambda, B, H, channels, _training(opts), disc=opts.disc)


def _hope_kernel(init: str, opts: HopeOptions, H: int, l_max: int | None) -> HopeKernel:
    """HOPE: Markov parameters per channel (two sets when bidirectional) from the rule `init`."""
    sets = 2 if opts.bidirectional else 1
    h = _markov_init(init, opts, sets, H)
    return HopeKernel(h, opts.mode, opts.bidirectional, _training(opts))


KERNEL_BUILDERS = {"dplr": _dplr_kernel, "diagonal": _diagonal_kernel, "hope": _hope_kernel}
"""The builder of each built-in kernel kind: (init, options, H, l_max) -> the kernel module."""


def _build_kernel(
    spec: ModelSpec, opts: LayerOptions, H: int, l_max: int | None
) -> torch.nn.Module:
    """The kernel module of `spec`: its kind's builder, or a plugin's own `KernelBuilder`."""
    if callable(spec.kernel):
        return spec.kernel(opts, H)
    return KERNEL_BUILDERS[spec.kernel](spec.init, opts, H, l_max)


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
