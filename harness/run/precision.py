"""Numeric precision of a training run or a benchmark case: `fp32`, `tf32` or `bf16`.

- fp32: float32 math everywhere; TF32 is switched off for matmuls and cuDNN convolutions (the
  layers' GLU projection is a 1x1 convolution, which cuDNN would otherwise run in TF32).
- tf32: float32 storage with TF32 tensor-core math for the matmuls and convolutions (encoder,
  GLU projections, decoder) on Ampere and later GPUs; kernel generation and FFTs are unaffected.
- bf16: bf16 autocast (the caller opens `torch.autocast`); the SSM layers keep kernel
  generation and the FFT convolution in float32 (`models.layer`). TF32 is off.
The TF32 switches are process-wide torch settings: `set_tf32` sets both on every call.
"""

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def set_tf32(precision: str) -> None:
    """TF32 matmuls and cuDNN convolutions on for `tf32`, off for `fp32` and `bf16`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
