"""Every figure is written as a non-empty PDF and a non-blank PNG, from the synthetic store
(tests/report_store.py), from synthetic benchmark CSVs, and from real short runs of the runner."""

import argparse

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from report_store import build_store
from scipy.special import eval_legendre

from harness.bench.command import COLUMNS as BENCH_COLUMNS
from harness.report import command as report
from harness.report import figures, plots
from harness.report.load import dedup, load_histories, load_runs
from harness.report.published import load_published
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


def runs_hash(uri: str, model: str) -> str:
    """The config hash (run directory name) of the first run of `model` in the store."""
    runs = load_runs(uri)
    return runs.loc[runs["model"] == model, "config_hash"].iloc[0]


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory):
    uri = build_store(tmp_path_factory.mktemp("store"))
    runs = dedup(load_runs(uri)).kept
    return uri, runs[runs["task"].isin(["listops", "text", "digits_noise"])]  # 3 panels suffice


def test_figures_from_the_synthetic_store(store_runs, tmp_path):
    """Every figure with data is drawn; the store has no checkpoints and no benchmark CSVs, so
    the diagnostics and benchmark figures are skipped rather than failing."""
    uri, runs = store_runs
    args = argparse.Namespace(
        out=tmp_path,
        metric="best/test_acc",
        basis_state=16,
        runs_dir=tmp_path / "no-runs",
        kernel_len=16,
        bench_dir=tmp_path / "no-bench",
    )
    paths = figures.write_figures(uri, runs, args, load_published())
    stems = ["learning_curves", "leaderboard", "noise_memory_digits_noise", "basis_functions"]
    assert sorted({p.stem for p in paths}) == sorted(stems)  # one noise task, no kernels/bench
    for stem in stems:
        assert_figure([tmp_path / "figures" / f"{stem}.{ext}" for ext in ("pdf", "png")], stem)


def test_histories_hold_every_logged_point(store_runs):
    uri, runs = store_runs
    history = load_histories(uri, runs[runs["model"] == "s4d_inv"], "val/acc")
    assert sorted(history["step"].unique()) == [0, 10, 20]
    assert history.groupby("seed")["value"].max().tolist() == pytest.approx([0.51, 0.55, 0.56])


def _bench_csv(path, with_memory: bool):
    rows = []
    for model in ("s4_legs", "hope", "floor"):
        for L in (1024, 4096, 16384):
            for dtype in ("fp32", "bf16"):
                row = dict.fromkeys(BENCH_COLUMNS, "")
                row |= {"device": "dev", "suite": "layer", "model": model, "impl": "fast"}
                row |= {"dtype": dtype, "L": L, "ms": L / 1000, "status": "ok"}
                row["samples_per_s"] = 16 / (L / 1e6) * (2.0 if dtype == "bf16" else 1.0)
                row["peak_mem_gb"] = L * 1e-4 if with_memory else float("nan")
                rows.append(row)
    rows.append(row | {"L": 65536, "status": "oom", "samples_per_s": float("nan")})
    pd.DataFrame(rows, columns=BENCH_COLUMNS).to_csv(path, index=False)


def test_bench_figures_from_benchmark_csvs(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    _bench_csv(bench / "layer_gpu.csv", with_memory=True)
    _bench_csv(bench / "layer_cpu.csv", with_memory=False)  # CPU rows carry no memory
    paths = figures.bench_figures(bench, tmp_path / "figures")
    assert [p.name for p in paths] == [
        "bench_layer_cpu.pdf",
        "bench_layer_cpu.png",
        "bench_layer_gpu.pdf",
        "bench_layer_gpu.png",
    ]
    assert_figure(paths[:2])
    assert_figure(paths[2:])
    assert figures.bench_figures(tmp_path / "missing", tmp_path) == []


def test_s4d_lin_basis_is_a_damped_cosine():
    """Re exp(t Lambda_n) B_n with Lambda_n = -1/2 - i pi n, B_n = 1 is e^{-t/2} cos(pi n t)."""
    t, values = figures.initial_bases(8)["s4d_lin"]
    n = np.arange(4)[:, None]
    np.testing.assert_allclose(values, np.exp(-t / 2) * np.cos(np.pi * n * t), atol=1e-10)


def test_s4_legs_basis_is_the_warped_legendre_basis():
    """HTTYH: (exp(tA)B)_n = sqrt(2n+1) P_n(2 e^{-t} - 1) e^{-t} for HiPPO-LegS, on our t grid."""
    t, values = figures.initial_bases(8)["s4_legs"]
    n = np.arange(8)[:, None]
    closed = np.sqrt(2 * n + 1) * eval_legendre(n, 2 * np.exp(-t) - 1) * np.exp(-t)
    np.testing.assert_allclose(values, closed, atol=1e-10)
    assert t[-1] == figures.BASIS_T_MAX


def test_singular_value_frame_layout():
    sv = np.arange(6.0).reshape(2, 3)  # (H, K)
    frame = figures._singular_value_frame("m", "initial", sv)
    for row in frame.itertuples():
        assert row.value == sv[row.channel, row.k]
    assert len(frame) == 6


def test_paper_style_widths(tmp_path):
    single, _ = plots.new_figure(1)
    double, axes = plots.new_figure(4)
    assert single.get_figwidth() == plots.WIDTHS["column"] == 3.5
    assert double.get_figwidth() == plots.WIDTHS["double"] == 7.0
    assert len(axes) == 4 and plots.palette(["b", "a"]) == plots.palette(["a", "b", "a"])


def test_figures_from_real_short_runs(make_cfg, tracking_env, tmp_path):
    """A tiny run through the runner (conftest's tiny copying task), then
    `python -m harness.report --plots` on their store."""
    runner.execute(make_cfg("model=s4d_lin", "trainer.max_epochs=2"))
    out = tmp_path / "out"
    args = ["--tracking-uri", tracking_env.uri, "--out", str(out), "--plots"]
    assert report.main([*args, "--kernel-len", "32", "--basis-state", "16"]) == 0
    for stem in ("learning_curves", "leaderboard", "kernels", "hankel", "basis_functions"):
        assert_figure([out / "figures" / f"{stem}.pdf", out / "figures" / f"{stem}.png"])
    board = pd.read_csv(out / "leaderboard.csv").set_index("model")
    assert board.index.tolist() == ["s4d_lin"] and board.loc["s4d_lin", "copying_n"] == 1
    directory = tracking_env.runs_dir / runs_hash(tracking_env.uri, "s4d_lin")
    initial = figures.load_layer(directory, "model_init.pt").kernel(32)
    trained = figures.load_layer(directory, "model_best.pt").kernel(32)
    assert initial.shape == trained.shape == (1, 8, 32)  # (C, H, L) of the tiny model
    assert not torch.equal(initial, trained)  # the SSM parameters were trained
