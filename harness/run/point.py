"""One point of a sweep, end to end: decide (new, resume, already done), build, train, record.

A point is identified by `config_hash(cfg)`; its run directory `<paths.runs_dir>/<hash>/` holds
`mlflow_run_id`, the checkpoints (`harness.run.checkpoint`), `config.yaml`, `param_groups.json` and
`summary.json`. `execute` runs it:
- its MLflow run FINISHED: log "already finished" and return the stored summary (`force=true`
  starts a new run instead);
- its MLflow run unfinished (RUNNING or KILLED) and `resume=true`: continue in the same MLflow run,
  from `checkpoint.pt` if there is one, adding 1 to the run's `requeues` tag;
- otherwise (new, FAILED, or `resume=false`): start a new MLflow run in the explicit experiment.
The MLflow run ends FINISHED, FAILED with tag `status_reason` (non-finite loss, a user error such
as a missing data directory, a crash), or KILLED with `status_reason=preempted` on a stop signal.
"""

import contextlib
import fcntl
import json
import logging
import os
import random
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

import models
import tasks
from common import UserError
from harness.layout import (
    CHECKPOINT,
    CONFIG_FILE,
    GROUPS_FILE,
    LOCK_FILE,
    PROJECT_ROOT,
    RUN_FILES,
    RUN_ID_FILE,
    SUMMARY_FILE,
)
from harness.run import checkpoint, distributed, tracking
from harness.run.config import config_hash, flatten, resolved
from harness.run.distributed import DistContext
from harness.run.metrics import trivial_metrics
from harness.run.train import NonFiniteLoss, Trainer

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


def run_dir(cfg: DictConfig) -> Path:
    """`<paths.runs_dir>/<config_hash>/`."""
    return Path(cfg.paths.runs_dir) / config_hash(cfg)


def tracking_uri(cfg: DictConfig) -> str:
    return tracking.resolve_uri(cfg.tracking.uri)


def point_state(cfg: DictConfig) -> str:
    """`new` | `unfinished` | `finished` | `failed`, from the run directory and MLflow (cheap)."""
    id_file = run_dir(cfg) / RUN_ID_FILE
    if not id_file.exists():
        return "new"
    status = tracking.run_status(tracking_uri(cfg), id_file.read_text().strip())
    if status is None:
        return "new"
    return {"FINISHED": "finished", "FAILED": "failed"}.get(status, "unfinished")


@dataclass
class Plan:
    """What rank 0 decided for this point (broadcast to the other ranks)."""

    action: str  # "finished" | "resume" | "fresh"
    run_id: str | None = None
    summary: dict[str, Any] | None = None


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold `<run dir>/.lock` for the whole run: one process per point at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"run directory {directory} is in use: this point is already running in another "
                "process; wait for it to end"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clear(directory: Path) -> None:
    for name in RUN_FILES:
        (directory / name).unlink(missing_ok=True)


def _plan(cfg: DictConfig, directory: Path) -> Plan:
    state = point_state(cfg)
    if state == "finished" and not cfg.force:
        summary_file = directory / SUMMARY_FILE
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
        log.info(
            "point %s already finished (MLflow run %s); force=true reruns it",
            directory.name,
            summary.get("mlflow_run_id", "?"),
        )
        return Plan("finished", summary=summary)
    if state == "unfinished" and cfg.resume:
        return Plan("resume", run_id=(directory / RUN_ID_FILE).read_text().strip())
    if state == "unfinished":
        old = tracking.TrackedRun(tracking_uri(cfg), (directory / RUN_ID_FILE).read_text().strip())
        old.end("KILLED", reason="superseded: restarted with resume=false")
    _clear(directory)
    return Plan("fresh")


def _broadcast(plan: Plan | None, ctx: DistContext) -> Plan:
    if ctx.world_size == 1:
        assert plan is not None
        return plan
    box = [plan]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def git_commit() -> str:
    """The project's checked-out commit (`git rev-parse HEAD`), "unknown" outside a git clone."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def sweep_name(cfg: DictConfig) -> str | None:
    """`tracking.sweep`, else the basename of Hydra's multirun sweep directory in a sweep."""
    if cfg.tracking.sweep:
        return str(cfg.tracking.sweep)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def _model_tags(cfg: DictConfig) -> dict[str, str]:
    """`kernel`: the model family (`s4` | `s4d` | `hope`); `init`: its initialization rule, the
    HiPPO measure (`legs`, `fout`, `inv`, `lin`) or `random`, as its registry spec names them."""
    spec = models.MODELS[str(cfg.model.name)]()
    return {"kernel": spec.family, "init": str(spec.init)}


def _environment_tags(ctx: DistContext, cfg: DictConfig) -> dict[str, str]:
    tags = {
        "host": socket.gethostname(),
        "device": torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "cpu",
        "world_size": str(ctx.world_size),
        "torch_threads": str(torch.get_num_threads()),
        "effective_batch_size": str(
            int(cfg.trainer.batch_size) * ctx.world_size * int(cfg.trainer.grad_accum)
        ),
    }
    if os.environ.get("SLURM_JOB_ID"):
        tags["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def _new_run_tags(cfg: DictConfig, ctx: DistContext, digest: str) -> dict[str, str]:
    tags = {
        "task": str(cfg.task.name),
        "model": str(cfg.model.name),
        **_model_tags(cfg),
        "seed": str(cfg.seed),
        "config_hash": digest,
        "git_commit": git_commit(),
        "requeues": "0",
        **_environment_tags(ctx, cfg),
    }
    sweep = sweep_name(cfg)
    if sweep:
        tags["sweep"] = sweep
    return tags


def model_args(cfg: DictConfig, info: tasks.TaskInfo) -> dict[str, Any]:
    """The exact keyword arguments of `models.build_model` for this task and config."""
    return {
        "name": str(cfg.model.name),
        "d_input": info.d_input,
        "d_output": info.d_output,
        **resolved(cfg.backbone),
        "encoder": "embedding" if info.input_kind == "tokens" else "linear",
        "pooling": info.pooling,
        "pool_start": info.pool_start,
        "dual": info.dual,
        "pad_id": info.pad_id,
        "l_max": info.seq_len,
        "layer": resolved(cfg.model.layer),
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _set_determinism(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def run_name(cfg: DictConfig) -> str:
    """The MLflow run name, `<task>/<model>/s<seed>` (the `config_hash` tag tells points apart)."""
    return f"{cfg.task.name}/{cfg.model.name}/s{cfg.seed}"


def _open_run(
    cfg: DictConfig, ctx: DistContext, plan: Plan, directory: Path
) -> tracking.TrackedRun:
    """Rank 0: create the MLflow run (logging params) or reopen the one being resumed."""
    uri = tracking_uri(cfg)
    if plan.action == "resume":
        run = tracking.TrackedRun(uri, plan.run_id)
        run.reopen()
        requeues = int(run.tag("requeues") or 0) + 1
        run.set_tags({**_environment_tags(ctx, cfg), "requeues": requeues})
        log.info("resuming MLflow run %s (resume number %d)", run.run_id, requeues)
        return run
    experiment_id = tracking.prepare_store(uri, cfg.tracking.experiment)
    digest = directory.name
    name = run_name(cfg)
    run = tracking.TrackedRun.create(uri, experiment_id, name, _new_run_tags(cfg, ctx, digest))
    (directory / RUN_ID_FILE).write_text(run.run_id)
    run.log_params(flatten(cfg))
    log.info("started MLflow run %s in experiment %s", run.run_id, experiment_id)
    return run


def _write_artifact(run: tracking.TrackedRun, path: Path, text: str) -> None:
    path.write_text(text)
    run.log_artifact(path)


def _outcome(error: BaseException, stop_requested: bool) -> tuple[str, str]:
    """MLflow status and `status_reason` of a run that ended with `error`."""
    if isinstance(error, checkpoint.Preempted):
        return "KILLED", "preempted"
    if isinstance(error, SystemExit | KeyboardInterrupt):
        # A stop signal's earlier handler (submitit's requeue) may exit the process itself.
        return "KILLED", "preempted" if stop_requested else f"interrupted ({type(error).__name__})"
    if isinstance(error, NonFiniteLoss):
        return "FAILED", str(error)
    if isinstance(error, UserError):
        return "FAILED", f"error: {error}"[:MAX_REASON_CHARS]
    return "FAILED", f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]


def _build(cfg: DictConfig) -> tuple[tasks.TaskData, dict[str, Any], torch.nn.Module]:
    """The task's data, the model's build arguments and the freshly initialized model."""
    seed_everything(int(cfg.seed))
    task_options = {k: v for k, v in resolved(cfg.task).items() if k != "name"}
    data = tasks.build(str(cfg.task.name), **task_options)
    args = model_args(cfg, data.info)
    return data, args, models.build_model(**args)


def _train(cfg: DictConfig, ctx: DistContext, plan: Plan, directory: Path) -> dict[str, Any]:
    run = _open_run(cfg, ctx, plan, directory) if ctx.is_main else None
    signals = checkpoint.StopSignals()
    try:
        _set_determinism(bool(cfg.trainer.deterministic))
        data, args, model = _build(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        extra = {
            "mlflow_run_id": run.run_id if run else None,
            "config": resolved(cfg),
            "model_args": args,
        }
        log_fn = run.log_metrics if run else (lambda values, step: None)
        splits = (data.train, data.val, data.test)
        trainer = Trainer(
            model, splits, data.info.objective, cfg, ctx, directory, log_fn, signals, extra
        )
        ckpt_path = directory / CHECKPOINT
        if plan.action == "resume" and ckpt_path.exists():
            trainer.load_state_dict(checkpoint.load(ckpt_path))
        if run is not None and plan.action == "fresh":
            run.log_params({"n_params": str(n_params)})
            run.set_tags({"objective": data.info.objective})
            evaluated = {"val": data.val, "test": data.test}
            run.log_metrics(trivial_metrics(data.info, data.train, evaluated), 0)
            _write_artifact(run, directory / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
            groups = models.optim.describe_groups(trainer.module, trainer.optimizer.param_groups)
            _write_artifact(run, directory / GROUPS_FILE, json.dumps(groups, indent=2))
        with signals:
            final = trainer.fit()
    except BaseException as error:
        if run is not None:
            run.end(*_outcome(error, signals.requested))
        raise
    summary = {
        "config_hash": directory.name,
        "mlflow_run_id": run.run_id if run else None,
        "task": str(cfg.task.name),
        "model": str(cfg.model.name),
        "seed": int(cfg.seed),
        "n_params": n_params,
        **final,
    }
    if run is not None:
        run.log_metrics({k: v for k, v in final.items() if k != "step"}, int(final["step"]))
        _write_artifact(run, directory / SUMMARY_FILE, json.dumps(summary, indent=2))
        run.end("FINISHED")
    return summary


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run one point end to end (see the module docstring) and return its summary."""
    directory = run_dir(cfg)
    ctx = distributed.setup(str(cfg.trainer.device))
    lock = _exclusive(directory) if ctx.is_main else contextlib.nullcontext()
    try:
        with lock:
            if ctx.is_main:
                tracking.prepare_store(tracking_uri(cfg), cfg.tracking.experiment)
            plan = _broadcast(_plan(cfg, directory) if ctx.is_main else None, ctx)
            if plan.action == "finished":
                return plan.summary or {}
            return _train(cfg, ctx, plan, directory)
    finally:
        distributed.teardown(ctx)
