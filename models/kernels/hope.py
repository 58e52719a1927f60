"""HOPE kernel: a Hankel operator given by complex Markov parameters, sampled on a warped circle.

HOPE paper (arXiv 2405.13975) and its code (AnnanYu/HOPE-SSM, models/s4/HOPE_SSM.py): per channel,
Markov parameters h_1..h_M (M = d_state / 2) and a timescale dt define the transfer function
G(s) = sum_j h_j s^-j. It is sampled at the images of the roots of unity under the Moebius map

    s_k = ((1 + dt) w_k + dt - 1) / ((dt - 1) w_k + dt + 1),   w_k = exp(2 pi i k / n),

which maps the unit circle onto itself (bilinear transform with step dt), and the samples are used
as the frequency response of an FFT convolution: y = Re(ifft(fft(u) * G)). Since u is real, this
is the convolution of u with the real kernel Re(ifft(G)), which `forward` returns.

Modes (`mode`), each one- or two-sided (the layer's `bidirectional` switch):
  circular  one-sided: the causal revision of the reference, n = L samples and an L-point
            circular convolution (the response wraps around: late inputs leak into early
            outputs). Two-sided: the later (repository head) revision, two sets of (h, dt);
            G_1 at n = ceil(L/2) points and G_2 at n = floor(L/2) points give the L-point response
            [G_1, reverse(G_2)] (for even L exactly the reference), used circularly; its kernel is
            one circular (1, H, L) kernel whose second half holds the anti-causal taps.
  linear    n = 2L samples; the kernel is the first L taps of Re(ifft(G)) and the convolution is
            zero-padded to 2L, so it is strictly causal. Two-sided: a second (h, dt) set gives a
            second kernel run on the reversed sequence, as for S4 (kernel (2, H, L)).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from common import UserError
from models import hippo
from models.kernels import ops
from models.kernels.params import SSMTraining, as_complex_param_data, tagged_parameter
from models.options import Kernel, LayerOptions, check_choice

MODES = ("circular", "linear")


def moebius_nodes(dt: Tensor, n: int) -> Tensor:
    """(..., n) complex points s_k on the unit circle for dt (...,) (see the module docstring)."""
    k = torch.arange(n, dtype=torch.float64, device=dt.device)
    w = torch.polar(torch.ones_like(k), 2 * math.pi * k / n).to(dt.dtype)  # (n,) roots of unity
    d = dt.unsqueeze(-1)  # (..., 1)
    return ((1 + d) * w + d - 1) / ((d - 1) * w + d + 1)  # (..., n)


class HopeKernel(nn.Module):
    """HOPE convolution kernel; `forward(L)` -> (C, H, L) real.

    Parameters (both SSM parameters: own lr, weight decay 0): log_dt (S, H) (the unconstrained
    dt of `SSMTraining.dt`; lr_dt "base" trains it at the optimizer's lr) and the Markov
    parameters `markov` (S, H, M) complex (stored as a real view), S = 2 for a two-sided layer,
    else 1. `freeze_A` freezes the Markov parameters. HOPE has no C apart from its Markov
    parameters and no state matrix to share, so `lr_C` and `n_ssm` do not apply to it.
    """

    def __init__(self, markov: np.ndarray, mode: str, two_sided: bool, training: SSMTraining):
        """markov (S, H, M) complex initial Markov parameters; two_sided: layer bidirectional."""
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        S, H, _ = markov.shape
        self.mode, self.H, self.two_sided = mode, H, two_sided
        self.circular = mode == "circular"
        self.channels = 2 if two_sided and not self.circular else 1
        self.training_options = training
        self.log_dt = training.dt_parameter((S, H))
        markov_data = as_complex_param_data(markov)
        self.markov = tagged_parameter(markov_data, training.ssm_optim(), training.freeze_A)

    def _response(self, n: int, sets: slice = slice(None)) -> Tensor:
        """G of the parameter sets `sets` at their n Moebius nodes, (S', H, n) complex."""
        h = torch.view_as_complex(self.markov)[sets]  # (S', H, M)
        s = moebius_nodes(self.training_options.dt(self.log_dt[sets]).to(h.dtype), n)  # (S', H, n)
        G = ops.markov_response(h.flatten(0, 1), s.flatten(0, 1))  # (S' * H, n)
        return G.view(*h.shape[:2], n)

    def frequency_response(self, L: int) -> Tensor:
        """(C, H, L') complex samples the convolution uses; L' = 2L for mode linear, else L."""
        if not self.circular:
            return self._response(2 * L)  # (C, H, 2L)
        if not self.two_sided:
            return self._response(L)  # (1, H, L)
        G1 = self._response((L + 1) // 2, slice(0, 1))  # (1, H, ceil(L/2))
        G2 = self._response(L // 2, slice(1, 2))  # (1, H, floor(L/2))
        return torch.cat([G1, G2.flip(-1)], dim=-1)  # (1, H, L)

    def forward(self, L: int) -> Tensor:
        return torch.fft.ifft(self.frequency_response(L)).real[..., :L]  # (C, H, L)


@dataclass(frozen=True)
class HopeOptions(LayerOptions):
    """The HOPE layer options: `LayerOptions` at the HOPE reference's defaults and the mode."""

    dt_min: float = 0.0001  # the HOPE reference's default (HOPE_SSM_Kernel dt_min)
    conv_dropout: bool = False  # the HOPE reference drops after the activation only
    mode: str = "circular"  # circular | linear (see the module docstring)

    def validate(self) -> None:
        super().validate()
        check_choice("mode", self.mode, MODES)

    def validate_width(self, d_model: int) -> None:
        """Nothing to check: HOPE keeps Markov parameters per channel (n_ssm is not used)."""


@dataclass(frozen=True)
class HopeLegsOptions(HopeOptions):
    """HOPE-LegS: the step at which the Markov parameters sample LegS."""

    legs_horizon: float = 1.0  # the Markov parameters sample LegS with step legs_horizon / M

    def validate(self) -> None:
        super().validate()
        if self.legs_horizon <= 0:
            raise UserError(f"layer option legs_horizon={self.legs_horizon} must be positive")


def markov_init(init: str, opts: HopeOptions, sets: int, H: int) -> np.ndarray:
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


def build(init: str, opts: HopeOptions, H: int, l_max: int | None) -> HopeKernel:
    """HOPE: Markov parameters per channel (two sets when bidirectional) from the rule `init`."""
    sets = 2 if opts.bidirectional else 1
    h = markov_init(init, opts, sets, H)
    return HopeKernel(h, opts.mode, opts.bidirectional, opts.training())


KERNEL = Kernel("hope", build)
"""HOPE's kernel kind (run tag `kernel=hope`)."""
