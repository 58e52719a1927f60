"""Statistics over seeds: per-group mean, sample std and count, LRA average, baseline tests.

Conventions (stated in every table caption): the spread is the sample standard deviation
(`ddof=1`, NaN for a single seed); accuracies are reported in percent; only FINISHED runs with a
finite value of the metric enter the statistics.

Each task is scored by its objective's metric (`common.Objective.test_metric`) unless `--metric`
names one for all tasks: classification by `best/test_acc` (higher is better), regression by
`best/test_loss`, the test mean squared error (lower is better), both at the best validation
evaluation. A run's objective is its `objective` tag; runs logged before that tag existed are
classified by what they log (`best/test_acc` only exists for classification).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from common import CLASSIFICATION, OBJECTIVES, REGRESSION
from harness.report.load import is_accuracy as is_accuracy  # re-exported: one definition
from harness.report.load import metric_column

LRA_TASKS = ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
"""The six Long Range Arena tasks, in the papers' column order."""


def ordered_tasks(tasks) -> list[str]:
    """Distinct task names: the LRA tasks first in the papers' order, then the others sorted."""
    names = set(tasks)
    return [t for t in LRA_TASKS if t in names] + sorted(names - set(LRA_TASKS))


def higher_is_better(metric: str) -> bool:
    """Losses, errors (RMSE) and times are better low; everything else (accuracies, throughput)
    high."""
    name = metric.rsplit("/", 1)[-1]
    return not any(word in name for word in ("loss", "rmse", "time", "mem"))


def task_objective(runs: pd.DataFrame) -> str:
    """The objective of the runs of one task: their `objective` tag, else inferred from what the
    finished runs log (`best/test_acc` -> classification, only `best/test_loss` -> regression)."""
    tagged = runs["objective"].dropna().unique() if "objective" in runs else []
    if len(tagged):
        return str(tagged[0])
    finished = runs[runs["status"] == "FINISHED"]

    def logs(metric: str) -> bool:
        col = f"metrics.{metric}"
        return col in finished.columns and bool(finished[col].notna().any())

    if not logs(CLASSIFICATION.test_metric) and logs(REGRESSION.test_metric):
        return REGRESSION.name
    return CLASSIFICATION.name


def task_metrics(runs: pd.DataFrame, metric: str | None) -> dict[str, str]:
    """Task -> the metric that scores it: `metric` for every task when given, else the task's
    objective's metric (`common.Objective.test_metric`). An explicit metric no run logs is a
    `UserError`."""
    names = ordered_tasks(runs["task"].dropna())
    if metric is not None:
        if (runs["status"] == "FINISHED").any():
            metric_column(runs, metric)
        return dict.fromkeys(names, metric)
    return {t: OBJECTIVES[task_objective(runs[runs["task"] == t])].test_metric for t in names}


def metric_values(runs: pd.DataFrame, metrics: str | Mapping[str, str]) -> pd.Series:
    """Each run's metric as float (its task's metric when `metrics` maps task -> metric;
    accuracies in percent, as `load` converts them); NaN for runs that are not FINISHED or do not
    log their metric.

    A single metric no run logs is an unknown name (`UserError`) when some run FINISHED; when none
    did (every run failed early) all values are NaN, so the tables still list the failures.
    """
    if isinstance(metrics, str):
        metrics = task_metrics(runs, metrics)
    values = pd.Series(math.nan, index=runs.index)
    for task, metric in metrics.items():
        col = f"metrics.{metric}"
        rows = runs["task"] == task
        if col in runs.columns:
            task_values = pd.to_numeric(runs.loc[rows, col], errors="coerce").astype(float)
            values[rows] = task_values
    return values.where(runs["status"] == "FINISHED")


def summarize(runs: pd.DataFrame, values: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1), count and seeds of `values` per combination of `keys` columns.

    Returns one row per group with at least one finite value: the key columns, then `mean`,
    `std` (NaN when n = 1), `n`, `seeds` (tuple, sorted like `values`) and `values` (tuple).
    """
    frame = runs[keys].copy()
    frame["_value"] = values
    frame["_seed"] = runs["seed"]
    frame = frame[np.isfinite(frame["_value"])].sort_values("_seed")
    rows = []
    for group, part in frame.groupby(keys, sort=True, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        vals = part["_value"].to_numpy(dtype=float)
        rows.append(
            {
                **dict(zip(keys, group, strict=True)),
                "mean": float(vals.mean()),
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
                "n": len(vals),
                "seeds": tuple(part["_seed"].tolist()),
                "values": tuple(vals.tolist()),
            }
        )
    columns = [*keys, "mean", "std", "n", "seeds", "values"]
    return pd.DataFrame(rows, columns=columns)


def lra_average(means: pd.DataFrame) -> pd.Series:
    """Mean over the six LRA task columns of a (rows x tasks) frame of means.

    Only complete rows get a value (all six tasks present and finite); the others are NaN, so an
    average never silently mixes a different set of tasks.
    """
    present = [t for t in LRA_TASKS if t in means.columns]
    if len(present) < len(LRA_TASKS):
        return pd.Series(math.nan, index=means.index)
    block = means[list(LRA_TASKS)].astype(float)
    return block.mean(axis=1).where(block.notna().all(axis=1))


CONFIDENCE = 0.95
"""Level of the confidence intervals of differences of means."""


@dataclass(frozen=True)
class Comparison:
    """A group against its baseline: difference of means, the test that was possible and the
    `CONFIDENCE` interval of the difference from that test (NaN without a test)."""

    diff: float
    test: str
    p_value: float
    low: float = math.nan
    high: float = math.nan


def compare(values: pd.Series, baseline: pd.Series) -> Comparison:
    """Difference of means (`values` - `baseline`), a two-sided t-test and its interval.

    Both series are indexed by seed. When both groups hold the same set of unique seeds (n >= 2),
    the test is paired on matched seeds (`scipy.stats.ttest_rel`); otherwise Welch's unequal-
    variance t-test (`ttest_ind(equal_var=False)`) if each group has n >= 2; else no test. The
    interval is the test's `CONFIDENCE` interval of the mean difference (paired: mean(d) +-
    t_{n-1} sd(d) / sqrt(n); Welch: with the Welch-Satterthwaite degrees of freedom).
    """
    diff = float(values.mean() - baseline.mean())
    same_seeds = (
        values.index.is_unique
        and baseline.index.is_unique
        and set(values.index) == set(baseline.index)
    )
    if same_seeds and len(values) >= 2:
        result = stats.ttest_rel(values.sort_index(), baseline.sort_index())
        return _with_interval(diff, "paired t", result)
    if len(values) >= 2 and len(baseline) >= 2:
        result = stats.ttest_ind(values, baseline, equal_var=False)
        return _with_interval(diff, "Welch t", result)
    return Comparison(diff, "none (n<2)", math.nan)


def _with_interval(diff: float, test: str, result) -> Comparison:
    """A `Comparison` from a scipy t-test result, with its `CONFIDENCE` interval."""
    ci = result.confidence_interval(CONFIDENCE)
    return Comparison(diff, test, float(result.pvalue), float(ci.low), float(ci.high))
