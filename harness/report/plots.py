"""Paper figures with seaborn's style: PDF + PNG, column (3.5 in) and double (7 in) widths.

Every function takes tidy data (pandas frames or numpy arrays, already in display units), draws on
a `matplotlib.figure.Figure` (no pyplot global state, any backend), saves `<stem>.pdf` and
`<stem>.png` and returns the two paths. `harness.report.figures` gathers the data from MLflow, run
directories and benchmark CSVs.

Rules every figure keeps: a model has the same colour in every figure
(`harness.plotting.style.MODEL_COLOURS`); an
interval (± sample std over seeds) is drawn, and named in the legend, only where at least two
seeds exist, otherwise the legend says `1 seed`; legends list only what is drawn; performance axes
start at a meaningful baseline (0 % or the chance level for accuracies, 0 for losses) and draw the
chance / trivial-predictor level (`Reference`) where one is known.

- `learning_curves`: validation accuracy or loss vs optimizer step per task.
- `leaderboard_points`: per task, mean ± sample std over seeds per model, published value marked.
- `noise_memory`: accuracy vs noise-padding length per model (the HOPE paper's memory figure).
- `kernels`: convolution kernels K[h, l] of one layer (a few channels), per task and model.
- `basis_functions`: (exp(tA)B)_n per initialization, HOPE's impulse response (HTTYH figure).
- `hankel_singular_values`: normalized Hankel singular values before and after training (HOPE).
The style, the model colours, the figure grid and saving are `harness.plotting.style`'s; the
benchmark figure is `harness.plotting.bench.bench_scaling`.
"""

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.plotting.style import (
    STYLE,
    figure_legend,
    index_colours,
    model_colour,
    new_figure,
    styled,
)
from harness.report.stats import ordered_tasks

PUBLISHED_MARKER = {"marker": "*", "color": "black", "markersize": 8}
"""How a published reference value is drawn."""

REFERENCE_LINE = {"color": "black", "linestyle": ":", "linewidth": 1.0}
"""How a chance / trivial-predictor level is drawn."""

STAGE_LINES = {"initial": ("--", (3.7, 1.6)), "trained": ("-", "")}
"""Line style of initial (step 0) and trained weights: (matplotlib linestyle, seaborn dashes)."""

SV_FLOOR = 1e-7
"""Lowest Hankel singular value ratio drawn (float32 round-off level of the kernels)."""

BAND_ALPHA = 0.2
"""Opacity of a ± std band."""


@dataclass(frozen=True)
class Reference:
    """A level to compare with: `chance` accuracy or the loss of a `trivial` predictor."""

    value: float
    label: str


def seed_text(counts: Sequence[int]) -> str:
    """`1 seed`, `3 seeds`, `1-3 seeds` for the seed counts of one model's points."""
    lo, hi = int(min(counts)), int(max(counts))
    return f"{lo} seed{'s' * (hi != 1)}" if lo == hi else f"{lo}-{hi} seeds"


VARIANT_LINES = ("-", "--", ":", "-.")
"""Line styles that tell apart the variants `model [key=value]` of one model (one colour)."""


def variant_styles(names) -> dict[str, str]:
    """Name -> line style: the sorted variants of one model take `VARIANT_LINES` in turn."""
    styles, seen = {}, {}
    for name in sorted(set(names)):
        base = name.split(" ")[0]
        styles[name] = VARIANT_LINES[seen.get(base, 0) % len(VARIANT_LINES)]
        seen[base] = seen.get(base, 0) + 1
    return styles


def _interval_legend(seed_counts: dict[str, list[int]]) -> list[Artist]:
    """One entry per drawn model: `model: mean ± std, 3 seeds` or `model: 1 seed`."""
    handles = []
    styles = variant_styles(seed_counts)
    for model, counts in sorted(seed_counts.items()):
        text = seed_text(counts)
        mean = "mean ± std" if min(counts) > 1 else "mean (± std where ≥ 2 seeds)"
        label = f"{model}: {mean + ', ' if max(counts) > 1 else ''}{text}"
        handles.append(
            Line2D([], [], color=model_colour(model), ls=styles[model], marker="o", label=label)
        )
    return handles


def _reference_handles(refs: dict[str, Reference]) -> list[Artist]:
    """One legend entry for the dotted levels drawn (their kinds joined: `chance / trivial`)."""
    labels = sorted({r.label for r in refs.values()})
    return [Line2D([], [], **REFERENCE_LINE, label=" / ".join(labels))] if labels else []


def _draw_reference(ax: Axes, ref: Reference | None, vertical: bool = False) -> None:
    if ref is not None and np.isfinite(ref.value):
        (ax.axvline if vertical else ax.axhline)(ref.value, zorder=1, **REFERENCE_LINE)


def _performance_limits(
    values: np.ndarray, percent: bool, ref: Reference | None
) -> tuple[float, float]:
    """Axis limits of a performance comparison: accuracies from 0 to 100 %, losses from 0 to a
    little above the largest value or the trivial level."""
    if percent:
        return 0.0, 100.0
    top = max(np.nanmax(values), ref.value if ref is not None else 0.0)
    return 0.0, 1.08 * top


@styled
def learning_curves(
    history: pd.DataFrame,
    ylabels: dict[str, str],
    references: dict[str, Reference],
    width: str | None = None,
) -> Figure:
    """Metric vs step per task (one panel each, y label `ylabels[task]`), one line per model.

    `history`: columns `task`, `model`, `seed`, `step`, `value` (one row per logged point). The line
    is the mean over seeds at each step; a ± sample std band only where >= 2 seeds logged that
    step. `references[task]`, where given, is drawn as a dotted level.
    """
    tasks = ordered_tasks(history["task"])
    fig, axes = new_figure(len(tasks), width)
    seeds: dict[str, list[int]] = {}
    styles = variant_styles(history["model"])
    for ax, task in zip(axes, tasks, strict=True):
        part = history[history["task"] == task]
        for model, curve in part.groupby("model"):
            stats = curve.groupby("step")["value"].agg(["mean", "std", "count"]).reset_index()
            colour = model_colour(model)
            ax.plot(
                stats["step"], stats["mean"], color=colour, ls=styles[model], marker="o", ms=2.5
            )
            band = stats[stats["count"] >= 2]
            if len(band):
                lo, hi = band["mean"] - band["std"], band["mean"] + band["std"]
                ax.fill_between(band["step"], lo, hi, color=colour, alpha=BAND_ALPHA, lw=0)
            seeds.setdefault(model, []).append(int(curve["seed"].nunique()))
        _draw_reference(ax, references.get(task))
        ax.set(title=task, xlabel="optimizer step", ylabel=ylabels[task])
    shown = {t: r for t, r in references.items() if t in tasks}
    figure_legend(fig, axes, _interval_legend(seeds) + _reference_handles(shown))
    return fig


def _dot_panel(ax: Axes, part: pd.DataFrame, order: list[str], seeds: dict) -> None:
    """Mean per model at y = its index in `order`; ± std bars only for >= 2 seeds."""
    for y, model in enumerate(order):
        vals = part.loc[part["model"] == model, "value"].to_numpy(dtype=float)
        colour = model_colour(model)
        std = vals.std(ddof=1) if len(vals) > 1 else None
        ax.errorbar(
            vals.mean(), y, xerr=std, color=colour, marker="o", markersize=4, capsize=2.5, lw=1
        )
        seeds.setdefault(model, []).append(len(vals))


DOT_LABEL_CHARS = 30
"""Model labels of the dot plot wrap at this many characters (a cell's settings can be long)."""

DOT_ROW_HEIGHT = 0.14
"""Height in inches a line of a dot plot's model labels is given: many models make it taller."""

PANEL_MARGIN = 0.9
"""Height in inches of a panel's title and x axis (tick labels and label)."""


@styled
def leaderboard_points(
    values: pd.DataFrame,
    published: pd.DataFrame,
    xlabels: dict[str, str],
    references: dict[str, Reference],
    percent: dict[str, bool],
    width: str | None = None,
) -> Figure:
    """Per task, one point per model at the mean over seeds with ± sample std error bars.

    `values`: columns `task`, `model`, `value` (one row per seed). `published`: columns `task`,
    `model` (the registered name it belongs to), `value`; drawn as black stars. `xlabels`,
    `references` (chance / trivial level) and `percent` (an accuracy axis, 0-100) per task.
    """
    tasks = ordered_tasks(values["task"])
    fig, axes = new_figure(len(tasks), width)
    seeds: dict[str, list[int]] = {}
    n_published = 0
    for ax, task in zip(axes, tasks, strict=True):
        part = values[values["task"] == task]
        order = sorted(part["model"].unique())
        _dot_panel(ax, part, order, seeds)
        pub = published[(published["task"] == task) & published["model"].isin(order)]
        y = [order.index(m) for m in pub["model"]]
        ax.plot(pub["value"], y, linestyle="none", zorder=5, **PUBLISHED_MARKER)
        n_published += len(pub)
        ref = references.get(task)
        _draw_reference(ax, ref, vertical=True)
        ax.set_xlim(*_performance_limits(part["value"].to_numpy(), percent[task], ref))
        ax.set_yticks(range(len(order)), [textwrap.fill(m, DOT_LABEL_CHARS) for m in order])
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set(title=task, xlabel=xlabels[task], ylabel="")
    tallest = max(len(t.get_text().splitlines()) for ax in axes for t in ax.get_yticklabels())
    lines = tallest * max(len(ax.get_yticklabels()) for ax in axes)  # rows are evenly spaced
    rows = axes[0].get_gridspec().nrows
    fig.set_figheight(max(fig.get_figheight(), rows * (DOT_ROW_HEIGHT * lines + PANEL_MARGIN)))
    handles = _interval_legend(seeds)
    if n_published:
        handles.append(Line2D([], [], linestyle="none", **PUBLISHED_MARKER, label="published"))
    shown = {t: r for t, r in references.items() if t in tasks}
    figure_legend(fig, axes, handles + _reference_handles(shown))
    return fig


@styled
def noise_memory(
    values: pd.DataFrame,
    ylabel: str,
    reference: Reference | None,
    percent: bool,
    title: str,
    width: str | None = None,
) -> Figure:
    """Accuracy against noise-padding length, one line per model (mean over seeds; ± sample std
    bars only for >= 2 seeds). `values`: columns `model`, `noise_len` (steps), `seed`, `value`."""
    fig, (ax,) = new_figure(1, width)
    seeds: dict[str, list[int]] = {}
    for model, part in values.groupby("model"):
        stats = part.groupby("noise_len")["value"].agg(["mean", "std", "count"]).reset_index()
        err = stats["std"].where(stats["count"] >= 2)
        ax.errorbar(
            stats["noise_len"],
            stats["mean"],
            yerr=None if err.isna().all() else err.fillna(0.0),
            color=model_colour(model),
            marker="o",
            markersize=3,
            capsize=2.5,
        )
        seeds[model] = stats["count"].astype(int).tolist()
    _draw_reference(ax, reference)
    ax.set_ylim(*_performance_limits(values["value"].to_numpy(), percent, reference))
    ax.set(title=title, xlabel="noise padding length (steps)", ylabel=ylabel)
    refs = {"": reference} if reference is not None else {}
    figure_legend(fig, [ax], _interval_legend(seeds) + _reference_handles(refs))
    return fig


KERNEL_COLUMNS = 4
"""The most kernel panels side by side (a double-column figure: 1.75 in each)."""


@styled
def kernels(
    kernel: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    titles: dict[tuple[str, str], str],
    n_channels: int = 4,
    width: str | None = None,
) -> Figure:
    """Convolution kernels K[h, l] of one SSM layer per (task, model): initial dashed, trained
    solid; each task starts a row of panels, at most `KERNEL_COLUMNS` to a row.

    `kernel[(task, model)] = (initial, trained)`, real arrays (H, L) (one direction of
    `layer.kernel(L)`); the first `n_channels` channels are drawn against the lag l, one colour
    per channel. `titles[(task, model)]` names the run (task, model, seed, steps).
    """
    keys = sorted(kernel)
    per_task = {
        task: [k for k in keys if k[0] == task] for task in dict.fromkeys(t for t, _ in keys)
    }
    n_cols = min(KERNEL_COLUMNS, max(len(ks) for ks in per_task.values()))
    slots: list[tuple[str, str] | None] = []
    for task_keys in per_task.values():  # a task's panels, then blanks to the end of its row
        slots += task_keys + [None] * (-len(task_keys) % n_cols)
    fig, all_axes = new_figure(len(slots), width, max_cols=n_cols)
    for ax, slot in zip(all_axes, slots, strict=True):
        ax.set_visible(slot is not None)
    axes = [ax for ax, slot in zip(all_axes, slots, strict=True) if slot is not None]
    colours = index_colours(n_channels)
    for ax, key in zip(axes, keys, strict=True):
        initial, trained = kernel[key]
        lags = np.arange(trained.shape[1])
        for h in range(min(n_channels, trained.shape[0])):
            ax.plot(lags, initial[h], color=colours[h], linestyle=STAGE_LINES["initial"][0])
            ax.plot(lags, trained[h], color=colours[h], label=f"h={h}")
        ax.set(xlabel="lag l (steps)", ylabel="K[h, l]")
        # Two lines over a narrow panel: the smaller text of the tick labels.
        ax.set_title(titles[key], fontsize=STYLE["xtick.labelsize"])
    handles = axes[0].get_legend_handles_labels()[0]
    handles += [
        Line2D([], [], color="grey", linestyle=STAGE_LINES[s][0], label=label)
        for s, label in (("initial", "step 0"), ("trained", "best validation step"))
    ]
    figure_legend(fig, axes, handles, "channel h; weights at")
    return fig


@dataclass(frozen=True)
class Basis:
    """What one panel of the basis figure draws: `values` (K, T) against `t` (T,), and what they
    are (`label`, e.g. `$(e^{tA}B)_n$` or `impulse response`)."""

    t: np.ndarray
    values: np.ndarray
    label: str


@styled
def basis_functions(
    basis: dict[str, Basis], n_show: int = 4, width: str | None = None, subtitle: str = ""
) -> Figure:
    """Basis functions (exp(tA)B)_n, or impulse responses, of each registered model's init on one
    log-scaled time axis shared by every panel, each panel divided by its largest |value| so the
    panels compare (HTTYH, Figure 1 style).

    `basis[model]`: a `Basis`; the first `n_show` rows are drawn.
    """
    fig, axes = new_figure(len(basis), width, max_cols=3, sharex=True, sharey=True)
    colours = index_colours(n_show)
    for ax, (name, panel) in zip(axes, basis.items(), strict=True):
        shown = panel.values[:n_show]
        scale = np.abs(shown).max() or 1.0
        for n, row in enumerate(shown):
            ax.plot(panel.t, row / scale, color=colours[n], lw=0.9)
        ax.set_title(f"{name}: {panel.label}")
        ax.set_xscale("log")
        ax.axhline(0.0, color="grey", lw=0.5)
    for ax in axes:
        ax.label_outer()
    for ax in axes[-3:]:
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("time t (lag l at step size Δ: t = lΔ)")
    fig.supylabel("value / max |value| of the panel", fontsize=STYLE["axes.labelsize"])
    handles = [
        Line2D([], [], color=colours[n], label=f"n={n} / channel {n}") for n in range(n_show)
    ]
    figure_legend(fig, axes, handles, subtitle or None)
    return fig


@styled
def hankel_singular_values(
    svals: pd.DataFrame, run_labels: dict[tuple[str, str], str], width: str | None = None
) -> Figure:
    """Normalized Hankel singular values sigma_k / sigma_1 of the kernels against k (log scale),
    one panel per task.

    `svals`: columns `task`, `model`, `stage` (`initial` | `trained`), `channel`, `k` (0-based
    index), `value`; lines are the mean over channels, solid for trained, dashed for initial.
    `run_labels[(task, model)]` names the run in the legend (seed, steps). The y axis stops at
    `SV_FLOOR`: the kernels are computed in float32, smaller ratios are round-off.
    """
    tasks = ordered_tasks(svals["task"])
    fig, axes = new_figure(len(tasks), width)
    keys = ["task", "model", "stage", "channel"]
    first = svals[svals["k"] == 0].set_index(keys)["value"]
    frame = svals.assign(value=svals["value"] / svals.set_index(keys).index.map(first))
    handles = []
    for ax, task in zip(axes, tasks, strict=True):
        for (model, stage), part in frame[frame["task"] == task].groupby(["model", "stage"]):
            mean = part.groupby("k")["value"].mean()
            ax.plot(mean.index, mean, color=model_colour(model), linestyle=STAGE_LINES[stage][0])
        ax.set(
            yscale="log",
            ylim=(SV_FLOOR, 2.0),
            title=f"{task}: Hankel singular values",
            xlabel="index k",
            ylabel=r"$\sigma_k / \sigma_1$, mean over channels",
        )
    for (task, model), label in sorted(run_labels.items()):
        handles.append(Line2D([], [], color=model_colour(model), label=f"{model}, {task}: {label}"))
    handles += [
        Line2D([], [], color="grey", linestyle=STAGE_LINES[s][0], label=label)
        for s, label in (("initial", "step 0"), ("trained", "best validation step"))
    ]
    figure_legend(fig, axes, handles)
    return fig
