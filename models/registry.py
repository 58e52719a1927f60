"""The model registry: each name maps to a `ModelSpec` (kernel kind, initialization, option
defaults), its docstring the name's description (`ssm-bench list`).

`build_layer(name, d_model, d_state=None, **overrides)` validates the overrides against the name's
options and builds an `SSMLayer`; `layer_defaults(name)` is what `model=<name>` composes to under
`layer:` (the config schema, `harness.run.schema`, stores each spec's options). A kernel kind's
options, their checks and its builder live beside its math (`models.kernels.dplr`, `diagonal`,
`hope`; the shared ones in `models.options`); adding a kernel is one new kernel module and one
registration here (docs/DESIGN.md, "Adding a kernel"). Defaults follow the reference code and
configs (state-spaces/s4 configs/model/layer/s4.yaml, src/models/sequence/; AnnanYu/HOPE-SSM
models/s4/HOPE_SSM.py): d_state 64, dt in [0.001, 0.1] (HOPE: [0.0001, 0.1]), SSM learning rate
0.001 with weight decay 0, dt at that lr and C at the optimizer's (the reference's `lr: {dt, A, B}`
default), the LegS B clipped at 2.0, C drawn before C tilde, a dropout before and one after the
activation (HOPE: after only). Each of these is an option a user can ablate; `docs/parity.md`
lists what the published recipes set.
"""

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from common import Registry, UserError
from models.kernels.diagonal import KERNEL as S4D
from models.kernels.diagonal import DiagonalLegsOptions, DiagonalOptions, DiagonalRandomOptions
from models.kernels.dplr import KERNEL as S4
from models.kernels.dplr import DPLROptions
from models.kernels.hope import KERNEL as HOPE
from models.kernels.hope import HopeLegsOptions, HopeOptions
from models.layer import SSMLayer
from models.options import Kernel, LayerOptions, with_overrides

KernelBuilder = Callable[[LayerOptions, int], torch.nn.Module]
"""A plugin's own kernel: (options, H) -> a module whose forward(L) is the (C, H, L) real kernel
(C = 2 when bidirectional), with a `log_dt` parameter (H,) and a `circular` flag (see
`models.layer.SSMLayer`)."""


def _plugin_build(
    builder: KernelBuilder, init: str, opts: LayerOptions, H: int, l_max: int | None
) -> torch.nn.Module:
    """A `KernelBuilder` called as a `Kernel.build` (init and l_max are not its business)."""
    return builder(opts, H)


@dataclass(frozen=True)
class ModelSpec:
    """kernel: a kernel kind's `Kernel` (`models.kernels.dplr.KERNEL`, ...), or a plugin's
    `KernelBuilder` (held as `Kernel("plugin", ...)`); init: the initialization rule (the HiPPO
    measure `legs` | `fout` | `inv` | `lin`, or `random`; the run's `init` tag); options: the
    layer options' defaults."""

    kernel: Kernel | KernelBuilder
    init: str
    options: LayerOptions

    def __post_init__(self):
        if not isinstance(self.kernel, Kernel):
            plugin = Kernel("plugin", functools.partial(_plugin_build, self.kernel))
            object.__setattr__(self, "kernel", plugin)

    @property
    def family(self) -> str:
        """`s4` | `s4d` | `hope`, or `plugin` for a plugin's own kernel: the run tag `kernel`."""
        return self.kernel.family


MODELS: Registry = Registry("model", plugins="ssm_bench.models")
"""Every model name; installed packages add theirs through the entry point group
`ssm_bench.models` (`common.registry`)."""


@MODELS.register("s4_legs")
def s4_legs() -> ModelSpec:
    """S4: DPLR kernel (Cauchy sum + Woodbury), HiPPO-LegS init."""
    return ModelSpec(S4, "legs", DPLROptions())


@MODELS.register("s4_fout")
def s4_fout() -> ModelSpec:
    """S4: DPLR kernel, HiPPO-FouT init."""
    return ModelSpec(S4, "fout", DPLROptions())


@MODELS.register("s4_random")
def s4_random() -> ModelSpec:
    """S4: DPLR kernel, random normal-plus-low-rank init (ablation)."""
    return ModelSpec(S4, "random", DPLROptions(b_clip=None))  # no reference draw to clip


@MODELS.register("s4d_legs")
def s4d_legs() -> ModelSpec:
    """S4D: diagonal kernel (Vandermonde sum), the diagonal of DPLR-LegS."""
    return ModelSpec(S4D, "legs", DiagonalLegsOptions())


@MODELS.register("s4d_inv")
def s4d_inv() -> ModelSpec:
    """S4D: diagonal kernel, S4D-Inv init (imaginary parts ~ N/(2n+1))."""
    return ModelSpec(S4D, "inv", DiagonalOptions())


@MODELS.register("s4d_lin")
def s4d_lin() -> ModelSpec:
    """S4D: diagonal kernel, S4D-Lin init (imaginary parts pi n)."""
    return ModelSpec(S4D, "lin", DiagonalOptions())


@MODELS.register("s4d_random")
def s4d_random() -> ModelSpec:
    """S4D: diagonal kernel, random init (ablation)."""
    return ModelSpec(S4D, "random", DiagonalRandomOptions())


@MODELS.register("hope")
def hope() -> ModelSpec:
    """HOPE: transfer function from Markov parameters (Hankel operator), random init."""
    return ModelSpec(HOPE, "random", HopeOptions())


@MODELS.register("hope_legs")
def hope_legs() -> ModelSpec:
    """HOPE: Markov parameters of a bilinear-discretized HiPPO-LegS system."""
    return ModelSpec(HOPE, "legs", HopeLegsOptions())


def layer_defaults(name: str) -> dict:
    """The default layer options of a registered model, as a plain dict."""
    return asdict(MODELS[name]().options)


def resolve_options(name: str, **overrides) -> tuple[ModelSpec, LayerOptions]:
    """The spec of `name` and its options with `overrides` applied and validated."""
    spec = MODELS[name]()
    return spec, with_overrides(name, spec.options, overrides)


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
    opts.validate_width(d_model)
    ssm = spec.kernel.build(spec.init, opts, d_model, l_max)
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
