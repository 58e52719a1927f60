"""Sequence-to-vector decoders of the classifier: pooling over steps and the Retrieval head.

Shapes: `y` (B, L, H) backbone features; `keep` (B, L) bool, True where a step holds a real
token (False at `pad_id` padding).

Pooling rules (`pooling` option of the backbone), all over the steps [pool_start, L):
- `mean`: average over the kept steps, y_b = sum_l keep[b, l] y[b, l] / sum_l keep[b, l].
  state-spaces/s4 pools LRA text and ListOps with `mode: pool, use_lengths: true` (Retrieval
  with `mode: pool`), i.e. the mean over the first `length` steps of each sequence; sequences
  are padded at the end, so masking the pad tokens gives the same mean.
- `last`: the last kept step (the reference's `mode: last` with lengths).
- `none`: every step, (B, L - pool_start, H), for per-step targets.
A sequence with no kept step in the window pools to the zero vector.

The two-tower head of LRA Retrieval (the NLI head of state-spaces/s4 `RetrievalHead`, after
Nystromformer's LRA code): features [x1, x2, x1 - x2, x1 * x2] -> Linear(4H, H) -> GELU ->
Linear(H, d_output).
"""

import torch
from torch import nn

POOLINGS = ("mean", "last", "none")


def pool(y: torch.Tensor, pooling: str, pool_start: int, keep: torch.Tensor | None) -> torch.Tensor:
    """Pool `y` (B, L, H) over steps [pool_start, L) -> (B, H); (B, L - pool_start, H) for `none`.

    `keep` (B, L) bool marks the steps that count (None: all of them); it is ignored by `none`.
    """
    y = y[:, pool_start:]  # (B, L', H)
    if pooling == "none":
        return y
    if keep is None:
        keep = torch.ones(y.shape[:2], dtype=torch.bool, device=y.device)  # (B, L')
    else:
        keep = keep[:, pool_start:]  # (B, L')
    weights = keep.to(y.dtype)  # (B, L')
    if pooling == "mean":
        count = weights.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
        return torch.einsum("bl,blh->bh", weights, y) / count  # (B, H)
    if pooling == "last":
        steps = torch.arange(y.shape[1], device=y.device)  # (L',)
        last = torch.where(keep, steps, -1).amax(dim=1)  # (B,), -1 when nothing is kept
        picked = y[torch.arange(y.shape[0], device=y.device), last.clamp(min=0)]  # (B, H)
        return picked * (last >= 0).to(y.dtype).unsqueeze(1)  # (B, H)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def retrieval_features(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The matching features of two pooled documents x1, x2 (B, H) -> (B, 4H)."""
    return torch.cat([x1, x2, x1 - x2, x1 * x2], dim=-1)  # (B, 4H)


class RetrievalHead(nn.Module):
    """Classify a pair of pooled documents (B, H), (B, H) -> logits (B, d_output)."""

    def __init__(self, d_model: int, d_output: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(4 * d_model, d_model),
            nn.GELU(),
            nn.Linear(d_model, d_output),
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.mlp(retrieval_features(x1, x2))  # (B, d_output)
