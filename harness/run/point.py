"""One point of a sweep, end to end: decide (new, resume, already done), build, train, record.

A point is identified by `config_hash(cfg)`; its run directory `<paths.runs_dir>/<hash>/` holds
`mlflow_run_id`, the checkpoints (`harness.run.checkpoint`), `config.yaml`, `param_groups.json` and
`summary.json`. `execute` runs it:
- its MLflow run FINISHED: log "already finished" and return the stored summary;
- `summary.json` there but the run is not in this store: an error naming the store where it
  finished (a finished result is never retrained or deleted silently); likewise an unfinished run
  of another store (`tracking_uri` in the run directory names it) is not resumed here and its
  checkpoints are kept, unless `resume=false` starts the point over;
- a damaged `mlflow_run_id` is set aside (`harness.damaged`) and the id taken from MLflow;
- its MLflow run unfinished (RUNNING, KILLED) or FAILED and `resume=true`: continue in the same
  MLflow run from the newest intact checkpoint (a damaged one is reported and the previous one
  used), adding 1 to the run's `requeues` tag; params and artifacts it lacks are logged;
- otherwise (new, or `resume=false`): start a new MLflow run in the explicit experiment.
- `force=true` on a finished point trains a new MLflow run in `<run dir>/.force/`; only when it
  has finished are the old results moved to `<run dir>/previous/` and the new ones put in place
  (`harness.run.rundir.promote`; a process killed at any step of it is completed by the next
  start, which then trains nothing).
A new run is created complete (tags, params, `n_params`, `config.yaml`, `param_groups.json`)
before `mlflow_run_id` is written (it is `mlflow_run_id.pending` until then; a pending run left
by a killed process is deleted). The MLflow run ends FINISHED, FAILED with tag `status_reason`
(non-finite loss, a user error, a crash), or KILLED with `status_reason` `preempted` on a stop
signal (`preempted during setup` before the first step).

The point is resolved once (`harness.run.identity.resolve`); its run directory's lifecycle is
`harness.run.rundir`, its MLflow run's `harness.run.mlflow_run`; this module builds and trains.
"""

import contextlib
import json
import logging
import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig

import models
import tasks
from common import objective_named
from common.atomic import write_text_atomically
from harness.layout import SUMMARY_FILE
from harness.run import checkpoint, distributed, mlflow_run, rundir, schema, tracking
from harness.run.config import model_args, resolved
from harness.run.distributed import DistContext
from harness.run.identity import Point, resolve
from harness.run.rundir import Plan
from harness.run.train import RunInputs, Trainer

log = logging.getLogger(__name__)


def _broadcast(plan: Plan | None, ctx: DistContext) -> Plan:
    if ctx.world_size == 1:
        assert plan is not None
        return plan
    box = [plan]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _set_determinism(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _build(cfg: DictConfig) -> tuple[tasks.TaskData, dict[str, Any], torch.nn.Module]:
    """The task's data, the model's build arguments and the freshly initialized model."""
    seed_everything(int(cfg.seed))
    task_options = {k: v for k, v in resolved(cfg.task).items() if k != "name"}
    data = tasks.build(str(cfg.task.name), **task_options)
    args = model_args(cfg, data.info)
    return data, args, models.build_model(**args)


def _train(cfg: DictConfig, point: Point, ctx: DistContext, plan: Plan) -> dict[str, Any]:
    """Build, open or create the MLflow run, resume, train and record (see the module docstring).

    A stop signal before the first step stops at once (the run, if it exists yet, ends KILLED
    with `preempted during setup`); afterwards it stops at the next step boundary.
    """
    workdir = plan.workdir
    run: tracking.TrackedRun | None = None
    signals = checkpoint.StopSignals(immediate=True)

    def log_fn(values: dict[str, float], step: int) -> None:
        if run is not None:
            run.log_metrics(values, step)

    with signals:
        try:
            if ctx.is_main and plan.action == "resume":
                run = mlflow_run.reopen_run(cfg, point, ctx, str(plan.run_id))
            _set_determinism(bool(cfg.trainer.deterministic))
            data, args, model = _build(cfg)
            n_params = sum(p.numel() for p in model.parameters())
            extra = {"mlflow_run_id": None, "config": resolved(cfg), "model_args": args}
            splits = (data.train, data.val, data.test)
            inputs = RunInputs(
                model,
                splits,
                objective_named(data.info.objective),
                cfg,
                ctx,
                workdir,
                log_fn,
                signals,
                extra,
            )
            trainer = Trainer(inputs)
            if ctx.is_main:
                params, artifacts = mlflow_run.records(cfg, trainer, n_params)
                if run is None:
                    run = mlflow_run.create_run(cfg, point, ctx, workdir, data, params, artifacts)
                else:
                    mlflow_run.complete_run(run, workdir, params, artifacts)
                extra["mlflow_run_id"] = run.run_id
            if plan.action == "resume":
                used = checkpoint.load_latest(workdir, trainer.load_state_dict, ctx.is_main)
                if used is None:
                    log.info("no checkpoint in %s: training from step 0", workdir)
            signals.immediate = False
            final = trainer.fit()
        except BaseException as error:
            if run is not None:
                run.end(*mlflow_run.outcome(error, signals.requested))
            raise
    summary = {
        "config_hash": point.digest,
        "mlflow_run_id": run.run_id if run else None,
        "tracking_uri": point.uri,
        "task": str(cfg.task.name),
        "model": str(cfg.model.name),
        "seed": int(cfg.seed),
        "n_params": n_params,
        "acc_unit": trainer.acc_unit,
        **final,
    }
    if run is not None:
        run.set_tags({"acc_unit": trainer.acc_unit})  # a resumed run of older code: fraction
        run.log_metrics({k: v for k, v in final.items() if k != "step"}, int(final["step"]))
        write_text_atomically(workdir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        run.log_artifact(workdir / SUMMARY_FILE)
        run.end("FINISHED")
    return summary


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run one point end to end (see the module docstring) and return its summary."""
    schema.validate(cfg)  # ranges and choices, before any data or run (harness.run.schema)
    point = resolve(cfg)
    directory = point.directory
    ctx = distributed.setup(str(cfg.trainer.device))
    try:
        if ctx.is_main:
            tracking.prepare_store(point.uri, point.experiment)
        lock = rundir.exclusive(directory) if ctx.is_main else contextlib.nullcontext()
        with lock:
            if ctx.is_main:
                rundir.remove_temporaries(directory)
            plan = _broadcast(rundir.plan(point) if ctx.is_main else None, ctx)
            if plan.action == "finished":
                return plan.summary or {}
            summary = _train(cfg, point, ctx, plan)
            if plan.action == "force" and ctx.is_main:
                rundir.promote(directory)
            return summary
    finally:
        distributed.teardown(ctx)
