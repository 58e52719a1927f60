"""The FFT-convolution floor: an SSM layer whose kernel is a fixed learned tensor.

The floor is the time an SSM layer would take if making its kernel were free: the very same
`models.layer.SSMLayer` (FFT convolution `models.layer.fft_conv`, D skip, activation, dropout,
GLU projection) with its kernel module swapped for `FixedKernel`, a learned (C, H, L) tensor
that `forward(L)` returns as is. Everything but the kernel generation is shared code, so the
layer-to-floor ratio measures the kernel generation alone.
"""

import torch
from torch import Tensor, nn


class FixedKernel(nn.Module):
    """A learned time-domain kernel (C, H, L); `forward(L)` returns it (L must match)."""

    def __init__(self, kernel: Tensor, circular: bool):
        super().__init__()
        self.weight = nn.Parameter(kernel.detach().clone())  # (C, H, L)
        self.circular = circular

    def forward(self, L: int) -> Tensor:
        if self.weight.shape[-1] != L:
            raise ValueError(f"this floor kernel has length {self.weight.shape[-1]}, not {L}")
        return self.weight  # (C, H, L)


def floor_layer(layer: nn.Module, length: int) -> nn.Module:
    """Turn `layer` (an `SSMLayer`) into its floor, in place: its kernel module becomes a
    `FixedKernel` holding its current `kernel(length)`. Returns the same layer."""
    with torch.no_grad():
        kernel = layer.kernel(length)  # (C, H, L)
    layer.ssm = FixedKernel(kernel, layer.ssm.circular)
    return layer


def floor_model(model: nn.Module, length: int) -> nn.Module:
    """Turn every SSM layer of `model.layers` into its floor, in place. Returns the same model."""
    for layer in model.layers:
        floor_layer(layer, length)
    return model
