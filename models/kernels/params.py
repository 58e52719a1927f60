"""Parameters shared by the S4 (DPLR) and S4D (diagonal) kernels, and their optimizer tags.

Parameterization (state-spaces/s4 `SSMKernelDiag.register_params`, dt_transform="exp",
real_transform="exp", imag_transform="none"):
    dt = exp(log_dt)                          (H,)      log-uniform in [dt_min, dt_max] at init
    Lambda = -exp(log_A_real) + i A_imag      (H, N2)   real part kept negative, floored at 1e-4
    B (H, N2) complex, C (C, H, N2) complex, C ~ CN(0, 1) (torch.randn complex: each part N(0, 1/2))
dt, Lambda and B (and the low-rank P of S4) are the "SSM parameters": they carry
`param._optim = {"lr": lr, "weight_decay": 0.0}`; C is trained with the optimizer's defaults.
`freeze_A` turns off gradients of the state matrix (Lambda, and P for S4).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

REAL_FLOOR = 1e-4  # state-spaces/s4 `inv_transform` clamps -Re(Lambda) to at least 1e-4


def ssm_parameter(value: Tensor, lr: float, frozen: bool = False) -> nn.Parameter:
    """A parameter tagged with the SSM optimizer settings (own lr, no weight decay)."""
    param = nn.Parameter(value, requires_grad=not frozen)
    param._optim = {"lr": lr, "weight_decay": 0.0}
    return param


def log_uniform_dt(shape: tuple[int, ...], dt_min: float, dt_max: float) -> Tensor:
    """log dt ~ U[log dt_min, log dt_max], real of the default dtype, of the given shape."""
    u = torch.rand(*shape, dtype=torch.get_default_dtype())
    return u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)


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
        self,
        Lambda: np.ndarray,
        B: np.ndarray,
        channels: int,
        dt_min: float,
        dt_max: float,
        lr: float,
        freeze_A: bool,
    ):
        """Lambda (H, N2), B (H, N2) complex initial values; C channels (2 when bidirectional)."""
        super().__init__()
        H, N2 = Lambda.shape
        self.H, self.N2, self.channels = H, N2, channels
        dtype = torch.get_default_dtype()
        neg_re = np.maximum(-Lambda.real, REAL_FLOOR)
        self.log_dt = ssm_parameter(log_uniform_dt((H,), dt_min, dt_max), lr)
        self.log_A_real = ssm_parameter(torch.as_tensor(np.log(neg_re), dtype=dtype), lr, freeze_A)
        self.A_imag = ssm_parameter(torch.as_tensor(Lambda.imag, dtype=dtype), lr, freeze_A)
        self.B = ssm_parameter(as_complex_param_data(B), lr)
        C = torch.randn(channels, H, N2, dtype=complex_dtype())  # (C, H, N2)
        self.C = nn.Parameter(torch.view_as_real(C).clone())

    def dt(self) -> Tensor:
        """(H,) real step sizes."""
        return torch.exp(self.log_dt)

    def Lambda(self) -> Tensor:
        """(H, N2) complex diagonal of the state matrix."""
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def B_c(self) -> Tensor:
        """(H, N2) complex."""
        return torch.view_as_complex(self.B)

    def C_c(self) -> Tensor:
        """(C, H, N2) complex."""
        return torch.view_as_complex(self.C)

    def frequency_response(self, L: int) -> Tensor:
        """(C, H, L + 1) complex: the kernel's transfer function on the 2L-point grid of the
        zero-padded convolution, rfft(kernel(L), n=2L)."""
        return torch.fft.rfft(self(L), n=2 * L)
