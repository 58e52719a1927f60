"""Performance benchmarks of the SSM layers and models: `python -m harness.bench [options]`.

Suites (`--suite`, several allowed):
  kernel  kernel generation alone, `layer.kernel(L)` forward + backward, B x H x N x L shapes;
  layer   one layer forward + backward on x (B, H, L), every model and the FFT-convolution floor;
  model   one training step (forward, backward, AdamW) of a whole classifier on the LRA Image
          shape (6 post-norm BatchNorm blocks, H=512, N=64, batch 50, L=1024, dropout 0.1,
          bidirectional layers, mean pooling, 10 classes), every model and the floor model.
Each case is timed as the performance anchors were (`harness.bench.timing`): CUDA events,
`--warmup` untimed steps, the median of `--reps`, peak `torch.cuda.max_memory_allocated`; fp32
runs with TF32 off. `--impl reference` routes the kernel sums to the plain PyTorch reference.

Output: one CSV per suite, `<out>/<suite>_<device>.csv`, one row per case with columns
device, suite, model, impl, dtype, compile, B, H, N, L, ms, ms_min, ms_max, peak_mem_gb,
samples_per_s, ms_vs_floor, mem_vs_floor, status, torch (ratios against the floor row of the
same suite, impl, dtype and shape). A case that runs out of memory is a row with status `oom`.

`--plot` draws throughput and peak memory against L next to each layer/model CSV
(`harness.report.plots.bench_scaling`, PDF and PNG); `--plot-from CSV...` draws it for existing
CSVs.

Example (the README's GPU table):
    python -m harness.bench --suite layer --lengths 1024 4096 16384 65536 --dtypes fp32 bf16
"""

import argparse
import gc
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

import models
from common import UserError
from harness.bench import steps as bench_steps
from harness.bench.steps import FLOOR, Shape
from harness.bench.timing import measure
from harness.cli import exits_on_user_error, parse_key_values, program
from harness.run import precision
from harness.run.distributed import DEVICE_CHOICES, resolve_device
from models.kernels import ops

logger = logging.getLogger("harness.bench")

SUITES = ("kernel", "layer", "model")
IMPLS = ("fast", "reference")
COLUMNS = [
    "device",
    "suite",
    "model",
    "impl",
    "dtype",
    "compile",
    "B",
    "H",
    "N",
    "L",
    "ms",
    "ms_min",
    "ms_max",
    "peak_mem_gb",
    "samples_per_s",
    "ms_vs_floor",
    "mem_vs_floor",
    "status",
    "torch",
]
# LRA Image backbone of the performance anchors (state-spaces/s4 configs/experiment/lra/s4-cifar)
LRA_IMAGE_BACKBONE = {
    "n_layers": 6,
    "dropout": 0.1,
    "prenorm": False,
    "norm": "batch",
    "encoder": "linear",
    "pooling": "mean",
    "layer": {"bidirectional": True},
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=program("bench"), description=__doc__.split("\n")[0])
    p.add_argument("--suite", nargs="+", default=["layer"], choices=SUITES)
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        help=f"registered model names and/or '{FLOOR}' (default: all and the floor)",
    )
    p.add_argument(
        "--floor-of",
        default="s4_legs",
        help="model whose layer (with its kernel fixed) is the floor",
    )
    p.add_argument(
        "--impl",
        nargs="+",
        default=["fast"],
        choices=IMPLS,
        help="fast: fused GPU kernels where they apply; reference: plain PyTorch sums",
    )
    p.add_argument("--dtypes", nargs="+", default=["fp32"], choices=precision.PRECISIONS)
    p.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=[1024, 4096, 16384, 65536],
        help="sequence lengths of the kernel and layer suites",
    )
    p.add_argument("--batch", type=int, default=16, help="kernel/layer suites: batch B")
    p.add_argument("--d-model", type=int, default=256, help="kernel/layer suites: width H")
    p.add_argument("--d-state", type=int, default=64, help="state size N (all suites)")
    p.add_argument(
        "--layer-option",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra build_layer overrides for the kernel/layer suites (YAML values)",
    )
    p.add_argument("--model-lengths", nargs="+", type=int, default=[1024])
    p.add_argument("--model-batch", type=int, default=50)
    p.add_argument("--model-d-model", type=int, default=512)
    p.add_argument("--model-layers", type=int, default=LRA_IMAGE_BACKBONE["n_layers"])
    p.add_argument("--compile", action="store_true", help="torch.compile the layer or model")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--tag", default="", help="suffix of the CSV file names")
    p.add_argument(
        "--plot",
        action="store_true",
        help="also draw throughput and peak memory vs L next to each layer/model CSV",
    )
    p.add_argument(
        "--plot-from",
        nargs="+",
        type=Path,
        default=None,
        metavar="CSV",
        help="only draw the figure of existing benchmark CSVs (no benchmark run)",
    )
    return p.parse_args(argv)


def parse_options(pairs: Sequence[str]) -> dict:
    """--layer-option KEY=VALUE strings -> dict (values parsed as YAML scalars)."""
    return parse_key_values(pairs, "--layer-option", "disc=bilinear")


def device_label(device: torch.device) -> str:
    """File-name-safe device name, e.g. `nvidia-h100-80gb-hbm3` or `cpu`."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def model_names(requested: Sequence[str] | None) -> list[str]:
    """Requested names checked against the registry (unknown -> UserError), default all + floor."""
    if requested is None:
        return [*models.MODELS.names(), FLOOR]
    for name in requested:
        if name != FLOOR:
            models.MODELS[name]  # raises UserError listing the valid names
    return list(requested)


def run_case(make_step: Callable[[], Callable], device: torch.device, warmup: int, reps: int):
    """Build and time one case -> (Measurement or None, status)."""
    try:
        step = make_step()
        return measure(step, device, warmup, reps), "ok"
    except torch.OutOfMemoryError:
        return None, "oom"
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def cases(args: argparse.Namespace, suite: str, names: list[str], device: torch.device):
    """Yield (row fields, step factory) for every case of `suite`."""
    layer_options = parse_options(args.layer_option)
    lengths = args.model_lengths if suite == "model" else args.lengths
    for L in lengths:
        if suite == "model":
            shape = Shape(
                args.model_batch,
                args.model_d_model,
                args.d_state,
                L,
                backbone={**LRA_IMAGE_BACKBONE, "n_layers": args.model_layers},
            )
        else:
            shape = Shape(args.batch, args.d_model, args.d_state, L)
        for dtype in ["fp32"] if suite == "kernel" else args.dtypes:
            for impl in args.impl:
                for name in names:
                    if suite == "kernel" and name == FLOOR:
                        continue
                    fields = {
                        "suite": suite,
                        "model": name,
                        "impl": impl,
                        "dtype": dtype,
                        "B": shape.batch,
                        "H": shape.d_model,
                        "N": shape.d_state,
                        "L": L,
                    }
                    yield fields, _factory(args, suite, name, shape, dtype, device, layer_options)


def _factory(args, suite, name, shape, dtype, device, layer_options) -> Callable[[], Callable]:
    if suite == "kernel":
        return lambda: bench_steps.kernel_step(name, shape, device, layer_options)
    if suite == "layer":
        return lambda: bench_steps.layer_step(
            name, shape, dtype, device, args.floor_of, layer_options, args.compile
        )
    return lambda: bench_steps.model_step(name, shape, dtype, device, args.floor_of, args.compile)


def add_floor_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """ms_vs_floor and mem_vs_floor: each row over the floor row of its suite/impl/dtype/shape."""
    keys = ["suite", "impl", "dtype", "compile", "B", "H", "N", "L"]
    floor = table[table["model"] == FLOOR][[*keys, "ms", "peak_mem_gb"]]
    floor = floor.rename(columns={"ms": "floor_ms", "peak_mem_gb": "floor_mem"})
    merged = table.merge(floor, on=keys, how="left")
    merged["ms_vs_floor"] = merged["ms"] / merged["floor_ms"]
    merged["mem_vs_floor"] = merged["peak_mem_gb"] / merged["floor_mem"]
    return merged[COLUMNS]


def run_suite(args: argparse.Namespace, suite: str, device: torch.device) -> pd.DataFrame:
    names = model_names(args.models)
    label = device_label(device)
    rows = []
    todo = list(cases(args, suite, names, device))
    for fields, make_step in tqdm(todo, desc=f"bench {suite}", unit="case"):
        precision.set_tf32(fields["dtype"])
        with ops.fast_paths(fields["impl"] == "fast"):
            result, status = run_case(make_step, device, args.warmup, args.reps)
        row = {
            **fields,
            "device": label,
            "compile": args.compile,
            "status": status,
            "torch": torch.__version__,
            "ms": float("nan"),
            "ms_min": float("nan"),
            "ms_max": float("nan"),
            "peak_mem_gb": float("nan"),
        }
        if result is not None:
            row.update(
                ms=result.ms,
                ms_min=result.ms_min,
                ms_max=result.ms_max,
                peak_mem_gb=result.peak_bytes / 1e9,
            )
        batch = args.model_batch if suite == "model" else args.batch
        row["samples_per_s"] = batch / (row["ms"] / 1e3) if suite != "kernel" else float("nan")
        logger.info(
            "%s %s %s %s L=%d: %.3f ms (%s)",
            suite,
            row["model"],
            row["impl"],
            row["dtype"],
            row["L"],
            row["ms"],
            status,
        )
        rows.append(row)
    precision.set_tf32("fp32")
    return add_floor_ratios(pd.DataFrame(rows))


def plot_from(paths: Sequence[Path]) -> None:
    """Draw the figure of each benchmark CSV next to it."""
    from harness.plotting.bench import PLOT_COLUMNS, plot  # matplotlib only for a figure

    for path in paths:
        if not path.is_file():
            raise UserError(
                f"--plot-from {path}: no such file; give a CSV that harness.bench wrote"
            )
        table = pd.read_csv(path)
        missing = sorted(set(PLOT_COLUMNS) - set(table.columns))
        if missing:
            raise UserError(f"--plot-from {path}: not a harness.bench CSV (no column {missing})")
        for figure in plot(table, path.with_suffix("")):
            print(f"wrote {figure}")


@exits_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    args = parse_args(argv)
    if args.plot_from:
        plot_from(args.plot_from)
        return 0
    device = resolve_device(args.device, "--device")
    args.out.mkdir(parents=True, exist_ok=True)
    for suite in args.suite:
        table = run_suite(args, suite, device)
        suffix = f"_{args.tag}" if args.tag else ""
        path = args.out / f"{suite}_{device_label(device)}{suffix}.csv"
        table.to_csv(path, index=False, float_format="%.6g")
        print(f"wrote {path}")
        if args.plot and suite != "kernel":
            from harness.plotting.bench import plot  # matplotlib only for a figure

            for figure in plot(table, path.with_suffix("")):
                print(f"wrote {figure}")
        print(
            table[
                [
                    "model",
                    "impl",
                    "dtype",
                    "L",
                    "ms",
                    "peak_mem_gb",
                    "ms_vs_floor",
                    "mem_vs_floor",
                    "status",
                ]
            ].to_string(index=False)
        )
    return 0
