"""The paper style every figure shares: seaborn's `paper` context, column (3.5 in) and double (7 in)
widths, one colour per model in every figure, one legend below the panels, PDF + PNG.

Used by the paper figures (`harness.report.plots`) and the benchmark figure
(`harness.plotting.bench`); imports nothing of the harness, so both import it downward.
"""

import textwrap
import zlib
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path

import matplotlib as mpl
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTHS = {"column": 3.5, "double": 7.0}
"""Figure width presets in inches: one column and the full page of a two-column paper."""

PANEL_HEIGHT = 2.2
"""Height of one row of panels in inches."""

LEGEND_ROW_HEIGHT = 0.16
"""Height of one row of a figure legend (7 pt text and its spacing) in inches."""

LEGEND_CHAR_WIDTH = 4.2
"""The width in points that a legend label's character is given when labels are wrapped."""

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

MODEL_COLOURS = {
    "s4_legs": "#0072B2",
    "s4_fout": "#56B4E9",
    "s4_random": "#000000",
    "s4d_lin": "#E69F00",
    "s4d_legs": "#D55E00",
    "s4d_inv": "#CC79A7",
    "s4d_random": "#8C564B",
    "hope": "#009E73",
    "hope_legs": "#9E9A00",
    "floor": "#999999",
}
"""The colour of every registered model (and the benchmarks' FFT floor) in every figure: the
Okabe-Ito colours (colour-blind safe), blues for S4, oranges/reds for S4D, greens for HOPE."""


def model_colour(name: str) -> tuple:
    """The colour of a model; labels like `s4_legs [key=value]` or `s4_legs (reference)` take their
    model's colour; an unregistered name gets a fixed colour of seaborn's `dark` palette."""
    base = name.split(" ")[0]
    if base in MODEL_COLOURS:
        return mpl.colors.to_rgb(MODEL_COLOURS[base])
    dark = sns.color_palette("dark", 10)
    return dark[zlib.crc32(base.encode()) % len(dark)]


def index_colours(n: int) -> list[tuple]:
    """Colours of channels or basis indices 0..n-1: viridis without its palest end, so they
    are never mistaken for a model's colour."""
    return sns.color_palette("viridis", n + 1)[:n]


def palette(names: Sequence[str]) -> dict[str, tuple]:
    """Name -> `model_colour`, sorted by name (the order of legends)."""
    return {name: model_colour(name) for name in sorted(set(names))}


def new_figure(
    n_panels: int = 1, width: str | None = None, max_cols: int = 3, **subplots
) -> tuple[Figure, list]:
    """A figure of `n_panels` axes in rows of at most `max_cols` (`subplots`: e.g. sharex).

    `width`: `column` or `double` (see WIDTHS); None picks `column` for one panel, else `double`.
    """
    width = width or ("column" if n_panels == 1 else "double")
    ncols = min(n_panels, max_cols)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(WIDTHS[width], PANEL_HEIGHT * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots).ravel().tolist()
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


def overhang(fig: Figure, tolerance: float = 0.5) -> dict[str, str]:
    """What of `fig`'s drawn content (titles, labels, tick labels, legends, texts) reaches past
    its canvas: edge ("left", "right", "bottom", "top") -> how far in points and which parts;
    {} when everything is on the page. Measured as `savefig` lays it out: matplotlib's tight
    bounding box of the drawn figure against the figure's own box, `tolerance` points allowed."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    parts = [(f"panel {i} {ax.get_title()!r}", ax) for i, ax in enumerate(fig.axes)]
    parts += [("legend", legend) for legend in fig.legends]
    parts += [(f"text {t.get_text()!r}", t) for t in fig.texts]  # the suptitle is one of them
    found: dict[str, str] = {}
    for edge, beyond in (
        ("left", lambda b: page.x0 - b.x0),
        ("right", lambda b: b.x1 - page.x1),
        ("bottom", lambda b: page.y0 - b.y0),
        ("top", lambda b: b.y1 - page.y1),
    ):
        past = [
            (name, beyond(box) * 72 / fig.dpi)
            for name, artist in parts
            if artist.get_visible()
            and (box := artist.get_tightbbox(renderer)) is not None
            and beyond(box) * 72 / fig.dpi > tolerance
        ]
        if past:
            worst = max(points for _, points in past)
            names = dict.fromkeys(name for name, _ in past)
            found[edge] = f"{worst:.1f} pt by {', '.join(names)}"
    return found


def styled(draw: Callable[..., Figure]) -> Callable[..., list[Path]]:
    """Run a drawing function under `STYLE` and save its figure to the `stem` argument."""

    @wraps(draw)
    def wrapper(*args, stem: Path, **kwargs) -> list[Path]:
        with mpl.rc_context(STYLE):
            return save(draw(*args, **kwargs), Path(stem))

    return wrapper


def figure_legend(
    fig: Figure, axes: list[Axes], handles: list[Artist], title: str | None = None
) -> None:
    """One legend for the whole figure, below the panels; the panels' own legends are removed.

    The figure grows by the legend's rows (`LEGEND_ROW_HEIGHT` each), so the panels keep their
    `PANEL_HEIGHT` however many entries the legend has."""
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    ncols = min(len(handles), 2 if fig.get_figwidth() > WIDTHS["column"] else 1)
    # Labels wrapped to the width of a legend column (7 pt text: about 4.2 pt a character,
    # less the line sample), so a long label (a cell's swept settings) stays on the page.
    fit = int(fig.get_figwidth() * 72 / LEGEND_CHAR_WIDTH / max(ncols, 1)) - 6
    for handle in handles:
        handle.set_label(textwrap.fill(str(handle.get_label()), fit, break_on_hyphens=False))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, title=title, frameon=False)
    lines = sum(str(h.get_label()).count("\n") + 1 for h in handles)
    rows = -(-lines // max(ncols, 1)) + (title is not None)
    fig.set_figheight(fig.get_figheight() + rows * LEGEND_ROW_HEIGHT)
