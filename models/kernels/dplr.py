"""S4 kernel: diagonal-plus-low-rank state matrix, bilinear discretization, Cauchy + Woodbury.

The state matrix is A = diag(Lambda) - p p^* (rank 1, conjugate halves restored as in
`models.hippo.DPLR`). With Abar, Bbar from the bilinear transform (S4 paper, eq. (3)), the
length-L kernel K_l = C Abar^l Bbar, l < L, has the truncated generating function at the L-th
roots of unity omega_k = exp(-2 pi i k / L) (S4 paper, Lemma C.2 / Appendix C.3):

    sum_{l<L} K_l omega^l = Ct (I - omega Abar)^-1 Bbar,         Ct = C (I - Abar^L)
                          = 2/(1 + omega) Ct (z/dt - A)^-1 B,    z = 2 (1 - omega)/(1 + omega).

As in the paper, Ct ("C tilde") is the trained parameter, so no matrix power is needed: the
effective C of a length-L kernel is C_L = Ct (I - Abar^L)^-1 (see `ssm_matrices`). Ct starts as
CN(0, 1) (state-spaces/s4 draws C ~ CN(0, 1) and turns it into Ct on its first call; the two inits
differ only along modes whose |Abar^L| is not small). The resolvent is
expanded with the Woodbury identity,
    Ct R B - (Ct R p)(p^* R B) / (1 + p^* R p),   R = (z/dt - diag(Lambda))^-1,
each term a Cauchy sum over conjugate pairs (`ops.cauchy_conj`), and an inverse real FFT of the L
samples gives K exactly.
"""

import math

import numpy as np
import torch
from torch import Tensor

from models.kernels import ops
from models.kernels.params import (
    ConjugatePairSSM,
    Recurrence,
    SSMMatrices,
    as_complex_param_data,
    ssm_parameter,
)


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

    Parameters: those of `ConjugatePairSSM` plus P (1, H, N2) complex (low-rank term, SSM lr,
    frozen with `freeze_A`). C holds C tilde.
    """

    circular = False

    def __init__(
        self,
        Lambda: np.ndarray,
        P: np.ndarray,
        B: np.ndarray,
        channels: int,
        dt_min: float,
        dt_max: float,
        lr: float,
        freeze_A: bool,
    ):
        """Lambda (H, N2), P (1, H, N2), B (H, N2) complex initial values."""
        super().__init__(Lambda, B, channels, dt_min, dt_max, lr, freeze_A)
        self.P = ssm_parameter(as_complex_param_data(P), lr, freeze_A)
        # length whose effective C the recurrent mode reproduces (the last kernel length
        # computed); 0 means "never computed": C_L -> Ct as L -> infinity for a stable system
        self.register_buffer("l_kernel", torch.tensor(0))

    def P_c(self) -> Tensor:
        """(1, H, N2) complex."""
        return torch.view_as_complex(self.P)

    def forward(self, L: int) -> Tensor:
        """(C, H, L) kernel; records L as the length the recurrent mode reproduces."""
        self.l_kernel.fill_(L)
        dt = self.dt()  # (H,)
        w = dt[:, None] * self.Lambda()  # (H, N2)
        P = self.P_c()[0]  # (H, N2)
        left = torch.cat([self.C_c(), P.conj().unsqueeze(0)])  # (C+1, H, N2): Ct rows, then p^*
        right = torch.stack([self.B_c(), P])  # (2, H, N2): B, then p
        v = left[:, None] * right[None] * dt[:, None].to(w.dtype)  # (C+1, 2, H, N2)
        # omega_k = exp(-i theta_k), theta_k = 2 pi k / L: z = 2 (1 - omega)/(1 + omega)
        # = 2i tan(theta/2) and 2/(1 + omega) = 1 + i tan(theta/2), formed in float64 so that z is
        # exactly imaginary (a rounded real part would be comparable to Re(dt Lambda) near DC)
        tan = torch.tan(math.pi * torch.arange(L // 2 + 1, dtype=torch.float64) / L)
        z = torch.complex(torch.zeros_like(tan), 2 * tan).to(device=w.device, dtype=w.dtype)
        r = ops.cauchy_conj(v, z, w)  # (C+1, 2, H, L//2+1)
        # split / unbind rather than slices: their backward assembles the gradient of r from the
        # parts instead of zero-filling a full copy of r per slice
        r_c, r_p = r.split([r.shape[0] - 1, 1])  # (C, 2, H, L//2+1), (1, 2, H, L//2+1)
        (ct_b, ct_p), (p_b, p_p) = r_c.unbind(1), r_p.unbind(1)
        k_f = ct_b - ct_p * p_b / (1 + p_p)  # (C, H, L//2+1)
        k_f = k_f * (1 + z / 2)  # 2 / (1 + omega)
        return torch.fft.irfft(k_f, n=L)  # (C, H, L)

    def _dense(self) -> tuple[Tensor, Tensor]:
        """Full conjugate-symmetric system: A (H, N, N) = diag(Lf) - pf pf^*, B (H, N), N = 2 N2."""
        Lf = torch.cat([self.Lambda(), self.Lambda().conj()], -1)  # (H, N)
        pf = torch.cat([self.P_c()[0], self.P_c()[0].conj()], -1)  # (H, N)
        A = torch.diag_embed(Lf) - pf.unsqueeze(-1) * pf.conj().unsqueeze(-2)  # (H, N, N)
        return A, torch.cat([self.B_c(), self.B_c().conj()], -1)

    def _effective_C(self, Ab: Tensor, L: int) -> Tensor:
        """C_L = Ct (I - Abar^L)^-1, (C, H, N) with conjugate halves restored; L = 0 gives Ct."""
        Ct = torch.cat([self.C_c(), self.C_c().conj()], -1).to(Ab.dtype)  # (C, H, N)
        if L == 0:
            return Ct
        eye = torch.eye(Ab.shape[-1], dtype=Ab.dtype, device=Ab.device)
        gram = (eye - torch.linalg.matrix_power(Ab, L)).transpose(-1, -2)  # (H, N, N)
        return torch.linalg.solve(gram, Ct.unsqueeze(-1)).squeeze(-1)  # (C, H, N)

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
        """Dense bilinear recurrence (O(H N^2) per step) with C for length `l_kernel`.

        Built and run in complex128: C_L = Ct (I - Abar^L)^-1 is ill-conditioned along modes with
        |Abar| close to 1 (FouT's zero-frequency pair sits at Re(Lambda) = -1e-4), which single
        precision would turn into O(1) errors.
        """
        A, B = (x.to(torch.complex128) for x in self._dense())
        Ab, Bb = bilinear(A, B, self.dt().double())
        C = self._effective_C(Ab, int(self.l_kernel))[0]  # (H, N)
        return Recurrence(Ab, Bb, C, diagonal=False)
