"""Input encoders of the classifier: map the task's inputs to (B, L, H) features.

- `linear`: real-valued inputs (B, L, d_input) float -> nn.Linear(d_input, H) per step.
- `embedding`: token ids (B, L) int64 in [0, d_input) -> nn.Embedding(d_input, H).

A mismatch between the encoder and the inputs (tokens fed to `linear`, a token id outside the
vocabulary) is a configuration error and raises `common.UserError` naming the `encoder` key.
"""

import torch
from torch import nn

from common import UserError

ENCODERS = ("linear", "embedding")


class Encoder(nn.Module):
    """`linear` or `embedding` encoder from d_input (channels or vocabulary size) to d_model."""

    def __init__(self, kind: str, d_input: int, d_model: int):
        super().__init__()
        if kind not in ENCODERS:
            raise UserError(f"model option encoder={kind!r} is unknown; use one of {ENCODERS}")
        self.kind = kind
        self.d_input = d_input
        if kind == "linear":
            self.proj = nn.Linear(d_input, d_model)
        else:
            self.proj = nn.Embedding(d_input, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d_input) float for `linear`, (B, L) int64 for `embedding` -> (B, L, H)."""
        if self.kind == "linear":
            if not x.is_floating_point() or x.dim() != 3 or x.shape[-1] != self.d_input:
                raise UserError(
                    f"model option encoder='linear' expects float inputs (B, L, {self.d_input}), "
                    f"got {x.dtype} {tuple(x.shape)}; use encoder='embedding' for token inputs"
                )
            return self.proj(x)  # (B, L, H)
        if x.dtype != torch.int64 or x.dim() != 2:
            raise UserError(
                f"model option encoder='embedding' expects int64 token ids (B, L), got {x.dtype} "
                f"{tuple(x.shape)}; use encoder='linear' for real-valued inputs"
            )
        if x.numel() and (x.min() < 0 or x.max() >= self.d_input):
            raise UserError(
                f"model option encoder='embedding': token ids span [{int(x.min())}, "
                f"{int(x.max())}] but the vocabulary (d_input) has {self.d_input} entries; "
                "set d_input to the task's vocabulary size"
            )
        return self.proj(x)  # (B, L, H)
