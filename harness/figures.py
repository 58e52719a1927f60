"""Gather the data of every figure (MLflow, run directories, benchmark CSVs) and draw it.

`write_figures` is what `python -m harness.report --plots` runs; each figure is skipped, with a log
line, when its data is absent (no noise-padding sweep, no checkpoints, no benchmark CSVs).
Drawing lives in `harness.plots`; SSM math (kernels, basis functions, Hankel singular values) in
`models` (`SSMLayer.kernel`, `models.analysis`).
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import models
from common import UserError
from harness import checkpoint, plots
from harness.config import PROJECT_ROOT
from harness.report_load import load_histories
from harness.report_stats import is_accuracy, metric_values
from harness.report_tables import metric_label
from models import hippo
from models.analysis import basis_functions, hankel_singular_values
from models.layer import SSMLayer

log = logging.getLogger(__name__)

NOISE_KEY = "params.task.noise_len"
"""The param holding the noise-padding length of the noise-padded tasks."""

STAGES = (("initial", checkpoint.MODEL_INIT), ("trained", checkpoint.MODEL_BEST))
"""Weights compared by the diagnostics: step 0 and the best validation evaluation."""

BASIS_T_MAX = 4.0
BASIS_POINTS = 400
BASIS_SHOWN = 4
BASIS_CYCLES = 4
"""The basis figure draws the first BASIS_SHOWN functions exp(tA)B at BASIS_POINTS points of
t in [0, BASIS_T_MAX], shortened for oscillating diagonal inits to BASIS_CYCLES periods."""


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "FINISHED"]


def learning_curve_figures(uri: str, runs: pd.DataFrame, out: Path) -> list[Path]:
    """`learning_curves.{pdf,png}`: val/acc against step per task, one line per model."""
    history = load_histories(uri, _finished(runs), "val/acc")
    if history.empty:
        log.info("no val/acc histories: learning curves skipped")
        return []
    history["value"] = history["value"] * 100.0
    return plots.learning_curves(
        history, ylabel="validation accuracy (%)", stem=out / "learning_curves"
    )


def leaderboard_figure(
    runs: pd.DataFrame, metric: str, published: pd.DataFrame | None, out: Path
) -> list[Path]:
    """`leaderboard.{pdf,png}`: per task, mean ± std over seeds per model, published stars."""
    values = runs.assign(value=metric_values(runs, metric))
    values = values[np.isfinite(values["value"])][["task", "model", "value"]]
    if values.empty:
        log.info("no finished run logs %s: leaderboard figure skipped", metric)
        return []
    pub = pd.DataFrame(columns=["task", "model", "value"])
    if published is not None and is_accuracy(metric):
        pub = published.dropna(subset=["registered", "mean"])
        pub = pub.rename(columns={"registered": "_reg"})[["task", "_reg", "mean"]]
        pub = pub.drop_duplicates(subset=["task", "_reg"])
        pub = pub.rename(columns={"_reg": "model", "mean": "value"})
    xlabel = metric_label(metric).replace(" at the best validation evaluation", "")
    return plots.leaderboard_points(values, pub, xlabel=xlabel, stem=out / "leaderboard")


def noise_memory_figures(runs: pd.DataFrame, metric: str, out: Path) -> list[Path]:
    """`noise_memory_<task>.{pdf,png}` for every task run at two or more noise-padding lengths."""
    if NOISE_KEY not in runs.columns:
        return []
    frame = runs.assign(
        value=metric_values(runs, metric),
        noise_len=pd.to_numeric(runs[NOISE_KEY], errors="coerce"),
    )
    frame = frame[np.isfinite(frame["value"]) & frame["noise_len"].notna()]
    paths = []
    for task, part in frame.groupby("task"):
        if part["noise_len"].nunique() < 2:
            continue
        paths += plots.noise_memory(
            part[["model", "noise_len", "seed", "value"]],
            ylabel=metric_label(metric).replace(" at the best validation evaluation", ""),
            stem=out / f"noise_memory_{task}",
        )
    return paths


def run_directory(run: pd.Series, runs_dir: Path | None) -> Path:
    """`<runs_dir>/<config_hash>/`: `--runs-dir`, else the run's `paths.runs_dir` param."""
    if runs_dir is None:
        logged = run.get("params.paths.runs_dir")
        runs_dir = Path(logged) if isinstance(logged, str) else PROJECT_ROOT / "results" / "runs"
    return runs_dir / str(run["config_hash"])


def load_layer(directory: Path, weights: str) -> SSMLayer:
    """The first SSM layer of the model saved in a run directory, with `weights` loaded.

    `weights`: `checkpoint.MODEL_INIT` (step 0) or `checkpoint.MODEL_BEST` (best validation);
    the model is rebuilt from the checkpoint's `model_args` (no data needed).
    """
    state_path, ckpt_path = directory / weights, directory / checkpoint.CHECKPOINT
    for path in (state_path, ckpt_path):
        if not path.is_file():
            raise UserError(f"run directory {directory} lacks {path.name}; pass --runs-dir")
    try:
        model_args = checkpoint.load(ckpt_path)["model_args"]
    except (checkpoint.Damaged, KeyError) as error:
        raise UserError(
            f"{ckpt_path} is damaged ({error}); pass --runs-dir with intact run folders, or rerun "
            "the point with force=true"
        ) from None
    model = models.build_model(**model_args)
    model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return next(m for m in model.modules() if isinstance(m, SSMLayer))


def diagnostics_figures(runs: pd.DataFrame, runs_dir: Path | None, out: Path, L: int) -> list[Path]:
    """`kernels.{pdf,png}`: the first layer's kernels at initialization and after training;
    `hankel.{pdf,png}`: their Hankel singular values (HOPE's diagnostic). One run per model, the
    first finished one whose run directory holds the checkpoints."""
    kernels, svals = {}, []
    for model, part in _finished(runs).groupby("model"):
        dirs = (run_directory(run, runs_dir) for _, run in part.iterrows())
        directory = next((d for d in dirs if (d / checkpoint.MODEL_BEST).is_file()), None)
        if directory is None:
            log.info("no run directory with checkpoints for %s: diagnostics skipped", model)
            continue
        stages = {}
        for stage, weights in STAGES:
            with torch.no_grad():
                k = load_layer(directory, weights).kernel(L)[0].double()  # (H, L)
            stages[stage] = k.numpy()
            svals.append(_singular_value_frame(model, stage, hankel_singular_values(k).numpy()))
        kernels[model] = (stages["initial"], stages["trained"])
    if not kernels:
        return []
    paths = plots.kernels(kernels, stem=out / "kernels")
    return paths + plots.hankel_singular_values(pd.concat(svals), stem=out / "hankel")


def _singular_value_frame(model: str, stage: str, sv: np.ndarray) -> pd.DataFrame:
    """Long frame of singular values sv (H, K): columns model, stage, channel, k, value."""
    H, K = sv.shape
    return pd.DataFrame(
        {
            "model": model,
            "stage": stage,
            "channel": np.repeat(np.arange(H), K),
            "k": np.tile(np.arange(K), H),
            "value": sv.ravel(),
        }
    )


def initial_bases(N: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(t, exp(tA)B as (N', T)) of each structured initialization, for the HTTYH basis figure.

    S4 inits use the dense HiPPO operator `hippo.transition(measure, N)` (real) on
    t in [0, BASIS_T_MAX]; S4D inits their diagonal (Lambda, B) from `hippo.diagonal_init`
    (complex; the real part is drawn, the kernel being 2 Re(C exp(t Lambda) B)) on a window that
    shows BASIS_CYCLES periods of the fastest drawn component (S4D-Inv's first frequencies are
    of order N^2 / pi). Random inits are left out: they have no fixed basis.
    """
    bases = {}
    for measure in ("legs", "fout"):
        A, B = hippo.transition(measure, N)
        t = np.linspace(0.0, BASIS_T_MAX, BASIS_POINTS)
        bases[f"s4_{measure}"] = (t, basis_functions(A, B, BASIS_T_MAX, BASIS_POINTS).T)
    for init in ("legs", "inv", "lin"):
        Lambda, B = hippo.diagonal_init(init, N, 1)
        fastest = np.abs(Lambda[0, :BASIS_SHOWN].imag).max()
        t_max = min(BASIS_T_MAX, BASIS_CYCLES * 2 * np.pi / fastest) if fastest > 0 else BASIS_T_MAX
        values = basis_functions(np.diag(Lambda[0]), B[0], t_max, BASIS_POINTS)
        bases[f"s4d_{init}"] = (np.linspace(0.0, t_max, BASIS_POINTS), values.real.T)
    return bases


def basis_figure(N: int, out: Path) -> list[Path]:
    """`basis_functions.{pdf,png}`: exp(tA)B of every structured initialization (HTTYH)."""
    bases = initial_bases(N)
    return plots.basis_functions(bases, n_show=BASIS_SHOWN, stem=out / "basis_functions")


def bench_figures(bench_dir: Path, out: Path) -> list[Path]:
    """`bench_<suite>_<device>.{pdf,png}` for every layer/model benchmark CSV of `harness.bench`."""
    paths = []
    for csv in sorted(bench_dir.glob("*.csv")) if bench_dir.is_dir() else []:
        table = pd.read_csv(csv)
        needed = {"model", "L", "dtype", "samples_per_s", "peak_mem_gb"}
        if not needed <= set(table.columns):
            log.info("%s lacks columns %s: skipped", csv, sorted(needed - set(table.columns)))
            continue
        table = table[np.isfinite(table["samples_per_s"])]
        if "status" in table.columns:
            table = table[table["status"] == "ok"]
        if table.empty:
            continue
        if "impl" in table.columns and table["impl"].nunique() > 1:
            table = table.assign(dtype=table["dtype"] + ", " + table["impl"])
        paths += plots.bench_scaling(table, stem=out / f"bench_{csv.stem}")
    return paths


def write_figures(
    uri: str, runs: pd.DataFrame, args: argparse.Namespace, published: pd.DataFrame | None
) -> list[Path]:
    """Every figure whose data exists, under `<args.out>/figures/`; returns the files written."""
    out = args.out / "figures"
    paths = learning_curve_figures(uri, runs, out)
    paths += leaderboard_figure(runs, args.metric, published, out)
    paths += noise_memory_figures(runs, args.metric, out)
    paths += basis_figure(args.basis_state, out)
    paths += diagnostics_figures(runs, args.runs_dir, out, args.kernel_len)
    paths += bench_figures(args.bench_dir, out)
    return paths
