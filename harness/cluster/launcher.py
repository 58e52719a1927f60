"""Sweep launchers: a Hydra multirun as submitit jobs, on this machine or as one SLURM job array.

`hydra/launcher=local` and `hydra/launcher=slurm` (configs/hydra/launcher/) select the two classes
below. They subclass hydra-submitit-launcher's launchers, whose job side (a pickled launcher that
re-composes the point's config and calls `run_job`) and checkpoint protocol fit as they are, and
add what a benchmark sweep needs around them:

- Idempotence. Before anything is submitted every point's config is composed and looked up
  (`harness.run.rundir.point_state`): FINISHED points are skipped (a finished sweep submits
  nothing), unfinished ones are submitted and resume from their checkpoint, FAILED ones are rerun
  only with `hydra.launcher.rerun_failed=true`, and a point whose earlier job is still queued or
  running (its `job.json`, `harness.cluster.jobs`) is not submitted twice.
- Records. Each submitted point gets `<run dir>/job.json` (job id, submitit folder); each sweep
  a manifest `<hydra.sweep.dir>/sweep.json` listing its points. `harness.cluster.status` joins the
  two with the scheduler's job states and MLflow.
- Requeues. A job is requeued by SLURM (`scontrol requeue`, preemption) or by submitit's
  checkpoint protocol (SIGUSR2 before the time limit). Inside the job the count
  (`SLURM_RESTART_COUNT`, or submitit's own count carried in the resubmitted call for local jobs)
  is checked first: past `max_requeues` the run is ended FAILED with that reason instead of
  training again (the runner itself counts resumes in the run's `requeues` tag). A job stopped
  by SIGTERM (preemption, `scontrol requeue`) exits after its checkpoint without a result, so
  the launcher waits for the requeued job instead of reporting a failure.
- `local`: at most `max_parallel` jobs at once (default: one per group of `gpus_per_node` visible
  GPUs, each job pinned to its own, else one per `cpus_per_task` CPU cores). Each job's processes
  get `cpus_per_task` threads (`OMP_NUM_THREADS`, `MKL_NUM_THREADS` in their environment and
  `torch.set_num_threads`), fewer when the running jobs would need more cores than the machine has.
- Progress. Each finished point is logged as one line (state, best validation score, wall time,
  `harness.cluster.progress`) and the sweep ends with a summary table of every point.
"""

import contextlib
import logging
import math
import os
import re
import socket
import sys
import time
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from submitit.core.utils import JobPaths

from common import UserError
from harness.cli import program
from harness.cluster import progress
from harness.cluster.jobs import (
    JobRecord,
    is_active,
    job_states,
    read_outcome,
    slurm_elapsed,
    write_json_atomically,
    write_outcome,
)
from harness.cluster.signed import (
    SignedLocalExecutor,
    SignedSlurmExecutor,
    SignedSubmission,
    ensure_job_key,
)
from harness.cluster.task_env import export_dist_env
from harness.layout import MANIFEST
from harness.run.checkpoint import Preempted
from harness.run.config import config_hash, is_operational
from harness.run.identity import resolve, run_dir, sweep_name, tracking_uri
from harness.run.rundir import point_state, read_run_id
from harness.run.tracking import TrackedRun

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the local launcher looks for a finished job
OUTCOME_WAIT_S = 10  # how long an ended job's outcome file is waited for
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # set for every local job's processes


class RequeueLimitExceeded(Exception):
    """A job was requeued more often than `hydra.launcher.max_requeues` allows."""


class JobFailed(Exception):
    """A job's failure as its outcome file tells it (the error's text)."""


@dataclass
class Point:
    """One point of the sweep as the launcher sees it before submission."""

    index: int
    overrides: list[str]
    label: str  # the overrides that set this point apart from the others (`swept`)
    config_hash: str
    run_dir: str
    state: str  # harness.run.rundir.point_state: new | unfinished | finished | failed
    action: str  # submit | skip
    note: str  # why (skipped: finished, failed, already queued as job ...)
    job_id: str | None = None
    outcome: str = ""  # how its job ended in this launch (progress.Outcome.state), "" until then


@dataclass
class Sweep:
    """The launch at hand: its points and the manifest `<directory>/sweep.json` about them."""

    name: str  # the runs' `sweep` tag (harness.run.identity.sweep_name)
    directory: Path  # hydra.sweep.dir
    executor: str
    submitit_folder: str
    tracking_uri: str
    points: list[Point]
    launched: str = field(default_factory=lambda: datetime.now(UTC).isoformat())  # ISO, UTC
    pid: int = field(default_factory=os.getpid)  # the launching process

    def write_manifest(self) -> None:
        """`sweep.json`: every point of this launch (skipped ones too) with its config hash, so
        `status` and `report --sweep` find a rerun's skipped points through it."""
        manifest = {
            "sweep": self.name,
            "executor": self.executor,
            "launched": self.launched,
            "pid": self.pid,
            "host": socket.gethostname(),
            "submitit_folder": self.submitit_folder,
            "tracking_uri": self.tracking_uri,
            "points": [asdict(p) for p in self.points],
        }
        write_json_atomically(self.directory / MANIFEST, manifest)


def _override_key(override: str) -> str:
    """The dotted config key an override sets: `+paths.root=/x` -> `paths.root`,
    `hydra/launcher=local` -> `hydra.launcher`."""
    return re.split(r"[=@]", override.lstrip("+~"), maxsplit=1)[0].replace("/", ".")


def swept(overrides: Sequence[Sequence[str]]) -> list[str]:
    """A short label per point: only the overrides that differ between the points.

    `[["task=adding", "seed=0"], ["task=adding", "seed=1"]]` -> `["seed=0", "seed=1"]`; a sweep of
    one point keeps all its overrides. Keys that do not change what a point computes (`paths`,
    `tracking`, `trainer.log_every`, ...: `harness.run.config.OPERATIONAL_KEYS`) are left out.
    """
    lists = [
        [o for o in filter_overrides(list(point)) if not is_operational(_override_key(o))]
        for point in overrides
    ]
    common = set.intersection(*(set(o) for o in lists)) if len(lists) > 1 else set()
    return [" ".join(o for o in point if o not in common) or "(no overrides)" for point in lists]


def _task_config(sweep_config: DictConfig) -> DictConfig:
    """The job's config as the task function gets it (Hydra's `run_job` drops `hydra`)."""
    task_cfg = sweep_config.copy()
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def _end_run_failed(task_cfg: DictConfig, reason: str) -> None:
    """End the point's MLflow run (if it has one yet) as FAILED with `reason`."""
    directory = run_dir(task_cfg)
    run_id = read_run_id(resolve(task_cfg), directory)
    if run_id is None:
        log.warning("%s: no MLflow run yet to mark FAILED", directory)
        return
    TrackedRun(tracking_uri(task_cfg), run_id).end("FAILED", reason)


class _SweepLauncher(BaseSubmititLauncher):
    """What the local and the SLURM launcher share: planning, records and the job side."""

    _EXECUTOR = "abstract"
    _HOW = "as jobs"  # how the points run, for the line that opens a sweep
    # Keys of the launcher config that are policy, not submitit parameters.
    _POLICY_KEYS: tuple[str, ...] = ("rerun_failed", "max_requeues")

    def __init__(self, **params: Any) -> None:
        policy = {key: params.pop(key) for key in self._POLICY_KEYS if key in params}
        super().__init__(**params)
        self.rerun_failed = bool(policy.get("rerun_failed", False))
        self.max_requeues = int(policy.get("max_requeues", 0))
        if self.max_requeues < 0:
            raise UserError(
                f"hydra.launcher.max_requeues={self.max_requeues} must be >= 0 (0: never requeue)"
            )
        self.policy = policy
        self.threads: int | None = None  # torch threads of each job process (None: leave them)
        self._started: dict[int, float] = {}
        self._outcomes: dict[int, progress.Outcome] = {}

    # ---------------------------------------------------------------- inside the job
    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
        requeues: int = 0,
    ) -> JobReturn:
        """Run one point in the job and record how it ended in the job's outcome file (JSON,
        `harness.cluster.jobs.write_outcome`), which the launcher reads instead of a pickle."""
        paths = submitit.JobEnvironment().paths
        try:
            ret = self._run_point(sweep_overrides, job_dir_key, job_num, singleton_state, requeues)
        except Exception as error:
            write_outcome(paths, "FAILED", error=f"{type(error).__name__}: {error}")
            raise
        if ret.status == JobStatus.COMPLETED:
            write_outcome(paths, "COMPLETED", ret.return_value)
        else:
            write_outcome(paths, "FAILED", error=str(ret._return_value))
        return ret

    def _run_point(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        singleton_state: dict[type, Singleton],
        requeues: int,
    ) -> JobReturn:
        """Set up DDP variables, account requeues, run the task."""
        assert self.hydra_context is not None and self.config is not None
        assert self.task_function is not None
        if self.threads is not None:
            limit_threads(self.threads)
        export_dist_env()
        requeues = max(requeues, int(os.environ.get("SLURM_RESTART_COUNT", "0")))
        Singleton.set_state(singleton_state)
        setup_globals()
        sweep_config = self.hydra_context.config_loader.load_sweep_config(
            self.config, sweep_overrides
        )
        with open_dict(sweep_config.hydra.job) as job:
            job.id = submitit.JobEnvironment().job_id
            job.num = job_num
        if requeues:
            failed = self._account_requeues(sweep_config, requeues)
            if failed is not None:
                return failed
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key=job_dir_key,
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.FAILED and isinstance(ret._return_value, Preempted):
            # SIGTERM (preemption or `scontrol requeue`): the checkpoint is written and SLURM
            # requeues the job itself; leaving without a result keeps the launcher waiting.
            log.warning("%s; exiting without a result for the requeue", ret._return_value)
            sys.exit(1)
        return ret

    def _account_requeues(self, sweep_config: DictConfig, requeues: int) -> JobReturn | None:
        """Past `max_requeues`, end the point's run FAILED and return the job's failed return.

        (`harness.run.mlflow_run.reopen_run` counts resumes in the run's `requeues` tag.)
        """
        HydraConfig.instance().set_config(sweep_config)
        task_cfg = _task_config(sweep_config)
        if requeues <= self.max_requeues:
            log.info("requeued %d time(s) (at most %d); resuming", requeues, self.max_requeues)
            return None
        reason = (
            f"requeued {requeues} times, more than hydra.launcher.max_requeues={self.max_requeues}"
        )
        log.error("%s: giving up", reason)
        _end_run_failed(task_cfg, reason)
        ret = JobReturn(overrides=list(sweep_config.hydra.overrides.task), cfg=task_cfg)
        ret.status = JobStatus.FAILED
        ret.return_value = RequeueLimitExceeded(reason)
        return ret

    def checkpoint(self, *args: Any, requeues: int = 0, **kwargs: Any) -> Any:
        """submitit's requeue protocol: resubmit the same call (signed, `harness.cluster.signed`),
        counting one more requeue."""
        return SignedSubmission(self, *args, requeues=requeues + 1, **kwargs)

    # ---------------------------------------------------------------- launching side
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        ensure_job_key()  # the jobs' signing key, in the environment they inherit
        sweep = self._plan(job_overrides, initial_job_idx)
        todo = [p for p in sweep.points if p.action == "submit"]
        sweep.write_manifest()
        print(
            f"sweep {sweep.name} ({sweep.directory}): {len(sweep.points)} points, "
            f"{len(todo)} to run {self._HOW}; status: {program('status')} {sweep.name}",
            flush=True,
        )
        for point in sweep.points:
            if point.action == "skip":
                log.info("#%d %s: skipped (%s)", point.index, point.label, point.note)
        if not todo:
            log.info(
                "sweep %s: all %d points skipped; nothing submitted", sweep.name, len(sweep.points)
            )
            self._print_summary(sweep)
            return [self._completed_return(p, skipped=p.note) for p in sweep.points]
        returns = dict(zip((p.index for p in todo), self._run(sweep, todo), strict=True))
        self._print_summary(sweep)
        return [
            returns.get(p.index) or self._completed_return(p, skipped=p.note) for p in sweep.points
        ]

    def _finished(self, point: Point, ret: JobReturn, wall_s: float | None = None) -> None:
        """Log the line of a point whose job just ended (`wall_s`: the job's own run time; by
        default the time since its submission, which is that for jobs that start at once)."""
        if wall_s is None:
            wall_s = time.perf_counter() - self._started[point.index]
        done = progress.outcome(point.index, point.label, Path(point.run_dir), ret, wall_s)
        self._outcomes[point.index] = done
        point.outcome = done.state
        log.info("%s", done.line())

    def _print_summary(self, sweep: Sweep) -> None:
        """Print every point's outcome (skipped ones too) as one table on stdout."""
        rows = [
            self._outcomes.get(p.index)
            or progress.outcome(p.index, p.label, Path(p.run_dir), None, float("nan"), p.note)
            for p in sweep.points
        ]
        print(f"sweep {sweep.name}:\n{progress.summary_table(rows)}", flush=True)

    def _plan(self, job_overrides: Sequence[Sequence[str]], first: int) -> Sweep:
        """Compose every point's config and decide: submit, or skip and why."""
        assert self.hydra_context is not None and self.config is not None
        hydra_cfg = HydraConfig.instance().cfg
        points, records = [], {}
        labels = swept(job_overrides)
        try:
            for offset, overrides in enumerate(job_overrides):
                sweep_config = self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(overrides)
                )
                HydraConfig.instance().set_config(sweep_config)
                task_cfg = _task_config(sweep_config)
                digest, directory = config_hash(task_cfg), run_dir(task_cfg)
                state = point_state(resolve(task_cfg))
                points.append(
                    Point(
                        first + offset,
                        list(overrides),
                        labels[offset],
                        digest,
                        str(directory),
                        state,
                        action="",
                        note="",
                    )
                )
                record = JobRecord.load(directory)
                if record is not None:
                    records[digest] = record
            sweep = Sweep(
                name=sweep_name(task_cfg) or "",
                directory=Path(str(self.config.hydra.sweep.dir)),
                executor=self._EXECUTOR,
                submitit_folder=self.params.get("submitit_folder", ""),
                tracking_uri=tracking_uri(task_cfg),
                points=points,
            )
        finally:
            HydraConfig.instance().cfg = hydra_cfg
        states = job_states(list(records.values()))
        for point in points:
            record = records.get(point.config_hash)
            if point.state == "finished":
                point.action, point.note = "skip", "finished"
            elif point.state == "failed" and not self.rerun_failed:
                point.action = "skip"
                point.note = "failed; rerun it with hydra.launcher.rerun_failed=true"
            elif record is not None and is_active(states[record.job_id]):
                point.action = "skip"
                point.note = f"already {states[record.job_id].lower()} as job {record.job_id}"
            else:
                point.action = "submit"
                point.note = "resume" if point.state == "unfinished" else point.state
        return sweep

    def _job_args(self, point: Point) -> tuple[Any, ...]:
        """The arguments `__call__` gets in the job for `point`."""
        return (
            point.overrides,
            "hydra.sweep.dir",
            point.index,
            f"job_id_for_{point.index}",
            Singleton.get_state(),
        )

    def _submitted(self, sweep: Sweep, point: Point, job: submitit.Job) -> None:
        """Record and print a fresh submission."""
        point.job_id = str(job.job_id)
        self._started[point.index] = time.perf_counter()
        record = JobRecord.new(point.job_id, self._EXECUTOR, sweep.submitit_folder, sweep.name)
        record.save(Path(point.run_dir))
        log.info(
            "#%d %s: job %s (%s), log %s",
            point.index,
            point.label,
            job.job_id,
            point.note,
            job.paths.stdout,
        )

    @staticmethod
    def _completed_return(point: Point, **details) -> JobReturn:
        """A COMPLETED JobReturn for a point that ran no job here (skipped, or submitted only)."""
        ret = JobReturn(overrides=point.overrides)
        ret.status = JobStatus.COMPLETED
        ret.return_value = {"config_hash": point.config_hash, **details}
        return ret

    @staticmethod
    def _collect(point: Point, job: submitit.Job) -> JobReturn:
        """The point's JobReturn from the outcome file of its ended job's first task (JSON:
        submitit's result pickle is never loaded); a job that left none (killed) is FAILED."""
        job.wait()
        paths = JobPaths(job.paths.folder, job_id=str(job.job_id), task_id=0)
        outcome = None
        for _ in range(OUTCOME_WAIT_S):  # a slow shared file system may show it late
            outcome = read_outcome(paths)
            if outcome is not None:
                break
            time.sleep(1)
        ret = JobReturn(overrides=point.overrides)
        if outcome is not None and outcome["status"] == "COMPLETED":
            ret.status = JobStatus.COMPLETED
            ret.return_value = outcome["value"]
            return ret
        ret.status = JobStatus.FAILED
        ret.return_value = JobFailed(
            outcome["error"]
            if outcome is not None
            else f"job {job.job_id} ended without an outcome (killed?); its log: {paths.stderr}"
        )
        return ret

    @abstractmethod
    def _run(self, sweep: Sweep, todo: list[Point]) -> list[JobReturn]:
        """Submit `todo` (recording each job and the manifest), return the jobs' returns."""


class SlurmLauncher(_SweepLauncher):
    """The points of a sweep as ONE SLURM job array (`hydra/launcher=slurm`)."""

    _EXECUTOR = "slurm"
    _HOW = "as one SLURM job array"
    _POLICY_KEYS = ("rerun_failed", "max_requeues", "wait")

    def _executor(self) -> submitit.AutoExecutor:
        """A SLURM executor with this launcher's resources (the plugin's key mapping), writing
        signed job files (`harness.cluster.signed`)."""
        folder = self.params["submitit_folder"]
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=folder, slurm_max_num_timeout=self.max_requeues
        )
        # AutoExecutor only translates the generic keys; the SLURM executor it wraps is ours.
        executor._executor = SignedSlurmExecutor(folder, max_num_timeout=self.max_requeues)
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in generic else f"slurm_{key}": value
                for key, value in self.params.items()
                if key != "submitit_folder"
            }
        )
        return executor

    def _run(self, sweep: Sweep, todo: list[Point]) -> list[JobReturn]:
        executor = self._executor()
        executor.update_parameters(name=slurm_job_name(sweep.name))  # squeue/sacct show it
        if self.params.get("cpus_per_task"):  # SLURM allots the cores; torch is told to use them
            self.threads = int(self.params["cpus_per_task"])
        jobs = executor.map_array(self, *zip(*(self._job_args(p) for p in todo), strict=True))
        for point, job in zip(todo, jobs, strict=True):
            self._submitted(sweep, point, job)
        sweep.write_manifest()
        if not self.policy.get("wait", True):
            log.info(
                "not waiting (hydra.launcher.wait=false); follow it with `%s %s`",
                program("status"),
                sweep.name,
            )
            return [self._completed_return(p, job_id=p.job_id) for p in todo]
        returns = []
        for point, job in zip(todo, jobs, strict=True):  # in submission order
            returns.append(self._collect(point, job))
            # The line's wall time is the job's run time (sacct), not its time in the queue.
            elapsed = slurm_elapsed([str(job.job_id)]).get(str(job.job_id), math.nan)
            self._finished(point, returns[-1], elapsed)
        return returns


def slurm_job_name(sweep: str) -> str:
    """The name `squeue` and `sacct` show for a sweep's job array (its tasks are the points in
    submission order; `status` maps each job id to its point)."""
    return f"ssm-bench_{sweep}"


def visible_gpus() -> list[int]:
    """GPU ids this process may use: `CUDA_VISIBLE_DEVICES` if set, else all that torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [int(g) for g in listed.split(",") if g.strip()]
    import torch

    return list(range(torch.cuda.device_count()))


def local_slots(
    max_parallel: int | None, gpus_per_node: int, cpus_per_task: int
) -> list[list[int]]:
    """The GPUs of each concurrent local job: one entry per job that may run at once.

    With `gpus_per_node > 0` the visible GPUs are cut into groups of that size (a job per group);
    otherwise `os.cpu_count() // cpus_per_task` CPU-only slots. `max_parallel` caps either.
    """
    if max_parallel is not None and max_parallel < 1:
        raise UserError(f"hydra.launcher.max_parallel={max_parallel} must be >= 1 (or null)")
    if gpus_per_node > 0:
        gpus = visible_gpus()
        slots = [gpus[i : i + gpus_per_node] for i in range(0, len(gpus), gpus_per_node)]
        slots = [s for s in slots if len(s) == gpus_per_node]
        if not slots:
            raise UserError(
                f"hydra.launcher.gpus_per_node={gpus_per_node} but {len(gpus)} GPU(s) are "
                "visible; lower it or set hydra.launcher.gpus_per_node=0 for CPU jobs"
            )
    else:
        slots = [[] for _ in range(max(1, (os.cpu_count() or 1) // max(1, cpus_per_task)))]
    return slots[:max_parallel] if max_parallel is not None else slots


def job_threads(n_jobs: int, cpus_per_task: int, tasks_per_node: int = 1) -> int:
    """Threads of each process when `n_jobs` jobs of `tasks_per_node` processes run at once.

    `cpus_per_task`, lowered so that all processes together use at most `os.cpu_count()` threads
    (and at least one each).
    """
    if cpus_per_task < 1:
        raise UserError(f"hydra.launcher.cpus_per_task={cpus_per_task} must be >= 1")
    fair_share = (os.cpu_count() or 1) // max(1, n_jobs * tasks_per_node)
    return max(1, min(cpus_per_task, fair_share))


def limit_threads(threads: int) -> None:
    """Cap this process (and the processes it starts) at `threads` compute threads."""
    import torch

    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in `os.environ` for the block (a local job copies it when it starts)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


class LocalLauncher(_SweepLauncher):
    """The points of a sweep as local submitit jobs, at most `max_parallel` at once."""

    _EXECUTOR = "local"
    _HOW = "as local jobs"
    _POLICY_KEYS = ("rerun_failed", "max_requeues", "max_parallel")

    def _run(self, sweep: Sweep, todo: list[Point]) -> list[JobReturn]:
        cpus_per_task = int(self.params.get("cpus_per_task") or 1)
        slots = local_slots(
            self.policy.get("max_parallel"),
            int(self.params.get("gpus_per_node") or 0),
            cpus_per_task,
        )
        n_jobs = min(len(slots), len(todo))
        self.threads = job_threads(
            n_jobs, cpus_per_task, int(self.params.get("tasks_per_node") or 1)
        )
        log.info(
            "local launcher: %d job(s) at once, %d thread(s) per process", len(slots), self.threads
        )
        threads_env = dict.fromkeys(THREAD_VARIABLES, str(self.threads))
        params = {k: v for k, v in self.params.items() if k != "submitit_folder"}
        executor = SignedLocalExecutor(
            folder=self.params["submitit_folder"], max_num_timeout=self.max_requeues
        )
        executor.update_parameters(**params)
        waiting = list(todo)
        running: dict[int, tuple[submitit.Job, list[int]]] = {}
        returns: dict[int, JobReturn] = {}
        while waiting or running:
            while waiting and slots:
                point, gpus = waiting.pop(0), slots.pop(0)
                if gpus:
                    executor.update_parameters(visible_gpus=gpus)
                with _environment(threads_env):  # the job's processes start with these
                    job = executor.submit(self, *self._job_args(point))
                self._submitted(sweep, point, job)
                sweep.write_manifest()
                running[point.index] = (job, gpus)
            time.sleep(POLL_S)
            for index, (job, gpus) in list(running.items()):
                if job.done():
                    point = next(p for p in todo if p.index == index)
                    returns[index] = self._collect(point, job)
                    self._finished(point, returns[index])
                    slots.append(gpus)
                    del running[index]
        return [returns[p.index] for p in todo]


class SequentialLauncher(_SweepLauncher):
    """The points one after another in this process: a plain `-m` sweep (`hydra/launcher=
    sequential`, the default), with the same manifest, per-point lines and closing table as the
    job launchers; no job records (the manifest's `pid` is the process that runs the points)."""

    _EXECUTOR = "process"
    _HOW = "one after another in this process"
    _POLICY_KEYS = ("rerun_failed",)

    def _run(self, sweep: Sweep, todo: list[Point]) -> list[JobReturn]:
        assert self.hydra_context is not None and self.config is not None
        assert self.task_function is not None
        returns = []
        for point in todo:
            log.info("#%d %s: running (%s)", point.index, point.label, point.note)
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(point.overrides)
            )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = point.index
                sweep_config.hydra.job.num = point.index
            self._started[point.index] = time.perf_counter()
            ret = run_job(
                hydra_context=self.hydra_context,
                task_function=self.task_function,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            returns.append(ret)
            self._finished(point, ret)
            sweep.write_manifest()
        return returns
