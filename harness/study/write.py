"""Write a study's folder from its runs: summary.csv, table.{md,tex}, figure.{png,pdf}, README.md.

Everything is computed from the runs read back from MLflow (`harness.report.load`): the table is
`harness.report.tables.ablation_table` over (model, setting) with the study's baseline, rendered by
`harness.report.format`; the figure is `harness.report.plots` (`noise_memory` for a metric against
the setting, `leaderboard_points` otherwise); the verdict applies the study's checks
(`harness.study.specs`) with `harness.report.stats.compare`.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import plots
from harness.report.figures import references
from harness.report.format import (
    DEFAULT_DIGITS,
    Num,
    Stat,
    Table,
    num_text,
    to_markdown,
    write_table,
)
from harness.report.load import group_column
from harness.report.stats import (
    compare,
    higher_is_better,
    is_accuracy,
    metric_values,
    task_metrics,
)
from harness.report.tables import ablation_table, excluded_table, metric_label
from harness.study.specs import ALPHA, Check, Study

SUMMARY_COLUMNS = ["model", "setting", "seed", "metric", "value"]
QUICK_NOTE = (
    "**This is the `--quick` smoke version: a few optimizer steps of one seed that check the "
    "pipeline. Its numbers and verdict are not a result.**"
)
DERIVED = {"best/test_rmse": ("best/test_loss", np.sqrt)}
"""Metrics a study computes from a logged one: name -> (logged metric, function)."""


def with_derived(runs: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    """`runs` with the column `metrics.<metric>` added when `metric` is a `DERIVED` one."""
    if metric not in DERIVED:
        return runs
    source, fn = DERIVED[metric]
    values = pd.to_numeric(runs[f"metrics.{source}"], errors="coerce").astype(float)
    return runs.assign(**{f"metrics.{metric}": fn(values)})


def settings(runs: pd.DataFrame, study: Study) -> pd.Series:
    """The setting of each run as text (`1024`, `true`)."""
    return runs[group_column(runs, study.setting_key)].astype("string").fillna("none")


def summary_frame(runs: pd.DataFrame, study: Study) -> pd.DataFrame:
    """One row per FINISHED run with a finite metric: model, setting, seed, metric, value
    (accuracies in percent, as in the tables)."""
    metrics = task_metrics(runs, study.metric)
    values = metric_values(runs, metrics)
    frame = pd.DataFrame(
        {
            "model": runs["model"],
            "setting": settings(runs, study),
            "seed": runs["seed"],
            "metric": runs["task"].map(metrics),
            "value": values,
        }
    )
    frame = frame[np.isfinite(frame["value"].astype(float))]
    order = _setting_order(frame["setting"])
    frame = frame.assign(_order=frame["setting"].map(order))
    frame = frame.sort_values(["model", "_order", "seed"]).drop(columns="_order")
    return frame[SUMMARY_COLUMNS].reset_index(drop=True)


def _setting_order(values: pd.Series) -> dict[str, float]:
    """Settings sorted as numbers where they all are numbers, else as text."""
    unique = sorted(set(values))
    numbers = pd.to_numeric(pd.Series(unique), errors="coerce")
    if numbers.notna().all():
        return dict(zip(unique, numbers.tolist(), strict=True))
    return {v: float(i) for i, v in enumerate(unique)}


def study_table(runs: pd.DataFrame, study: Study, n_seeds: int) -> Table:
    """The ablation table over (model, setting) with the paired comparisons against the baseline."""
    table = ablation_table(
        runs, study.metric, ["model", study.setting_key], study.baseline, n_seeds
    )
    return replace(table, name="table", title=f"{study.name}: {study.title}")


@dataclass(frozen=True)
class Outcome:
    """A check's result: `passed` (None when a row is missing) and one line saying why."""

    check: Check
    passed: bool | None
    line: str


def _resolve(setting: str, available: list[str]) -> str:
    order = _setting_order(pd.Series(available))
    ranked = sorted(available, key=order.get)
    return {"max": ranked[-1], "min": ranked[0]}.get(setting, setting) if ranked else setting


def evaluate(
    summary: pd.DataFrame, check: Check, metric: str, little: frozenset = frozenset()
) -> Outcome:
    """Apply one check to the per-run summary (paired t-test on matched seeds); not testable when
    a row has no run or both rows are among the `little` (model, setting) rows that learned
    little (`learned_little`)."""

    def values(row: tuple[str, str]) -> tuple[tuple[str, str], pd.Series]:
        model, setting = row
        part = summary[summary["model"] == model]
        setting = _resolve(setting, sorted(set(part["setting"])))
        part = part[part["setting"] == setting]
        return (model, setting), part.set_index("seed")["value"].astype(float)

    (row_a, a), (row_b, b) = values(check.first), values(check.second)
    name_a, name_b = (f"{m} at {s}" for m, s in (row_a, row_b))
    if a.empty or b.empty:
        missing = name_a if a.empty else name_b
        return Outcome(check, None, f"{check.text}: not testable ({missing} has no finished run)")
    if row_a in little and row_b in little:
        return Outcome(
            check, None, f"{check.text}: not testable ({name_a} and {name_b} both learned little)"
        )
    cmp = compare(a, b)
    sign = 1.0 if higher_is_better(metric) else -1.0
    ahead = sign * cmp.diff > 0
    significant = math.isfinite(cmp.p_value) and cmp.p_value < ALPHA
    # better: ahead and significant; not_worse: not significantly behind
    passed = (ahead and significant) if check.kind == "better" else (ahead or not significant)
    diff = Num(cmp.diff, like=Stat(a.mean(), a.std(ddof=1) if len(a) > 1 else math.nan))
    p = "n/a" if not math.isfinite(cmp.p_value) else f"{cmp.p_value:.2g}"
    line = (
        f"{check.text}: {'yes' if passed else 'no'} ({name_a} - {name_b} = "
        f"{num_text(diff, DEFAULT_DIGITS)}, {cmp.test} p = {p}, n = {len(a)}/{len(b)})"
    )
    return Outcome(check, passed, line)


def verdict(outcomes: list[Outcome]) -> str:
    """reproduced (every check passes), partly (some do), not reproduced (none passes), or not
    testable (no check could be tested: missing rows, or rows that learned little)."""
    tested = [o for o in outcomes if o.passed is not None]
    if not tested:
        return "not testable"
    passed = sum(bool(o.passed) for o in tested)
    if passed == len(outcomes):
        return "reproduced"
    return "partly reproduced" if passed else "not reproduced"


def levels(runs: pd.DataFrame, study: Study) -> plots.Reference | None:
    """The chance accuracy (%) or the trivial predictor's error in the study's metric."""
    metrics = task_metrics(runs, study.metric)
    task = next(iter(metrics))
    if study.metric in DERIVED:
        source, fn = DERIVED[study.metric]
        ref = references(runs, {task: source}).get(task)
        return None if ref is None else plots.Reference(float(fn(ref.value)), ref.label)
    return references(runs, metrics).get(task)


LEARNED_FRACTION = 0.15
"""A row learned little when its mean closes less than this fraction of the gap between the
reference level (chance accuracy, the trivial predictor's error) and the perfect score (100 %,
error 0); a check between two such rows is not testable."""


def learned_little(
    summary: pd.DataFrame, ref: plots.Reference | None, metric: str
) -> list[tuple[str, str]]:
    """The (model, setting) rows whose mean learned little (`LEARNED_FRACTION`)."""
    if ref is None:
        return []
    means = summary.groupby(["model", "setting"])["value"].mean()
    perfect = 100.0 if is_accuracy(metric) else 0.0
    closed = (means - ref.value) / (perfect - ref.value)  # 0 at the reference, 1 when perfect
    return list(closed[closed < LEARNED_FRACTION].index)


def figure(runs: pd.DataFrame, summary: pd.DataFrame, study: Study, out: Path) -> list[Path]:
    """`figure.{png,pdf}`: the metric against the setting, or one dot per (model, setting)."""
    metric = summary["metric"].iloc[0]
    objective = "regression" if not is_accuracy(metric) else "classification"
    label = metric_label(metric, objective)
    axis = label.rpartition(", ")[0] + (" ↑" if higher_is_better(metric) else " ↓")
    ref = levels(runs, study)
    if study.figure == "setting":
        values = summary.assign(noise_len=pd.to_numeric(summary["setting"]))
        return plots.noise_memory(
            values[["model", "noise_len", "seed", "value"]],
            ylabel=axis,
            reference=ref,
            percent=is_accuracy(metric),
            title=f"{study.name}: {study.title}",
            stem=out / "figure",
        )
    names = summary["model"]
    if summary["setting"].nunique() > 1:  # `s4_legs [freeze_A=true]`: one colour per model
        names = names + " [" + study.setting_key.rsplit(".", 1)[-1] + "=" + summary["setting"] + "]"
    values = pd.DataFrame({"task": study.name, "model": names, "value": summary["value"]})
    published = pd.DataFrame(columns=["task", "model", "value"])
    refs = {study.name: ref} if ref is not None else {}
    return plots.leaderboard_points(
        values,
        published,
        {study.name: axis},
        refs,
        {study.name: is_accuracy(metric)},
        stem=out / "figure",
    )


@dataclass(frozen=True)
class Context:
    """What the README says about how the study ran."""

    command: str
    commit: str
    run_commits: list[str]
    machine: str
    invocation_s: float
    trained: int
    skipped: int
    paper_config: str
    quick: bool


def readme(
    study: Study,
    table: Table,
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    outcomes: list[Outcome],
    ctx: Context,
) -> str:
    """The study's README.md (claim, setup, command, machine, wall time, table, verdict)."""
    metric = summary["metric"].iloc[0]
    wall = pd.to_numeric(runs.get("metrics.wall_time_s"), errors="coerce").sum()
    seeds = sorted(summary["seed"].unique().tolist())
    ref = levels(runs, study)
    close = learned_little(summary, ref, metric)
    result = verdict(outcomes)
    span = (runs["end_time"].max() - runs["start_time"].min()).total_seconds()
    lines = [
        f"# {study.name}: {study.title}",
        "",
        *([f"{QUICK_NOTE}", ""] if ctx.quick else []),
        "## The paper's claim",
        "",
        study.claim,
        "",
        "## Setup (and how its scale differs from the paper's)",
        "",
        study.setup,
        "",
        f"Sweep: `configs/experiment/{study.experiment}.yaml`"
        + "".join(
            f"; part `{p.label}`: `{' '.join(p.overrides)}`" for p in study.parts if p.overrides
        )
        + f". Seeds: {', '.join(map(str, seeds))}. Paper-scale recipe for a GPU (committed, "
        f"not run here): `{ctx.paper_config}`.",
        "",
        "## How it was run",
        "",
        f"    {ctx.command}",
        "",
        f"- Commit: `{ctx.commit}` (runs logged at "
        + ", ".join(f"`{c}`" for c in ctx.run_commits)
        + ").",
        f"- Machine: {ctx.machine}.",
        f"- Wall time: the runs took {span / 60:.1f} min from the first start to the last end "
        f"(their own training times sum to {wall / 60:.1f} min; 2 jobs at a time); this "
        f"invocation {ctx.invocation_s / 60:.1f} min ({ctx.trained} points trained, "
        f"{ctx.skipped} already finished and skipped).",
        "",
        "## Result",
        "",
        to_markdown(table),
    ]
    if ref is not None:
        lines += [f"Reference level: {ref.label} = {ref.value:.3g}.", ""]
    lines += [
        "![figure](figure.png)",
        "",
        f"## Verdict: {result}",
        "",
        *[f"- {o.line}" for o in outcomes],
        "",
    ]
    if close:
        perfect = "100 %" if is_accuracy(metric) else "an error of 0"
        lines += [
            f"Rows that learned little (closed less than {LEARNED_FRACTION:.0%} of the gap from "
            f"the {ref.label} level {ref.value:.3g} to {perfect}): "
            + ", ".join(f"{m} at {s}" for m, s in close)
            + ". A check between two such rows is not testable.",
            "",
        ]
    lines += [
        "What might explain a difference: " + study.explanation,
        "",
        f"Checks: `better` = the first row's mean is better and a two-sided paired t-test on "
        f"matched seeds gives p < {ALPHA}; `not_worse` = it is not significantly worse. The "
        "verdict is `reproduced` when every check holds, `partly reproduced` when some do, "
        "`not reproduced` when none does, `not testable` when no check could be tested. "
        "Files: `summary.csv` (one row per run), "
        "`table.md`, `table.tex`, `figure.png`, `figure.pdf`.",
        "",
    ]
    return "\n".join(lines)


def results_block(study: Study, table: Table, result: str, ctx: Context) -> str:
    """The study's part of the project README's Results section (between its markers)."""
    return "\n".join(
        [
            f"### [{study.name}](results/studies/{study.name}/): {study.title}",
            "",
            to_markdown(table).split("\n", 1)[1].lstrip("\n"),  # without its heading
            f"Verdict: **{result}** (checks and explanation in the study's README). Commit "
            f"`{ctx.commit}`; {ctx.machine}; this invocation {ctx.invocation_s / 60:.1f} min.",
            "",
        ]
    )


def update_results_section(readme: Path, study: Study, block: str) -> bool:
    """Replace the study's block between `<!-- study NAME -->` and `<!-- end study NAME -->` in
    `readme`; False (nothing written) when the markers are absent."""
    begin, end = f"<!-- study {study.name} -->", f"<!-- end study {study.name} -->"
    text = readme.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{block}{end}{rest.split(end, 1)[1]}")
    return True


def write_study(
    runs: pd.DataFrame,
    dropped: pd.DataFrame,
    study: Study,
    out: Path,
    n_seeds: int,
    ctx: Context,
    project_readme: Path | None = None,
) -> list[Path]:
    """Write every file of the study's folder `out` (and its block of the Results section of
    `project_readme`, when given); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    runs = with_derived(runs, study.metric)
    summary = summary_frame(runs, study)
    table = study_table(runs, study, n_seeds)
    excluded = excluded_table(runs, dropped, study.metric)
    paths = {name: out / name for name in ("summary.csv", "README.md")}
    summary.to_csv(paths["summary.csv"], index=False)
    tables = write_table(table, out, excluded)  # table.md, table.tex, table.csv
    metric = summary["metric"].iloc[0]
    little = frozenset(learned_little(summary, levels(runs, study), metric))
    outcomes = [evaluate(summary, c, metric, little) for c in study.checks]
    figures = figure(runs, summary, study, out)
    paths["README.md"].write_text(readme(study, table, summary, runs, outcomes, ctx))
    written = [*paths.values(), *tables, *figures]
    if project_readme is not None:
        block = results_block(study, table, verdict(outcomes), ctx)
        if update_results_section(project_readme, study, block):
            written.append(project_readme)
    return written
