"""Data-loader throughput of a task: `ssm-bench bench data --task NAME [options]`.

Builds the task (generating and caching it on first use; the build time is reported), then for
every `--workers` count reads `--batches` batches of the train split through a
`torch.utils.data.DataLoader` (random order, `--batch-size`, pinned memory with `--pin-memory`)
`--repeats` times and prints one row per worker count: the median steady-state samples per
second (the first batch, which pays for starting the workers, is timed apart as
`first_batch_s`, also the median).

Task options are overridden with `--set KEY=VALUE` (values parsed as YAML). The README's
figures (LRA lengths):
    ssm-bench bench data --task listops_gen --set min_length=500 max_length=2000 \
        seq_len=2048 n_train=2000
    ssm-bench bench data --task pathfinder_gen --set n_images=2000
    ssm-bench bench data --task pathfinder_gen --set resolution=128 contour_length=14 \
        distractor_length=4 n_distractors=7 dash_length=5 gap_length=2 marker_radius=3 \
        min_marker_distance=20 n_images=1000
"""

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

import tasks
from common import UserError
from harness.cli import exits_on_user_error, parse_key_values

logger = logging.getLogger("harness.bench.data")


def parse_overrides(pairs: Sequence[str]) -> dict[str, object]:
    """--set KEY=VALUE strings -> task options (values parsed as YAML scalars)."""
    return parse_key_values(pairs, "--set", "seq_len=2048")


def loader_throughput(
    dataset: Dataset, batch_size: int, batches: int, workers: int, pin_memory: bool
) -> dict[str, float]:
    """Seconds for the first batch and samples/s over the next `batches` batches.

    Samples are drawn at random with replacement, so any dataset size serves any batch count.
    """
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * (batches + 1))
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory
    )
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    n = sum(len(x) for x, _ in iterator)
    elapsed = time.perf_counter() - start
    return {"first_batch_s": first, "samples_per_s": n / elapsed}


def benchmark(
    name: str,
    overrides: dict[str, object],
    batch_size: int,
    batches: int,
    workers: Sequence[int],
    pin_memory: bool,
    repeats: int,
) -> pd.DataFrame:
    """One row per worker count: task, seq_len, loader settings, build time and throughput."""
    start = time.perf_counter()
    data = tasks.build(name, **overrides)
    build_s = time.perf_counter() - start
    logger.info("built %s in %.1f s: %d train items", name, build_s, len(data.train))
    rows = []
    for count in workers:
        runs = [
            loader_throughput(data.train, batch_size, batches, count, pin_memory)
            for _ in range(repeats)
        ]
        result = pd.DataFrame(runs).median()
        rows.append(
            {
                "task": name,
                "seq_len": data.info.seq_len,
                "batch_size": batch_size,
                "workers": count,
                "pin_memory": pin_memory,
                "build_s": round(build_s, 2),
                "first_batch_s": round(result["first_batch_s"], 3),
                "samples_per_s": round(result["samples_per_s"], 1),
            }
        )
    return pd.DataFrame(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ssm-bench bench data", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--task", required=True, help="registered task name, e.g. listops_gen")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="task options")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200, help="timed batches per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count (median)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts")
    parser.add_argument("--pin-memory", action="store_true", help="pin batches (for a GPU)")
    return parser.parse_args(argv)


@exits_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if min(args.batch_size, args.batches, args.repeats) < 1 or min(args.workers) < 0:
        raise UserError("--batch-size, --batches and --repeats must be >= 1, --workers >= 0")
    table = benchmark(
        args.task,
        parse_overrides(args.set),
        args.batch_size,
        args.batches,
        args.workers,
        args.pin_memory,
        args.repeats,
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
