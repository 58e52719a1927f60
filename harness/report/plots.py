"""Paper figures with seaborn: one style, PDF + PNG, column (3.5 in) and double (7 in) widths.

Every function takes tidy data (pandas frames or numpy arrays, already in display units), draws on
a `matplotlib.figure.Figure` (no pyplot global state, any backend), saves `<stem>.pdf` and
`<stem>.png` and returns the two paths. `harness.report.figures` gathers the data from MLflow, run
directories and benchmark CSVs.

- `learning_curves`: validation accuracy vs optimizer step, mean and 95% bootstrap CI over seeds.
- `leaderboard_points`: per task, mean ± sample std over seeds per model, published value marked.
- `noise_memory`: accuracy vs noise-padding length per model (the HOPE paper's memory figure).
- `kernels`: convolution kernels K[h, l] of one layer (a few channels).
- `basis_functions`: (exp(tA)B)_n per initialization (the HTTYH figure).
- `hankel_singular_values`: normalized Hankel singular values before and after training (HOPE).
- `bench_scaling`: throughput and peak memory against sequence length.
"""

from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.report.stats import ordered_tasks

WIDTHS = {"column": 3.5, "double": 7.0}
"""Figure width presets in inches: one column and the full page of a two-column paper."""

PANEL_HEIGHT = 2.2
"""Height of one row of panels in inches."""

STYLE = {
    **sns.plotting_context("paper"),
    **sns.axes_style("whitegrid"),
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "lines.linewidth": 1.2,
    "savefig.dpi": 300,
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}
"""The one paper style: seaborn's `paper` context on `whitegrid`, 7-8 pt text, embedded fonts."""

PUBLISHED_MARKER = {"marker": "*", "color": "black", "markersize": 8}
"""How a published reference value is drawn."""

STAGE_LINES = {"initial": ("--", (3.7, 1.6)), "trained": ("-", "")}
"""Line style of initial (step 0) and trained weights: (matplotlib linestyle, seaborn dashes)."""

SV_FLOOR = 1e-7
"""Lowest Hankel singular value ratio drawn (float32 round-off level of the kernels)."""

CI_SEED = 0
"""Seed of seaborn's bootstrap confidence intervals, so figures are reproducible."""


def palette(names: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per name (sorted), so a model has the same colour in every figure."""
    names = sorted(set(names))
    return dict(zip(names, sns.color_palette("colorblind", len(names)), strict=True))


def new_figure(
    n_panels: int = 1, width: str | None = None, max_cols: int = 3
) -> tuple[Figure, list]:
    """A figure of `n_panels` axes in rows of at most `max_cols`.

    `width`: `column` or `double` (see WIDTHS); None picks `column` for one panel, else `double`.
    """
    width = width or ("column" if n_panels == 1 else "double")
    ncols = min(n_panels, max_cols)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(WIDTHS[width], PANEL_HEIGHT * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write `<stem>.pdf` and `<stem>.png`; returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for path in paths:
        fig.savefig(path)
    return paths


def styled(draw: Callable[..., Figure]) -> Callable[..., list[Path]]:
    """Run a drawing function under `STYLE` and save its figure to the `stem` argument."""

    @wraps(draw)
    def wrapper(*args, stem: Path, **kwargs) -> list[Path]:
        with mpl.rc_context(STYLE):
            return save(draw(*args, **kwargs), Path(stem))

    return wrapper


def _figure_legend(
    fig: Figure, axes: list[Axes], handles: list[Artist], title: str | None = None
) -> None:
    """One legend for the whole figure, below the panels; the panels' own legends are removed."""
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 6 if fig.get_figwidth() > WIDTHS["column"] else 3),
        title=title,
        frameon=False,
    )


def _line_handles(colours: dict[str, tuple]) -> list[Artist]:
    return [Line2D([], [], color=c, label=name) for name, c in colours.items()]


def _stage_handles() -> list[Artist]:
    return [
        Line2D([], [], color="grey", linestyle=style, label=stage)
        for stage, (style, _) in STAGE_LINES.items()
    ]


@styled
def learning_curves(history: pd.DataFrame, ylabel: str, width: str | None = None) -> Figure:
    """Metric vs step per task (one panel each), one line per model.

    `history`: columns `task`, `model`, `seed`, `step`, `value` (one row per logged point). The line
    is the mean over seeds at each step, the band its 95% bootstrap confidence interval.
    """
    tasks = ordered_tasks(history["task"])
    fig, axes = new_figure(len(tasks), width)
    colours = palette(history["model"])
    for ax, task in zip(axes, tasks, strict=True):
        sns.lineplot(
            data=history[history["task"] == task],
            x="step",
            y="value",
            hue="model",
            palette=colours,
            errorbar=("ci", 95),
            seed=CI_SEED,
            marker="o",
            markersize=3,
            markeredgewidth=0,
            ax=ax,
        )
        ax.set(title=task, xlabel="optimizer step", ylabel=ylabel)
    _figure_legend(fig, axes, _line_handles(colours), "model (mean and 95% CI over seeds)")
    return fig


@styled
def leaderboard_points(
    values: pd.DataFrame, published: pd.DataFrame, xlabel: str, width: str | None = None
) -> Figure:
    """Per task, one point per model at the mean over seeds with ± sample std error bars.

    `values`: columns `task`, `model`, `value` (one row per seed). `published`: columns `task`,
    `model` (the registered name it belongs to), `value`; drawn as black stars.
    """
    tasks = ordered_tasks(values["task"])
    fig, axes = new_figure(len(tasks), width)
    colours = palette(values["model"])
    n_published = 0
    for ax, task in zip(axes, tasks, strict=True):
        part = values[values["task"] == task]
        order = sorted(part["model"].unique())
        sns.pointplot(
            data=part,
            x="value",
            y="model",
            hue="model",
            order=order,
            palette=colours,
            errorbar="sd",
            linestyle="none",
            capsize=0.25,
            markersize=4,
            err_kws={"linewidth": 1.0},
            legend=False,
            ax=ax,
        )
        pub = published[(published["task"] == task) & published["model"].isin(order)]
        y = [order.index(m) for m in pub["model"]]
        ax.plot(pub["value"], y, linestyle="none", zorder=5, **PUBLISHED_MARKER)
        n_published += len(pub)
        ax.margins(x=0.08)
        ax.set(title=task, xlabel=xlabel, ylabel="")
    handles = [Line2D([], [], color="grey", marker="o", label="mean ± std over seeds")]
    if n_published:
        handles.append(Line2D([], [], linestyle="none", **PUBLISHED_MARKER, label="published"))
    _figure_legend(fig, axes, handles)
    return fig


@styled
def noise_memory(values: pd.DataFrame, ylabel: str, width: str | None = None) -> Figure:
    """Accuracy against noise-padding length, one line per model (mean ± sample std over seeds).

    `values`: columns `model`, `noise_len` (steps), `seed`, `value`.
    """
    fig, (ax,) = new_figure(1, width)
    sns.lineplot(
        data=values,
        x="noise_len",
        y="value",
        hue="model",
        palette=palette(values["model"]),
        marker="o",
        errorbar="sd",
        err_style="bars",
        ax=ax,
    )
    ax.set(xlabel="noise padding length (steps)", ylabel=ylabel)
    ax.legend(title="model", frameon=True)
    return fig


@styled
def kernels(
    kernel: dict[str, tuple[np.ndarray, np.ndarray]], n_channels: int = 4, width: str | None = None
) -> Figure:
    """Convolution kernels K[h, l] of one SSM layer per model: initial dashed, trained solid.

    `kernel[model] = (initial, trained)`, real arrays (H, L) (one direction of
    `layer.kernel(L)`); the first `n_channels` channels are drawn against the lag l, one colour
    per channel.
    """
    fig, axes = new_figure(len(kernel), width)
    colours = sns.color_palette("colorblind", n_channels)
    for ax, (model, (initial, trained)) in zip(axes, kernel.items(), strict=True):
        lags = np.arange(trained.shape[1])
        for h in range(min(n_channels, trained.shape[0])):
            ax.plot(lags, initial[h], color=colours[h], linestyle=STAGE_LINES["initial"][0])
            ax.plot(lags, trained[h], color=colours[h], label=f"h={h}")
        ax.set(title=model, xlabel="lag l (steps)", ylabel="K[h, l]")
    handles = axes[0].get_legend_handles_labels()[0] + _stage_handles()
    _figure_legend(fig, axes, handles, "channel h, stage")
    return fig


@styled
def basis_functions(
    basis: dict[str, tuple[np.ndarray, np.ndarray]], n_show: int = 4, width: str | None = None
) -> Figure:
    """Basis functions (exp(tA)B)_n of each initialization against t (HTTYH, Figure 1 style).

    `basis[init] = (t, values)`: t (T,) and real values (N, T); the first `n_show` are drawn.
    """
    fig, axes = new_figure(len(basis), width, max_cols=4)
    for ax, (init, (t, values)) in zip(axes, basis.items(), strict=True):
        for n in range(min(n_show, values.shape[0])):
            ax.plot(t, values[n], label=f"n={n}")
        ax.set(title=init, xlabel="time t", ylabel=r"$(e^{tA}B)_n$")
    _figure_legend(fig, axes, axes[0].get_legend_handles_labels()[0], "basis index n")
    return fig


@styled
def hankel_singular_values(svals: pd.DataFrame, width: str | None = None) -> Figure:
    """Normalized Hankel singular values sigma_k / sigma_1 of the kernels against k (log scale).

    `svals`: columns `model`, `stage` (`initial` | `trained`), `channel`, `k` (0-based index),
    `value`; lines are the mean over channels, solid for trained, dashed for initial. The y axis
    stops at `SV_FLOOR`: the kernels are computed in float32, smaller ratios are round-off.
    """
    fig, (ax,) = new_figure(1, width)
    keys = ["model", "stage", "channel"]
    first = svals[svals["k"] == 0].set_index(keys)["value"]
    frame = svals.assign(value=svals["value"] / svals.set_index(keys).index.map(first))
    colours = palette(frame["model"])
    sns.lineplot(
        data=frame,
        x="k",
        y="value",
        hue="model",
        style="stage",
        dashes={stage: dash for stage, (_, dash) in STAGE_LINES.items()},
        palette=colours,
        errorbar=None,
        ax=ax,
    )
    ax.set(
        yscale="log",
        ylim=(SV_FLOOR, 2.0),
        title="Hankel singular values, mean over channels",
        xlabel="index k",
        ylabel=r"$\sigma_k / \sigma_1$",
    )
    _figure_legend(fig, [ax], _line_handles(colours) + _stage_handles())
    return fig


@styled
def bench_scaling(bench: pd.DataFrame, width: str | None = None) -> Figure:
    """Throughput (samples/s) and peak memory (GB) against sequence length L, log-log axes.

    `bench`: columns `model`, `L`, `dtype`, `samples_per_s`, `peak_mem_gb` (one device); a
    quantity the device did not measure (NaN, e.g. memory on CPU) gets an empty panel saying so.
    """
    fig, (left, right) = new_figure(2, width)
    colours = palette(bench["model"])
    lengths = sorted(int(L) for L in bench["L"].unique())
    for ax, column, label in (
        (left, "samples_per_s", "throughput (samples/s)"),
        (right, "peak_mem_gb", "peak memory (GB)"),
    ):
        if not np.isfinite(bench[column]).any():
            ax.text(0.5, 0.5, "not measured on this device", ha="center", transform=ax.transAxes)
            ax.set(xlabel="sequence length L", ylabel=label)
            continue
        sns.lineplot(
            data=bench,
            x="L",
            y=column,
            hue="model",
            style="dtype",
            palette=colours,
            marker="o",
            errorbar=None,
            ax=ax,
        )
        ax.set(yscale="log", xlabel="sequence length L", ylabel=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.minorticks_off()
    _figure_legend(fig, [left, right], left.get_legend_handles_labels()[0])
    return fig
