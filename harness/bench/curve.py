"""bf16 autocast against fp32: speed and loss curve of one model, `ssm-bench bench curve`.

Trains the benchmark's whole-model shape (`harness.bench` model suite: LRA Image backbone,
bidirectional layers) for `--steps` AdamW steps on a fixed synthetic classification set (random
inputs with labels from a fixed random linear teacher on the time-averaged input, so the loss
has somewhere to go), the same batches in the same order for every run. Three runs:
fp32 with seed 0, fp32 with seed 1 (run-to-run noise: another init and dropout draw) and bf16
autocast with seed 0. It writes the per-step losses and step times to
`<out>/curve_<model>_<device>.csv` and prints the mean |bf16 - fp32| loss gap against the mean
|fp32 seed 0 - fp32 seed 1| gap, and the median step times.
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

import models
from harness.bench.command import LRA_IMAGE_BACKBONE, device_label
from harness.bench.steps import autocast
from harness.cli import exits_on_user_error
from harness.run.distributed import DEVICE_CHOICES, resolve_device
from harness.run.precision import set_tf32

RUNS = (("fp32", 0), ("fp32", 1), ("bf16", 0))  # (dtype, seed)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssm-bench bench curve", description=__doc__)
    p.add_argument("--model", default="s4_legs")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--d-state", type=int, default=64)
    p.add_argument("--layers", type=int, default=LRA_IMAGE_BACKBONE["n_layers"])
    p.add_argument("--n-batches", type=int, default=8, help="distinct batches, cycled")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    return p.parse_args(argv)


def synthetic_batches(args, device: torch.device, d_input: int = 3, classes: int = 10):
    """`n_batches` fixed (x (B, L, d_input), y (B,)) pairs; y = argmax of a random teacher."""
    gen = torch.Generator().manual_seed(1234)
    teacher = torch.randn(d_input, classes, generator=gen)  # (d_input, classes)
    batches = []
    for _ in range(args.n_batches):
        x = torch.randn(args.batch, args.length, d_input, generator=gen)  # (B, L, d_input)
        y = (x.mean(1) @ teacher).argmax(-1)  # (B,)
        batches.append((x.to(device), y.to(device)))
    return batches


def train_curve(args, dtype: str, seed: int, batches, device: torch.device) -> pd.DataFrame:
    """Per-step loss and step time of one run."""
    set_tf32(dtype)
    torch.manual_seed(seed)
    backbone = {**LRA_IMAGE_BACKBONE, "n_layers": args.layers}
    backbone["layer"] = {**backbone["layer"], "d_state": args.d_state}
    model = models.build_model(args.model, 3, 10, d_model=args.d_model, **backbone)
    model = model.to(device).train()
    opt = torch.optim.AdamW(models.param_groups(model, args.lr, args.weight_decay), lr=args.lr)
    rows = []
    for step in tqdm(range(args.steps), desc=f"{args.model} {dtype} seed {seed}", unit="step"):
        x, y = batches[step % len(batches)]

        def train_step() -> float:
            opt.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                loss = F.cross_entropy(model(x).float(), y)  # noqa: B023 (called right away)
            loss.backward()
            opt.step()
            return loss.item()

        loss, ms = _timed(train_step, device)
        rows.append({"step": step, "dtype": dtype, "seed": seed, "loss": loss, "ms": ms})
    set_tf32("fp32")
    return pd.DataFrame(rows)


def _timed(fn: Callable[[], float], device: torch.device) -> tuple[float, float]:
    """(fn(), milliseconds): CUDA events on a GPU, the wall clock otherwise."""
    if device.type != "cuda":
        start = time.perf_counter()
        return fn(), 1e3 * (time.perf_counter() - start)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    result = fn()
    end.record()
    end.synchronize()
    return result, start.elapsed_time(end)


def summarize(curves: pd.DataFrame) -> dict[str, float]:
    """Loss gaps (mean absolute difference per step) and median step times (after the first 5
    steps, or all but the last one in a shorter run)."""
    loss = curves.pivot_table(index="step", columns=["dtype", "seed"], values="loss")
    warm = curves[curves["step"] >= min(5, curves["step"].max())]
    return {
        "bf16_vs_fp32_gap": (loss[("bf16", 0)] - loss[("fp32", 0)]).abs().mean(),
        "fp32_seed_gap": (loss[("fp32", 1)] - loss[("fp32", 0)]).abs().mean(),
        "fp32_ms": statistics.median(warm[warm["dtype"] == "fp32"]["ms"]),
        "bf16_ms": statistics.median(warm[warm["dtype"] == "bf16"]["ms"]),
        "final_fp32_loss": loss[("fp32", 0)].iloc[-10:].mean(),
        "final_bf16_loss": loss[("bf16", 0)].iloc[-10:].mean(),
    }


@exits_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    models.MODELS[args.model]  # unknown name -> UserError listing the valid ones
    device = resolve_device(args.device, "--device")
    batches = synthetic_batches(args, device)
    curves = pd.concat([train_curve(args, d, s, batches, device) for d, s in RUNS])
    curves.insert(0, "device", device_label(device))
    curves.insert(1, "model", args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"curve_{args.model}_{device_label(device)}.csv"
    curves.to_csv(path, index=False, float_format="%.6g")
    summary = summarize(curves)
    print(f"wrote {path}")
    for key, value in summary.items():
        print(f"{key}: {value:.4f}")
    print(f"bf16 speedup: {summary['fp32_ms'] / summary['bf16_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
