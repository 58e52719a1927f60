"""Build the report's tables from deduplicated runs: leaderboard, ablation, excluded runs.

- Leaderboard: rows = models, columns = tasks (LRA tasks first, in the papers' order) plus an
  `LRA avg` column when any LRA task is present; cells `mean ± std (n)` over seeds of the metric
  (default `best/test_acc`: test accuracy at the best validation evaluation). The best measured
  entry of each column is bold; published rows follow, marked as published, with their sources.
- Ablation: one row per combination of the `--group-by` keys, with the same statistics and, with
  `--baseline key=value`, the difference of means and a paired (matched seeds) or Welch t-test
  against the baseline row that shares the other keys.
- Excluded runs: every run that is not in the statistics (failed, killed, running, finished without
  the metric, resubmitted duplicates) with its reason, so nothing is dropped silently.
"""

import numpy as np
import pandas as pd

from harness.cli import parse_key_values
from harness.report.format import DAGGER, Num, Row, Stat, Table
from harness.report.load import group_column
from harness.report.stats import (
    LRA_TASKS,
    compare,
    higher_is_better,
    is_accuracy,
    lra_average,
    metric_values,
    ordered_tasks,
    summarize,
)

LRA_AVG = "LRA avg"


def metric_label(metric: str) -> str:
    """Human name of a metric for captions and axis labels, with its unit."""
    if metric == "best/test_acc":
        return "Test accuracy (%) at the best validation evaluation"
    if metric == "best/val_acc":
        return "Best validation accuracy (%)"
    return f"{metric} (%)" if is_accuracy(metric) else metric


def _seed_text(counts: pd.Series) -> str:
    if counts.empty:
        return "no seeds"
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} seed{'s' * (lo != 1)} per cell" if lo == hi else f"{lo}-{hi} seeds per cell"


def _caption(metric: str, counts: pd.Series, best_rule: str) -> str:
    return (
        f"{metric_label(metric)} (MLflow metric {metric}): mean ± sample std (ddof=1) over "
        f"seeds, seed count in parentheses; {_seed_text(counts)}. {best_rule}"
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
                cells.append(Stat(lra_average(by_task["mean"].to_frame().T).iloc[0]))
            elif task in by_task.index:
                cells.append(Stat(by_task.at[task, "mean"], by_task.at[task, "std"]))
            else:
                cells.append(None)
        rows.append(Row((f"{model} [{ref}]",), tuple(cells), published=True))
    return rows, sources


def leaderboard_table(
    runs: pd.DataFrame,
    metric: str,
    published: pd.DataFrame | None,
    min_seeds: int,
    published_mode: str = "matched",
) -> Table:
    """Task x model leaderboard of `metric` over seeds, with published reference rows.

    `published_mode`: `matched` shows published rows of the registered models present in `runs`,
    `all` every published row on the shown tasks, `none` no published rows.
    """
    values = metric_values(runs, metric)
    summary = summarize(runs, values, ["model", "task"])
    tasks = ordered_tasks(summary["task"].dropna())
    means = summary.pivot(index="model", columns="task", values="mean").reindex(columns=tasks)
    has_lra = any(t in LRA_TASKS for t in tasks)
    columns = tasks + ([LRA_AVG] if has_lra else [])
    if has_lra:
        means[LRA_AVG] = lra_average(means)
    cells = summary.set_index(["model", "task"])
    bold = {c: _best_mask(means[c], metric) for c in columns}
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
        notes.append(f"No FINISHED run logs the metric {metric}; see the excluded runs.")
    if (summary["n"] < min_seeds).any():
        notes.append(f"{DAGGER} fewer than {min_seeds} seeds.")
    if has_lra:
        notes.append(
            f"{LRA_AVG}: mean over the six LRA tasks, computed only for rows that have all six; "
            "blank otherwise (published averages that count a failed Path-X as 50 are not used)."
        )
    if published is not None and published_mode != "none" and is_accuracy(metric):
        chosen = (
            published
            if published_mode == "all"
            else published[published["registered"].isin(set(means.index))]
        )
        pub_rows, sources = _published_rows(chosen, columns)
        if pub_rows:
            notes += ["Published rows: test accuracy (%) as reported, ± the paper's std; sources:"]
            notes += sources
        rows += pub_rows
    caption = _caption(metric, summary["n"], "Best measured entry per column in bold.")
    return Table("leaderboard", "Leaderboard", ["model"], columns, rows, caption, notes)


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
    runs: pd.DataFrame, metric: str, keys: list[str], baseline: dict[str, str], min_seeds: int
) -> Table:
    """One row per combination of `keys`, with comparisons against `baseline` rows.

    The ablated keys are the baseline's keys (or the first grouping key without a baseline); the
    best entry among rows that share the other keys is bold, and each row is compared with the
    baseline row that shares them.
    """
    values = metric_values(runs, metric)
    frame = _key_frame(runs, keys)
    summary = summarize(frame, values, keys)
    ablated = list(baseline) or keys[:1]
    context = [k for k in keys if k not in ablated]
    bold = pd.Series(False, index=summary.index)
    for _, part in summary.groupby(context) if context else [(None, summary)]:
        bold[part.index] = _best_mask(part["mean"], metric)
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
                cells += [None, "no baseline row", None]
            elif base == i:
                cells += [None, "baseline", None]
            else:
                cmp = compare(_by_seed(row), _by_seed(summary.loc[base]))
                cells += [Num(cmp.diff, "+.2f"), cmp.test, Num(cmp.p_value, ".3g")]
        rows.append(Row(tuple(str(row[k]) for k in keys), tuple(cells)))
    columns = [metric] + (["Δ vs baseline", "test", "p"] if baseline else [])
    best_rule = (
        f"Best {'/'.join(ablated)} per {'/'.join(context)} in bold."
        if context
        else "Best row in bold."
    )
    notes = []
    if (summary["n"] < min_seeds).any():
        notes.append(f"{DAGGER} fewer than {min_seeds} seeds.")
    if baseline:
        spec = ", ".join(f"{k}={v}" for k, v in baseline.items())
        notes.append(
            f"Δ: difference of means against the baseline {spec} with the same "
            f"{'/'.join(context) or 'rows'}; p: two-sided paired t-test on matched seeds when "
            "both rows have the same seeds, else Welch's t-test (scipy.stats)."
        )
    name = "ablation_" + "_".join(k.replace(".", "-").replace("/", "-") for k in keys)
    title = f"Ablation: {' x '.join(keys)}"
    return Table(name, title, keys, columns, rows, _caption(metric, summary["n"], best_rule), notes)


def _by_seed(summary_row: pd.Series) -> pd.Series:
    return pd.Series(summary_row["values"], index=list(summary_row["seeds"]), dtype=float)


def excluded_table(runs: pd.DataFrame, dropped: pd.DataFrame, metric: str) -> Table:
    """Every run left out of the statistics, with the reason."""
    col = f"metrics.{metric}"
    has_metric = runs[col].notna() if col in runs.columns else pd.Series(False, index=runs.index)
    unfinished = runs[runs["status"] != "FINISHED"]
    no_metric = runs[(runs["status"] == "FINISHED") & ~has_metric]
    rows = []
    for run in unfinished.itertuples():
        reason = run.status_reason if isinstance(run.status_reason, str) else "no reason logged"
        rows.append(_excluded_row(run, run.status, reason))
    for run in no_metric.itertuples():
        rows.append(_excluded_row(run, run.status, f"metric {metric} not logged"))
    for run in dropped.itertuples():
        rows.append(_excluded_row(run, run.status, run.reason))
    caption = "Runs not in the statistics above, with the reason."
    index = ["run", "task", "model", "seed", "status", "reason"]
    return Table("excluded_runs", "Excluded runs", index, [], rows, caption)


def _excluded_row(run, status: str, reason: str) -> Row:
    labels = (run.run_id[:8], run.task, run.model, run.seed, status, reason)
    return Row(tuple("" if pd.isna(v) else str(v) for v in labels), ())
