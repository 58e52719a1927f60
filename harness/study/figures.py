"""A study's figures: the metric per row or against the setting, and the learned kernels.

- `metric_figure`: one panel, the metric of every run (small dots) and each row's mean with its
  sample std. With a numeric setting of more than two values the setting is the x axis and
  each model a line (log x when the setting spans decades and is positive: dt, lr); otherwise
  rows are categories on the x axis. An error metric spanning more than a decade gets a log y.
  The reference level (chance, trivial predictor) is a dashed line.
- `kernels_figure`: |K(t)| against t (one panel per model): the first SSM layer's kernel
  (`models` layer `.kernel(L)`, mean of |K| over channels) at initialization
  (`model_init.pt`) and after training (`model_best.pt`), read with `weights_only=True`
  through `harness.run.checkpoint.load`; what HTTYH and HOPE plot to explain memory.

Every figure is saved with a tight bounding box, so titles, axis labels and legends (placed
outside the axes) are never cut.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

import models
import tasks
from harness.layout import MODEL_BEST, MODEL_INIT
from harness.run import checkpoint
from harness.run.config import model_args, resolved

FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class Level:
    """A horizontal reference line: value and label."""

    value: float
    label: str


def _save(fig, stem: Path) -> list[Path]:
    paths = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, bbox_inches="tight", dpi=150)
        paths.append(path)
    plt.close(fig)
    return paths


def spans_decades(values: np.ndarray) -> bool:
    """True when the positive finite values span more than a factor of 10."""
    v = values[np.isfinite(values) & (values > 0)]
    return len(v) > 1 and v.max() / v.min() > 10.0


def numeric_setting(settings: pd.Series) -> pd.Series | None:
    """The settings as numbers when every one is a number and there are more than two."""
    numbers = pd.to_numeric(settings, errors="coerce")
    return numbers if numbers.notna().all() and numbers.nunique() > 2 else None


def metric_figure(
    summary: pd.DataFrame,
    ylabel: str,
    setting_label: str,
    title: str,
    reference: Level | None,
    error_metric: bool,
    stem: Path,
) -> list[Path]:
    """The metric of `summary` (columns model, setting, seed, value) as described above."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    x = numeric_setting(summary["setting"])
    means = summary.groupby(["model", "setting"], sort=False)["value"].agg(["mean", "std"])
    if x is not None:
        frame = summary.assign(x=x)
        for model, part in frame.groupby("model", sort=True):
            stats = part.groupby("x")["value"].agg(["mean", "std"]).reset_index()
            line = ax.errorbar(
                stats["x"], stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=model
            )
            ax.scatter(part["x"], part["value"], s=8, alpha=0.4, color=line[0].get_color())
        positive = frame["x"][frame["x"] > 0]
        if (frame["x"] > 0).all() and positive.max() / positive.min() >= 16:
            ax.set_xscale("log", base=2 if _powers_of_two(positive) else 10)
        ax.set_xlabel(setting_label)
    else:
        rows = list(means.index)
        labels = [m if s in ("", "none") else f"{m}\n{setting_label}={s}" for m, s in rows]
        if summary["setting"].nunique() == 1:
            labels = [m for m, _ in rows]
        positions = {row: i for i, row in enumerate(rows)}
        at = [positions[(m, s)] for m, s in zip(summary["model"], summary["setting"], strict=True)]
        ax.scatter(at, summary["value"], s=10, alpha=0.5, color="tab:gray", label="one seed")
        ax.errorbar(
            range(len(rows)),
            means["mean"],
            yerr=means["std"],
            fmt="D",
            color="tab:blue",
            capsize=3,
            label="mean ± std",
        )
        ax.set_xticks(range(len(rows)), labels, rotation=45, ha="right")
    values = summary["value"].to_numpy(dtype=float)
    if reference is not None:
        ax.axhline(reference.value, ls="--", color="k", lw=1, label=reference.label)
        values = np.append(values, reference.value)
    if error_metric and spans_decades(values):
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    return _save(fig, stem)


def _powers_of_two(values: pd.Series) -> bool:
    exponents = np.log2(values.to_numpy(dtype=float))
    return bool(np.allclose(exponents, np.round(exponents)))


def first_layer_kernel(run_dir: Path, weights: str) -> np.ndarray:
    """|K(t)| of the first SSM layer of the run in `run_dir`, mean over channels: (L,) float64.

    The model is rebuilt from the run's `config.yaml` (its task's shapes) and loaded from
    `weights` (`model_init.pt` or `model_best.pt`) with `weights_only=True`.
    """
    cfg = OmegaConf.load(run_dir / "config.yaml")
    options = {k: v for k, v in resolved(cfg.task).items() if k != "name"}
    info = tasks.build(str(cfg.task.name), **options).info
    model = models.build_model(**model_args(cfg, info))
    model.load_state_dict(checkpoint.load(run_dir / weights))
    with torch.no_grad():
        k = model.layers[0].kernel(info.seq_len)  # (C, H, L)
    return k.abs().double().mean(dim=(0, 1)).numpy()


def kernels_figure(run_dirs: dict[str, Path], title: str, stem: Path) -> list[Path]:
    """One panel per model (`run_dirs`: model -> its run folder): |K(t)| at initialization and
    after training, log y (kernels decay over decades)."""
    n = len(run_dirs)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (model, run_dir) in zip(axes.flat, sorted(run_dirs.items()), strict=False):
        for weights, label, style in ((MODEL_INIT, "init", "--"), (MODEL_BEST, "trained", "-")):
            k = first_layer_kernel(run_dir, weights)
            ax.plot(np.arange(len(k)), np.maximum(k, 1e-12), style, lw=1, label=label)
        ax.set_yscale("log")
        ax.set_title(model, fontsize="medium")
        ax.set_xlabel("t (steps)")
        ax.set_ylabel("|K(t)|")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, stem)
