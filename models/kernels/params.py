"""Parameters shared by the S4 (DPLR) and S4D (diagonal) kernels, and their optimizer tags.

Parameterization (state-spaces/s4 `SSMKernelDiag.register_params`, real_transform="exp",
imag_transform="none"; `dt_transform` "exp" or "softplus" as the reference's option):
    dt = exp(log_dt) or softplus(log_dt)      (H,)      log-uniform in [dt_min, dt_max] at init
    Lambda = -exp(log_A_real) + i A_imag      (S, N2)   real part kept negative, floored at 1e-4
    B (S, N2) complex, C (C, H, N2) complex, C ~ CN(0, 1) (torch.randn complex: each part N(0, 1/2))
S = n_ssm copies of (Lambda, B) (and of the low-rank P of S4) are trained; channel h uses copy
h mod S (the reference's `repeat(A, 't n -> (v t) n')`); dt and C are per channel.
`log_dt` holds the unconstrained dt parameter under either transform (the name is kept for
checkpoints): log dt for "exp", softplus^-1(dt) = log(expm1(dt)) for "softplus".
Optimizer tags (`param._optim`, read by `models.optim`), as the reference's `Kernel.register`:
Lambda, B and P get `{"lr": lr, "weight_decay": 0.0}`; dt the same with `lr_dt="layer"`, else
`{"weight_decay": 0.0}` (the optimizer's lr: the reference's `lr.dt: null`); C is untagged
(optimizer defaults) with `lr_C="base"`, and `{"lr": lr}` with `lr_C="layer"` (the reference
with a plain-number lr: C at that lr, keeping the optimizer's weight decay).
`freeze_A` turns off gradients of the state matrix (Lambda, and P for S4).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

REAL_FLOOR = 1e-4  # state-spaces/s4 `inv_transform` clamps -Re(Lambda) to at least 1e-4
DT_TRANSFORMS = ("exp", "softplus")
LR_CHOICES = ("layer", "base")  # a parameter trains at the layer's `lr` or the optimizer's lr


@dataclass(frozen=True)
class SSMTraining:
    """How an SSM kernel draws dt and tags its parameters (the layer options of the same names)."""

    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_transform: str = "exp"
    lr: float = 0.001
    lr_dt: str = "layer"
    lr_C: str = "base"
    freeze_A: bool = False

    def ssm_optim(self) -> dict[str, float]:
        """Tag of the state matrix and B: the layer lr, weight decay 0."""
        return {"lr": self.lr, "weight_decay": 0.0}

    def dt_optim(self) -> dict[str, float]:
        """Tag of dt: the layer lr (or the optimizer's with lr_dt="base"), weight decay 0."""
        return self.ssm_optim() if self.lr_dt == "layer" else {"weight_decay": 0.0}

    def C_optim(self) -> dict[str, float] | None:
        """Tag of C: None (optimizer defaults) or the layer lr with the optimizer's decay."""
        return {"lr": self.lr} if self.lr_C == "layer" else None

    def dt_parameter(self, shape: tuple[int, ...]) -> nn.Parameter:
        """The unconstrained dt parameter of the given shape, tagged, dt log-uniform at init."""
        log_dt = log_uniform_dt(shape, self.dt_min, self.dt_max)
        raw = log_dt if self.dt_transform == "exp" else torch.log(torch.expm1(torch.exp(log_dt)))
        return tagged_parameter(raw, self.dt_optim())

    def dt(self, raw: Tensor) -> Tensor:
        """dt from its unconstrained parameter (same shape)."""
        return torch.exp(raw) if self.dt_transform == "exp" else F.softplus(raw)


def tagged_parameter(
    value: Tensor, optim: dict[str, float] | None, frozen: bool = False
) -> nn.Parameter:
    """A parameter carrying the optimizer settings `optim` (untagged when None)."""
    param = nn.Parameter(value, requires_grad=not frozen)
    if optim is not None:
        param._optim = dict(optim)
    return param


def log_uniform_dt(shape: tuple[int, ...], dt_min: float, dt_max: float) -> Tensor:
    """log dt ~ U[log dt_min, log dt_max], real of the default dtype, of the given shape."""
    u = torch.rand(*shape, dtype=torch.get_default_dtype())
    return u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)


def tile_channels(x: Tensor, H: int, dim: int) -> Tensor:
    """Copies (..., S, ...) along `dim` tiled to H channels: channel h is copy h mod S."""
    reps = [1] * x.dim()
    reps[dim] = H // x.shape[dim]
    return x.repeat(*reps)


def complex_dtype() -> torch.dtype:
    """The complex dtype matching torch's default real dtype."""
    return torch.complex128 if torch.get_default_dtype() == torch.float64 else torch.complex64


def as_complex_param_data(x: np.ndarray | Tensor) -> Tensor:
    """Complex array -> its real view (..., 2) in the default precision (complex param storage)."""
    return torch.view_as_real(torch.as_tensor(x).to(complex_dtype())).clone()


@dataclass(frozen=True)
class SSMMatrices:
    """Dense continuous-time system with kernel K[c, h, l] = Re(C[c, h] Abar[c, h]^l Bbar[c, h]).

    A (C, H, N, N) complex, B (C, H, N) complex, C (C, H, N) complex (conjugate-pair factor folded
    in), dt (H,) real, disc: "zoh" | "bilinear", the discretization that maps (A, B, dt) to
    (Abar, Bbar). N counts the complex states actually represented.
    """

    A: Tensor
    B: Tensor
    C: Tensor
    dt: Tensor
    disc: str


@dataclass(frozen=True)
class Recurrence:
    """Discretized system for the recurrent mode: x_k = dA x_{k-1} + dB u_k, y_k = Re(dC x_k).

    dA (H, N) if diagonal else (H, N, N), dB (H, N), dC (H, N); complex.
    """

    dA: Tensor
    dB: Tensor
    dC: Tensor
    diagonal: bool

    def step(self, u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """u (B, H) real, x (B, H, N) complex -> y (B, H) real, next x (B, H, N)."""
        if self.diagonal:
            x = self.dA * x + self.dB * u.unsqueeze(-1).to(x.dtype)
        else:
            x = torch.einsum("hmn,bhn->bhm", self.dA, x) + self.dB * u.unsqueeze(-1).to(x.dtype)
        return torch.einsum("hn,bhn->bh", self.dC, x).real, x


class ConjugatePairSSM(nn.Module):
    """dt, diagonal Lambda, B and C of a system stored as one member of each conjugate pair."""

    def __init__(
        self, Lambda: np.ndarray, B: np.ndarray, H: int, channels: int, training: SSMTraining
    ):
        """Lambda (S, N2), B (S, N2) complex initial values of the S = n_ssm trained copies (S
        divides H); H channels; C channels (2 when bidirectional)."""
        super().__init__()
        S, N2 = Lambda.shape
        if H % S:
            raise ValueError(f"{S} state-matrix copies do not divide {H} channels")
        self.H, self.N2, self.channels, self.training_options = H, N2, channels, training
        dtype = torch.get_default_dtype()
        neg_re = np.maximum(-Lambda.real, REAL_FLOOR)
        tag, frozen = training.ssm_optim(), training.freeze_A
        self.log_dt = training.dt_parameter((H,))
        log_re = torch.as_tensor(np.log(neg_re), dtype=dtype)
        self.log_A_real = tagged_parameter(log_re, tag, frozen)  # (S, N2)
        self.A_imag = tagged_parameter(torch.as_tensor(Lambda.imag, dtype=dtype), tag, frozen)
        self.B = tagged_parameter(as_complex_param_data(B), tag)  # (S, N2, 2)
        C = torch.randn(channels, H, N2, dtype=complex_dtype())  # (C, H, N2)
        self.C = tagged_parameter(torch.view_as_real(C).clone(), training.C_optim())

    def dt(self) -> Tensor:
        """(H,) real step sizes."""
        return self.training_options.dt(self.log_dt)

    def Lambda(self) -> Tensor:
        """(H, N2) complex diagonal of the state matrix."""
        Lambda = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # (S, N2)
        return tile_channels(Lambda, self.H, 0)

    def B_c(self) -> Tensor:
        """(H, N2) complex."""
        return tile_channels(torch.view_as_complex(self.B), self.H, 0)

    def C_c(self) -> Tensor:
        """(C, H, N2) complex."""
        return torch.view_as_complex(self.C)

    def frequency_response(self, L: int) -> Tensor:
        """(C, H, L + 1) complex: the kernel's transfer function on the 2L-point grid of the
        zero-padded convolution, rfft(kernel(L), n=2L)."""
        return torch.fft.rfft(self(L), n=2 * L)
