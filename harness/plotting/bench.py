"""The figure of a benchmark CSV of `harness.bench`: throughput (or time per step) and peak memory
against the sequence length L (log-log lines), or at one L as bars.

`plot` draws the figure of one CSV (`python -m harness.bench --plot-from`, and
`python -m harness.report --plots --bench` for every CSV of the benchmark folder); imports nothing
of the harness but the shared style, so `harness.bench` and `harness.report` both import it.
"""

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator

from harness.plotting.style import STYLE, figure_legend, model_colour, new_figure, styled

PRECISION_LINES = {"fp32": "-", "tf32": "-.", "bf16": "--"}
"""Line style of each benchmark precision (`harness.run.precision.PRECISIONS`)."""

IMPL_MARKERS = {"fast": "o", "reference": "x"}
"""Marker of each kernel-sum implementation in the benchmark figures (`harness.bench --impl`)."""

BAR_HATCHES = ("", "///", "...")
"""Hatch of the bars of each precision, in `PRECISION_LINES` order, at a single length."""

PLOT_COLUMNS = ("device", "suite", "model", "impl", "dtype", "B", "H", "N", "L", "status")
PLOT_COLUMNS += ("ms", "samples_per_s", "peak_mem_gb")
"""The CSV columns a benchmark figure reads."""


def plot_title(table: pd.DataFrame, name: str) -> str:
    """`layer benchmark on cpu: B=4, H=64, N=64, L=4096 (layer_cpu_b4)`: suite, device, shape
    (the length only when there is one) and the CSV's name; `reference kernel sums` when so."""
    shape = [f"{k}={'/'.join(str(v) for v in sorted(table[k].unique()))}" for k in "BHN"]
    lengths = sorted(table["L"].unique())
    shape += [f"L={lengths[0]}"] if len(lengths) == 1 else []
    impl = ", reference kernel sums" if set(table["impl"]) == {"reference"} else ""
    suite = "/".join(sorted(table["suite"].unique()))
    device = "/".join(sorted(table["device"].unique()))
    return f"{suite} benchmark on {device}{impl}: {', '.join(shape)} ({name})"


def plot(table: pd.DataFrame, stem: Path) -> list[Path]:
    """The figure of one benchmark CSV (`bench_scaling`: lines against L with
    two or more lengths, bars at one) at `<stem>.pdf/.png`, from the rows that ran; none if none
    did."""
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return []
    return bench_scaling(ok, plot_title(ok, stem.name.removeprefix("bench_")), stem=stem)


def _plain_log_axis(ax: Axes, axis: str = "y") -> None:
    """Log-scaled axis with labelled ticks at 1, 2, 5 x 10^k, written as plain numbers."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(LogLocator(base=10, subs="all"))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


BENCH_QUANTITIES = (
    ("samples_per_s", "throughput (samples/s)"),
    ("ms", "time per forward + backward (ms)"),
    ("peak_mem_gb", "peak memory (GB)"),
)
"""What a benchmark figure can show; throughput where measured, else the time per step."""


def _bench_panels(bench: pd.DataFrame) -> list[tuple[str, str]]:
    measured = [q for q in BENCH_QUANTITIES if np.isfinite(bench[q[0]]).any()]
    if any(q[0] == "samples_per_s" for q in measured):
        measured = [q for q in measured if q[0] != "ms"]
    return measured


@styled
def bench_scaling(bench: pd.DataFrame, title: str, width: str | None = None) -> Figure:
    """Benchmark of one CSV (one device and shape): throughput (or time per step) and peak memory.

    `bench`: columns `model`, `impl`, `dtype`, `L`, `samples_per_s`, `ms`, `peak_mem_gb` (rows
    that ran). With two or more lengths: log-log lines against L, colour = model, line style =
    precision (`PRECISION_LINES`), marker = implementation; with one length: bars per model
    (hatched per precision). A quantity the device did not measure (memory on CPU) has no panel.
    """
    panels = _bench_panels(bench)
    fig, axes = new_figure(len(panels), width or ("double" if len(panels) > 1 else "column"))
    lengths = sorted(int(L) for L in bench["L"].unique())
    dtypes = [d for d in PRECISION_LINES if d in set(bench["dtype"])]
    impls = sorted(set(bench["impl"]))
    models = sorted(set(bench["model"]))
    for ax, (column, label) in zip(axes, panels, strict=True):
        if len(lengths) >= 2:
            for (model, dtype, impl), part in bench.groupby(["model", "dtype", "impl"]):
                part = part.sort_values("L")
                ax.plot(
                    part["L"],
                    part[column],
                    color=model_colour(model),
                    linestyle=PRECISION_LINES.get(dtype, ":"),
                    marker=IMPL_MARKERS[impl],
                    markersize=3,
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(lengths, [str(L) for L in lengths])
            ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
            ax.set_yscale("log")
            _plain_log_axis(ax)
            ax.set(xlabel="sequence length L", ylabel=label)
        else:
            _bench_bars(ax, bench, column, models, dtypes)
            ax.set(ylabel=label, xlabel="")
    lines = len(lengths) >= 2
    handles: list[Artist] = [
        Line2D([], [], color=model_colour(m), label=m)
        if lines
        else Patch(color=model_colour(m), label=m)
        for m in models
    ]
    if len(dtypes) > 1:
        handles += [
            Line2D([], [], color="grey", linestyle=PRECISION_LINES[d], label=d)
            if lines
            else Patch(facecolor="white", edgecolor="grey", hatch=BAR_HATCHES[i], label=d)
            for i, d in enumerate(dtypes)
        ]
    if len(impls) > 1 and lines:
        handles += [
            Line2D([], [], color="grey", marker=IMPL_MARKERS[i], linestyle="none", label=i)
            for i in impls
        ]
    fig.suptitle(title, fontsize=STYLE["axes.titlesize"], wrap=True)  # wrapped to the width
    figure_legend(fig, axes, handles)
    return fig


def _bench_bars(ax: Axes, bench: pd.DataFrame, column: str, models: list, dtypes: list) -> None:
    """Bars of `column` at one length: one group per model, one hatched bar per precision."""
    width = 0.8 / max(len(dtypes), 1)
    for i, dtype in enumerate(dtypes):
        part = bench[bench["dtype"] == dtype].groupby("model")[column].mean()
        x = np.arange(len(models)) + (i - (len(dtypes) - 1) / 2) * width
        heights = [part.get(m, np.nan) for m in models]
        ax.bar(
            x,
            heights,
            width,
            color=[model_colour(m) for m in models],
            hatch=BAR_HATCHES[i],
            edgecolor="white",
            linewidth=0.5,
        )
    ax.set_xticks(np.arange(len(models)), models, rotation=45, ha="right")
    ax.set_ylim(bottom=0.0)
