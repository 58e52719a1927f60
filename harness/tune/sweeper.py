"""`hydra/sweeper=optuna`: hyperparameter tuning as a Hydra sweeper on top of Optuna.

    python -m harness.run -m hydra/sweeper=optuna hydra/launcher=local task=listops_gen \\
        model=s4d_lin hydra.sweeper.study_name=lr_s4d hydra.sweeper.n_trials=20 \\
        'optimizer.lr=tag(log, interval(1e-4, 1e-1))' 'model.layer.dt_max=interval(0.01, 1.0)'

The search space is written in Hydra's override syntax (`harness.tune.space`). The sweeper asks
Optuna for `n_jobs` trials at a time and hands them to the configured launcher as one batch
(`launcher.launch(overrides, initial_job_idx)`: local jobs side by side, one SLURM job array, or
Hydra's in-process basic launcher), so every trial is an ordinary run of `harness.run`: skipped
when its point already finished, resumed from its checkpoint when it did not, tracked in MLflow.

- Objective: the run's best validation score (`harness.run.metrics.validation_score`, what
  `harness.run.command.main` returns), read from the trial's `summary.json`, so a trial whose
  point was skipped as finished scores the same as a freshly trained one. Its direction comes
  from the task (`DIRECTION`: accuracy is maximized, mean squared error minimized), found by
  building the task once when the study is created (which also fills the data cache).
- Resumable: the study lives in an Optuna RDB storage (`storage`, by default the SQLite file
  `results/optuna.db`) under `study_name`; running the same command again continues it until
  `n_trials` trials have ended. A trial left RUNNING by a killed sweeper is closed as FAIL and
  its parameters asked again first (`retry_of`), so its run resumes from its checkpoint. One
  sweeper works on a study at a time (a lock file under `paths.results_dir`); a rerun with a
  different search space or different fixed overrides is refused (use a new study name).
- MLflow: every trial's run gets the tags `TAG_STUDY` (the study name) and `TAG_TRIAL` (its
  number); the study's summary is written to `<sweep dir>/optimization_results.yaml` and
  printed as a table of trials.
"""

import contextlib
import json
import logging
import math
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from common import UserError, objective_named
from common.atomic import write_text_atomically
from harness.cli import make_folder, report_user_error
from harness.cluster.jobs import write_json_atomically
from harness.cluster.launcher import _override_key, _task_config
from harness.layout import MANIFEST, RUN_ID_FILE
from harness.locking import held_or_refused
from harness.run import schema
from harness.run.config import is_operational, resolved
from harness.run.identity import run_dir, tracking_uri
from harness.run.metrics import validation_score
from harness.run.rundir import read_summary
from harness.run.tracking import SQLITE_PREFIX, TrackedRun
from harness.tune.space import SearchSpace, parse

log = logging.getLogger(__name__)

TAG_STUDY = "tuning_study"  # MLflow tag of every trial's run: the study's name
TAG_TRIAL = "tuning_trial"  # ... and the trial's number in it
RESULTS_FILE = "optimization_results.yaml"  # in the sweep directory (as Hydra's Optuna sweeper)
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
ENDED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


class OptunaSweeper(Sweeper):
    """Optuna trials as batches of ordinary runs (see the module docstring)."""

    def __init__(
        self,
        study_name: str | None,
        storage: str,
        n_trials: int,
        n_jobs: int,
        sampler: str,
        seed: int,
        params: dict[str, Any] | None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.sampler = sampler
        self.seed = seed
        self.params = dict(params or {})
        self.job_idx = 0
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> optuna.Study:
        try:
            return self._sweep(arguments)
        except UserError as error:
            sys.exit(report_user_error(error))

    # ------------------------------------------------------------------ the study
    def _sweep(self, arguments: list[str]) -> optuna.Study:
        assert self.config is not None
        space = parse(self.params, arguments)
        self._check(space)
        results_dir = Path(str(self.config.paths.results_dir))
        safe = re.sub(r"[^\w.-]+", "_", str(self.study_name))
        with _exclusive(results_dir / f".tuning-{safe}.lock", str(self.study_name)):
            study = self._open(space)
            retry_interrupted(study)
            launched: list[dict[str, Any]] = []
            while (todo := self.n_trials - ended(study)) > 0:
                trials = [study.ask(space.dimensions) for _ in range(min(self.n_jobs, todo))]
                batch = [space.overrides(t.params) for t in trials]
                for trial, overrides in zip(trials, batch, strict=True):
                    trial.set_user_attr("overrides", overrides)
                returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
                self.job_idx += len(batch)
                launched = self._keep_earlier_points(launched)
                for trial, overrides, ret in zip(trials, batch, returns, strict=True):
                    self._tell(study, trial, overrides, ret)
        self._report(study, space)
        return study

    def _keep_earlier_points(self, earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Our launchers write `<sweep dir>/sweep.json` for the batch at hand; put the points of
        this sweep's earlier batches back in, so `ssm-bench status` shows every trial's point."""
        assert self.config is not None
        path = Path(str(self.config.hydra.sweep.dir)) / MANIFEST
        if not path.is_file():  # Hydra's basic launcher writes none
            return earlier
        manifest = json.loads(path.read_text())
        now = {point["index"] for point in manifest["points"]}
        manifest["points"] = [p for p in earlier if p["index"] not in now] + manifest["points"]
        write_json_atomically(path, manifest)
        return manifest["points"]

    def _check(self, space: SearchSpace) -> None:
        """User errors of the sweeper's settings and search space, before any trial."""
        assert self.config is not None
        if not self.study_name:
            raise UserError(
                "hydra.sweeper.study_name is not set; name the study (e.g. "
                "hydra.sweeper.study_name=lr_s4d): running the command again continues it"
            )
        if self.n_trials < 1 or self.n_jobs < 1:
            raise UserError(
                f"hydra.sweeper.n_trials={self.n_trials} and hydra.sweeper.n_jobs={self.n_jobs} "
                "must both be >= 1"
            )
        if self.sampler not in SAMPLERS:
            raise UserError(
                f"hydra.sweeper.sampler={self.sampler!r} is not one of {', '.join(SAMPLERS)}"
            )
        if not space.dimensions:
            raise UserError(
                "no search space: give at least one key a range, e.g. "
                "'optimizer.lr=tag(log, interval(1e-4, 1e-1))' or backbone.d_model=32,64 "
                "(on the command line or in hydra.sweeper.params)"
            )
        if "task" in space.dimensions:
            raise UserError(
                "task is a search dimension; tune each task in its own study (one objective "
                "per study), e.g. one command per task=..."
            )
        if OmegaConf.select(self.config, "hydra.launcher.wait", default=True) is False:
            raise UserError(
                "hydra.launcher.wait=false with hydra/sweeper=optuna: the sweeper needs each "
                "batch's results to choose the next; leave hydra.launcher.wait=true"
            )
        for point in space.extremes():
            try:
                cfg = self._task_config(point)
            except (HydraException, OmegaConfBaseException) as error:
                first = str(error).splitlines()[0]
                raise UserError(f"search space: {first} (trial overrides {point})") from None
            schema.validate(cfg)

    def _open(self, space: SearchSpace) -> optuna.Study:
        """Load the study (checking it is the same search) or create it, direction from the
        task; its sampler seeded by the number of trials it has, so a rerun draws new points."""
        assert self.config is not None
        if self.storage.startswith(SQLITE_PREFIX):
            db = Path(self.storage.removeprefix(SQLITE_PREFIX))
            make_folder(db.parent, "the folder of the Optuna storage", "set hydra.sweeper.storage")
        fixed = [o for o in space.fixed if not is_operational(_override_key(o))]
        try:
            study = optuna.load_study(study_name=str(self.study_name), storage=self.storage)
        except KeyError:
            objective = self._objective(space)
            study = optuna.create_study(
                study_name=str(self.study_name),
                storage=self.storage,
                direction=objective_named(objective).direction,
            )
            study.set_user_attr("search_space", space.describe())
            study.set_user_attr("fixed_overrides", fixed)
            study.set_user_attr("objective", objective)
            study.set_user_attr("metric", objective_named(objective).validation_score)
            log.info("study %s created in %s (%s)", study.study_name, self.storage, objective)
        else:
            for what, now in (("search_space", space.describe()), ("fixed_overrides", fixed)):
                if study.user_attrs.get(what) != now:
                    raise UserError(
                        f"study {self.study_name!r} in {self.storage} was started with "
                        f"{what.replace('_', ' ')} {study.user_attrs.get(what)}, this command "
                        f"gives {now}; choose another hydra.sweeper.study_name for a new search"
                    )
            log.info(
                "study %s: %d of %d trials ended; continuing",
                study.study_name,
                ended(study),
                self.n_trials,
            )
        study.sampler = SAMPLERS[self.sampler](seed=self.seed + len(study.trials))
        return study

    def _objective(self, space: SearchSpace) -> str:
        """The task's objective (`classification` | `regression`), from building the task."""
        import tasks

        cfg = self._task_config(space.extremes()[0])
        options = {k: v for k, v in resolved(cfg.task).items() if k != "name"}
        return str(tasks.build(str(cfg.task.name), **options).info.objective)

    # ------------------------------------------------------------------ one trial
    def _task_config(self, overrides: Sequence[str]) -> DictConfig:
        """The trial's config as its run gets it (composed like the launcher does)."""
        assert self.hydra_context is not None and self.config is not None
        hydra_cfg = HydraConfig.instance().cfg
        try:
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            HydraConfig.instance().set_config(sweep_config)
            return _task_config(sweep_config)
        finally:
            HydraConfig.instance().cfg = hydra_cfg

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, overrides: list[str], ret: JobReturn
    ) -> None:
        """Score the trial from its run directory's summary, tag its MLflow run, tell Optuna."""
        cfg = self._task_config(overrides)
        directory = run_dir(cfg)
        summary = read_summary(directory)
        value = validation_score(summary) if summary is not None else None
        trial.set_user_attr("config_hash", directory.name)
        id_file = directory / RUN_ID_FILE
        if id_file.is_file():
            run_id = id_file.read_text().strip()
            trial.set_user_attr("mlflow_run_id", run_id)
            TrackedRun(tracking_uri(cfg), run_id).set_tags(
                {TAG_STUDY: study.study_name, TAG_TRIAL: trial.number}
            )
        if value is not None and math.isfinite(value):
            study.tell(trial, value)
            return
        if ret.status == JobStatus.FAILED:
            reason = f"{type(ret._return_value).__name__}: {ret._return_value}"
        else:
            reason = f"no finished result in {directory} ({ret._return_value})"
        trial.set_user_attr("failure", reason[:500])
        log.warning("trial %d failed: %s", trial.number, reason)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)

    # ------------------------------------------------------------------ the report
    def _report(self, study: optuna.Study, space: SearchSpace) -> None:
        """Print the trials as a table and write `<sweep dir>/optimization_results.yaml`."""
        assert self.config is not None
        metric = study.user_attrs.get("metric", "objective")
        print(trials_table(study, list(space.dimensions)), flush=True)
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        results: dict[str, Any] = {
            "name": "optuna",
            "study": study.study_name,
            "storage": self.storage,
            "direction": study.direction.name.lower(),
            "metric": metric,
            "n_complete": len(complete),
            "n_failed": len(study.get_trials(states=(optuna.trial.TrialState.FAIL,))),
        }
        if complete:
            best = study.best_trial
            results |= {
                "best_trial": best.number,
                "best_value": best.value,
                "best_params": dict(best.params),
                "best_run": best.user_attrs.get("mlflow_run_id"),
                "best_config_hash": best.user_attrs.get("config_hash"),
            }
            print(
                f"study {study.study_name}: best {metric} {best.value:.6g} "
                f"({study.direction.name.lower()}d) at trial {best.number}: "
                + " ".join(f"{k}={v}" for k, v in best.params.items()),
                flush=True,
            )
        else:
            print(f"study {study.study_name}: no trial finished", flush=True)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        make_folder(sweep_dir, "the sweep folder", "set paths.sweeps_dir to a writable folder")
        write_text_atomically(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(results))


def retry_interrupted(study: optuna.Study) -> None:
    """Trials still RUNNING were left by a killed sweeper (the lock rules out a live one):
    close them as FAIL and ask their parameters again, so their runs resume."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        log.warning("trial %d was interrupted; running its point again", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def ended(study: optuna.Study) -> int:
    """Trials that count towards `n_trials`: COMPLETE or FAIL, except FAILs asked again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return sum(t.state in ENDED and t.number not in retried for t in trials)


def trials_table(study: optuna.Study, keys: list[str]) -> str:
    """The study's trials: number, state, objective, each searched key, the MLflow run."""
    metric = str(study.user_attrs.get("metric", "value"))
    header = ["trial", "state", metric, *keys, "run"]
    rows = [header]
    for t in study.get_trials(deepcopy=False):
        value = f"{t.value:.6g}" if t.value is not None else "-"
        params = [
            f"{t.params[k]:.4g}" if isinstance(t.params.get(k), float) else str(t.params.get(k))
            for k in keys
        ]
        run = str(t.user_attrs.get("mlflow_run_id", "-"))
        rows.append([str(t.number), t.state.name, value, *params, run])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


@contextlib.contextmanager
def _exclusive(lock_path: Path, study_name: str) -> Iterator[None]:
    """Hold `lock_path` while this process works on the study; a second sweeper is refused."""
    make_folder(lock_path.parent, "the results folder", "set paths.results_dir")
    busy = (
        f"study {study_name!r} is being tuned by another process ({lock_path}); wait for it to end"
    )
    with held_or_refused(lock_path, busy):
        yield
