"""Write a study's folder from its runs: summary.csv, table.{md,tex}, figure.{png,pdf},
kernels.{png,pdf} (delay and memory studies), README.md.

Everything is computed from the runs read back from MLflow (`harness.report.load`): the table is
`harness.report.tables.ablation_table` over (model, setting) with the study's baseline, rendered by
`harness.report.format`; the figures are `harness.study.figures`; the testability criterion and
the checks (`harness.study.specs`) use `harness.report.stats.compare` (t-test and 95% interval)
and `harness.study.stats` (Holm-Bonferroni, the smallest detectable effect).
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from common import CLASSIFICATION, REGRESSION
from harness.layout import PROJECT_ROOT
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
    CONFIDENCE,
    Comparison,
    compare,
    higher_is_better,
    is_accuracy,
    metric_values,
    task_metrics,
)
from harness.report.tables import ablation_table, excluded_table, interval_text, metric_label
from harness.study import figures
from harness.study.specs import ALPHA, Check, Criterion, Study
from harness.study.stats import POWER, detectable_effect, holm

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
    """A check's result: `passed` (None when not testable) and one line saying why; the
    comparison, its Holm-adjusted p and the smallest effect the seeds could detect."""

    check: Check
    passed: bool | None
    line: str
    comparison: Comparison | None = None
    holm_p: float = math.nan
    detectable: float = math.nan


def _resolve(setting: str, available: list[str]) -> str:
    order = _setting_order(pd.Series(available))
    ranked = sorted(available, key=order.get)
    return {"max": ranked[-1], "min": ranked[0]}.get(setting, setting) if ranked else setting


def _row_values(summary: pd.DataFrame, row: tuple[str, str]) -> tuple[tuple[str, str], pd.Series]:
    """The row (model, setting) with `max` / `min` resolved, and its values by seed."""
    model, setting = row
    part = summary[summary["model"] == model]
    setting = _resolve(setting, sorted(set(part["setting"])))
    part = part[part["setting"] == setting]
    return (model, setting), part.set_index("seed")["value"].astype(float)


def _difference_sd(a: pd.Series, b: pd.Series) -> float:
    """Standard deviation of the paired differences on matched seeds (else of a - b for
    independent rows, sqrt(var a + var b))."""
    if set(a.index) == set(b.index) and len(a) > 1:
        return float((a.sort_index() - b.sort_index()).std(ddof=1))
    if len(a) > 1 and len(b) > 1:
        return math.sqrt(a.var(ddof=1) + b.var(ddof=1))
    return math.nan


def evaluate_all(
    summary: pd.DataFrame, checks, metric: str, little: frozenset = frozenset()
) -> list[Outcome]:
    """Apply a study's checks to the per-run summary: a t-test on matched seeds per check
    (`compare`), Holm-Bonferroni over the `better` checks that could be tested (`better` holds
    when the first row is ahead and its adjusted p < ALPHA; `not_worse` when it is not
    significantly behind at the unadjusted level). Not testable: a row has no run, or both
    rows are among the `little` (model, setting) rows that learned little (`learned_little`)."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    tested: list[tuple] = []
    for check in checks:
        (row_a, a), (row_b, b) = (
            _row_values(summary, check.first),
            _row_values(summary, check.second),
        )
        names = tuple(f"{m} at {s}" for m, s in (row_a, row_b))
        if a.empty or b.empty:
            missing = names[0] if a.empty else names[1]
            tested.append((check, None, f"not testable ({missing} has no finished run)"))
        elif row_a in little and row_b in little:
            why = f"not testable ({names[0]} and {names[1]} both learned little)"
            tested.append((check, None, why))
        else:
            tested.append((check, (names, a, b, compare(a, b)), ""))
    better = [i for i, (c, t, _) in enumerate(tested) if t and c.kind == "better"]
    adjusted = dict(zip(better, holm([tested[i][1][3].p_value for i in better]), strict=True))
    outcomes = []
    for i, (check, result, why) in enumerate(tested):
        source = f" Source: {check.source}."
        if result is None:
            outcomes.append(Outcome(check, None, f"{check.text}: {why}.{source}"))
            continue
        names, a, b, cmp = result
        level = ALPHA / len(better) if check.kind == "better" else ALPHA
        detectable = detectable_effect(_difference_sd(a, b), min(len(a), len(b)), level)
        ahead = sign * cmp.diff > 0
        p = float(adjusted.get(i, cmp.p_value))
        significant = math.isfinite(p) and p < ALPHA
        passed = bool(
            (ahead and significant) if check.kind == "better" else (ahead or not significant)
        )
        like = Stat(a.mean(), a.std(ddof=1) if len(a) > 1 else math.nan)
        raw = "n/a" if not math.isfinite(cmp.p_value) else f"{cmp.p_value:.2g}"
        holm_text = f", Holm p = {p:.2g}" if i in adjusted else ""
        effect = "n/a" if not math.isfinite(detectable) else num_text(Num(detectable, like), 3)
        line = (
            f"{check.text}: {'yes' if passed else 'no'} ({names[0]} - {names[1]} = "
            f"{num_text(Num(cmp.diff, like=like), DEFAULT_DIGITS)}, {CONFIDENCE:.0%} CI "
            f"{interval_text(cmp, like)}, {cmp.test} p = {raw}{holm_text}, n = {len(a)}/"
            f"{len(b)}; detectable at {POWER:.0%} power: |Δ| >= {effect.lstrip('+')})."
            f"{source}"
        )
        outcomes.append(Outcome(check, passed, line, cmp, p, detectable))
    return outcomes


def evaluate(
    summary: pd.DataFrame, check: Check, metric: str, little: frozenset = frozenset()
) -> Outcome:
    """One check alone (a family of one: no adjustment); see `evaluate_all`."""
    return evaluate_all(summary, [check], metric, little)[0]


NOT_TESTABLE_AT_SCALE = "not testable at this scale"


def verdict(outcomes: list[Outcome], testable: bool = True) -> str:
    """not testable at this scale (the calibration criterion failed), else reproduced (every
    check passes), partly (some do), not reproduced (none passes), or not testable (no check
    could be tested: missing rows, or rows that learned little)."""
    if not testable:
        return NOT_TESTABLE_AT_SCALE
    tested = [o for o in outcomes if o.passed is not None]
    if not tested:
        return "not testable"
    passed = sum(bool(o.passed) for o in tested)
    if passed == len(outcomes):
        return "reproduced"
    return "partly reproduced" if passed else "not reproduced"


def gap_closed(mean: float, ref: plots.Reference, metric: str) -> float:
    """The fraction of the gap from the reference level to perfect (100 %, error 0) closed."""
    perfect = 100.0 if is_accuracy(metric) else 0.0
    return (mean - ref.value) / (perfect - ref.value)


def criterion_holds(
    summary: pd.DataFrame, ref: plots.Reference | None, metric: str, criterion: Criterion
) -> tuple[bool, list[str]]:
    """Whether the criterion holds, and one line per baseline row with the fraction it closed."""
    if ref is None:
        return False, ["no reference level (chance or trivial predictor) to measure the gap"]
    held, lines = True, []
    for row in criterion.rows:
        (model, setting), values = _row_values(summary, row)
        if values.empty:
            held = False
            lines.append(f"{model} at {setting}: no finished run")
            continue
        closed = gap_closed(float(values.mean()), ref, metric)
        held &= closed >= criterion.fraction
        lines.append(
            f"{model} at {setting}: mean {values.mean():.4g} over {len(values)} "
            f"seed{'s' * (len(values) != 1)} closes "
            f"{closed:.0%} of the gap ({'holds' if closed >= criterion.fraction else 'fails'})"
        )
    return held, lines


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
    closed = gap_closed(means, ref, metric)  # 0 at the reference, 1 when perfect
    return list(closed[closed < LEARNED_FRACTION].index)


def figure(runs: pd.DataFrame, summary: pd.DataFrame, study: Study, out: Path) -> list[Path]:
    """`figure.{png,pdf}`: the metric per row, or against the setting (`figures.metric_figure`)."""
    metric = summary["metric"].iloc[0]
    objective = (CLASSIFICATION if is_accuracy(metric) else REGRESSION).name
    label = metric_label(metric, objective)
    axis = label.rpartition(", ")[0] + (" ↑" if higher_is_better(metric) else " ↓")
    ref = levels(runs, study)
    level = None if ref is None else figures.Level(ref.value, ref.label)
    return figures.metric_figure(
        summary,
        ylabel=axis,
        setting_label=study.setting_key.rsplit(".", 1)[-1],
        title=f"{study.name}: {study.title}",
        reference=level,
        error_metric=not higher_is_better(metric),
        stem=out / "figure",
    )


def kernel_runs(runs: pd.DataFrame, study: Study, root: Path) -> dict[str, Path]:
    """Per model, the run folder of its lowest seed that holds both weight files, at the
    baseline's setting when the model has it (trained A in init_ablation), else at the largest
    setting (the longest noise); `root` holds `results/runs` when a run does not log
    `paths.runs_dir`."""
    found = {}
    runs = runs[runs["status"] == "FINISHED"]
    runs = runs.assign(_setting=settings(runs, study))
    order = _setting_order(runs["_setting"])
    for model, part in runs.groupby("model", sort=True):
        preferred = study.baseline.get(study.setting_key)
        top = (
            preferred
            if preferred in set(part["_setting"])
            else max(part["_setting"], key=order.get)
        )
        part = part[part["_setting"] == top].sort_values("seed")
        for _, run in part.iterrows():
            base = run.get("params.paths.runs_dir")
            runs_dir = Path(base) if isinstance(base, str) and base else root / "results" / "runs"
            folder = runs_dir / str(run["config_hash"])
            if all((folder / f).is_file() for f in (figures.MODEL_INIT, figures.MODEL_BEST)):
                found[str(model)] = folder
                break
    return found


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


def calibration_text(study: Study) -> str:
    """The study's pilot record (`docs/calibration/<name>.md`) without its title, headings
    demoted below the README's Calibration section; a line saying so when there is none."""
    path = PROJECT_ROOT / study.calibration
    if not path.is_file():
        return f"No pilot record ({study.calibration} is missing)."
    lines = path.read_text().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("##" + ln if ln.startswith("#") else ln for ln in lines).strip()


@dataclass(frozen=True)
class Assessment:
    """What the README reports about the checks: the testability criterion (held, per-row
    lines), the outcomes of the checks and the verdict."""

    testable: bool
    criterion_lines: list[str]
    outcomes: list[Outcome]

    @property
    def verdict(self) -> str:
        return verdict(self.outcomes, self.testable)


def assess(runs: pd.DataFrame, summary: pd.DataFrame, study: Study) -> Assessment:
    """The criterion and the checks of `study` evaluated on its runs."""
    metric = summary["metric"].iloc[0]
    ref = levels(runs, study)
    testable, lines = criterion_holds(summary, ref, metric, study.criterion)
    little = frozenset(learned_little(summary, ref, metric))
    return Assessment(testable, lines, evaluate_all(summary, study.checks, metric, little))


def readme(
    study: Study,
    table: Table,
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    assessment: Assessment,
    ctx: Context,
    kernels: bool,
) -> str:
    """The study's README.md (claim, setup, calibration, command, machine, wall time, table,
    figures, verdict)."""
    metric = summary["metric"].iloc[0]
    wall = pd.to_numeric(runs.get("metrics.wall_time_s"), errors="coerce").sum()
    seeds = sorted(summary["seed"].unique().tolist())
    ref = levels(runs, study)
    close = learned_little(summary, ref, metric)
    result = assessment.verdict
    span = (runs["end_time"].max() - runs["start_time"].min()).total_seconds()
    perfect = "100 %" if is_accuracy(metric) else "an error of 0"
    level = "the reference level" if ref is None else f"the {ref.label} level"
    rows = ", ".join(f"{m} at {s}" for m, s in study.criterion.rows)
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
        "## Calibration",
        "",
        f"Testability criterion, stated before the runs: the baseline rows ({rows}) each close "
        f"at least {study.criterion.fraction:.0%} of the gap from {level} to {perfect}. In "
        f"these runs it {'holds' if assessment.testable else 'fails'}:",
        "",
        *[f"- {line}" for line in assessment.criterion_lines],
        "",
        f"The pilots that chose the scale ({study.calibration}):",
        "",
        calibration_text(study),
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
    lines += ["![figure](figure.png)", ""]
    if kernels:
        lines += [
            "Learned kernels: |K(t)| of each model's first SSM layer (mean over channels) at "
            "initialization and after training (its lowest seed, at the baseline's setting, else "
            "the largest):",
            "",
            "![kernels](kernels.png)",
            "",
        ]
    lines += [f"## Verdict: {result}", ""]
    if not assessment.testable:
        lines += [
            f"The calibration criterion fails at this scale, so the checks below do not decide "
            f"the claim; the paper-scale recipe is `{ctx.paper_config}` (a GPU).",
            "",
        ]
    lines += [*[f"- {o.line}" for o in assessment.outcomes], ""]
    if close:
        lines += [
            f"Rows that learned little (closed less than {LEARNED_FRACTION:.0%} of the gap from "
            f"the {ref.label} level {ref.value:.3g} to {perfect}): "
            + ", ".join(f"{m} at {s}" for m, s in close)
            + ". A check between two such rows is not testable.",
            "",
        ]
    n_better = sum(c.kind == "better" for c in study.checks)
    lines += [
        "What might explain a difference: " + study.explanation,
        "",
        f"Checks: `better` = the first row's mean is better and a two-sided t-test on matched "
        f"seeds (paired) gives p < {ALPHA} after Holm-Bonferroni adjustment over the study's "
        f"{n_better} `better` checks; `not_worse` = it is not significantly worse at the "
        f"unadjusted level {ALPHA} (the stricter reading for the claim). Each check shows the "
        f"difference with its {CONFIDENCE:.0%} confidence interval and the smallest |difference| "
        f"its seeds detect with {POWER:.0%} power (from the observed standard deviation of the "
        f"paired differences, at level {ALPHA}/{n_better or 1} for `better` checks, Holm's "
        f"first step, and {ALPHA} for `not_worse`). The verdict is `{NOT_TESTABLE_AT_SCALE}` "
        "when the calibration criterion fails, else `reproduced` when every check holds, "
        "`partly reproduced` when some do, `not reproduced` when none does, `not testable` "
        "when no check could be tested. Files: `summary.csv` (one row per run), `table.md`, "
        "`table.tex`, `figure.png`, `figure.pdf`"
        + (", `kernels.png`, `kernels.pdf`." if kernels else "."),
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
    root: Path,
    project_readme: Path | None = None,
) -> list[Path]:
    """Write every file of the study's folder `out` (and its block of the Results section of
    `project_readme`, when given); `root` holds the runs' folders (`results/runs`). Returns the
    paths."""
    out.mkdir(parents=True, exist_ok=True)
    runs = with_derived(runs, study.metric)
    summary = summary_frame(runs, study)
    table = study_table(runs, study, n_seeds)
    excluded = excluded_table(runs, dropped, study.metric)
    paths = {name: out / name for name in ("summary.csv", "README.md")}
    summary.to_csv(paths["summary.csv"], index=False)
    tables = write_table(table, out, excluded)  # table.md, table.tex, table.csv
    assessment = assess(runs, summary, study)
    written = figure(runs, summary, study, out)
    chosen = kernel_runs(runs, study, root) if study.kernels else {}
    if chosen:
        title = f"{study.name}: learned kernels |K(t)|, first layer"
        written += figures.kernels_figure(chosen, title, out / "kernels")
    text = readme(study, table, summary, runs, assessment, ctx, bool(chosen))
    paths["README.md"].write_text(text)
    written = [*paths.values(), *tables, *written]
    if project_readme is not None:
        block = results_block(study, table, assessment.verdict, ctx)
        if update_results_section(project_readme, study, block):
            written.append(project_readme)
    return written
