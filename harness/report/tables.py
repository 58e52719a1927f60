"""Build the report's tables from deduplicated runs: leaderboard, ablation, excluded runs.

- Leaderboard: rows = models, columns = tasks (LRA tasks first, in the papers' order) plus an
  `LRA avg` column when any LRA task is present; cells `mean ± std (n)` over seeds of each task's
  metric (`harness.report.stats.task_metrics`: test accuracy for classification, test MSE for
  regression, at the best validation evaluation; `--metric` names one for all tasks). The best
  measured entry of each column is bold (highest accuracy, lowest loss); published rows follow,
  marked as published, with their sources. A cell whose runs are not one experiment but for the
  seed (`harness.report.pool`) is split into rows `model [key=value, ...]`.
- Ablation: one row per combination of the `--group-by` keys, with the same statistics and, with
  `--baseline key=value`, the difference of means and a paired (matched seeds) or Welch t-test
  against the baseline row that shares the other keys, with the 95% confidence interval of the
  difference. A cell that mixes experiments stops the
  report (`error: cell (...) mixes ...`) unless the differing keys are pooled with `--pool`.
- Excluded runs: every run that is not in the statistics (failed, killed, running, finished without
  the metric, resubmitted duplicates) with its reason, so nothing is dropped silently.

An empty table (finished runs exist, but none logs the requested metric) is a `UserError`.
"""

import math

import numpy as np
import pandas as pd

from common import CLASSIFICATION, OBJECTIVES, UserError
from harness.cli import parse_key_values
from harness.report.format import DAGGER, DEFAULT_DIGITS, Num, Row, Stat, Table, num_text
from harness.report.load import group_column
from harness.report.pool import mixed_cells, refuse_mixed, variant_labels
from harness.report.stats import (
    CONFIDENCE,
    LRA_TASKS,
    Comparison,
    compare,
    higher_is_better,
    is_accuracy,
    lra_average,
    metric_values,
    ordered_tasks,
    summarize,
    task_metrics,
    task_objective,
)

LRA_AVG = "LRA avg"
PUBLISHED_METRIC = "best/test_acc"
PUBLISHED_PLACES = 2
"""Published rows are test accuracies, shown with the two decimals the papers print."""


def metric_label(metric: str, objective: str = CLASSIFICATION.name) -> str:
    """Human name of a metric for captions and axis labels, with its unit and direction; a loss
    is named by the task `objective`'s loss."""
    loss = OBJECTIVES[objective].loss_label
    names = {
        "best/test_acc": "test accuracy (%)",
        "best/test_rmse": "test RMSE",
        "best/val_acc": "best validation accuracy (%)",
        "best/test_loss": f"test {loss}",
        "best/val_loss": f"best validation {loss}",
    }
    name = names.get(metric, f"{metric} (%)" if is_accuracy(metric) else metric)
    return f"{name}, {'higher' if higher_is_better(metric) else 'lower'} is better"


def _seed_text(counts: pd.Series) -> str:
    if counts.empty:
        return "no seeds"
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' * (lo != 1)} per cell" if lo == hi else f"{lo}-{hi} seeds per cell"


def _metrics_text(metrics: dict[str, str], objectives: dict[str, str]) -> str:
    """`test accuracy (%), higher is better (MLflow metric best/test_acc) on listops, text; ...`."""
    by_metric: dict[tuple[str, str], list[str]] = {}
    for task, metric in metrics.items():
        by_metric.setdefault((metric, objectives[task]), []).append(task)
    parts = [
        f"{metric_label(metric, objective)} (MLflow metric {metric}"
        f"{', at the best validation evaluation' if metric.startswith('best/test') else ''})"
        f"{' on ' + ', '.join(tasks) if len(by_metric) > 1 else ''}"
        for (metric, objective), tasks in by_metric.items()
    ]
    return "; ".join(parts)


def _caption(
    metrics: dict[str, str], objectives: dict[str, str], counts: pd.Series, best_rule: str
) -> str:
    text = _metrics_text(metrics, objectives)
    return (
        f"{text[:1].upper()}{text[1:]}: mean ± sample std (ddof=1) over seeds, seed count in "
        f"parentheses; {_seed_text(counts)}. {best_rule}"
    )


def _best_mask(values: pd.Series, metric: str) -> pd.Series:
    """True where a value equals the best finite value of the series (ties all bold)."""
    finite = values[np.isfinite(values.astype(float))]
    if finite.empty:
        return pd.Series(False, index=values.index)
    best = finite.max() if higher_is_better(metric) else finite.min()
    return values == best


def _published_rows(published: pd.DataFrame, columns: list[str]) -> tuple[list[Row], list[str]]:
    """One row per (paper, published model) with values on the shown task columns, and the
    numbered source notes the row labels refer to."""
    shown = published[published["task"].isin(columns)]
    rows, sources = [], []
    for ref, ((_, model), part) in enumerate(shown.groupby(["paper", "model"], sort=False), 1):
        sources.append(f"[{ref}] {part['source'].iloc[0]}")
        by_task = part.set_index("task")
        cells: list[Stat | None] = []
        for task in columns:
            if task == LRA_AVG:
                avg = lra_average(by_task["mean"].to_frame().T).iloc[0]
                cells.append(Stat(avg, places=PUBLISHED_PLACES))
            elif task in by_task.index:
                mean, std = by_task.at[task, "mean"], by_task.at[task, "std"]
                cells.append(Stat(mean, std, places=PUBLISHED_PLACES))
            else:
                cells.append(None)
        rows.append(Row((f"{model} [{ref}]",), tuple(cells), published=True))
    return rows, sources


def _objectives(runs: pd.DataFrame, metrics: dict[str, str]) -> dict[str, str]:
    return {t: task_objective(runs[runs["task"] == t]) for t in metrics}


def check_not_empty(runs: pd.DataFrame, summary: pd.DataFrame, metrics: dict[str, str]) -> None:
    """`UserError` when finished runs exist but none of them logs its metric."""
    if summary.empty and (runs["status"] == "FINISHED").any():
        logged = sorted(
            c.removeprefix("metrics.")
            for c in runs
            if c.startswith("metrics.best/") and runs[c].notna().any()
        )
        wanted = sorted(set(metrics.values()))
        raise UserError(
            f"no FINISHED run logs {', '.join(wanted)} (--metric), so the table would be empty; "
            f"the runs log {logged}: pick one with --metric, or drop --metric to score each task "
            "by its objective (classification best/test_acc, regression best/test_loss)"
        )


def leaderboard_table(
    runs: pd.DataFrame,
    metric: str | None,
    published: pd.DataFrame | None,
    min_seeds: int,
    published_mode: str = "matched",
    pool: list[str] | None = None,
) -> Table:
    """Task x model leaderboard over seeds, with published reference rows.

    `metric`: one metric for every task, or None for each task's objective metric.
    `published_mode`: `matched` shows published rows of the registered models present in `runs`,
    `all` every published row on the shown tasks, `none` no published rows. Cells that mix
    experiments are split by the differing keys (row `model [key=value]`), except keys in `pool`.
    """
    metrics = task_metrics(runs, metric)
    objectives = _objectives(runs, metrics)
    values = metric_values(runs, metrics)
    labels = runs[["model", "task"]]
    mixed = mixed_cells(runs, labels, values, pool or [])
    variant = variant_labels(mixed, runs, labels)
    rows_frame = runs[["task", "seed"]].assign(
        model=[m if not v else f"{m} [{v}]" for m, v in zip(runs["model"], variant, strict=True)]
    )
    summary = summarize(rows_frame, values, ["model", "task"])
    check_not_empty(runs, summary, metrics)
    tasks = ordered_tasks(summary["task"].dropna())
    means = summary.pivot(index="model", columns="task", values="mean").reindex(columns=tasks)
    lra_shown = [t for t in tasks if t in LRA_TASKS]
    has_lra = bool(lra_shown) and all(is_accuracy(metrics[t]) for t in lra_shown)
    columns = tasks + ([LRA_AVG] if has_lra else [])
    if has_lra:
        means[LRA_AVG] = lra_average(means)
    cells = summary.set_index(["model", "task"])
    bold = {c: _best_mask(means[c], metrics.get(c, PUBLISHED_METRIC)) for c in columns}
    rows = []
    for model in means.index:
        row = []
        for col in columns:
            if col == LRA_AVG:
                row.append(Stat(means.at[model, col], bold=bool(bold[col][model])))
            elif (model, col) in cells.index:
                s = cells.loc[(model, col)]
                row.append(
                    Stat(s["mean"], s["std"], s["n"], bool(bold[col][model]), s["n"] < min_seeds)
                )
            else:
                row.append(None)
        rows.append(Row((model,), tuple(row)))
    notes = []
    if summary.empty:
        wanted = ", ".join(sorted(set(metrics.values())))
        notes.append(f"No FINISHED run logs {wanted or 'a metric'}; see the excluded runs.")
    missing = [t for t in metrics if t not in tasks]
    if missing and not summary.empty:
        notes.append(
            "Not shown (no FINISHED run logs its metric): "
            + ", ".join(f"{t} ({objectives[t]}, {metrics[t]})" for t in missing)
        )
    if mixed:
        notes.append(
            "Rows split where runs of one model and task differ in config besides the seed: "
            + "; ".join(m.describe() for m in mixed)
            + " (pool them on purpose with --pool KEY)."
        )
    if (summary["n"] < min_seeds).any():
        notes.append(f"{DAGGER} fewer than {min_seeds} seeds.")
    if has_lra:
        notes.append(
            f"{LRA_AVG}: mean over the six LRA tasks, computed only for rows that have all six; "
            "blank otherwise (published averages that count a failed Path-X as 50 are not used)."
        )
    comparable = [c for c in columns if metrics.get(c, PUBLISHED_METRIC) == PUBLISHED_METRIC]
    if published is not None and published_mode != "none" and comparable:
        chosen = (
            published
            if published_mode == "all"
            else published[published["registered"].isin(set(runs["model"]))]
        )
        pub_rows, sources = _published_rows(chosen, comparable)
        pub_rows = [
            Row(r.labels, tuple(_spread(r.cells, comparable, columns)), published=True)
            for r in pub_rows
        ]
        if pub_rows:
            notes += ["Published rows: test accuracy (%) as reported, ± the paper's std; sources:"]
            notes += sources
        rows += pub_rows
    caption = _caption(metrics, objectives, summary["n"], "Best measured entry per column in bold.")
    return Table("leaderboard", "Leaderboard", ["model"], columns, rows, caption, notes)


def _spread(cells: tuple, shown: list[str], columns: list[str]) -> list:
    """Cells of the `shown` columns placed under `columns` (None elsewhere)."""
    by_column = dict(zip(shown, cells, strict=True))
    return [by_column.get(c) for c in columns]


def parse_baseline(spec: str | None) -> dict[str, str]:
    """`init=legs,task=listops` -> {"init": "legs", "task": "listops"}."""
    if not spec:
        return {}
    return parse_key_values(spec.split(","), "--baseline", "init=legs,task=listops", typed=False)


def _key_frame(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The grouping keys as columns named like the keys; numeric-looking keys sort as numbers."""
    frame = pd.DataFrame(index=runs.index)
    for key in keys:
        column = runs[group_column(runs, key)].astype("string").fillna("none")
        numeric = pd.to_numeric(column, errors="coerce")
        frame[key] = numeric if numeric.notna().all() else column
    frame["seed"] = runs["seed"]
    return frame


def ablation_table(
    runs: pd.DataFrame,
    metric: str | None,
    keys: list[str],
    baseline: dict[str, str],
    min_seeds: int,
    pool: list[str] | None = None,
) -> Table:
    """One row per combination of `keys`, with comparisons against `baseline` rows.

    `metric`: one metric for every task, or None for each task's objective metric; when the rows
    hold several metrics, a `metric` index column names each row's. The ablated keys are the
    baseline's keys (or the first grouping key without a baseline); the best entry among rows that
    share the other keys (and the metric) is bold, and each row is compared with the baseline row
    that shares them. A cell that mixes experiments raises `UserError` (`refuse_mixed`) unless the
    differing keys are in `pool`.
    """
    metrics = task_metrics(runs, metric)
    objectives = _objectives(runs, metrics)
    values = metric_values(runs, metrics)
    frame = _key_frame(runs, keys)
    refuse_mixed(mixed_cells(runs, frame[keys], values, pool or []))
    frame["metric"] = runs["task"].map(metrics)
    shown = frame.loc[np.isfinite(values), "metric"].dropna().unique()
    index = keys + (["metric"] if len(shown) > 1 else [])
    summary = summarize(frame, values, index)
    check_not_empty(runs, summary, metrics)
    single = shown[0] if len(shown) == 1 else "value"
    metric_of = summary["metric"] if "metric" in index else pd.Series(single, index=summary.index)
    ablated = list(baseline) or keys[:1]
    context = [k for k in index if k not in ablated]
    bold = pd.Series(False, index=summary.index)
    for _, part in summary.groupby(context) if context else [(None, summary)]:
        part_metrics = metric_of[part.index].unique()
        if len(part_metrics) == 1:
            bold[part.index] = _best_mask(part["mean"], part_metrics[0])
    by_context = {}
    if baseline:
        for i, row in summary.iterrows():
            if all(str(row[k]) == v for k, v in baseline.items()):
                by_context[tuple(str(row[k]) for k in context)] = i
    rows = []
    for i, row in summary.iterrows():
        stat = Stat(row["mean"], row["std"], row["n"], bool(bold[i]), row["n"] < min_seeds)
        cells: list = [stat]
        if baseline:
            base = by_context.get(tuple(str(row[k]) for k in context))
            if base is None:
                cells += [None, None, "no baseline row", None]
            elif base == i:
                cells += [None, None, "baseline", None]
            else:
                cmp = compare(_by_seed(row), _by_seed(summary.loc[base]))
                interval = interval_text(cmp, stat)
                cells += [Num(cmp.diff, like=stat), interval, cmp.test, Num(cmp.p_value)]
        rows.append(Row(tuple(str(row[k]) for k in index), tuple(cells)))
    columns = [single] + (["Δ vs baseline", CI_COLUMN, "test", "p"] if baseline else [])
    best_rule = (
        f"Best {'/'.join(ablated)} per {'/'.join(context)} in bold."
        if context
        else "Best row in bold."
    )
    notes = []
    if pool:
        notes.append(f"Pooled on purpose (--pool): {', '.join(pool)}.")
    if (summary["n"] < min_seeds).any():
        notes.append(f"{DAGGER} fewer than {min_seeds} seeds.")
    if baseline:
        spec = ", ".join(f"{k}={v}" for k, v in baseline.items())
        notes.append(
            f"Δ: difference of means against the baseline {spec} with the same "
            f"{'/'.join(context) or 'rows'}, with its {CONFIDENCE:.0%} confidence interval; p: "
            "two-sided paired t-test on matched seeds when both rows have the same seeds, else "
            "Welch's t-test (scipy.stats)."
        )
    name = "ablation_" + "_".join(k.replace(".", "-").replace("/", "-") for k in keys)
    title = f"Ablation: {' x '.join(keys)}"
    shown_metrics = {t: m for t, m in metrics.items() if m in set(shown)} or metrics
    caption = _caption(shown_metrics, objectives, summary["n"], best_rule)
    return Table(name, title, index, columns, rows, caption, notes)


CI_COLUMN = f"{CONFIDENCE:.0%} CI"


def interval_text(cmp: Comparison, like: Stat) -> str:
    """`[low, high]` of a comparison at the decimal place of the `like` cell; a dash without."""
    if not (math.isfinite(cmp.low) and math.isfinite(cmp.high)):
        return "–"
    low, high = (num_text(Num(v, like=like), DEFAULT_DIGITS) for v in (cmp.low, cmp.high))
    return f"[{low}, {high}]"


def _by_seed(summary_row: pd.Series) -> pd.Series:
    return pd.Series(summary_row["values"], index=list(summary_row["seeds"]), dtype=float)


def excluded_table(runs: pd.DataFrame, dropped: pd.DataFrame, metric: str | None) -> Table:
    """Every run left out of the statistics, with the reason (`metric` as in the tables)."""
    metrics = task_metrics(runs, metric)
    logged = metric_values(runs.assign(status="FINISHED"), metrics).notna()
    unfinished = runs[runs["status"] != "FINISHED"]
    no_metric = runs[(runs["status"] == "FINISHED") & ~logged]
    rows = []
    for run in unfinished.itertuples():
        reason = run.status_reason if isinstance(run.status_reason, str) else "no reason logged"
        rows.append(_excluded_row(run, run.status, reason))
    for run in no_metric.itertuples():
        reason = f"metric {metrics.get(run.task, metric)} not logged"
        rows.append(_excluded_row(run, run.status, reason))
    for run in dropped.itertuples():
        rows.append(_excluded_row(run, run.status, run.reason))
    caption = "Runs not in the statistics above, with the reason."
    index = ["run", "task", "model", "seed", "status", "reason"]
    return Table("excluded_runs", "Excluded runs", index, [], rows, caption)


def _excluded_row(run, status: str, reason: str) -> Row:
    labels = (run.run_id[:8], run.task, run.model, run.seed, status, reason)
    return Row(tuple("" if pd.isna(v) else str(v) for v in labels), ())
