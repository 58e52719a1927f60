"""A point's MLflow run through its life: create it complete, reopen it, complete it, end it.

A new run is created with its tags (task, model, kernel family and init, seed, config hash, git
commit, environment, sweep, objective), params, artifacts and the task's trivial levels before
`mlflow_run_id` names it (`mlflow_run_id.pending` until then; a failure on the way deletes it). A
resumed run is marked RUNNING again with its `requeues` tag counted up and given what a kill may
have cut; `outcome` says how a run that raised ends (FAILED or KILLED, with `status_reason`).
"""

import json
import logging
import os
import socket
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import models
import tasks
from common import UserError
from common.atomic import write_text_atomically
from harness.layout import CONFIG_FILE, GROUPS_FILE, PENDING_ID_FILE, RUN_ID_FILE, TRACKING_FILE
from harness.provenance import git_commit
from harness.run import checkpoint, tracking
from harness.run.config import flatten
from harness.run.distributed import DistContext
from harness.run.identity import Point
from harness.run.metrics import ACC_UNIT, trivial_metrics
from harness.run.train import NonFiniteLoss, Trainer

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
"""The longest `status_reason` tag a failed run gets."""


def _model_tags(cfg: DictConfig) -> dict[str, str]:
    """`kernel`: the model family (`s4` | `s4d` | `hope`); `init`: its initialization rule, the
    HiPPO measure (`legs`, `fout`, `inv`, `lin`) or `random`, as its registry spec names them."""
    spec = models.MODELS[str(cfg.model.name)]()
    return {"kernel": spec.family, "init": str(spec.init)}


def _environment_tags(ctx: DistContext, cfg: DictConfig) -> dict[str, str]:
    """Where and how the run runs: host, threads, device, world size, effective batch size."""
    tags = {
        "host": socket.gethostname(),
        "torch_threads": str(torch.get_num_threads()),
        "device": torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "cpu",
        "world_size": str(ctx.world_size),
        "effective_batch_size": str(
            int(cfg.trainer.batch_size) * ctx.world_size * int(cfg.trainer.grad_accum)
        ),
    }
    if os.environ.get("SLURM_JOB_ID"):
        tags["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def _new_run_tags(cfg: DictConfig, point: Point, ctx: DistContext) -> dict[str, str]:
    tags = {
        "task": str(cfg.task.name),
        "model": str(cfg.model.name),
        **_model_tags(cfg),
        "seed": str(cfg.seed),
        "config_hash": point.digest,
        "git_commit": git_commit(),
        "requeues": "0",
        "acc_unit": ACC_UNIT,
        **_environment_tags(ctx, cfg),
    }
    if point.sweep:
        tags["sweep"] = point.sweep
    return tags


def reopen_run(cfg: DictConfig, point: Point, ctx: DistContext, run_id: str) -> tracking.TrackedRun:
    """Rank 0: mark the run being resumed RUNNING again and count the resume."""
    run = tracking.TrackedRun(point.uri, run_id)
    run.reopen()
    requeues = int(run.tag("requeues") or 0) + 1
    run.set_tags({**_environment_tags(ctx, cfg), "requeues": requeues})
    log.info("resuming MLflow run %s (resume number %d)", run.run_id, requeues)
    return run


def records(cfg: DictConfig, trainer: Trainer, n_params: int) -> tuple[dict, dict[str, str]]:
    """(the run's params, its artifacts `{file name: text}`) as a new run logs them."""
    groups = models.optim.describe_groups(trainer.module, trainer.optimizer.param_groups)
    artifacts = {
        CONFIG_FILE: OmegaConf.to_yaml(cfg, resolve=True),
        GROUPS_FILE: json.dumps(groups, indent=2),
    }
    return {**flatten(cfg), "n_params": str(n_params)}, artifacts


def _log_artifacts(run: tracking.TrackedRun, workdir: Path, artifacts: dict[str, str]) -> None:
    for name, text in artifacts.items():
        (workdir / name).write_text(text)
        run.log_artifact(workdir / name)


def create_run(
    cfg: DictConfig,
    point: Point,
    ctx: DistContext,
    workdir: Path,
    data: tasks.TaskData,
    params: dict,
    artifacts: dict[str, str],
) -> tracking.TrackedRun:
    """Rank 0: a new MLflow run with its tags (the task's `objective` too), params, artifacts and
    the task's trivial-predictor levels at step 0 (`harness.run.metrics.trivial_metrics`), then
    `mlflow_run_id`.

    Complete or not at all: until the run-id file is written the run is only named in
    `mlflow_run_id.pending`; a failure on the way deletes it.
    """
    uri = point.uri
    experiment_id = tracking.prepare_store(uri, point.experiment)
    run = tracking.TrackedRun.create(
        uri, experiment_id, point.run_name, _new_run_tags(cfg, point, ctx)
    )
    pending = workdir / PENDING_ID_FILE
    pending.write_text(run.run_id)
    write_text_atomically(workdir / TRACKING_FILE, uri + "\n")
    try:
        run.log_params(params)
        run.set_tags({"objective": data.info.objective})
        evaluated = {"val": data.val, "test": data.test}
        run.log_metrics(trivial_metrics(data.info, data.train, evaluated), 0)
        _log_artifacts(run, workdir, artifacts)
    except BaseException:
        run.delete()
        pending.unlink()
        raise
    os.replace(pending, workdir / RUN_ID_FILE)
    log.info("started MLflow run %s in experiment %s", run.run_id, experiment_id)
    return run


def complete_run(
    run: tracking.TrackedRun, workdir: Path, params: dict, artifacts: dict[str, str]
) -> None:
    """Rank 0, resuming: log the params and artifacts the run lacks (a kill may have cut them).

    Params it has keep their first value (MLflow never changes one; an operational key such as
    `trainer.log_every` may differ in a resubmission).
    """
    have = run.params()
    missing = {k: v for k, v in params.items() if k not in have}
    if missing:
        log.info("logging %d params the resumed run lacked", len(missing))
        run.log_params(missing)
    logged = run.artifact_names()
    _log_artifacts(run, workdir, {k: v for k, v in artifacts.items() if k not in logged})


def outcome(error: BaseException, stop_requested: bool) -> tuple[str, str]:
    """MLflow status and `status_reason` of a run that ended with `error`."""
    if isinstance(error, checkpoint.Preempted):
        return "KILLED", "preempted during setup" if error.during_setup else "preempted"
    if isinstance(error, SystemExit | KeyboardInterrupt):
        # A stop signal's earlier handler (submitit's requeue) may exit the process itself.
        return "KILLED", "preempted" if stop_requested else f"interrupted ({type(error).__name__})"
    if isinstance(error, NonFiniteLoss):
        return "FAILED", str(error)
    if isinstance(error, UserError):
        return "FAILED", f"error: {error}"[:MAX_REASON_CHARS]
    return "FAILED", f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
