"""The classifier around the SSM layers: encoder, residual stack, pooling decoder.

Follows the isotropic backbone that state-spaces/s4 trains on LRA (`SequenceModel` with
`SequenceResidualBlock`, decoders of `src/tasks/decoders.py`):

    u = encoder(x)                                   # (B, L, H), then moved to (B, H, L)
    for each of n_layers blocks:
        prenorm:  u = u + dropout(layer(norm(u)))
        postnorm: u = norm(u + dropout(layer(u)))
    u = final_norm(u)          (prenorm only; a post-norm stack already ends on a norm)
    logits = Linear(H, d_output)(pool(u))            # (B, d_output) or (B, L', d_output)

With `linear` (the fully linear model of state-spaces/s4 `experiment/synthetic/s4-delay`: layer
`linear: true`, `norm: null`, `residual: null`) each block is the bare SSM layer, u = k * u + D u
(no norm, residual, activation, dropout or GLU), so encoder, stack and readout are one linear
map; with `pooling: none` the readout is per step.

The residual stream is channels first, (B, H, L), as the reference's `transposed=True` stack:
the layers' FFT runs along the contiguous last axis and the stream is transposed once after the
encoder and once (as a view) before pooling. `norm: batch` is BatchNorm1d over the channel axis
H, with statistics over batch and steps; `norm: layer` is LayerNorm over H at each step.
With `dual` (LRA Retrieval) both documents of a pair go through the same encoder and stack as
one batch of 2B sequences, are pooled, and a two-tower head classifies the pair
(`models.pooling.RetrievalHead`).
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from common import UserError
from models.encoders import ENCODERS, Encoder
from models.layer import make_dropout
from models.pooling import POOLINGS, RetrievalHead, pool
from models.registry import build_layer

NORMS = ("batch", "layer")


@dataclass(frozen=True)
class BackboneConfig:
    """Options of `build_model` (the `backbone` keys of docs/interfaces.md).

    d_model: width H of the residual stream. n_layers: residual blocks. dropout: on each block's
    output before the residual add, and the layer's own dropout unless `layer` sets one.
    tie_dropout: one mask per (batch, channel) for all steps, in the residual dropout and (unless
    `layer` sets it) the layer's (the reference's `DropoutNd`; `tie_dropout: true` in its S4
    configs). prenorm: norm before the layer (else after the residual add). norm: `batch` |
    `layer`. encoder: `linear` (real inputs) | `embedding` (tokens). pooling: `mean` | `last` |
    `none`. pool_start: steps before it are ignored by the decoder. dual: two-tower Retrieval head.
    pad_id: token id excluded from pooling, or None. l_max: the task's sequence length (S4 kernels
    tie C tilde to it), or None. linear: blocks are bare linear SSM layers (module docstring;
    needs dropout 0 and the layer's activation `identity`). layer: overrides for `build_layer`.
    """

    d_model: int = 128
    n_layers: int = 4
    dropout: float = 0.0
    tie_dropout: bool = False
    prenorm: bool = True
    norm: str = "batch"
    encoder: str = "linear"
    pooling: str = "mean"
    pool_start: int = 0
    dual: bool = False
    pad_id: int | None = None
    l_max: int | None = None
    linear: bool = False
    layer: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "BackboneConfig":
        """Build from keyword options; an unknown key raises `UserError` naming it."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise UserError(
                f"unknown model option(s) {unknown}; valid backbone options are: {', '.join(valid)}"
            )
        return cls(**options)

    def __post_init__(self) -> None:
        _check_int("d_model", self.d_model, minimum=1)
        _check_int("n_layers", self.n_layers, minimum=1)
        _check_int("pool_start", self.pool_start, minimum=0)
        if self.pad_id is not None:
            _check_int("pad_id", self.pad_id, minimum=0)
        if self.l_max is not None:
            _check_int("l_max", self.l_max, minimum=1)
        for key in ("prenorm", "dual", "tie_dropout", "linear"):
            if not isinstance(getattr(self, key), bool):
                raise UserError(f"model option {key}={getattr(self, key)!r} must be true or false")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float):
            raise UserError(f"model option dropout={self.dropout!r} must be a number in [0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model option dropout={self.dropout!r} must be in [0, 1)")
        _check_choice("norm", self.norm, NORMS)
        _check_choice("encoder", self.encoder, ENCODERS)
        _check_choice("pooling", self.pooling, POOLINGS)
        if not isinstance(self.layer, Mapping):
            raise UserError(f"model option layer={self.layer!r} must be a mapping of layer options")
        if self.dual and self.pooling == "none":
            raise UserError("model option dual=true needs pooling 'mean' or 'last', not 'none'")
        if self.pad_id is not None and self.encoder != "embedding":
            raise UserError("model option pad_id is only meaningful with encoder='embedding'")


def _check_int(key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"model option {key}={value!r} must be an integer >= {minimum}")


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"model option {key}={value!r} is unknown; use one of {choices}")


class ChannelNorm(nn.Module):
    """BatchNorm or LayerNorm over the channel axis of (B, H, L) features."""

    def __init__(self, kind: str, d_model: int):
        super().__init__()
        self.kind = kind
        self.norm = nn.BatchNorm1d(d_model) if kind == "batch" else nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch":
            return self.norm(x)  # (B, H, L), statistics over batch and steps
        # LayerNorm wants H last: normalize the (B, L, H) view, hand back a contiguous (B, H, L)
        return self.norm(x.transpose(-1, -2)).transpose(-1, -2).contiguous()  # (B, H, L)


class ResidualBlock(nn.Module):
    """One block of the stack, (B, H, L) -> (B, H, L), norm placed before or after the layer."""

    def __init__(
        self, layer: nn.Module, norm: ChannelNorm, dropout: float, prenorm: bool, tied: bool
    ):
        super().__init__()
        self.layer = layer
        self.norm = norm
        self.drop = make_dropout(dropout, tied)
        self.prenorm = prenorm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x) if self.prenorm else x  # (B, H, L)
        y = x + self.drop(self.layer(y))  # (B, H, L)
        return y if self.prenorm else self.norm(y)


class LinearBlock(nn.Module):
    """A block of the fully linear stack: the bare layer, (B, H, L) -> (B, H, L)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class SequenceClassifier(nn.Module):
    """Encoder, residual stack of SSM layers, pooling decoder; see the module docstring.

    forward: x (B, L) int64 tokens, (B, L, d_input) float, or for `dual` (B, 2, L) int64 (or
    (B, 2, L, d_input) float) -> (B, d_output) for `mean` / `last`, (B, L - pool_start,
    d_output) for `none`.
    """

    def __init__(self, name: str, d_input: int, d_output: int, config: BackboneConfig):
        super().__init__()
        self.config = config
        h = config.d_model
        layer_options = dict(config.layer)
        for key in ("dropout", "tie_dropout"):  # the layer inherits the block's settings
            if layer_options.get(key) is None:
                layer_options[key] = getattr(config, key)
        self.encoder = Encoder(config.encoder, d_input, h)
        layers = [
            build_layer(name, h, l_max=config.l_max, linear=config.linear, **layer_options)
            for _ in range(config.n_layers)
        ]
        self.blocks = nn.ModuleList(
            LinearBlock(layer)
            if config.linear
            else ResidualBlock(
                layer,
                ChannelNorm(config.norm, h),
                config.dropout,
                config.prenorm,
                config.tie_dropout,
            )
            for layer in layers
        )
        with_norm = config.prenorm and not config.linear
        self.final_norm = ChannelNorm(config.norm, h) if with_norm else nn.Identity()
        if config.dual:
            self.head = RetrievalHead(h, d_output)
        else:
            self.head = nn.Linear(h, d_output)

    @property
    def backbone_modules(self) -> list[nn.Module]:
        """The residual stack and its final norm: the reference's `SequenceModel`, inside which
        alone its optimizer hook exempts biases and norms from weight decay (`models.optim`)."""
        return [self.blocks, self.final_norm]

    @property
    def layers(self) -> list[nn.Module]:
        """The SSM layers of the stack, first to last (for kernel and spectrum analysis)."""
        return [block.layer for block in self.blocks]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded and processed features (B, L, H) of single-tower inputs (a transposed view
        of the (B, H, L) residual stream)."""
        u = self.encoder(x).transpose(-1, -2).contiguous()  # (B, H, L)
        for block in self.blocks:
            u = block(u)  # (B, H, L)
        return self.final_norm(u).transpose(-1, -2)  # (B, L, H)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of single-tower inputs: (B, H), or (B, L - pool_start, H) for `none`."""
        length = x.shape[1]
        if self.config.pool_start >= length:
            raise UserError(
                f"model option pool_start={self.config.pool_start} must be smaller than the "
                f"sequence length {length}"
            )
        keep = None if self.config.pad_id is None else x != self.config.pad_id  # (B, L)
        return pool(self.features(x), self.config.pooling, self.config.pool_start, keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.dual:
            return self.head(self.pooled(x))  # (B, d_output) or (B, L', d_output)
        if x.dim() < 3 or x.shape[1] != 2:
            raise UserError(
                f"model option dual=true expects input pairs (B, 2, L), got {tuple(x.shape)}; "
                "set dual=false for single-sequence tasks"
            )
        both = torch.cat([x[:, 0], x[:, 1]], dim=0)  # (2B, L) or (2B, L, d_input)
        x1, x2 = self.pooled(both).chunk(2, dim=0)  # (B, H) each
        return self.head(x1, x2)  # (B, d_output)


def build_model(name: str, d_input: int, d_output: int, **backbone: Any) -> SequenceClassifier:
    """A full classifier of registered SSM layer `name`; `backbone` keys as `BackboneConfig`."""
    config = BackboneConfig.from_options(backbone)
    return SequenceClassifier(name, d_input, d_output, config)
