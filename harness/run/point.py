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
  (`_promote`; a process killed at any step of it is completed by the next start, which then
  trains nothing).
A new run is created complete (tags, params, `n_params`, `config.yaml`, `param_groups.json`)
before `mlflow_run_id` is written (it is `mlflow_run_id.pending` until then; a pending run left
by a killed process is deleted). The MLflow run ends FINISHED, FAILED with tag `status_reason`
(non-finite loss, a user error, a crash), or KILLED with `status_reason` `preempted` on a stop
signal (`preempted during setup` before the first step).
"""

import contextlib
import fcntl
import json
import logging
import os
import random
import shutil
import socket
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
from common import UserError, objective_named
from common.atomic import write_text_atomically
from harness import damaged
from harness.cli import make_folder
from harness.layout import (
    CHECKPOINTS,
    CONFIG_FILE,
    FORCE_DIR,
    GROUPS_FILE,
    LOCK_FILE,
    OLD_DIR,
    PENDING_ID_FILE,
    PREVIOUS_DIR,
    PROMOTED_MARK,
    RUN_FILES,
    RUN_ID_FILE,
    SUMMARY_FILE,
    TRACKING_FILE,
)
from harness.provenance import git_commit
from harness.run import checkpoint, distributed, schema, tracking
from harness.run.config import config_hash, flatten, model_args, resolved
from harness.run.distributed import DistContext
from harness.run.metrics import ACC_UNIT, trivial_metrics
from harness.run.train import NonFiniteLoss, RunInputs, Trainer

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


def run_dir(cfg: DictConfig) -> Path:
    """`<paths.runs_dir>/<config_hash>/`."""
    return Path(cfg.paths.runs_dir) / config_hash(cfg)


def tracking_uri(cfg: DictConfig) -> str:
    return tracking.resolve_uri(cfg.tracking.uri)


def read_run_id(cfg: DictConfig, directory: Path) -> str | None:
    """The MLflow run id in `<directory>/mlflow_run_id`, None without one.

    A damaged file (not UTF-8, not a run id) is set aside (`harness.damaged`) and the point is
    taken as MLflow knows it: the run its `summary.json` names, else the newest run of its config
    hash other than a force=true attempt's (in `.force/`); that id is written back. None if there
    is none.
    """
    id_file = directory / RUN_ID_FILE
    if not id_file.exists():
        return None
    run_id = damaged.read_text(id_file, damaged.RUN_ID)
    if run_id is not None:
        return run_id
    with contextlib.suppress(OSError, ValueError, AttributeError):
        named = json.loads((directory / SUMMARY_FILE).read_bytes()).get("mlflow_run_id")
        run_id = named if damaged.RUN_ID.fullmatch(str(named)) else None
    if run_id is None:
        attempt = damaged.read_text(directory / FORCE_DIR / RUN_ID_FILE, damaged.RUN_ID)
        uri, experiment = tracking_uri(cfg), str(cfg.tracking.experiment)
        run_id = tracking.find_run(uri, experiment, config_hash(cfg), exclude={attempt})
    if run_id is not None:
        log.warning("%s: restored from MLflow (run %s)", id_file, run_id)
        write_text_atomically(id_file, f"{run_id}\n")
    return run_id


def point_state(cfg: DictConfig) -> str:
    """`new` | `unfinished` | `finished` | `failed`, from the run directory and MLflow (cheap)."""
    run_id = read_run_id(cfg, run_dir(cfg))
    if run_id is None:
        return "new"
    status = tracking.run_status(tracking_uri(cfg), run_id)
    if status is None:
        return "new"
    return {"FINISHED": "finished", "FAILED": "failed"}.get(status, "unfinished")


@dataclass
class Plan:
    """What rank 0 decided for this point (broadcast to the other ranks)."""

    action: str  # "finished" | "resume" | "fresh" | "force"
    workdir: Path  # where the run's files are written: the run directory, or FORCE_DIR in it
    run_id: str | None = None
    summary: dict[str, Any] | None = None


def _make_run_dir(directory: Path) -> None:
    fix = "set paths.results_dir (or paths.runs_dir) to a writable folder"
    make_folder(directory, "the run directory", fix)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold `<run dir>/.lock` for the whole run: one process per point at a time.

    A run directory this call created and in which nothing but the lock was written (the run
    stopped before it started, e.g. on a user error) is removed again.
    """
    created = not directory.exists()
    _make_run_dir(directory)
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
            if created and os.listdir(directory) == [LOCK_FILE]:
                (directory / LOCK_FILE).unlink()
                directory.rmdir()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_temporaries(directory: Path) -> None:
    """Delete the temporary files of atomic writes that a killed process left (`.<name>.*.tmp`)."""
    for name in RUN_FILES:
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _delete_pending_run(cfg: DictConfig, directory: Path) -> None:
    """A run whose creation a killed process did not complete holds no results: delete it."""
    pending = directory / PENDING_ID_FILE
    if pending.is_file():
        run_id = damaged.read_text(pending, damaged.RUN_ID)
        if run_id and tracking.run_status(tracking_uri(cfg), run_id) is not None:
            log.info("deleting MLflow run %s: its creation was interrupted", run_id)
            tracking.TrackedRun(tracking_uri(cfg), run_id).delete()
        pending.unlink(missing_ok=True)


def _clear(cfg: DictConfig, directory: Path) -> None:
    """Remove an unfinished run's files (never called on a directory holding a summary)."""
    if (directory / SUMMARY_FILE).exists():
        raise AssertionError(f"refusing to clear {directory}: it holds a finished result")
    _delete_pending_run(cfg, directory)
    for name in RUN_FILES:
        (directory / name).unlink(missing_ok=True)


def read_summary(directory: Path) -> dict[str, Any] | None:
    """The run directory's `summary.json`, None without one; a `UserError` if it is damaged."""
    path = directory / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        why = f"{type(error).__name__}: {error}"
    else:
        if isinstance(summary, dict):
            return summary
        why = f"holds a {type(summary).__name__}, not an object"
    run_id = "<run id>"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        run_id = (directory / RUN_ID_FILE).read_text().strip() or run_id
    raise UserError(
        f"{path} is damaged ({why}); restore it from its MLflow run with `mlflow artifacts "
        f"download -r {run_id} -a {SUMMARY_FILE} -d {directory}`, or rerun with force=true"
    )


def _finished_elsewhere(cfg: DictConfig, directory: Path, summary: dict[str, Any]) -> UserError:
    where = summary.get("tracking_uri") or "another MLflow store"
    run_id = summary.get("mlflow_run_id", "?")
    if where == tracking_uri(cfg):
        return UserError(
            f"point {directory.name} finished (results in {directory}) but its MLflow run "
            f"{run_id} is no longer in {where}; restore it with `mlflow runs restore --run-id "
            f"{run_id}`, or train it again with force=true"
        )
    return UserError(
        f"point {directory.name} already finished in {where} (MLflow run "
        f"{summary.get('mlflow_run_id', '?')}, results in {directory}), not in tracking.uri "
        f"{tracking_uri(cfg)}; read it there with tracking.uri={where}, or train it again "
        "into this store with force=true (the old results are kept until the new run finished)"
    )


def _unfinished_elsewhere(cfg: DictConfig, directory: Path) -> UserError | None:
    """The refusal to resume a point whose unfinished run lives in another store (its checkpoints
    would be lost to a fresh start here); None when nothing of another store is in `directory`.

    The store is the one `<directory>/tracking_uri` records; a directory written before that file
    existed counts as another store's when it holds a checkpoint.
    """
    run_id = read_run_id(cfg, directory)
    if run_id is None:
        return None
    owner = damaged.read_text(directory / TRACKING_FILE)
    here = tracking_uri(cfg)
    has_checkpoint = any((directory / name).exists() for name in CHECKPOINTS)
    if owner == here or (owner is None and not has_checkpoint):
        return None  # its run was deleted from this store: nothing to keep
    where = owner or "another MLflow store (not recorded)"
    return UserError(
        f"point {directory.name} has an unfinished MLflow run {run_id} in {where} (checkpoints "
        f"in {directory}), not in tracking.uri {here}; resume it there with tracking.uri="
        f"{owner or '<that store>'}, or start it over in this store with resume=false (its "
        "checkpoints are deleted)"
    )


def _plan(cfg: DictConfig, directory: Path) -> Plan:
    promoted = _promotion_pending(directory)
    if promoted:
        log.info("completing the replacement of %s by its finished force=true run", directory)
        _promote(directory)
    state = point_state(cfg)
    summary = read_summary(directory)
    if cfg.force and promoted and state == "finished":
        log.info("the force=true run of %s finished and is in place; not training again", directory)
    elif cfg.force and (state == "finished" or summary is not None):
        return _plan_force(cfg, directory)
    if state == "finished":
        log.info(
            "point %s already finished (MLflow run %s); force=true reruns it",
            directory.name,
            (summary or {}).get("mlflow_run_id", "?"),
        )
        return Plan("finished", directory, summary=summary or {})
    if summary is not None and (state == "new" or not cfg.resume):
        raise _finished_elsewhere(cfg, directory, summary)
    run_id = read_run_id(cfg, directory)
    if state in ("unfinished", "failed") and cfg.resume:
        return Plan("resume", directory, run_id=run_id)
    if state == "new" and cfg.resume:
        refusal = _unfinished_elsewhere(cfg, directory)
        if refusal is not None:
            raise refusal
    if state == "unfinished":
        old = tracking.TrackedRun(tracking_uri(cfg), str(run_id))
        old.end("KILLED", reason="superseded: restarted with resume=false")
    _clear(cfg, directory)
    return Plan("fresh", directory)


def _plan_force(cfg: DictConfig, directory: Path) -> Plan:
    """A fresh attempt in `<run dir>/.force/` (an earlier unfinished attempt there is dropped)."""
    workdir = directory / FORCE_DIR
    if workdir.exists():
        run_id = damaged.read_text(workdir / RUN_ID_FILE, damaged.RUN_ID)
        if run_id is not None:
            old = tracking.TrackedRun(tracking_uri(cfg), run_id)
            if tracking.run_status(old.uri, old.run_id) not in (None, "FINISHED"):
                old.end("KILLED", reason="superseded: a new force=true attempt")
        _delete_pending_run(cfg, workdir)
        shutil.rmtree(workdir)
    workdir.mkdir()
    return Plan("force", workdir)


def _promote(directory: Path) -> None:
    """Put a finished force=true attempt in place; the results it replaces go to `previous/`.

    Three phases of renames; the files on disk tell which one a killed process was in, and the
    next start (`_plan`) completes it from there, losing nothing and training nothing:
    1. stash: the old results move to `.old/`, then `.old/.complete` marks them all there
       (`.old/` unmarked while `.force/` still exists: repeat the stash);
    2. install: the new results move in from `.force/` (the summary last), `.force/` is removed
       (`.old/` marked: repeat the install);
    3. retire: the mark is removed, `.old/` replaces `previous/` (the generation before it)
       (`.old/` unmarked and no `.force/`: the install is done, only retire).
    """
    workdir, old = directory / FORCE_DIR, directory / OLD_DIR
    if not (old / PROMOTED_MARK).exists() and workdir.exists():
        old.mkdir(exist_ok=True)
        for name in reversed(RUN_FILES):
            if (directory / name).exists():
                os.replace(directory / name, old / name)
        (old / PROMOTED_MARK).touch()
    if workdir.exists():
        for name in RUN_FILES:
            if (workdir / name).exists():
                os.replace(workdir / name, directory / name)
        shutil.rmtree(workdir)
    (old / PROMOTED_MARK).unlink(missing_ok=True)
    previous = directory / PREVIOUS_DIR
    if previous.exists():
        shutil.rmtree(previous)
    os.replace(old, previous)


def _promotion_pending(directory: Path) -> bool:
    """A finished force=true attempt not (completely) put in place yet."""
    return (directory / OLD_DIR).exists() or (directory / FORCE_DIR / SUMMARY_FILE).exists()


def _broadcast(plan: Plan | None, ctx: DistContext) -> Plan:
    if ctx.world_size == 1:
        assert plan is not None
        return plan
    box = [plan]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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


def _new_run_tags(cfg: DictConfig, ctx: DistContext, digest: str) -> dict[str, str]:
    tags = {
        "task": str(cfg.task.name),
        "model": str(cfg.model.name),
        **_model_tags(cfg),
        "seed": str(cfg.seed),
        "config_hash": digest,
        "git_commit": git_commit(),
        "requeues": "0",
        "acc_unit": ACC_UNIT,
        **_environment_tags(ctx, cfg),
    }
    sweep = sweep_name(cfg)
    if sweep:
        tags["sweep"] = sweep
    return tags


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _set_determinism(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _reopen_run(cfg: DictConfig, ctx: DistContext, run_id: str) -> tracking.TrackedRun:
    """Rank 0: mark the run being resumed RUNNING again and count the resume."""
    run = tracking.TrackedRun(tracking_uri(cfg), run_id)
    run.reopen()
    requeues = int(run.tag("requeues") or 0) + 1
    run.set_tags({**_environment_tags(ctx, cfg), "requeues": requeues})
    log.info("resuming MLflow run %s (resume number %d)", run.run_id, requeues)
    return run


def _records(cfg: DictConfig, trainer: Trainer, n_params: int) -> tuple[dict, dict[str, str]]:
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


def run_name(cfg: DictConfig) -> str:
    """The MLflow run name, `<task>/<model>/s<seed>` (the `config_hash` tag tells points apart)."""
    return f"{cfg.task.name}/{cfg.model.name}/s{cfg.seed}"


def _create_run(
    cfg: DictConfig,
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
    uri = tracking_uri(cfg)
    experiment_id = tracking.prepare_store(uri, cfg.tracking.experiment)
    digest = config_hash(cfg)
    run = tracking.TrackedRun.create(
        uri, experiment_id, run_name(cfg), _new_run_tags(cfg, ctx, digest)
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


def _complete_run(
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


def _outcome(error: BaseException, stop_requested: bool) -> tuple[str, str]:
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


def _build(cfg: DictConfig) -> tuple[tasks.TaskData, dict[str, Any], torch.nn.Module]:
    """The task's data, the model's build arguments and the freshly initialized model."""
    seed_everything(int(cfg.seed))
    task_options = {k: v for k, v in resolved(cfg.task).items() if k != "name"}
    data = tasks.build(str(cfg.task.name), **task_options)
    args = model_args(cfg, data.info)
    return data, args, models.build_model(**args)


def _train(cfg: DictConfig, ctx: DistContext, plan: Plan) -> dict[str, Any]:
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
                run = _reopen_run(cfg, ctx, str(plan.run_id))
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
                params, artifacts = _records(cfg, trainer, n_params)
                if run is None:
                    run = _create_run(cfg, ctx, workdir, data, params, artifacts)
                else:
                    _complete_run(run, workdir, params, artifacts)
                extra["mlflow_run_id"] = run.run_id
            if plan.action == "resume":
                used = checkpoint.load_latest(workdir, trainer.load_state_dict, ctx.is_main)
                if used is None:
                    log.info("no checkpoint in %s: training from step 0", workdir)
            signals.immediate = False
            final = trainer.fit()
        except BaseException as error:
            if run is not None:
                run.end(*_outcome(error, signals.requested))
            raise
    summary = {
        "config_hash": config_hash(cfg),
        "mlflow_run_id": run.run_id if run else None,
        "tracking_uri": tracking_uri(cfg),
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
    directory = run_dir(cfg)
    ctx = distributed.setup(str(cfg.trainer.device))
    try:
        if ctx.is_main:
            tracking.prepare_store(tracking_uri(cfg), cfg.tracking.experiment)
        lock = _exclusive(directory) if ctx.is_main else contextlib.nullcontext()
        with lock:
            if ctx.is_main:
                _remove_temporaries(directory)
            plan = _broadcast(_plan(cfg, directory) if ctx.is_main else None, ctx)
            if plan.action == "finished":
                return plan.summary or {}
            summary = _train(cfg, ctx, plan)
            if plan.action == "force" and ctx.is_main:
                _promote(directory)
            return summary
    finally:
        distributed.teardown(ctx)
