"""The training loop (plain PyTorch): optimizer, schedule, evaluation, checkpoints, metrics.

One optimizer step consumes `trainer.grad_accum` loader batches (the last step of an epoch may
take fewer). Metrics are logged at optimizer steps (`step`, counted from 1):
- every `trainer.log_every` steps, window means: `train/loss`, `train/acc`, `lr/<group>`,
  `perf/samples_per_s`, `perf/peak_mem_gb` (CUDA);
- at each evaluation (every epoch, or every `trainer.eval_every_steps`): `val/*`, `test/*`,
  `epoch` (fractional inside an epoch);
- at the end (`Trainer.summary`): `best/*`, `wall_time_s`, `perf/mean_samples_per_s`,
  `perf/step_s` and `perf/overhead_fraction` (loader waits, logging and checkpoint writes over the
  training loop's time).
The reported test score is the test score at the best validation evaluation (`val/acc` highest,
or `val/loss` lowest for regression). Losses stay on the device between log windows; a window's
per-step losses are checked at its end and before every evaluation and checkpoint, so a
non-finite loss raises `NonFiniteLoss` naming the step before anything uses its weights.

Checkpoints (`harness.run.checkpoint`) are written every `trainer.checkpoint_every` steps, when
`trainer.checkpoint_every_minutes` passed since the last one, after each epoch's end (and its
evaluation), at the end, and on a stop signal. A checkpoint carries the open log window, so the
logged history does not depend on when checkpoints were written or where a run was resumed.
"""

import contextlib
import io
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

import models
from common import Objective, UserError
from harness.layout import MODEL_BEST, MODEL_INIT
from harness.run import checkpoint, distributed, metrics, precision
from harness.run.config import config_hash
from harness.run.distributed import DistContext
from harness.run.schema import INTERVALS, SCHEDULERS, TrainerOptions

log = logging.getLogger(__name__)

# What `Trainer.state_dict` writes and `Trainer.load_state_dict` needs.
STATE_KEYS = frozenset(
    {"model", "optimizer", "scheduler", "rng", "step", "epoch", "batch_in_epoch", "best"}
    | {"last_eval_step", "counters", "window", "config"}
)
LogFn = Callable[[dict[str, float], int], None]


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step

    def __reduce__(self):  # rebuilt from `step` when it crosses a process boundary (submitit)
        return type(self), (self.step,)


def build_optimizer(model: nn.Module, cfg: DictConfig) -> torch.optim.AdamW:
    """AdamW over `models.param_groups` (SSM parameters keep their own lr and weight decay 0)."""
    if cfg.name != "adamw":
        raise UserError(f"optimizer.name={cfg.name!r} is not supported; use optimizer=adamw")
    groups = models.param_groups(
        model, lr=cfg.lr, weight_decay=cfg.weight_decay, no_decay=cfg.no_decay
    )
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay
    )


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR factor: linear warmup `step / warmup`, then a half cosine from 1 to `min_ratio`.

    f(s) = s / W for s < W;  f(s) = r + (1 - r) (1 + cos(pi p)) / 2, p = min(1, (s - W) / (T - W)).
    """
    if step < warmup:
        return step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Schedule:
    """The learning-rate schedule: stepped per optimizer step, and (plateau) per evaluation.

    With `interval: epoch` the warmup and cosine count epochs (`warmup_steps`, `total_steps` in
    epochs, the lr constant within an epoch): torch's CosineAnnealingLR stepped once an epoch,
    as AnnanYu/HOPE-SSM noisycifar_HOPE.py.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: DictConfig,
        total_steps: int,
        mode: str,
        steps_per_epoch: int = 1,
    ):
        self.name = cfg.name
        if self.name not in SCHEDULERS:
            raise UserError(f"scheduler.name={self.name!r} is not one of {', '.join(SCHEDULERS)}")
        if self.name == "plateau":
            self.impl = ReduceLROnPlateau(
                optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
            )
            return
        if cfg.interval not in INTERVALS:
            valid = ", ".join(INTERVALS)
            raise UserError(f"scheduler.interval={cfg.interval!r} is not one of {valid}")
        unit = steps_per_epoch if cfg.interval == "epoch" else 1
        warmup = int(cfg.warmup_steps)
        if self.name == "cosine":
            planned = math.ceil(total_steps / unit)  # the run's planned steps or epochs
            total = int(cfg.total_steps) if cfg.total_steps is not None else planned
            min_ratio = float(cfg.min_lr_ratio)
            self.impl = LambdaLR(
                optimizer, lambda s: warmup_cosine(s // unit, warmup, total, min_ratio)
            )
        else:
            self.impl = LambdaLR(
                optimizer, lambda s: min(1.0, s // unit / warmup) if warmup else 1.0
            )

    def after_step(self) -> None:
        if self.name != "plateau":
            self.impl.step()

    def after_eval(self, monitored: float) -> None:
        if self.name == "plateau":
            self.impl.step(monitored)

    def state_dict(self) -> dict[str, Any]:
        return self.impl.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.impl.load_state_dict(state)


LOG_PROGRESS_SECONDS = 10.0
"""How often the progress line is written where stderr is not a terminal (a job's log file)."""


class _LinePerRefresh(io.TextIOBase):
    """tqdm's output for a log file: each refresh of the bar one plain line, no carriage
    returns (a `\r`-redrawn bar in a file is hundreds of updates on one line)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _progress_bar(setting: str | bool, shown: bool, total: int, initial: int) -> tqdm:
    """The training progress: on a terminal a redrawn bar; elsewhere (`setting` "auto" off a
    terminal, or under CI only when forced `true`) one line every `LOG_PROGRESS_SECONDS`."""
    terminal = sys.stderr.isatty()
    if setting == "auto":
        shown = shown and (terminal or not os.environ.get("CI"))
    else:
        shown = shown and bool(setting)
    common = {"total": total, "initial": initial, "desc": "train", "disable": not shown}
    if terminal:
        return tqdm(**common, dynamic_ncols=True)
    return tqdm(
        **common, file=_LinePerRefresh(sys.stderr), mininterval=LOG_PROGRESS_SECONDS, ncols=80
    )


@dataclass
class RunInputs:
    """What a `Trainer` is given: the built model, the task's (train, val, test) datasets and
    objective, the validated config, the process's place in the data-parallel group, the run
    directory (checkpoints), where metrics go (rank 0: the MLflow run), the stop-signal handler,
    and what every checkpoint carries besides the training state (run id, config, model args)."""

    model: nn.Module
    splits: tuple[Dataset, Dataset, Dataset]
    objective: Objective
    cfg: DictConfig
    ctx: DistContext
    run_dir: Path
    log_fn: LogFn
    signals: checkpoint.StopSignals
    checkpoint_extra: dict[str, Any]


class Trainer:
    """Trains one model on one task; rank 0 logs through `log_fn` and writes checkpoints."""

    def __init__(self, inputs: RunInputs):
        cfg, model, splits, ctx = inputs.cfg, inputs.model, inputs.splits, inputs.ctx
        # The typed, validated trainer options (harness.run.schema), read as they are.
        self.t = TrainerOptions(**OmegaConf.to_container(cfg.trainer, resolve=True))
        precision.set_tf32(self.t.precision)
        self.cfg, self.ctx, self.objective = cfg, ctx, inputs.objective
        self.run_dir, self.log_fn, self.signals = inputs.run_dir, inputs.log_fn, inputs.signals
        self.checkpoint_extra = inputs.checkpoint_extra
        self.module = model.to(ctx.device)
        self.wrapped = distributed.wrap(self.module, ctx)  # DDP, or the module itself
        # training steps run through torch.compile when asked; evaluation runs the plain module
        self.model = torch.compile(self.wrapped) if self.t.compile else self.wrapped
        self.optimizer = build_optimizer(self.module, cfg.optimizer)
        train, val, test = splits
        self.batch_size = self.t.batch_size
        self.accum = self.t.grad_accum
        self.train_sampler = distributed.sampler(
            train, ctx, shuffle=True, seed=int(cfg.seed), batch_size=self.batch_size
        )
        self.train_loader = self._loader(train, self.train_sampler, self.batch_size)
        eval_batch = self.t.eval_batch_size or self.batch_size
        self.eval_loaders = {
            name: self._loader(ds, distributed.eval_sampler(ds, ctx), eval_batch)
            for name, ds in (("val", val), ("test", test))
        }
        self.batches_per_epoch = math.ceil(len(self.train_sampler) / self.batch_size)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / self.accum)
        self.planned_steps = self._planned_steps()
        mode = "max" if self.objective.maximize else "min"
        self.schedule = Schedule(
            self.optimizer, cfg.scheduler, self.planned_steps, mode, self.steps_per_epoch
        )
        # The validation score that picks the best evaluation: accuracy up, or loss down.
        self.monitor = self.objective.monitor
        self.autocast = self.t.precision == "bf16" and ctx.device.type == "cuda"
        if self.t.precision == "bf16" and not self.autocast:
            log.warning("trainer.precision=bf16 needs CUDA; training in fp32 on %s", ctx.device)
        # Position and history (all saved in checkpoints).
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best: dict[str, Any] = {"metrics": {}, "step": None, "evals_since_best": 0}
        self.acc_unit = metrics.ACC_UNIT  # a run resumed from older code keeps its fractions
        self.last_eval_step: int | None = None
        self.counters = {
            "wall_s": 0.0,
            "train_s": 0.0,
            "samples": 0,
            "data_s": 0.0,
            "log_s": 0.0,
            "ckpt_s": 0.0,
        }
        self._fit_t0 = time.perf_counter()
        self._last_checkpoint_t = self._fit_t0
        self._reset_window()

    # ----------------------------------------------------------------------------- set-up
    def _loader(
        self, dataset: Dataset, sampler: distributed.ShardedSampler, batch: int
    ) -> DataLoader:
        # The loader's own generator keeps iterator creation from drawing on the global RNG.
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=self.t.num_workers,
            pin_memory=self.t.pin_memory and self.ctx.device.type == "cuda",
            generator=torch.Generator().manual_seed(int(self.cfg.seed)),
            collate_fn=getattr(dataset, "collate", None),  # a task's own batching (padding)
        )

    def _planned_steps(self) -> int:
        by_epochs = self.t.max_epochs * self.steps_per_epoch
        return min(by_epochs, self.t.max_steps) if self.t.max_steps else by_epochs

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint dict (see `harness.run.checkpoint`); `NonFiniteLoss` if the window has
        one."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "rng": checkpoint.rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "acc_unit": self.acc_unit,
            "last_eval_step": self.last_eval_step,
            "counters": {**self.counters, "wall_s": self._wall_s()},
            "window": self._window_state(),
            **self.checkpoint_extra,
        }

    def _wall_s(self) -> float:
        """Wall time of `fit` so far, summed over every resumed segment of the run."""
        return self.counters["wall_s"] + time.perf_counter() - self._fit_t0

    def _check_fits(self, state: dict[str, Any]) -> None:
        """Raise `checkpoint.Damaged` unless `state` is a finite checkpoint of this very run."""
        missing = STATE_KEYS - set(state)
        if missing:
            raise checkpoint.Damaged(f"missing {', '.join(sorted(missing))}")
        if not isinstance(state["config"], dict) or config_hash(state["config"]) != config_hash(
            self.cfg
        ):
            raise checkpoint.Damaged("written by another configuration")
        position = [state[k] for k in ("step", "epoch", "batch_in_epoch")]
        if not all(isinstance(v, int) and v >= 0 for v in position):
            raise checkpoint.Damaged(f"step, epoch, batch_in_epoch = {position} are not counts")
        if state.get("acc_unit", "fraction") not in metrics.ACC_SCALES:
            raise checkpoint.Damaged(f"unknown accuracy unit {state['acc_unit']!r}")
        step, epoch, batch = position
        expected = epoch * self.steps_per_epoch + math.ceil(batch / self.accum)
        if batch > self.batches_per_epoch or step != expected or step > self.planned_steps:
            raise checkpoint.Damaged(
                f"step {step} at epoch {epoch}, batch {batch} does not fit this run "
                f"({self.steps_per_epoch} steps per epoch, {self.planned_steps} steps planned)"
            )
        model = state["model"]
        expected_shapes = {k: v.shape for k, v in self.module.state_dict().items()}
        if (
            not isinstance(model, dict)
            or {k: getattr(v, "shape", None) for k, v in model.items()} != expected_shapes
        ):
            raise checkpoint.Damaged("its model weights do not match this model's")
        numeric = [v for v in model.values() if v.is_floating_point() or v.is_complex()]
        if not all(torch.isfinite(v).all() for v in numeric):
            raise checkpoint.Damaged("its model weights are not finite")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by `state_dict` (call before `fit`).

        Raises `checkpoint.Damaged` for a checkpoint that is inconsistent, of another run or not
        finite; a caller may then load an earlier one over whatever was applied.
        """
        self._check_fits(state)
        try:
            self.module.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["scheduler"])
            checkpoint.set_rng_state(state["rng"])
            self._load_window(state["window"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise checkpoint.Damaged(f"does not fit: {type(error).__name__}: {error}") from None
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.best, self.last_eval_step = state["best"], state["last_eval_step"]
        # Checkpoints of older code carry no unit: their run logged fractions and goes on so.
        self.acc_unit = str(state.get("acc_unit", "fraction"))
        self.counters = dict(state["counters"])
        log.info(
            "resumed at step %d (epoch %d, batch %d)", self.step, self.epoch, self.batch_in_epoch
        )

    # ----------------------------------------------------------------------------- metrics
    def _reset_window(self) -> None:
        self.window_losses: list[torch.Tensor] = []
        self.window_stats = torch.zeros(3, dtype=torch.float64, device=self.ctx.device)
        self.window_samples = 0
        self.window_t0 = time.perf_counter()

    def _window_losses(self) -> torch.Tensor:
        """The open window's per-step losses summed over ranks (one sync), all finite.

        Raises `NonFiniteLoss` naming the first step whose loss is NaN or infinite.
        """
        if not self.window_losses:
            return torch.zeros(0)
        losses = distributed.all_reduce_sum(torch.stack(self.window_losses), self.ctx).cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            raise NonFiniteLoss(self.step - len(self.window_losses) + 1 + int(bad[0, 0]))
        return losses

    def _window_state(self) -> dict[str, Any]:
        """The open window summed over ranks (rank 0 carries it into the checkpoint)."""
        losses = self._window_losses()
        stats = distributed.all_reduce_sum(self.window_stats.clone(), self.ctx).cpu()
        return {"losses": losses, "stats": stats, "samples": self.window_samples}

    def _load_window(self, window: dict[str, Any]) -> None:
        """Reopen a checkpoint's log window: its sums on rank 0, zeros of its length elsewhere."""
        keep = 1.0 if self.ctx.is_main else 0.0
        device = self.ctx.device
        self.window_losses = list((window["losses"].to(device) * keep).unbind())
        self.window_stats = window["stats"].to(device=device, dtype=torch.float64) * keep
        self.window_samples = int(window["samples"]) if self.ctx.is_main else 0

    def _flush(self, bar: tqdm) -> None:
        """End the log window: check its losses are finite, log its means (one sync)."""
        if not self.window_losses:
            return
        t0 = time.perf_counter()
        self._window_losses()
        stats = distributed.all_reduce_sum(self.window_stats, self.ctx).cpu()
        elapsed = max(time.perf_counter() - self.window_t0, 1e-9)
        values = metrics.summarize(stats, self.objective, "train", self.acc_unit)
        for group in self.optimizer.param_groups:
            values[f"lr/{group['name']}"] = group["lr"]
        values["perf/samples_per_s"] = self.window_samples * self.ctx.world_size / elapsed
        if self.ctx.device.type == "cuda":
            values["perf/peak_mem_gb"] = torch.cuda.max_memory_allocated(self.ctx.device) / 1e9
        if self.ctx.is_main:
            self.log_fn(values, self.step)
            postfix = {
                "loss": f"{values['train/loss']:.4f}",
                "samples/s": f"{values['perf/samples_per_s']:.0f}",
            }
            if "train/acc" in values:
                postfix["acc"] = f"{values['train/acc']:.3g}"
            bar.set_postfix(postfix, refresh=False)
        self._reset_window()
        self.counters["log_s"] += time.perf_counter() - t0

    @torch.no_grad()
    def _evaluate_split(self, loader: DataLoader) -> torch.Tensor:
        stats = torch.zeros(3, dtype=torch.float64, device=self.ctx.device)
        for x, y in loader:
            x = x.to(self.ctx.device, non_blocking=True)
            y = y.to(self.ctx.device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                output = self.module(x)
            loss = metrics.batch_loss(self.objective, output, y)
            stats += metrics.batch_stats(self.objective, loss, output, y)
        return distributed.all_reduce_sum(stats, self.ctx).cpu()

    def _improves(self, monitored: float) -> bool:
        previous = self.best["metrics"].get(self.monitor)
        if previous is None:
            return True
        return monitored > previous if self.monitor == "val/acc" else monitored < previous

    def evaluate(self) -> dict[str, float]:
        """Val and test metrics now; updates the best-validation record and the plateau schedule.

        The open window's losses are checked first: weights after a non-finite loss are never
        evaluated, logged or saved as the best model.
        """
        self._window_losses()
        self.module.eval()
        values: dict[str, float] = {}
        for name, loader in self.eval_loaders.items():
            stats = self._evaluate_split(loader)
            values.update(metrics.summarize(stats, self.objective, name, self.acc_unit))
        self.module.train()
        values["epoch"] = self.epoch + self.batch_in_epoch / max(self.batches_per_epoch, 1)
        monitored = values[self.monitor]
        if self._improves(monitored):
            kept = {k: v for k, v in values.items() if k.startswith(("val/", "test/"))}
            self.best = {"metrics": kept, "step": self.step, "evals_since_best": 0}
            if self.ctx.is_main:
                checkpoint.save_atomic(self.module.state_dict(), self.run_dir / MODEL_BEST)
        else:
            self.best["evals_since_best"] += 1
        self.schedule.after_eval(monitored)
        self.last_eval_step = self.step
        if self.ctx.is_main:
            self.log_fn(values, self.step)
            log.info("step %d: %s", self.step, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
        return values

    # ----------------------------------------------------------------------------- loop
    def save_checkpoint(self) -> None:
        """Write a checkpoint (rank 0; every rank takes part in the window's sync)."""
        t0 = time.perf_counter()
        state = self.state_dict()  # checks the open window's losses first
        if self.ctx.is_main:
            checkpoint.save_checkpoint(state, self.run_dir)
        self._last_checkpoint_t = time.perf_counter()
        self.counters["ckpt_s"] += self._last_checkpoint_t - t0

    def _checkpoint_due_by_time(self) -> bool:
        minutes = self.t.checkpoint_every_minutes
        return minutes is not None and (
            time.perf_counter() - self._last_checkpoint_t >= 60.0 * minutes
        )

    def _step_flags(self) -> tuple[bool, bool]:
        """(a stop signal arrived, a checkpoint is due by time), the same on every rank."""
        stop, due = self.signals.requested, self._checkpoint_due_by_time()
        if self.ctx.world_size == 1:
            return stop, due
        flags = torch.tensor([float(stop), float(due)], device=self.ctx.device)
        stop, due = (distributed.all_reduce_sum(flags, self.ctx) > 0).tolist()
        if stop and not self.signals.requested:
            self.signals.signum = signal.SIGTERM  # another rank was signalled
        return stop, due

    def _done(self) -> bool:
        patience = self.t.early_stopping_patience
        stopped_early = patience is not None and self.best["evals_since_best"] >= patience
        return self.step >= self.planned_steps or stopped_early

    def _micro_step(self, x: torch.Tensor, y: torch.Tensor, scale: float, sync: bool) -> None:
        """Forward and backward of one loader batch; gradients accumulate, scaled by `scale`."""
        no_sync = getattr(self.wrapped, "no_sync", None)
        context = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with context:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                output = self.model(x)
            loss = metrics.batch_loss(self.objective, output, y)
            (loss * scale).backward()
        self.step_loss = self.step_loss + loss.detach().float() * scale
        self.window_stats += metrics.batch_stats(self.objective, loss, output, y)
        self.window_samples += len(y)

    def _optimizer_step(self) -> None:
        if self.t.grad_clip:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.t.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_step()
        self.step += 1
        self.window_losses.append(self.step_loss)

    def fit(self) -> dict[str, float]:
        """Train until `max_epochs`, `max_steps` or early stopping; returns the final summary."""
        self._fit_t0 = self._last_checkpoint_t = time.perf_counter()
        if self.step == 0 and self.ctx.is_main:
            checkpoint.save_atomic(self.module.state_dict(), self.run_dir / MODEL_INIT)
        self.module.train()
        bar = _progress_bar(self.t.progress, self.ctx.is_main, self.planned_steps, self.step)
        # Log lines printed above a terminal's bar instead of through it.
        redraws = not bar.disable and sys.stderr.isatty()
        redirect = logging_redirect_tqdm() if redraws else contextlib.nullcontext()
        eval_every = self.t.eval_every_steps
        with bar, redirect:
            while not self._done() and self.epoch < self.t.max_epochs:
                self._train_epoch(bar, eval_every)
                if self._done():
                    break
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if eval_every is None:
                    self.evaluate()
                self.save_checkpoint()
            self._flush(bar)
            if self.last_eval_step != self.step:
                self.evaluate()
            self.save_checkpoint()
        return self.summary()

    def _train_epoch(self, bar: tqdm, eval_every: int | None) -> None:
        """Run the rest of the current epoch from `batch_in_epoch`, stopping early when done."""
        self.train_sampler.set_epoch(self.epoch, self.batch_in_epoch)
        dataset_epoch = getattr(self.train_loader.dataset, "set_epoch", None)
        if dataset_epoch is not None:  # a task that draws per-epoch data (fresh noise padding)
            dataset_epoch(self.epoch)
        n = self.batches_per_epoch
        self.step_loss = torch.zeros((), device=self.ctx.device)
        t_data = time.perf_counter()
        for i, (x, y) in enumerate(self.train_loader, start=self.batch_in_epoch):
            t_got = time.perf_counter()
            self.counters["data_s"] += t_got - t_data
            group_start = (i // self.accum) * self.accum
            group_size = min(self.accum, n - group_start)
            last_in_group = i + 1 == group_start + group_size
            x = x.to(self.ctx.device, non_blocking=True)
            y = y.to(self.ctx.device, non_blocking=True)
            self._micro_step(x, y, 1.0 / group_size, sync=last_in_group)
            self.counters["samples"] += len(y) * self.ctx.world_size
            if last_in_group:
                self._optimizer_step()
                self.batch_in_epoch = i + 1
                self.step_loss = torch.zeros((), device=self.ctx.device)
                bar.update(1)
                self.counters["train_s"] += time.perf_counter() - t_got
                if self.step % self.t.log_every == 0:
                    self._flush(bar)
                if eval_every is not None and self.step % eval_every == 0:
                    self._flush(bar)
                    self.evaluate()
                stop, due = self._step_flags()
                if stop or due or self.step % self.t.checkpoint_every == 0:
                    self.save_checkpoint()
                if stop:
                    self.signals.dispatch()
                if self._done():
                    return
            else:
                self.counters["train_s"] += time.perf_counter() - t_got
            t_data = time.perf_counter()

    def summary(self) -> dict[str, float]:
        """Final metrics: `best/*` (test at the best validation), step, wall time, throughput."""
        out = {f"best/{k.replace('/', '_')}": v for k, v in self.best["metrics"].items()}
        out["best/step"] = float(self.best["step"] if self.best["step"] is not None else self.step)
        c = self.counters
        busy_s = c["train_s"] + c["data_s"]
        overhead_s = c["data_s"] + c["log_s"] + c["ckpt_s"]
        out["wall_time_s"] = self._wall_s()
        out["perf/mean_samples_per_s"] = c["samples"] / max(busy_s, 1e-9)
        out["perf/step_s"] = c["train_s"] / max(self.step, 1)
        # Time spent waiting for batches, logging and checkpointing, over the training loop's
        # time (evaluation excluded); on CUDA, queued GPU work is waited for in the log windows.
        out["perf/overhead_fraction"] = overhead_s / max(c["train_s"] + overhead_s, 1e-9)
        out["step"] = float(self.step)
        return out
