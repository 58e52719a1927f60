"""`ssm-bench bench gpu` (`python -m harness.bench.gpu`): the prepared check of a GPU machine.

In one command, under 8 minutes on an H100/H200 with the defaults:
  1. the fused-kernel tests on the GPU: `tests/test_fast_kernels.py -m gpu` (pytest, without the
     suite's conftest, which needs Hydra) and `tests/triton_interp_worker.py --device cuda`
     (every fused kernel, forward and backward, against the float64 sums within the float32
     bounds it derives, the planted off-by-one mutations, and the layers fast against the plain
     PyTorch path), its records in `kernel_check_<gpu>.csv`;
  2. the layer suite (`harness.bench.command --suite layer`): every model and the floor,
     fp32 and bf16, at `--lengths`;
  3. the S4-LegS model step against the floor model (`--suite model --models s4_legs floor`),
     fp32 and bf16, on the LRA Image shape.
The CSVs go to `--out` (default `results/bench/`), named with the GPU model as
`harness.bench.command` names them plus the `--tag` (default `check`), e.g.
`layer_nvidia-h200_check.csv`; their `ms_vs_floor` column is the ratio to the floor. Exit status
1 when a kernel check failed (the benchmarks still run and are written).

It needs torch, triton, pandas, tqdm and PyYAML only (no Hydra, submitit or MLflow), so it runs
from a plain checkout: `python3 -m harness.bench.gpu`.
"""

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.bench import command
from harness.cli import exits_on_user_error
from harness.layout import PROJECT_ROOT
from harness.run.distributed import DEVICE_CHOICES, resolve_device

WORKER = PROJECT_ROOT / "tests" / "triton_interp_worker.py"
KERNEL_TESTS = PROJECT_ROOT / "tests" / "test_fast_kernels.py"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ssm-bench bench gpu", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=DEVICE_CHOICES)
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--tag", default="check", help="suffix of the CSV file names")
    p.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096, 16384])
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--model-lengths", nargs="+", type=int, default=[1024])
    p.add_argument("--model-batch", type=int, default=50)
    p.add_argument("--model-d-model", type=int, default=512)
    p.add_argument("--model-layers", type=int, default=6)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument(
        "--skip-kernel-checks", action="store_true", help="benchmarks only (step 1 skipped)"
    )
    return p.parse_args(argv)


def bench_argvs(args: argparse.Namespace) -> list[list[str]]:
    """The `harness.bench.command` argument lists of steps 2 and 3."""
    common = ["--device", args.device, "--out", str(args.out), "--tag", args.tag]
    common += ["--warmup", str(args.warmup), "--reps", str(args.reps), "--dtypes", *args.dtypes]
    layer = ["--suite", "layer", "--lengths", *map(str, args.lengths)]
    layer += ["--batch", str(args.batch), "--d-model", str(args.d_model)]
    model = ["--suite", "model", "--models", "s4_legs", command.FLOOR]
    model += ["--model-lengths", *map(str, args.model_lengths)]
    model += ["--model-batch", str(args.model_batch), "--model-d-model", str(args.model_d_model)]
    model += ["--model-layers", str(args.model_layers)]
    return [layer + common, model + common]


def kernel_checks(device: str, out: Path, label: str, tag: str) -> bool:
    """Step 1; True when every check passed. Writes `kernel_check_<label>[_tag].csv`."""
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", str(KERNEL_TESTS), "--noconftest", "-p",
         "no:cacheprovider", "-q", "-rs", "-m", "gpu"],
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    records = out / f"kernel_check_{label}{f'_{tag}' if tag else ''}.json"
    worker = subprocess.run(
        [sys.executable, str(WORKER), "--device", device, "--json", str(records)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    passed = tests.returncode == 0 and worker.returncode == 0
    if records.is_file():
        table = pd.DataFrame(pd.read_json(records))
        csv = records.with_suffix(".csv")
        table.to_csv(csv, index=False, float_format="%.6g")
        records.unlink()
        print(f"wrote {csv}")
        # a mutation must fail its bound; everything else must pass
        expected = table["group"] != "mutation"
        bad = table[table["ok"] != expected]
        passed = passed and bad.empty and bool(table.get("fused", pd.Series([True])).all())
        if not bad.empty:
            print(bad.to_string(index=False))
    print(f"kernel checks: {'passed' if passed else 'FAILED'}")
    return passed


@exits_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device, "--device")
    args.out.mkdir(parents=True, exist_ok=True)
    passed = True
    if not args.skip_kernel_checks:
        passed = kernel_checks(device.type, args.out, command.device_label(device), args.tag)
    for argv_ in bench_argvs(args):
        command.main(argv_)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
