"""Gather the data of every figure (MLflow, run directories, benchmark CSVs) and draw it.

`write_figures` is what `python -m harness.report --plots` runs; each figure is skipped, with a log
line, when its data is absent (no noise-padding sweep, no checkpoints); the benchmark figures are
drawn only on request (`--bench`). Drawing lives in `harness.report.plots` (the benchmark figure in
`harness.plotting.bench`); SSM math (kernels, basis functions, Hankel singular values) in `models`
(`SSMLayer.kernel`, `models.analysis`).

Every figure scores a task like the tables do (`harness.report.stats.task_metrics`: accuracy for
classification, MSE for regression, or `--metric`), and splits a (model, task) cell that mixes
experiments into `model [key=value]` labels like the leaderboard (`harness.report.pool`).
"""

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import models
from common import OBJECTIVES, UserError
from harness.layout import CHECKPOINT, MODEL_BEST, MODEL_INIT, PROJECT_ROOT
from harness.plotting import bench
from harness.report import plots
from harness.report.load import load_histories
from harness.report.plots import Basis, Reference
from harness.report.pool import mixed_cells, variant_labels
from harness.report.stats import is_accuracy, metric_values, task_metrics, task_objective
from harness.report.tables import metric_label
from harness.run import checkpoint
from harness.run.metrics import TRIVIAL_PREFIX
from models import hippo
from models.analysis import basis_functions_at, hankel_singular_values
from models.layer import SSMLayer

log = logging.getLogger(__name__)

NOISE_KEY = "params.task.noise_len"
"""The param holding the noise-padding length of the noise-padded tasks."""

STAGES = (("initial", MODEL_INIT), ("trained", MODEL_BEST))
"""Weights compared by the diagnostics: step 0 and the best validation evaluation."""

REFERENCE_LABELS = {"acc": "chance (1/C)", "loss": "trivial predictor (training mean)"}

BASIS_T_MIN, BASIS_T_MAX, BASIS_POINTS = 1e-3, 1e2, 2000
BASIS_SHOWN = 4
BASIS_SEED = 0
"""The basis figure draws the first BASIS_SHOWN basis functions (or impulse-response channels) of
every registered model at BASIS_POINTS log-spaced times t in [BASIS_T_MIN, BASIS_T_MAX]; random
inits are one draw with seed BASIS_SEED."""


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "FINISHED"]


def _objectives(runs: pd.DataFrame, metrics: dict[str, str]) -> dict[str, str]:
    return {t: task_objective(runs[runs["task"] == t]) for t in metrics}


def labelled(runs: pd.DataFrame, values: pd.Series, pool: list[str], keys=("model", "task")):
    """`runs` with `model` replaced by `model [key=value, ...]` where its (`keys`) cell mixes
    experiments, as the leaderboard splits it."""
    labels = runs[list(keys)]
    variant = variant_labels(mixed_cells(runs, labels, values, pool), runs, labels)
    names = [m if not v else f"{m} [{v}]" for m, v in zip(runs["model"], variant, strict=True)]
    return runs.assign(model=names)


def references(
    runs: pd.DataFrame, metrics: dict[str, str], split: str = "test"
) -> dict[str, Reference]:
    """Per task, the level on `split` of an input-blind predictor the runs logged
    (`trivial/<split>_*`): chance accuracy (%) for an accuracy metric, the training-mean MSE for a
    regression loss."""
    found = {}
    for task, metric in metrics.items():
        kind = "acc" if is_accuracy(metric) else "loss" if metric.endswith("_loss") else None
        col = f"metrics.{TRIVIAL_PREFIX}/{split}_{kind}"
        objective = task_objective(runs[runs["task"] == task])
        scores_loss = not OBJECTIVES[objective].scores_accuracy
        if kind is None or col not in runs or (kind == "loss" and not scores_loss):
            continue
        level = pd.to_numeric(runs.loc[runs["task"] == task, col], errors="coerce").mean()
        if np.isfinite(level):
            found[task] = Reference(level, REFERENCE_LABELS[kind])
    return found


def _axis_label(metric: str, objective: str) -> str:
    """`test accuracy (%) ↑`, `test MSE ↓`: the metric's name and direction, short for an axis."""
    name, _, direction = metric_label(metric, objective).rpartition(", ")
    return f"{name} {'↑' if direction.startswith('higher') else '↓'}"


def learning_curve_figures(uri: str, runs: pd.DataFrame, out: Path, pool: list[str]) -> list[Path]:
    """`learning_curves.{pdf,png}`: per task, val/acc (%) for classification or val/loss (MSE)
    for regression against step, one line per model (the variants of a mixed cell apart)."""
    finished = _finished(runs)
    metrics = task_metrics(runs, None)
    objectives = _objectives(runs, metrics)
    scored = labelled(finished, metric_values(finished, metrics), pool)
    frames = []
    for objective in OBJECTIVES.values():  # a curve follows the metric that picks the best
        tasks = [t for t, o in objectives.items() if o == objective.name]
        history = load_histories(uri, scored[scored["task"].isin(tasks)], objective.monitor)
        frames.append(history)  # accuracies in percent (load_histories)
    frames = [f.astype({"step": int, "value": float}) for f in frames if not f.empty]
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if history.empty:
        log.info("no val/acc or val/loss histories: learning curves skipped")
        return []
    ylabels = {t: OBJECTIVES[o].curve_label for t, o in objectives.items()}
    refs = references(runs, metrics, "val")
    return plots.learning_curves(history, ylabels, refs, stem=out / "learning_curves")


def leaderboard_figure(
    runs: pd.DataFrame,
    metric: str | None,
    published: pd.DataFrame | None,
    out: Path,
    pool: list[str],
) -> list[Path]:
    """`leaderboard.{pdf,png}`: per task, mean ± std over seeds per model, published stars, the
    chance / trivial level; accuracy axes 0-100 %, loss axes from 0."""
    metrics = task_metrics(runs, metric)
    objectives = _objectives(runs, metrics)
    values = metric_values(runs, metrics)
    frame = labelled(runs, values, pool).assign(value=values)
    frame = frame[np.isfinite(frame["value"])][["task", "model", "value"]]
    if frame.empty:
        log.info("no finished run logs its metric: leaderboard figure skipped")
        return []
    pub = pd.DataFrame(columns=["task", "model", "value"])
    if published is not None:
        accuracy_tasks = [t for t, m in metrics.items() if m == "best/test_acc"]
        pub = published.dropna(subset=["registered", "mean"])
        pub = pub[pub["task"].isin(accuracy_tasks)]
        pub = pub.rename(columns={"registered": "_reg"})[["task", "_reg", "mean"]]
        pub = pub.drop_duplicates(subset=["task", "_reg"])
        pub = pub.rename(columns={"_reg": "model", "mean": "value"})
    xlabels = {t: _axis_label(m, objectives[t]) for t, m in metrics.items()}
    percent = {t: is_accuracy(m) for t, m in metrics.items()}
    refs = references(runs, metrics)
    return plots.leaderboard_points(frame, pub, xlabels, refs, percent, stem=out / "leaderboard")


def noise_memory_figures(
    runs: pd.DataFrame, metric: str | None, out: Path, pool: list[str]
) -> list[Path]:
    """`noise_memory_<task>.{pdf,png}` for every task run at two or more noise-padding lengths."""
    if NOISE_KEY not in runs.columns:
        return []
    metrics = task_metrics(runs, metric)
    values = metric_values(runs, metrics)
    keys = ("model", "task", NOISE_KEY.removeprefix("params."))
    frame = labelled(runs.assign(**{keys[2]: runs[NOISE_KEY]}), values, pool, keys).assign(
        value=values, noise_len=pd.to_numeric(runs[NOISE_KEY], errors="coerce")
    )
    frame = frame[np.isfinite(frame["value"]) & frame["noise_len"].notna()]
    objectives = _objectives(runs, metrics)
    refs = references(runs, metrics)
    paths = []
    for task, part in frame.groupby("task"):
        if part["noise_len"].nunique() < 2:
            continue
        paths += plots.noise_memory(
            part[["model", "noise_len", "seed", "value"]],
            ylabel=_axis_label(metrics[task], objectives[task]),
            reference=refs.get(task),
            percent=is_accuracy(metrics[task]),
            title=f"{task}: memory under noise padding",
            stem=out / f"noise_memory_{task}",
        )
    return paths


def run_directory(run: pd.Series, runs_dir: Path | None) -> Path:
    """`<runs_dir>/<config_hash>/`: `--runs-dir`, else the run's `paths.runs_dir` param."""
    if runs_dir is None:
        logged = run.get("params.paths.runs_dir")
        runs_dir = Path(logged) if isinstance(logged, str) else PROJECT_ROOT / "results" / "runs"
    return runs_dir / str(run["config_hash"])


def load_layer(directory: Path, weights: str, model_args: dict) -> SSMLayer:
    """The first SSM layer of the model saved in a run directory, with `weights` loaded.

    `weights`: `MODEL_INIT` (step 0) or `MODEL_BEST` (best validation); the model is rebuilt
    from `model_args`, the run's `saved_model_args` (no data needed).
    """
    state_path = directory / weights
    if not state_path.is_file():
        raise UserError(f"run directory {directory} lacks {state_path.name}; pass --runs-dir")
    model = models.build_model(**model_args)
    model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return next(m for m in model.modules() if isinstance(m, SSMLayer))


def saved_model_args(directory: Path) -> dict:
    """The `models.build_model` arguments a run directory's checkpoint records (its `l_max` is
    the task's sequence length); a `UserError` when the checkpoint is missing or damaged."""
    ckpt_path = directory / CHECKPOINT
    if not ckpt_path.is_file():
        raise UserError(f"run directory {directory} lacks {ckpt_path.name}; pass --runs-dir")
    try:
        return checkpoint.load(ckpt_path)["model_args"]
    except (checkpoint.Damaged, KeyError) as error:
        raise UserError(
            f"{ckpt_path} is damaged ({error}); pass --runs-dir with intact run folders, or rerun "
            "the point with force=true"
        ) from None


def _has_checkpoints(directory: Path) -> bool:
    return (directory / MODEL_BEST).is_file()


def _run_label(run: pd.Series) -> str:
    """`seed 0, step 0 vs 120`: the run and the two checkpoints a diagnostic compares."""
    step = run.get("metrics.best/step")
    best = f"{int(step)}" if isinstance(step, float) and np.isfinite(step) else "best"
    return f"seed {run['seed']}, step 0 vs {best}"


@dataclass
class Diagnostics:
    """The first layer's kernels of one run per (task, model) at step 0 and at the best
    validation step (`kernels[key] = (initial, trained)`, real (H, L)), their Hankel singular
    values (`svals`, long frame) and the run each comes from (`labels[key]`: seed and steps)."""

    kernels: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]
    labels: dict[tuple[str, str], str]
    svals: pd.DataFrame


def diagnostics(runs: pd.DataFrame, runs_dir: Path | None, L: int | None) -> Diagnostics:
    """Kernels of the lowest-seed finished run of every (task, model) whose run directory holds
    the checkpoints (the others are skipped with a log line), `L` steps long (None: each run's
    own sequence length)."""
    kernels, labels, svals = {}, {}, []
    finished = _finished(runs).sort_values("seed")
    for (task, model), part in finished.groupby(["task", "model"]):
        saved = [r for _, r in part.iterrows() if _has_checkpoints(run_directory(r, runs_dir))]
        if not saved:
            log.info("no run directory with checkpoints for %s on %s: skipped", model, task)
            continue
        directory = run_directory(saved[0], runs_dir)
        args = saved_model_args(directory)  # read once: the checkpoint holds the optimizer too
        length = L or int(args["l_max"])
        stages = {}
        for stage, weights in STAGES:
            with torch.no_grad():
                k = load_layer(directory, weights, args).kernel(length)[0].double()  # (H, L)
            stages[stage] = k.numpy()
            sv = hankel_singular_values(k).numpy()
            svals.append(_singular_value_frame(task, model, stage, sv))
        kernels[(task, model)] = (stages["initial"], stages["trained"])
        labels[(task, model)] = _run_label(saved[0])
    return Diagnostics(kernels, labels, pd.concat(svals) if svals else pd.DataFrame())


def diagnostics_figures(
    runs: pd.DataFrame, runs_dir: Path | None, out: Path, L: int | None
) -> list[Path]:
    """`kernels.{pdf,png}`: the first layer's kernels at initialization and after training;
    `hankel.{pdf,png}`: their Hankel singular values (HOPE's diagnostic); every panel names its
    run (task, model, seed, steps)."""
    found = diagnostics(runs, runs_dir, L)
    if not found.kernels:
        return []
    titles = {key: f"{key[1]} on {key[0]}\n{label}" for key, label in found.labels.items()}
    paths = plots.kernels(found.kernels, titles, stem=out / "kernels")
    return paths + plots.hankel_singular_values(found.svals, found.labels, stem=out / "hankel")


def _singular_value_frame(task: str, model: str, stage: str, sv: np.ndarray) -> pd.DataFrame:
    """Long frame of singular values sv (H, K): columns task, model, stage, channel, k, value."""
    H, K = sv.shape
    return pd.DataFrame(
        {
            "task": task,
            "model": model,
            "stage": stage,
            "channel": np.repeat(np.arange(H), K),
            "k": np.tile(np.arange(K), H),
            "value": sv.ravel(),
        }
    )


def basis_times() -> np.ndarray:
    """The log-spaced times (T,) of the basis figure."""
    return np.geomspace(BASIS_T_MIN, BASIS_T_MAX, BASIS_POINTS)


def _hope_impulse(name: str, N: int, t: np.ndarray) -> np.ndarray:
    """Impulse response (BASIS_SHOWN, T) of a HOPE init: the kernel K[l] of one linear-mode layer
    at step dt = BASIS_T_MIN, divided by dt, at t = l dt (the continuous-time response that the
    kernel samples at every step size)."""
    torch.manual_seed(BASIS_SEED)
    dt = BASIS_T_MIN
    layer = models.build_layer(name, BASIS_SHOWN, N, dt_min=dt, dt_max=dt, mode="linear")
    L = int(np.ceil(t[-1] / dt)) + 1
    with torch.no_grad():
        k = layer.kernel(L)[0].double().numpy() / dt  # (H, L)
    return np.stack([np.interp(t, np.arange(L) * dt, row) for row in k])


def initial_bases(N: int) -> dict[str, Basis]:
    """Every registered model's initialization on the times `basis_times()`:

    S4 (DPLR) inits: exp(tA)B of the dense operator, `hippo.transition(measure, N)` (random:
    `hippo.random_nplr`); S4D (diagonal) inits: Re(exp(t Lambda) B) of `hippo.diagonal_init`
    (the kernel is 2 Re(C exp(t Lambda) B)); HOPE inits, which have no state basis, their
    impulse response (`_hope_impulse`).
    """
    t = basis_times()
    generator = torch.Generator().manual_seed(BASIS_SEED)
    bases = {}
    for name in models.MODELS.names():
        spec = models.MODELS[name]()
        if spec.family == "s4":
            if spec.init == "random":
                A, B, _ = hippo.random_nplr(N, generator)
            else:
                A, B = hippo.transition(spec.init, N)
            bases[name] = Basis(t, basis_functions_at(A, B, t).T, "$(e^{tA}B)_n$")
        elif spec.family == "s4d":
            Lambda, B = hippo.diagonal_init(spec.init, N, 1, generator)
            values = np.exp(t[:, None] * Lambda[0]) * B[0]  # (T, N/2)
            bases[name] = Basis(t, values.real.T, r"Re $(e^{t\Lambda}B)_n$")
        else:
            bases[name] = Basis(t, _hope_impulse(name, N, t), "impulse response")
    return bases


def basis_figure(N: int, out: Path) -> list[Path]:
    """`basis_functions.{pdf,png}`: every registered model's initialization (HTTYH)."""
    subtitle = (
        f"basis function n or HOPE channel; state size N = {N}; random inits: one draw; "
        "t in units of the timescale"
    )
    bases = initial_bases(N)
    return plots.basis_functions(
        bases, n_show=BASIS_SHOWN, subtitle=subtitle, stem=out / "basis_functions"
    )


def bench_figures(bench_dir: Path, out: Path) -> list[Path]:
    """`bench_<csv stem>.{pdf,png}` for every benchmark CSV of `harness.bench` in `bench_dir`
    (`harness.plotting.bench.plot`: lines against L with >= 2 lengths, bars at one length)."""
    paths = []
    for csv in sorted(bench_dir.glob("*.csv")) if bench_dir.is_dir() else []:
        table = pd.read_csv(csv)
        needed = set(bench.PLOT_COLUMNS)
        if not needed <= set(table.columns):
            log.info("%s lacks columns %s: skipped", csv, sorted(needed - set(table.columns)))
            continue
        paths += bench.plot(table, out / f"bench_{csv.stem}")
    return paths


def write_figures(
    uri: str,
    runs: pd.DataFrame,
    args: argparse.Namespace,
    published: pd.DataFrame | None,
    pool: list[str],
) -> list[Path]:
    """Every figure whose data exists, under `<args.out>/figures/`; returns the files written.
    The benchmark figures only with `args.bench`; `pool`: the keys cells may pool (`--pool`)."""
    out = args.out / "figures"
    paths = learning_curve_figures(uri, runs, out, pool)
    paths += leaderboard_figure(runs, args.metric, published, out, pool)
    paths += noise_memory_figures(runs, args.metric, out, pool)
    paths += basis_figure(args.basis_state, out)
    paths += diagnostics_figures(runs, args.runs_dir, out, args.kernel_len)
    if args.bench:
        paths += bench_figures(args.bench_dir, out)
    return paths
