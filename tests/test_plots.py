"""Figures from the synthetic store (tests/report_store.py), synthetic benchmark CSVs and real
short runs. The figures' matplotlib objects are inspected (lines, bands, limits, tick labels,
legend entries, titles) through each drawing function's undecorated `__wrapped__`, and the files
are checked to be a PDF and a non-blank PNG."""

from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import PolyCollection
from PIL import Image
from report_store import CHANCE, TRIVIAL_ADDING_MSE, TRIVIAL_ADDING_VAL_MSE, build_store
from scipy.special import eval_legendre

import models
from harness.bench.command import COLUMNS as BENCH_COLUMNS
from harness.plotting import bench as bench_figure
from harness.plotting import style
from harness.report import command as report
from harness.report import figures, plots
from harness.report.load import dedup, load_histories, load_runs
from harness.run import point as runner


def assert_figure(paths, stem=None):
    """A PDF and a PNG; the PDF is a PDF, the PNG has visible content (pixel variance)."""
    pdf, png = paths
    assert pdf.suffix == ".pdf" and png.suffix == ".png"
    if stem is not None:
        assert pdf.stem == png.stem == stem
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels.std() > 5.0, f"{png} looks blank"
    assert (pixels < 100).mean() > 0.001, f"{png} has almost no dark (line or text) pixels"


def draw(function, *args, **kwargs):
    """The Figure a `plots` function draws (under the paper style), without saving it."""
    with mpl.rc_context(style.STYLE):
        return function.__wrapped__(*args, **kwargs)


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def bands(ax) -> list:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def runs_hash(uri: str, model: str) -> str:
    """The config hash (run directory name) of the first run of `model` in the store."""
    runs = load_runs(uri)
    return runs.loc[runs["model"] == model, "config_hash"].iloc[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = build_store(tmp_path_factory.mktemp("store"))
    return uri, dedup(load_runs(uri)).kept


def _bench_csv(path, lengths=(1024, 4096, 16384), with_memory=True, models=("s4_legs", "hope")):
    rows = []
    for model in (*models, "floor"):
        for L in lengths:
            for dtype in ("fp32", "bf16"):
                row = dict.fromkeys(BENCH_COLUMNS, "")
                row |= {"device": "dev", "suite": "layer", "model": model, "impl": "fast"}
                row |= {"dtype": dtype, "L": L, "ms": L / 1000, "status": "ok"}
                row |= {"B": 4, "H": 64, "N": 64}
                row["samples_per_s"] = 16 / (L / 1e6) * (2.0 if dtype == "bf16" else 1.0)
                row["peak_mem_gb"] = L * 1e-4 if with_memory else float("nan")
                rows.append(row)
    rows.append(row | {"model": "s4d_inv", "L": 65536, "status": "oom", "samples_per_s": np.nan})
    pd.DataFrame(rows, columns=BENCH_COLUMNS).to_csv(path, index=False)


@pytest.fixture
def overhangs(monkeypatch):
    """stem -> `style.overhang` of every figure saved while the test runs."""
    found, real_save = {}, style.save

    def measured(fig, stem):
        found[Path(stem).name] = style.overhang(fig)
        return real_save(fig, stem)

    monkeypatch.setattr(style, "save", measured)
    return found


def test_overhang_names_text_past_the_canvas_and_passes_a_fitting_figure():
    with mpl.rc_context(style.STYLE):
        fig, (ax,) = style.new_figure(1)
        ax.plot([0, 1], [0, 1])
        ax.set_ylabel("validation accuracy (%)")
        assert style.overhang(fig) == {}
        fig.set_layout_engine("none")
        fig.subplots_adjust(left=0.0, right=1.0)
        ax.set_title("a right-hand title far too long for one column of a paper page", loc="right")
    found = style.overhang(fig)
    assert set(found) >= {"left"} and "panel 0" in found["left"]


def test_plots_without_bench_write_no_bench_figure(store, tmp_path, overhangs):
    """`report --plots` draws every figure with data from the store and none from the benchmark
    CSVs it is pointed at; the store has no checkpoints, so kernels/hankel are skipped."""
    uri, _ = store
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    _bench_csv(bench_dir / "layer_dev.csv")
    out = tmp_path / "out"
    argv = ["--tracking-uri", uri, "--out", str(out), "--plots", "--bench-dir", str(bench_dir)]
    assert report.main([*argv, "--runs-dir", str(tmp_path / "no-runs"), "--basis-state", "8"]) == 0
    stems = {p.stem for p in (out / "figures").iterdir()}
    assert stems == {
        "learning_curves",
        "leaderboard",
        "noise_memory_digits_noise",
        "basis_functions",
    }
    for stem in stems:
        assert_figure([out / "figures" / f"{stem}.{ext}" for ext in ("pdf", "png")], stem)
    assert set(overhangs) == stems and all(v == {} for v in overhangs.values()), overhangs
    assert report.main(["--tracking-uri", uri, "--out", str(out), "--bench"]) == 2  # no --plots


def _history(seeds: int) -> pd.DataFrame:
    rows = [
        {"task": "adding", "model": model, "seed": seed, "step": step, "value": 0.5 - 0.01 * step}
        for model in ("hope", "s4_legs")
        for seed in range(seeds)
        for step in (0, 10, 20)
    ]
    frame = pd.DataFrame(rows)
    return frame.assign(value=frame["value"] + 0.01 * frame["seed"])


def test_a_single_seed_figure_carries_no_interval():
    ref = {"adding": plots.Reference(TRIVIAL_ADDING_MSE, "trivial predictor (training mean)")}
    one = draw(plots.learning_curves, _history(1), {"adding": "validation MSE"}, ref)
    (ax,) = one.axes
    assert bands(ax) == []
    assert legend_texts(one) == [
        "hope: 1 seed",
        "s4_legs: 1 seed",
        "trivial predictor (training mean)",
    ]
    assert ax.get_ylabel() == "validation MSE"
    levels = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert [line.get_ydata()[0] for line in levels] == [TRIVIAL_ADDING_MSE]
    two = draw(plots.learning_curves, _history(2), {"adding": "validation MSE"}, ref)
    assert len(bands(two.axes[0])) == 2
    assert "hope: mean ± std, 2 seeds" in legend_texts(two)


def test_dot_plot_bars_only_with_two_seeds_and_axes_from_a_baseline():
    values = pd.DataFrame(
        {
            "task": ["listops"] * 3 + ["adding"] * 2,
            "model": ["hope", "hope", "s4_legs", "hope", "s4_legs"],
            "value": [55.0, 59.0, 40.0, 0.1605, 0.1577],
        }
    )
    refs = {
        "listops": plots.Reference(100 * CHANCE, "chance (1/C)"),
        "adding": plots.Reference(TRIVIAL_ADDING_MSE, "trivial predictor (training mean)"),
    }
    fig = draw(
        plots.leaderboard_points,
        values,
        pd.DataFrame(columns=["task", "model", "value"]),
        {"listops": "test accuracy (%) ↑", "adding": "test MSE ↓"},
        refs,
        {"listops": True, "adding": False},
    )
    listops, adding = fig.axes[:2]
    assert [t.get_text() for t in listops.get_yticklabels()] == ["hope", "s4_legs"]
    hope_bar, legs_bar = listops.containers
    assert hope_bar.has_xerr and not legs_bar.has_xerr  # 2 seeds vs 1 seed
    assert listops.get_xlim() == (0.0, 100.0)
    assert adding.get_xlim()[0] == 0.0 and adding.get_xlim()[1] > TRIVIAL_ADDING_MSE
    levels = [line.get_xdata()[0] for line in adding.lines if line.get_linestyle() == ":"]
    assert levels == [TRIVIAL_ADDING_MSE]
    assert "hope: mean (± std where ≥ 2 seeds), 1-2 seeds" in legend_texts(fig)
    assert "s4_legs: 1 seed" in legend_texts(fig)
    assert "chance (1/C) / trivial predictor (training mean)" in legend_texts(fig)


def test_store_figures_score_each_task_by_its_objective(store, tmp_path):
    uri, runs = store
    metrics = figures.task_metrics(runs, None)
    refs = figures.references(runs, metrics)
    assert refs["adding"].value == pytest.approx(TRIVIAL_ADDING_MSE)
    assert refs["listops"].value == pytest.approx(100 * CHANCE)
    curves = figures.references(runs, metrics, "val")  # learning curves follow the val split
    assert curves["adding"].value == pytest.approx(TRIVIAL_ADDING_VAL_MSE)
    adding = runs[runs["task"] == "adding"]
    history = load_histories(uri, adding, "val/loss")
    assert sorted(history["step"].unique()) == [0, 10, 20]
    paths = figures.learning_curve_figures(uri, adding, tmp_path, [])  # regression tasks alone
    assert_figure(paths, "learning_curves")
    labelled = figures.labelled(runs, figures.metric_values(runs, metrics), [])
    assert set(labelled.loc[labelled["task"] == "digits_noise", "model"]) == {
        f"{m} [task.noise_len={n}]" for m in ("hope", "s4d_lin") for n in (0, 64)
    }


def test_one_colour_per_model_across_figures():
    assert set(models.MODELS.names()) <= set(style.MODEL_COLOURS)
    assert len(set(style.MODEL_COLOURS.values())) == len(style.MODEL_COLOURS)
    curves = draw(plots.learning_curves, _history(1), {"adding": "MSE"}, {})
    dots = draw(
        plots.leaderboard_points,
        _history(1).groupby(["task", "model"], as_index=False)["value"].last(),
        pd.DataFrame(columns=["task", "model", "value"]),
        {"adding": "MSE"},
        {},
        {"adding": False},
    )
    hope = style.model_colour("hope")
    assert mpl.colors.to_rgb(curves.axes[0].lines[0].get_color()) == hope
    assert mpl.colors.to_rgb(dots.axes[0].containers[0].lines[0].get_color()) == hope
    assert style.model_colour("hope [task.noise_len=64]") == hope
    assert style.palette(["b", "a"]) == style.palette(["a", "b", "a"])


def test_basis_figure_covers_every_registered_init_on_one_axis():
    bases = figures.initial_bases(8)
    assert list(bases) == models.MODELS.names()
    assert bases["hope"].label == "impulse response" and bases["s4_random"].label.endswith("B)_n$")
    fig = draw(plots.basis_functions, bases)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(bases)
    assert {ax.get_xlim() for ax in axes} == {axes[0].get_xlim()}  # one shared time axis
    assert all(ax.get_xscale() == "log" for ax in axes)
    for ax in axes:
        peak = max(np.abs(line.get_ydata()).max() for line in ax.lines)
        assert peak == pytest.approx(1.0)  # normalised per panel
    assert axes[0].get_title() == "hope: impulse response"


def test_hope_impulse_response_does_not_depend_on_the_step():
    """K[l] / dt at t = l dt samples one continuous response: dt 1e-3 and 5e-4 agree."""
    t = np.array([0.05, 0.5, 2.0, 8.0])
    coarse = figures._hope_impulse("hope", 8, t)
    fine_dt = figures.BASIS_T_MIN / 2
    torch.manual_seed(figures.BASIS_SEED)
    layer = models.build_layer(
        "hope", figures.BASIS_SHOWN, 8, dt_min=fine_dt, dt_max=fine_dt, mode="linear"
    )
    L = int(t[-1] / fine_dt) + 2
    with torch.no_grad():
        k = layer.kernel(L)[0].double().numpy() / fine_dt
    fine = np.stack([np.interp(t, np.arange(L) * fine_dt, row) for row in k])
    np.testing.assert_allclose(coarse, fine, rtol=0.05, atol=0.02 * np.abs(fine).max())


def test_s4d_lin_basis_is_a_damped_cosine():
    """Re exp(t Lambda_n) B_n with Lambda_n = -1/2 - i pi n, B_n = 1 is e^{-t/2} cos(pi n t)."""
    basis = figures.initial_bases(8)["s4d_lin"]
    n = np.arange(4)[:, None]
    expected = np.exp(-basis.t / 2) * np.cos(np.pi * n * basis.t)
    np.testing.assert_allclose(basis.values, expected, atol=1e-10)


def test_s4_legs_basis_is_the_warped_legendre_basis():
    """HTTYH: (exp(tA)B)_n = sqrt(2n+1) P_n(2 e^{-t} - 1) e^{-t} for HiPPO-LegS, on our t grid."""
    basis = figures.initial_bases(8)["s4_legs"]
    t, n = basis.t, np.arange(8)[:, None]
    closed = np.sqrt(2 * n + 1) * eval_legendre(n, 2 * np.exp(-t) - 1) * np.exp(-t)
    np.testing.assert_allclose(basis.values, closed, atol=1e-10)
    assert t[0] == pytest.approx(figures.BASIS_T_MIN) and t[-1] == pytest.approx(
        figures.BASIS_T_MAX
    )


def test_bench_vs_length_lines_with_precision_styles_and_honest_legends(tmp_path):
    _bench_csv(tmp_path / "layer_dev.csv", with_memory=True)
    table = pd.read_csv(tmp_path / "layer_dev.csv")
    ok = table[table["status"] == "ok"]
    fig = draw(bench_figure.bench_scaling, ok, bench_figure.plot_title(ok, "layer_dev"))
    throughput, memory = fig.axes
    styles = {line.get_linestyle() for line in throughput.lines}
    assert styles == {"-", "--"}  # fp32 solid, bf16 dashed
    assert len(throughput.lines) == 3 * 2  # (s4_legs, hope, floor) x (fp32, bf16)
    assert legend_texts(fig) == ["floor", "hope", "s4_legs", "fp32", "bf16"]  # no s4d_inv: OOM
    assert all(t.get_text() for t in throughput.get_yticklabels() if t.get_visible())
    assert [t.get_text() for t in throughput.get_xticklabels()] == ["1024", "4096", "16384"]
    assert fig._suptitle.get_text() == "layer benchmark on dev: B=4, H=64, N=64 (layer_dev)"
    assert memory.get_ylabel() == "peak memory (GB)"


def test_bench_single_length_is_a_bar_chart_without_an_empty_memory_panel(tmp_path, overhangs):
    _bench_csv(tmp_path / "layer_cpu.csv", lengths=(4096,), with_memory=False)
    paths = figures.bench_figures(tmp_path, tmp_path / "figures")
    assert [p.name for p in paths] == ["bench_layer_cpu.pdf", "bench_layer_cpu.png"]
    assert_figure(paths)
    ok = pd.read_csv(tmp_path / "layer_cpu.csv").query("status == 'ok'")
    fig = draw(bench_figure.bench_scaling, ok, bench_figure.plot_title(ok, "layer_cpu"))
    (ax,) = fig.axes  # throughput only: the CPU measured no memory
    assert len(ax.patches) == 3 * 2 and not ax.lines
    assert [t.get_text() for t in ax.get_xticklabels()] == ["floor", "hope", "s4_legs"]
    assert ax.get_ylim()[0] == 0.0
    assert "L=4096" in fig._suptitle.get_text()
    assert figures.bench_figures(tmp_path / "missing", tmp_path) == []
    (tmp_path / "lengths").mkdir()
    _bench_csv(tmp_path / "lengths" / "layer_dev.csv", with_memory=True)
    assert len(figures.bench_figures(tmp_path / "lengths", tmp_path / "figures")) == 2
    assert overhangs == {"bench_layer_cpu": {}, "bench_layer_dev": {}}


def test_singular_value_frame_layout():
    sv = np.arange(6.0).reshape(2, 3)  # (H, K)
    frame = figures._singular_value_frame("t", "m", "initial", sv)
    for row in frame.itertuples():
        assert row.value == sv[row.channel, row.k]
    assert len(frame) == 6 and set(frame["task"]) == {"t"}


def test_paper_style_widths(tmp_path):
    single, _ = style.new_figure(1)
    double, axes = style.new_figure(4)
    assert single.get_figwidth() == style.WIDTHS["column"] == 3.5
    assert double.get_figwidth() == style.WIDTHS["double"] == 7.0
    assert len(axes) == 4


def test_figures_from_real_short_runs(make_cfg, tracking_env, tmp_path, overhangs):
    """A tiny run through the runner (conftest's tiny copying task), then
    `python -m harness.report --plots` on its store; the per-run figures name the run."""
    runner.execute(make_cfg("model=s4d_lin", "trainer.max_epochs=2"))
    out = tmp_path / "out"
    args = ["--tracking-uri", tracking_env.uri, "--out", str(out), "--plots"]
    assert report.main([*args, "--kernel-len", "32", "--basis-state", "8"]) == 0
    for stem in ("learning_curves", "leaderboard", "kernels", "hankel", "basis_functions"):
        assert_figure([out / "figures" / f"{stem}.pdf", out / "figures" / f"{stem}.png"])
    assert len(overhangs) == 5 and all(v == {} for v in overhangs.values()), str(overhangs)
    assert report.main([*args, "--basis-state", "8"]) == 0  # kernels as long as the sequences
    runs = load_runs(tracking_env.uri)
    directory = tracking_env.runs_dir / runs_hash(tracking_env.uri, "s4d_lin")
    length = figures.saved_model_args(directory)["l_max"]
    assert figures.diagnostics(runs, None, None).kernels[("copying", "s4d_lin")][0].shape == (
        8,
        length,
    )
    board = pd.read_csv(out / "leaderboard.csv").set_index("model")
    assert board.index.tolist() == ["s4d_lin"] and board.loc["s4d_lin", "copying_n"] == 1
    runs = load_runs(tracking_env.uri)
    assert runs.loc[0, "kernel"] == "s4d" and runs.loc[0, "objective"] == "classification"
    assert runs.loc[0, "metrics.trivial/test_acc"] == pytest.approx(100 / 8)  # 8 classes, %
    found = figures.diagnostics(runs, None, 32)
    step = int(runs.loc[0, "metrics.best/step"])
    assert found.labels == {("copying", "s4d_lin"): f"seed 0, step 0 vs {step}"}
    titles = {k: f"{k[1]} on {k[0]}\n{v}" for k, v in found.labels.items()}
    fig = draw(plots.kernels, found.kernels, titles)
    assert fig.axes[0].get_title() == f"s4d_lin on copying\nseed 0, step 0 vs {step}"
    hankel = draw(plots.hankel_singular_values, found.svals, found.labels)
    assert f"s4d_lin, copying: seed 0, step 0 vs {step}" in legend_texts(hankel)
    directory = tracking_env.runs_dir / runs_hash(tracking_env.uri, "s4d_lin")
    args = figures.saved_model_args(directory)
    initial = figures.load_layer(directory, "model_init.pt", args).kernel(32)
    trained = figures.load_layer(directory, "model_best.pt", args).kernel(32)
    assert initial.shape == trained.shape == (1, 8, 32)  # (C, H, L) of the tiny model
    assert not torch.equal(initial, trained)  # the SSM parameters were trained


def test_kernels_of_many_models_wrap_into_rows_per_task_and_keep_their_text_inside():
    """Eight models on one task and one on another (the init_ablation store): at most
    `KERNEL_COLUMNS` panels a row, each task starting its own row, nothing past the canvas."""
    rng = np.random.default_rng(0)
    models_ = ["hope", "hope_legs", "s4_fout", "s4_legs", "s4_random", "s4d_legs", "s4d_lin"]
    keys = [("delay", m) for m in [*models_, "s4d_random"]] + [("copying", "s4d_lin")]
    kernel = {k: (rng.normal(size=(4, 1024)), rng.normal(size=(4, 1024))) for k in keys}
    titles = {k: f"{k[1]} on {k[0]}\nseed 0, step 0 vs 1280" for k in keys}
    fig = draw(plots.kernels, kernel, titles)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == len(keys)
    rows = {}
    for ax in shown:
        rows.setdefault(round(ax.get_position().y0, 3), []).append(ax.get_title().split()[2])
    assert sorted(len(r) for r in rows.values()) == [1, 4, 4]
    assert all(len(set(tasks)) == 1 for tasks in rows.values()), rows
    assert style.overhang(fig) == {}


def test_dot_plot_of_many_long_labelled_cells_keeps_its_text_inside():
    """Cells told apart by long swept settings (a store holding several studies): the labels
    wrap, the panel grows with them and nothing reaches past the canvas."""
    labels = [
        f"s4_legs [model.layer.dt_max={2.0**-k}, model.layer.freeze_A=false]" for k in range(12)
    ]
    values = pd.DataFrame(
        [{"task": "delay", "model": m, "value": 0.1 + 0.01 * i + 0.001 * s}
         for i, m in enumerate(labels) for s in range(3)]
    )  # fmt: skip
    published = pd.DataFrame(columns=["task", "model", "value"])
    fig = draw(
        plots.leaderboard_points, values, published, {"delay": "test MSE ↓"}, {}, {"delay": False}
    )
    assert fig.get_figheight() > style.PANEL_HEIGHT
    assert all("\n" in t.get_text() for t in fig.axes[0].get_yticklabels())
    assert style.overhang(fig) == {}
