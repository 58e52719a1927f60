"""What a sweep tells its terminal: one line per finished point and a summary table at the end.

A point's outcome is read from what the job left behind: its Hydra `JobReturn` (did the job end
normally) and `<run dir>/summary.json` (the run's final metrics, written once it FINISHED). The
metric shown is the run's best validation score, `best/val_acc` for classification (%, as every
run logs it; a summary of older code, without `acc_unit`, holds a fraction and is converted) or
`best/val_loss` for regression; the wall time is the job's, from
submission to its end (queueing on SLURM included).
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from harness.layout import SUMMARY_FILE

METRICS = ("best/val_acc", "best/val_loss")
"""The score a line shows, the first one the run's summary holds."""


@dataclass(frozen=True)
class Outcome:
    """How one point of the sweep ended."""

    index: int
    label: str  # the overrides that set the point apart (`harness.cluster.launcher.swept`)
    state: str  # finished | failed: <why> | skipped (<why>)
    metric: str  # the summary key shown, "" when the run has none
    value: float  # NaN when the run has no metric
    wall_s: float  # NaN for a point that ran no job here

    def line(self) -> str:
        """`#3 model=hope seed=1: finished, best/val_acc 43.21, 12.3 s`."""
        parts = [self.state]
        if self.metric:
            parts.append(f"{self.metric} {_value_text(self.metric, self.value)}")
        if math.isfinite(self.wall_s):
            parts.append(f"{self.wall_s:.1f} s")
        return f"#{self.index} {self.label}: {', '.join(parts)}"


def _value_text(metric: str, value: float) -> str:
    """Accuracy (%) with two decimals, a loss with four significant digits."""
    return f"{value:.2f}" if metric.endswith("_acc") else f"{value:.4g}"


def _score(run_dir: Path) -> tuple[str, float]:
    """The first of METRICS in `<run_dir>/summary.json`, or ("", NaN) without a readable one."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_bytes())
    except (OSError, ValueError):  # none, or damaged: the point's own run reports that
        return "", math.nan
    if not isinstance(summary, dict):
        return "", math.nan
    scale = 100.0 if summary.get("acc_unit", "fraction") == "fraction" else 1.0
    for key in METRICS:
        if isinstance(summary.get(key), int | float):
            return key, float(summary[key]) * (scale if key.endswith("_acc") else 1.0)
    return "", math.nan


def outcome(
    index: int, label: str, run_dir: Path, ret: JobReturn | None, wall_s: float, skipped: str = ""
) -> Outcome:
    """The outcome of a point whose job returned `ret` (None with `skipped`: it ran no job)."""
    metric, value = _score(run_dir)
    if ret is None:
        state = f"skipped ({skipped})"
    elif ret.status == JobStatus.COMPLETED:
        state = "finished"
    else:
        reason = " ".join(str(ret._return_value).split())  # one line, whatever the error
        state = f"failed: {reason[:120]}"
    return Outcome(index, label, state, metric, value, wall_s)


def summary_table(outcomes: list[Outcome]) -> str:
    """The outcomes as an aligned text table, with a count line per state at the bottom."""
    header = ("#", "point", "state", "metric", "value", "wall s")
    rows = [
        (
            str(o.index),
            o.label,
            o.state,
            o.metric or "-",
            _value_text(o.metric, o.value) if o.metric else "-",
            f"{o.wall_s:.1f}" if math.isfinite(o.wall_s) else "-",
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {0, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(header))
    counts: dict[str, int] = {}
    for o in outcomes:
        kind = o.state.split(":")[0].split(" (")[0]
        counts[kind] = counts.get(kind, 0) + 1
    total = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return "\n".join(
        [rule, line(header), rule, *map(line, rows), rule, f"{len(rows)} points: {total}"]
    )
