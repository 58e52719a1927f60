"""The SSM layer: FFT convolution with a kernel, D skip, activation, dropout, GLU output projection.

As the S4 reference block (state-spaces/s4 `FFTConv` + `S4Block`), per channel h:

    y = drop_2(act(drop_1(k * u + D u))),   out = GLU(W y + b)  (W: Linear(H, 2H)),

drop_1 elementwise (FFTConv's own dropout; `conv_dropout`, off in HOPE's layer), drop_2 after
the activation (S4Block's), with one mask per (batch, channel) over all steps when tied
(`tie_dropout`: the reference's `DropoutNd`), both at the layer's rate. A `linear` layer is the
bare SSM, out = k * u + D u (the reference's `linear: true`: no activation, dropout or GLU).

where `*` is a linear convolution zero-padded to 2L (causal), or for a bidirectional layer the
sum of a causal kernel k0 and a second kernel k1 run on the reversed sequence and shifted by one
step, y_t = sum_{s<=t} k0[t-s] u_s + sum_{s>t} k1[s-t-1] u_s (the reference's padding layout).
HOPE's circular modes use an L-point circular convolution instead (see `models.kernels.hope`).
Under autocast the kernel and the convolution run in float32 and the result is cast back.

Shapes: input and output (B, H, L), channels first (the reference's `transposed=True` layout), so
the FFT runs along the contiguous last axis and no (B, L, H) <-> (B, H, L) copy is ever made.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common import UserError
from models.kernels.params import Recurrence, SSMMatrices

ACTIVATIONS = {
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def fft_conv(u: Tensor, k: Tensor, circular: bool) -> Tensor:
    """Convolve u (B, H, L) with the kernel k (C, H, L), C in {1, 2}, -> (B, H, L).

    circular: y = irfft(rfft(u) rfft(k0)) on L points. Otherwise linear (zero-padded to 2L), with
    the second channel, if any, applied anti-causally as described in the module docstring.
    """
    L = u.shape[-1]
    if circular:
        return torch.fft.irfft(torch.fft.rfft(u, n=L) * torch.fft.rfft(k[0], n=L), n=L)
    two_sided = F.pad(k[0], (0, L))  # (H, 2L)
    if k.shape[0] == 2:
        two_sided = two_sided + F.pad(k[1].flip(-1), (L, 0))
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(two_sided, n=2 * L), n=2 * L)
    return y[..., :L]  # (B, H, L)


class TiedDropout(nn.Module):
    """Dropout with one Bernoulli(1 - p) mask per (batch, channel), shared by every step.

    x (B, H, *) -> x * m / (1 - p), m (B, H, 1, ...) (state-spaces/s4 `DropoutNd(tie=True)`);
    the identity in eval mode or at p = 0.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (*x.shape[:2], *([1] * (x.dim() - 2)))  # (B, H, 1, ...)
        keep = torch.rand(shape, device=x.device) < 1.0 - self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


def make_dropout(p: float, tied: bool) -> nn.Module:
    """`TiedDropout(p)` or the elementwise `nn.Dropout(p)`."""
    return TiedDropout(p) if tied else nn.Dropout(p)


def _rename_sequential_keys(state_dict: dict, prefix: str, *args) -> None:
    """Read checkpoints written while the projection was `Sequential(Linear, GLU)` (keys
    `<prefix>0.weight`, `<prefix>0.bias`): runs started before the channels-first layout resume."""
    for name in ("weight", "bias"):
        old = f"{prefix}0.{name}"
        if old in state_dict:
            state_dict[f"{prefix}{name}"] = state_dict.pop(old)


class ChannelGLU(nn.Module):
    """The GLU output projection over the channel axis: (B, H, *) -> (B, H, *).

    z = W y + b with W (2H, H) (initialized as `nn.Linear(H, 2H)`), out = z[:H] * sigmoid(z[H:])
    per position: the reference's `Linear(H, 2H)` followed by `GLU`, applied channels first.
    """

    def __init__(self, d_model: int):
        super().__init__()
        linear = nn.Linear(d_model, 2 * d_model)
        self.weight = linear.weight  # (2H, H)
        self.bias = linear.bias  # (2H,)
        self._register_load_state_dict_pre_hook(_rename_sequential_keys)

    def forward(self, y: Tensor) -> Tensor:
        if y.dim() == 2:  # (B, H): one step of the recurrence
            return F.glu(F.linear(y, self.weight, self.bias), dim=-1)
        return F.glu(F.conv1d(y, self.weight.unsqueeze(-1), self.bias), dim=1)  # (B, H, L)


class SSMLayer(nn.Module):
    """One SSM layer around a kernel module (`models.kernels`); input and output (B, H, L)."""

    def __init__(
        self,
        ssm: nn.Module,
        d_model: int,
        bidirectional: bool,
        dropout: float,
        activation: str,
        *,
        tie_dropout: bool,
        conv_dropout: bool,
        linear: bool,
    ):
        """dropout: the rate of both dropouts; tie_dropout: tie the one after the activation;
        conv_dropout: also drop the convolution output before the activation (elementwise);
        linear: the bare SSM y = k * u + D u (no GLU projection; needs activation `identity`
        and dropout 0, the reference's `linear: true` of its delay experiment)."""
        super().__init__()
        if linear and (activation != "identity" or dropout):
            raise UserError(
                "a linear layer (backbone.linear=true) has no activation and no dropout, got "
                f"activation={activation!r}, dropout={dropout}; set "
                "model.layer.activation=identity and backbone.dropout=0"
            )
        self.ssm = ssm
        self.d_model = d_model
        self.bidirectional = bidirectional
        self.D = nn.Parameter(torch.randn(d_model))  # skip term, N(0, 1) as the reference
        self.conv_dropout = nn.Dropout(dropout) if conv_dropout else nn.Identity()
        self.activation = ACTIVATIONS[activation]()
        self.dropout = make_dropout(dropout, tie_dropout)
        self.output_linear = nn.Identity() if linear else ChannelGLU(d_model)
        self._recurrence: Recurrence | None = None

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, L) -> (B, H, L)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            u = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # (B, H, L)
            k = self.ssm(u.shape[-1]).to(u.dtype)  # (C, H, L)
            y = fft_conv(u, k, self.ssm.circular) + u * self.D.to(u.dtype).unsqueeze(-1)
            y = y.to(x.dtype)  # (B, H, L)
        return self.output_linear(self.dropout(self.activation(self.conv_dropout(y))))

    def kernel(self, L: int) -> Tensor:
        """(C, H, L) real time-domain kernel; C = 2 when bidirectional."""
        return self.ssm(L)

    def frequency_response(self, L: int) -> Tensor:
        """(C, H, L') complex transfer function on the points the convolution uses."""
        return self.ssm.frequency_response(L)

    def ssm_matrices(self, L: int) -> SSMMatrices:
        """Dense continuous-time system of the kernel (S4 and S4D layers only)."""
        if not hasattr(self.ssm, "ssm_matrices"):
            raise UserError("ssm_matrices is defined for S4 and S4D layers only, not for HOPE")
        return self.ssm.ssm_matrices(L)

    def _check_recurrent(self) -> None:
        if not hasattr(self.ssm, "recurrence"):
            raise UserError("recurrent mode is defined for S4 and S4D layers only, not for HOPE")
        if self.bidirectional:
            raise UserError(
                "a bidirectional layer cannot run as a recurrence (its output depends on future "
                "inputs); set bidirectional: false to use step()"
            )

    @torch.no_grad()
    def default_state(self, batch: int) -> Tensor:
        """Zero state (batch, H, N) complex; snapshots the discretized system used by `step`.

        Call it again after the parameters change. For S4 the recurrence uses the C of the length
        of the last kernel computed (the C tilde parameterization, `models.kernels.dplr`).
        """
        self._check_recurrent()
        self._recurrence = self.ssm.recurrence()
        N = self._recurrence.dB.shape[-1]
        dB = self._recurrence.dB
        return torch.zeros(batch, self.d_model, N, dtype=dB.dtype, device=dB.device)

    @torch.no_grad()
    def step(self, u: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One time step: u (B, H) -> (y (B, H), next state (B, H, N))."""
        self._check_recurrent()
        if self._recurrence is None:
            raise UserError("call default_state(batch) before step()")
        y, state = self._recurrence.step(u, state)
        y = y.to(u.dtype) + u * self.D.to(u.dtype)
        return self.output_linear(self.dropout(self.activation(self.conv_dropout(y)))), state
