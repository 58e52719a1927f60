"""S4D kernel: diagonal state matrix, ZOH (default) or bilinear discretization, Vandermonde product.

S4D paper (arXiv 2206.11893), eqs. (4)-(5): with Lambda diagonal and its conjugate half implicit,
    K_l = 2 Re( sum_n C_n Bbar_n Abar_n^l ),   l = 0, ..., L - 1,
    ZOH:      Abar = exp(dt Lambda),                    Bbar = (exp(dt Lambda) - 1)/Lambda B
    bilinear: Abar = (1 + dt Lambda/2)/(1 - dt Lambda/2), Bbar = dt/(1 - dt Lambda/2) B
computed as `ops.vandermonde_conj(C Bbar, log Abar, L)`.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from models import hippo
from models.kernels import ops
from models.kernels.params import ConjugatePairSSM, Recurrence, SSMMatrices
from models.options import Kernel, LayerOptions, check_b_clip, check_choice

DISCRETIZATIONS = ("zoh", "bilinear")


class DiagonalKernel(ConjugatePairSSM):
    """S4D convolution kernel; `forward(L)` -> (C, H, L) real. Parameters: `ConjugatePairSSM`."""

    circular = False

    def __init__(self, *args, disc: str = "zoh", **kwargs):
        """Arguments of `ConjugatePairSSM`, plus the discretization `disc` ("zoh" | "bilinear")."""
        super().__init__(*args, **kwargs)
        if disc not in DISCRETIZATIONS:
            raise ValueError(f"disc must be one of {DISCRETIZATIONS}, got {disc!r}")
        self.disc = disc

    def _discrete(self) -> tuple[Tensor, Tensor]:
        """(log Abar (H, N2), Bbar (H, N2)) complex."""
        dt = self.dt()[:, None]  # (H, 1)
        Lambda = self.Lambda()  # (H, N2)
        dtA = dt * Lambda
        if self.disc == "zoh":
            return dtA, torch.expm1(dtA) / Lambda * self.B_c()
        return torch.log((1 + dtA / 2) / (1 - dtA / 2)), dt / (1 - dtA / 2) * self.B_c()

    def forward(self, L: int) -> Tensor:
        log_Ab, Bb = self._discrete()
        return ops.vandermonde_conj(self.C_c() * Bb, log_Ab, L)  # (C, H, L)

    def ssm_matrices(self, L: int) -> SSMMatrices:
        """A = diag(Lambda) (C, H, N2, N2), B (C, H, N2), C = 2 C (the conjugate half folded in).

        `L` is unused (the diagonal kernel has no length-dependent C); kept for the common API.
        """
        shape = (self.channels, self.H, self.N2)
        return SSMMatrices(
            A=torch.diag_embed(self.Lambda()).expand(*shape, self.N2),
            B=self.B_c().expand(shape),
            C=2 * self.C_c(),
            dt=self.dt(),
            disc=self.disc,
        )

    def recurrence(self) -> Recurrence:
        """Diagonal recurrence, O(H N) per step."""
        log_Ab, Bb = self._discrete()
        return Recurrence(torch.exp(log_Ab), Bb, 2 * self.C_c()[0], diagonal=True)


@dataclass(frozen=True)
class DiagonalOptions(LayerOptions):
    """The S4D layer options: `LayerOptions` and the discretization."""

    disc: str = "zoh"  # zoh | bilinear

    def validate(self) -> None:
        super().validate()
        check_choice("disc", self.disc, DISCRETIZATIONS)


@dataclass(frozen=True)
class DiagonalLegsOptions(DiagonalOptions):
    """S4D-LegS: the diagonal of DPLR-LegS, B clipped as S4's."""

    b_clip: float | None = 2.0  # as DPLROptions (the reference clips the S4D-LegS B too)

    def validate(self) -> None:
        super().validate()
        check_b_clip(self.b_clip)


@dataclass(frozen=True)
class DiagonalRandomOptions(DiagonalOptions):
    """S4D with a random state matrix: how B is drawn."""

    b_init: str = "ones"  # ones (reference B_init="constant") | normal: B ~ CN(0, 1)

    def validate(self) -> None:
        super().validate()
        check_choice("b_init", self.b_init, hippo.B_INITS)


def build(init: str, opts: DiagonalOptions, H: int, l_max: int | None) -> DiagonalKernel:
    """S4D: S = n_ssm (default H) diagonal systems (Lambda, B) of the init rule `init`."""
    extra = {key: getattr(opts, key) for key in ("b_clip", "b_init") if hasattr(opts, key)}
    Lambda, B = hippo.diagonal_init(init, opts.d_state, opts.n_ssm or H, **extra)
    channels = 2 if opts.bidirectional else 1
    return DiagonalKernel(Lambda, B, H, channels, opts.training(), disc=opts.disc)


KERNEL = Kernel("s4d", build)
"""S4D's kernel kind (run tag `kernel=s4d`)."""
