"""Timing and peak memory of one benchmark step, measured the way the performance anchors were.

On CUDA: `warmup` untimed calls, then `reps` calls each bracketed by CUDA events, the median of
the event times, and the peak of `torch.cuda.max_memory_allocated` over the timed calls (the
peak counter is reset after the warm-ups, so it includes what is resident: parameters, inputs,
optimizer state). On CPU: the same protocol with `time.perf_counter`; peak memory is not
measured (NaN).
"""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Measurement:
    """Median milliseconds per call, the spread (min, max) of the timed calls, peak bytes."""

    ms: float
    ms_min: float
    ms_max: float
    peak_bytes: float


def measure(
    step: Callable[[], object], device: torch.device, warmup: int, reps: int
) -> Measurement:
    """Time `step()` on `device`: median of `reps` calls after `warmup` calls."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        return _measure_cuda(step, device, reps)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - start))
    return Measurement(statistics.median(times), min(times), max(times), math.nan)


def _measure_cuda(step: Callable[[], object], device: torch.device, reps: int) -> Measurement:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(reps)
    ]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize(device)
    times = [start.elapsed_time(end) for start, end in events]
    peak = float(torch.cuda.max_memory_allocated(device))
    return Measurement(statistics.median(times), min(times), max(times), peak)
