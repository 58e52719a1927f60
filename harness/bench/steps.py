"""The steps the benchmark times: kernel generation, one layer forward+backward, one training step.

Each builder makes its module and inputs on the device once (seeded) and returns a closure that
runs one step; `harness.bench.timing.measure` calls it. `name` is a registered model or `floor`
(`harness.bench.floor`: the same layer or model with every kernel a fixed learned tensor).

- kernel: `layer.kernel(L)` forward and backward (kernel generation alone, fp32 always).
- layer:  `layer(x)` forward and backward, x (B, H, L) with gradient, random output gradient.
- model:  one optimizer step of `models.build_model` (cross-entropy, AdamW over
          `models.param_groups`) on random real inputs (B, L, d_input) and labels.
`dtype` is `fp32`, `tf32` (fp32 storage, TF32 matmuls) or `bf16` (bf16 autocast; the layers
keep kernel generation and FFT convolution in fp32).
"""

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import models
from harness.bench import floor as bench_floor

FLOOR = "floor"


@dataclass(frozen=True)
class Shape:
    """Batch B, model width H, state size N, length L (and, for the model suite, its backbone)."""

    batch: int
    d_model: int
    d_state: int
    length: int
    backbone: Mapping[str, Any] = field(default_factory=dict)
    d_input: int = 3
    d_output: int = 10


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `bf16`, a no-op otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


def _layer(name: str, shape: Shape, floor_of: str, layer_options: Mapping[str, Any]) -> nn.Module:
    if name == FLOOR:
        base = models.build_layer(floor_of, shape.d_model, shape.d_state, **layer_options)
        return bench_floor.floor_layer(base, shape.length)
    return models.build_layer(name, shape.d_model, shape.d_state, **layer_options)


def kernel_step(
    name: str, shape: Shape, device: torch.device, layer_options: Mapping[str, Any]
) -> Callable[[], None]:
    """Forward and backward of `layer.kernel(L)` for a registered layer."""
    torch.manual_seed(0)
    layer = models.build_layer(name, shape.d_model, shape.d_state, **layer_options).to(device)
    with torch.no_grad():
        out_grad = torch.randn_like(layer.kernel(shape.length))  # (C, H, L)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        layer.kernel(shape.length).backward(out_grad)

    return step


def layer_step(
    name: str,
    shape: Shape,
    dtype: str,
    device: torch.device,
    floor_of: str,
    layer_options: Mapping[str, Any],
    compile_module: bool = False,
) -> Callable[[], None]:
    """Forward and backward of one layer on x (B, H, L)."""
    torch.manual_seed(0)
    layer = _layer(name, shape, floor_of, layer_options).to(device)
    run = torch.compile(layer) if compile_module else layer
    x = torch.randn(shape.batch, shape.d_model, shape.length, device=device, requires_grad=True)
    out_grad = torch.randn(shape.batch, shape.d_model, shape.length, device=device)  # (B, H, L)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        with autocast(device, dtype):
            y = run(x)  # (B, H, L)
        y.backward(out_grad.to(y.dtype))

    return step


def model_step(
    name: str,
    shape: Shape,
    dtype: str,
    device: torch.device,
    floor_of: str,
    compile_module: bool = False,
    lr: float = 0.01,
    weight_decay: float = 0.05,
) -> Callable[[], torch.Tensor]:
    """One AdamW training step of a whole classifier; the step returns the (detached) loss."""
    torch.manual_seed(0)
    base = floor_of if name == FLOOR else name
    backbone = dict(shape.backbone)
    backbone["layer"] = {**backbone.get("layer", {}), "d_state": shape.d_state}
    model = models.build_model(
        base, shape.d_input, shape.d_output, d_model=shape.d_model, **backbone
    )
    if name == FLOOR:
        model = bench_floor.floor_model(model, shape.length)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(models.param_groups(model, lr, weight_decay), lr=lr)
    run = torch.compile(model) if compile_module else model
    x = torch.randn(shape.batch, shape.length, shape.d_input, device=device)  # (B, L, d_input)
    y = torch.randint(0, shape.d_output, (shape.batch,), device=device)  # (B,)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = F.cross_entropy(run(x).float(), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step
