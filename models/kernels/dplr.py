"""S4 kernel: diagonal-plus-low-rank state matrix, bilinear discretization, Cauchy + Woodbury.

The state matrix is A = diag(Lambda) - p p^* (rank 1, conjugate halves restored as in
`models.hippo.DPLR`). With Abar, Bbar from the bilinear transform (S4 paper, eq. (3)), the
length-L kernel K_l = C Abar^l Bbar, l < L, has the truncated generating function at the L-th
roots of unity omega_k = exp(-2 pi i k / L) (S4 paper, Lemma C.2 / Appendix C.3):

    sum_{l<L} K_l omega^l = Ct (I - omega Abar)^-1 Bbar,         Ct = C (I - Abar^L)
                          = 2/(1 + omega) Ct (z/dt - A)^-1 B,    z = 2 (1 - omega)/(1 + omega).

As in the paper, Ct ("C tilde") is the trained parameter, so no matrix power is needed: the
effective C is C_T = Ct (I - Abar^T)^-1 for the length T that Ct is tied to (see `ssm_matrices`).
As state-spaces/s4 (`SSMKernelDPLR._setup_C` and `forward`), T is fixed by the first kernel call:
T = max(L, l_max) (l_max: the task's sequence length, when the model knows it); a kernel of any
L <= T is the first L taps of the length-T kernel, so batches padded to different lengths see one
and the same convolution; a longer L doubles T (Ct <- Ct (I + Abar^T), which keeps C_T). With
`c_init="c"` (the reference) C ~ CN(0, 1) is drawn and turned into Ct = C (I - Abar^T) at that
first call; with `c_init="ctilde"` Ct ~ CN(0, 1) is drawn directly (the two inits differ along
modes whose |Abar^T| is not small). The resolvent is
expanded with the Woodbury identity,
    Ct R B - (Ct R p)(p^* R B) / (1 + p^* R p),   R = (z/dt - diag(Lambda))^-1,
each term a Cauchy sum over conjugate pairs (`ops.cauchy_conj`), and an inverse real FFT of the L
samples gives K exactly.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models import hippo
from models.kernels import ops
from models.kernels.params import (
    ConjugatePairSSM,
    Recurrence,
    SSMMatrices,
    SSMTraining,
    as_complex_param_data,
    tagged_parameter,
    tile_channels,
)
from models.options import Kernel, LayerOptions, check_b_clip, check_choice

C_INITS = ("c", "ctilde")


def bilinear(A: Tensor, B: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """Dense bilinear discretization. A (..., N, N), B (..., N), dt broadcastable to (...,).

    Abar = (I - dt/2 A)^-1 (I + dt/2 A),  Bbar = (I - dt/2 A)^-1 dt B.
    """
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    half = (dt / 2).to(A.dtype)[..., None, None]
    left = eye - half * A  # (..., N, N)
    Ab = torch.linalg.solve(left, eye + half * A)
    Bb = torch.linalg.solve(left, (dt.to(A.dtype)[..., None] * B).unsqueeze(-1)).squeeze(-1)
    return Ab, Bb


class DPLRKernel(ConjugatePairSSM):
    """S4 convolution kernel; `forward(L)` -> (C, H, L) real.

    Parameters: those of `ConjugatePairSSM` plus P (1, S, N2) complex (low-rank term, SSM lr,
    frozen with `freeze_A`). C holds C tilde once the kernel has been called (see the module
    docstring); the buffer `l_kernel` is the length T it is tied to (0: not yet).
    """

    circular = False

    def __init__(
        self,
        Lambda: np.ndarray,
        P: np.ndarray,
        B: np.ndarray,
        H: int,
        channels: int,
        training: SSMTraining,
        c_init: str = "c",
        l_max: int | None = None,
    ):
        """Lambda (S, N2), P (1, S, N2), B (S, N2) complex initial values of S = n_ssm copies."""
        super().__init__(Lambda, B, H, channels, training)
        if c_init not in C_INITS:
            raise ValueError(f"c_init must be one of {C_INITS}, got {c_init!r}")
        self.c_init, self.l_max = c_init, l_max
        P_data = as_complex_param_data(P)
        self.P = tagged_parameter(P_data, training.ssm_optim(), training.freeze_A)
        self.register_buffer("l_kernel", torch.tensor(0))

    def P_c(self) -> Tensor:
        """(1, H, N2) complex."""
        return tile_channels(torch.view_as_complex(self.P), self.H, 1)

    def _tied_length(self, L: int) -> int:
        """The length T that C tilde is tied to once a kernel of length L has been made."""
        T = int(self.l_kernel) or max(L, self.l_max or 0)
        while 0 < T < L:
            T *= 2
        return T

    @torch.no_grad()
    def _tie(self, L: int) -> None:
        """Tie C tilde to `_tied_length(L)`: the first call converts a drawn C (c_init "c"),
        later calls double T until T >= L; in complex128, written back in the parameter's dtype."""
        T = int(self.l_kernel)
        if T >= L:
            return
        A, B = (x.to(torch.complex128) for x in self._dense())
        Ab, _ = bilinear(A, B, self.dt().double())  # (H, N, N)
        C = torch.cat([self.C_c(), self.C_c().conj()], -1).to(torch.complex128)  # (C, H, N)
        if T == 0:
            T = max(L, self.l_max or 0)
            if self.c_init == "c":  # Ct = C (I - Abar^T)
                C = C - torch.einsum("chn,hnm->chm", C, torch.linalg.matrix_power(Ab, T))
        while T < L:  # Ct <- Ct (I + Abar^T): I - Abar^2T = (I - Abar^T)(I + Abar^T)
            C = C + torch.einsum("chn,hnm->chm", C, torch.linalg.matrix_power(Ab, T))
            T *= 2
        self.C.copy_(torch.view_as_real(C[..., : self.N2]).to(self.C.dtype))
        self.l_kernel.fill_(T)

    def forward(self, L: int) -> Tensor:
        """(C, H, L) kernel: the first L taps of the kernel of the tied length T >= L."""
        self._tie(L)
        T = int(self.l_kernel)
        dt = self.dt()  # (H,)
        w = dt[:, None] * self.Lambda()  # (H, N2)
        P = self.P_c()[0]  # (H, N2)
        left = torch.cat([self.C_c(), P.conj().unsqueeze(0)])  # (C+1, H, N2): Ct rows, then p^*
        right = torch.stack([self.B_c(), P])  # (2, H, N2): B, then p
        v = left[:, None] * right[None] * dt[:, None].to(w.dtype)  # (C+1, 2, H, N2)
        # omega_k = exp(-i theta_k), theta_k = 2 pi k / T: z = 2 (1 - omega)/(1 + omega)
        # = 2i tan(theta/2) and 2/(1 + omega) = 1 + i tan(theta/2), formed in float64 so that z is
        # exactly imaginary (a rounded real part would be comparable to Re(dt Lambda) near DC)
        tan = torch.tan(math.pi * torch.arange(T // 2 + 1, dtype=torch.float64) / T)
        z = torch.complex(torch.zeros_like(tan), 2 * tan).to(device=w.device, dtype=w.dtype)
        r = ops.cauchy_conj(v, z, w)  # (C+1, 2, H, T//2+1)
        # split / unbind rather than slices: their backward assembles the gradient of r from the
        # parts instead of zero-filling a full copy of r per slice
        r_c, r_p = r.split([r.shape[0] - 1, 1])  # (C, 2, H, T//2+1), (1, 2, H, T//2+1)
        (ct_b, ct_p), (p_b, p_p) = r_c.unbind(1), r_p.unbind(1)
        k_f = ct_b - ct_p * p_b / (1 + p_p)  # (C, H, T//2+1)
        k_f = k_f * (1 + z / 2)  # 2 / (1 + omega)
        return torch.fft.irfft(k_f, n=T)[..., :L]  # (C, H, L)

    def _dense(self) -> tuple[Tensor, Tensor]:
        """Full conjugate-symmetric system: A (H, N, N) = diag(Lf) - pf pf^*, B (H, N), N = 2 N2."""
        Lf = torch.cat([self.Lambda(), self.Lambda().conj()], -1)  # (H, N)
        pf = torch.cat([self.P_c()[0], self.P_c()[0].conj()], -1)  # (H, N)
        A = torch.diag_embed(Lf) - pf.unsqueeze(-1) * pf.conj().unsqueeze(-2)  # (H, N, N)
        return A, torch.cat([self.B_c(), self.B_c().conj()], -1)

    def _effective_C(self, Ab: Tensor, L: int) -> Tensor:
        """The C the kernel of length L uses, (C, H, N) with conjugate halves restored:
        C_T = Ct (I - Abar^T)^-1, T = `_tied_length(L)`; before the first kernel call the drawn
        C itself (c_init "c"), or Ct when no length is known (L = 0, c_init "ctilde")."""
        C = torch.cat([self.C_c(), self.C_c().conj()], -1).to(Ab.dtype)  # (C, H, N)
        T = self._tied_length(L)
        if (int(self.l_kernel) == 0 and self.c_init == "c") or T == 0:
            return C
        eye = torch.eye(Ab.shape[-1], dtype=Ab.dtype, device=Ab.device)
        gram = (eye - torch.linalg.matrix_power(Ab, T)).transpose(-1, -2)  # (H, N, N)
        return torch.linalg.solve(gram, C.unsqueeze(-1)).squeeze(-1)  # (C, H, N)

    def ssm_matrices(self, L: int) -> SSMMatrices:
        """Dense (A, B, C_L) of the full N = d_state system; kernel(L) == Re(C_L Abar^l Bbar)."""
        A, B = self._dense()
        Ab, _ = bilinear(A, B, self.dt())
        C = self._effective_C(Ab, L)  # (C, H, N)
        shape = (self.channels, *A.shape)
        return SSMMatrices(
            A=A.expand(shape), B=B.expand(shape[:-1]), C=C, dt=self.dt(), disc="bilinear"
        )

    def recurrence(self) -> Recurrence:
        """Dense bilinear recurrence (O(H N^2) per step) with the C of the tied length.

        Built and run in complex128: C_L = Ct (I - Abar^L)^-1 is ill-conditioned along modes with
        |Abar| close to 1 (FouT's zero-frequency pair sits at Re(Lambda) = -1e-4), which single
        precision would turn into O(1) errors.
        """
        A, B = (x.to(torch.complex128) for x in self._dense())
        Ab, Bb = bilinear(A, B, self.dt().double())
        C = self._effective_C(Ab, int(self.l_kernel))[0]  # (H, N)
        return Recurrence(Ab, Bb, C, diagonal=False)


@dataclass(frozen=True)
class DPLROptions(LayerOptions):
    """The S4 layer options: `LayerOptions` and how C and B are drawn."""

    c_init: str = "c"  # c: draw C, C tilde = C (I - Abar^L) (reference) | ctilde: draw C tilde
    b_clip: float | None = 2.0  # clip Im(V^* B) to [-b_clip, b_clip] (reference); None: exact

    def validate(self) -> None:
        super().validate()
        check_choice("c_init", self.c_init, C_INITS)
        check_b_clip(self.b_clip)


def build(init: str, opts: DPLROptions, H: int, l_max: int | None) -> DPLRKernel:
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
    return DPLRKernel(Lambda, P, B, H, channels, opts.training(), opts.c_init, l_max)


KERNEL = Kernel("s4", build)
"""S4's kernel kind (run tag `kernel=s4`)."""
