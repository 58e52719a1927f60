"""Read runs from an MLflow store into one typed pandas DataFrame (one row per run).

The schema is the one `docs/interfaces.md` fixes: tags `task`, `model`, `kernel` (the model
family `s4` | `s4d` | `hope`), `init` (the initialization rule: HiPPO measure or `random`),
`objective`, `seed`, `config_hash`, `sweep`, `status_reason`; params = the flattened resolved
config plus `n_params`; metrics `best/val_acc`, `best/test_acc`, `best/test_loss`,
`trivial/{val,test}_*`, `wall_time_s`, `perf/mean_samples_per_s`, ... Reports read only the store,
never the training process (and, for `--sweep`, the sweep's manifest: `sweep_hashes`).

Accuracies come out in percent: runs tag their unit (`acc_unit`, `harness.run.metrics.ACC_UNIT`);
the accuracy metrics of runs without the tag (logged as fractions by older code) are multiplied by
100 here, in the frame and in the histories.

The frame has typed core columns (`CORE_COLUMNS`) and keeps MLflow's own `metrics.<name>`,
`params.<name>` and `tags.<name>` columns, so any metric, param or tag can be used as a metric
or a grouping key.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from common import UserError
from harness.layout import sweep_manifests
from harness.run.tracking import sqlite_path

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "ssm-bench"
CORE_COLUMNS = (
    "run_id",
    "experiment",
    "task",
    "model",
    "kernel",
    "init",
    "objective",
    "seed",
    "config_hash",
    "sweep",
    "acc_unit",
    "status",
    "status_reason",
    "start_time",
    "end_time",
    "n_params",
    "best_val_acc",
    "best_test_acc",
    "wall_time_s",
    "samples_per_s",
)
_TAGS = ("task", "model", "kernel", "init", "objective", "config_hash", "sweep", "status_reason")
_METRICS = {
    "best_val_acc": "best/val_acc",
    "best_test_acc": "best/test_acc",
    "wall_time_s": "wall_time_s",
    "samples_per_s": "perf/mean_samples_per_s",
}


@dataclass(frozen=True)
class RunFilter:
    """Which runs a report reads: experiments, sweep ids, `tag=value` pairs, date, statuses.

    A run is in the requested sweeps when its `sweep` tag is one of `sweeps` or its config hash is
    one of `sweep_points` (the points the sweeps' manifests list, `sweep_hashes`): a resubmitted
    sweep whose finished points were skipped still covers their runs.
    """

    experiments: tuple[str, ...] = (DEFAULT_EXPERIMENT,)
    sweeps: tuple[str, ...] = ()
    sweep_points: frozenset[str] = frozenset()
    tags: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    statuses: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line naming every active filter, for error messages and table notes."""
        parts = [f"experiment in {list(self.experiments)}"]
        parts += [f"sweep in {list(self.sweeps)}"] if self.sweeps else []
        parts += [f"tag {k}={v}" for k, v in self.tags.items()]
        parts += [f"started since {self.since:%Y-%m-%d}"] if self.since else []
        parts += [f"status in {list(self.statuses)}"] if self.statuses else []
        return ", ".join(parts)


def sweep_hashes(sweeps_dir: Path, sweeps: tuple[str, ...]) -> frozenset[str]:
    """Config hashes of every point (run or skipped as finished) that the manifests of the given
    sweeps list (`harness.layout.sweep_manifests`: by folder name or sweep id; sweeps without a
    manifest there contribute none)."""
    hashes: set[str] = set()
    for sweep in sweeps:
        for manifest in sweep_manifests(sweeps_dir, sweep):
            hashes |= {p["config_hash"] for p in json.loads(manifest.read_text())["points"]}
    return frozenset(hashes)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_store(uri: str) -> None:
    """Raise `UserError` when a local store (sqlite or file) does not exist or is no store.

    MLflow would silently create an empty store at a wrong path, or fail with a traceback on a
    file that is not one; a report must say instead that there is nothing to read.
    """
    db = sqlite_path(uri)
    path = db
    if path is None and urlparse(uri).scheme in ("", "file"):
        path = Path(urlparse(uri).path)
    if path is None:
        return
    if not path.exists():
        raise UserError(
            f"no MLflow store at {path} (tracking URI {uri}); run `ssm-bench run ...` "
            "first or pass --tracking-uri pointing at an existing store"
        )
    if db is None and path.is_file():
        raise UserError(
            f"--tracking-uri {uri} is a file, not an MLflow store folder; for a SQLite store "
            f"pass --tracking-uri sqlite:///{path.resolve()}"
        )
    if db is not None and (not db.is_file() or _header(db) not in (b"", SQLITE_HEADER)):
        raise UserError(
            f"--tracking-uri {uri}: {db} is not a SQLite database; pass the mlflow.db that "
            "`ssm-bench run` wrote"
        )


def _header(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER))


def _experiment_ids(client: MlflowClient, names: tuple[str, ...]) -> dict[str, str]:
    """Experiment id -> name for the requested names; unknown names raise with the valid ones."""
    found = {}
    for name in names:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            valid = sorted(e.name for e in client.search_experiments())
            raise UserError(f"unknown experiment {name!r} (--experiment); the store has: {valid}")
        found[exp.experiment_id] = name
    return found


def is_accuracy(metric: str) -> bool:
    """Accuracies (`best/test_acc`, `val/acc`, `trivial/test_acc`): percent in every frame."""
    return metric.rsplit("/", 1)[-1].endswith("acc")


def acc_unit(tags: pd.Series) -> pd.Series:
    """Each run's accuracy unit from its `acc_unit` tag; runs without one logged fractions."""
    return tags.astype("string").fillna("fraction")


def _in_percent(raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` with every accuracy metric of fraction-unit runs multiplied by 100."""
    unit = acc_unit(raw["tags.acc_unit"] if "tags.acc_unit" in raw else pd.Series(None, raw.index))
    scale = unit.map(lambda u: 100.0 if u == "fraction" else 1.0).astype(float)
    columns = [c for c in raw if c.startswith("metrics.") and is_accuracy(c)]
    converted = {c: pd.to_numeric(raw[c], errors="coerce") * scale for c in columns}
    return raw.assign(**converted)


def _typed(raw: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Add the typed core columns to MLflow's raw frame."""

    def column(name: str, default=None) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series(default, index=raw.index)

    raw = _in_percent(raw)
    core = pd.DataFrame(index=raw.index)
    core["run_id"] = raw["run_id"]
    core["experiment"] = raw["experiment_id"].map(names)
    for tag in _TAGS:
        core[tag] = column(f"tags.{tag}").astype("string")
    core["acc_unit"] = acc_unit(column("tags.acc_unit"))
    core["seed"] = pd.to_numeric(column("tags.seed"), errors="coerce").astype("Int64")
    core["status"] = raw["status"].astype("string")
    core["start_time"] = pd.to_datetime(raw["start_time"], utc=True)
    core["end_time"] = pd.to_datetime(column("end_time"), utc=True)
    core["n_params"] = pd.to_numeric(column("params.n_params"), errors="coerce").astype("Int64")
    for name, metric in _METRICS.items():
        core[name] = pd.to_numeric(column(f"metrics.{metric}"), errors="coerce").astype(float)
    extra = raw[[c for c in raw.columns if c.startswith(("metrics.", "params.", "tags."))]]
    return pd.concat([core, extra], axis=1)


def _apply_filter(runs: pd.DataFrame, filt: RunFilter) -> pd.DataFrame:
    keep = pd.Series(True, index=runs.index)
    if filt.sweeps:
        tagged = runs["sweep"].isin(filt.sweeps).fillna(False).astype(bool)
        listed = runs["config_hash"].isin(filt.sweep_points).fillna(False).astype(bool)
        keep &= tagged | listed
    for key, value in filt.tags.items():
        col = f"tags.{key}"
        keep &= (runs[col] == value).fillna(False).astype(bool) if col in runs else False
    if filt.since is not None:
        since = pd.Timestamp(filt.since)
        since = since.tz_localize("UTC") if since.tzinfo is None else since
        keep &= runs["start_time"] >= since
    if filt.statuses:
        keep &= runs["status"].isin(filt.statuses).fillna(False).astype(bool)
    return runs[keep]


def load_runs(uri: str, filt: RunFilter = RunFilter()) -> pd.DataFrame:
    """All runs of the filtered experiments as one typed frame, newest first.

    Raises `UserError` for a missing store, an unknown experiment or when no run matches.
    """
    check_store(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        names = _experiment_ids(client, filt.experiments)
        mlflow.set_tracking_uri(uri)
        raw = mlflow.search_runs(experiment_ids=list(names), output_format="pandas")
    except MlflowException as err:
        raise UserError(f"cannot read the MLflow store {uri}: {err.message}") from None
    if raw.empty:
        raise UserError(
            f"no runs in the MLflow store {uri} for {filt.describe()}; "
            "start some with `ssm-bench run` or check --experiment"
        )
    runs = _apply_filter(_typed(raw, names), filt)
    if runs.empty:
        raise UserError(f"no runs in {uri} match the filters ({filt.describe()})")
    log.info("read %d runs from %s (%s)", len(runs), uri, filt.describe())
    return runs.sort_values("start_time", ascending=False).reset_index(drop=True)


@dataclass(frozen=True)
class Dedup:
    """Runs after removing resubmissions: `kept` one per config hash, `dropped` with the reason."""

    kept: pd.DataFrame
    dropped: pd.DataFrame


def dedup(runs: pd.DataFrame) -> Dedup:
    """Keep one run per `config_hash`: the FINISHED one (the latest if several), else the latest.

    A resubmitted sweep point shows up as several MLflow runs with the same config hash; only the
    kept one enters the statistics. `dropped` gains `kept_run_id` and `reason` columns saying which
    run replaced it and why. Runs without a config hash are never merged.
    """
    key = runs["config_hash"].fillna(runs["run_id"])
    order = runs.assign(
        _key=key, _finished=runs["status"] == "FINISHED", _start=runs["start_time"]
    ).sort_values(["_key", "_finished", "_start"], ascending=[True, False, False])
    first = ~order["_key"].duplicated(keep="first")
    kept = order[first]
    dropped = order[~first].copy()
    winner = kept.set_index("_key")
    dropped["kept_run_id"] = dropped["_key"].map(winner["run_id"])
    dropped["reason"] = [
        f"resubmission of {h}: kept {k[:8]} "
        f"({'the FINISHED run' if winner.at[h, '_finished'] else 'the latest run'})"
        for h, k in zip(dropped["_key"], dropped["kept_run_id"], strict=True)
    ]
    helper = ["_key", "_finished", "_start"]
    kept = kept.drop(columns=helper).sort_values("start_time", ascending=False)
    dropped = dropped.drop(columns=helper)
    if len(dropped):
        log.info("dropped %d resubmitted duplicate runs", len(dropped))
    return Dedup(kept=kept.reset_index(drop=True), dropped=dropped.reset_index(drop=True))


def metric_column(runs: pd.DataFrame, metric: str) -> str:
    """The frame column holding `metric` (an MLflow metric name such as `best/test_acc`)."""
    col = f"metrics.{metric}"
    if col not in runs.columns:
        valid = sorted(c.removeprefix("metrics.") for c in runs if c.startswith("metrics."))
        raise UserError(f"unknown metric {metric!r} (--metric); the runs log: {valid}")
    return col


def group_column(runs: pd.DataFrame, key: str) -> str:
    """The frame column for a grouping key: a core column, else a tag, else a param."""
    for col in (key, f"tags.{key}", f"params.{key}"):
        if col in runs.columns and col not in ("run_id", "start_time", "end_time"):
            return col
    tags = sorted(c.removeprefix("tags.") for c in runs if c.startswith("tags."))
    params = sorted(c.removeprefix("params.") for c in runs if c.startswith("params."))
    raise UserError(
        f"unknown grouping key {key!r} (--group-by); use a tag ({', '.join(tags)}) "
        f"or a param ({', '.join(params)})"
    )


def load_histories(uri: str, runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-step values of `metric` for every run, long format.

    Returns columns `run_id`, `task`, `model`, `seed`, `step`, `value`: one row per run and step,
    the value logged last at that step (a store written before resumes logged each step once may
    hold a step twice); accuracies in percent (`acc_unit`).
    """
    client = MlflowClient(tracking_uri=uri)
    frames = []
    for run in runs.itertuples():
        fraction = is_accuracy(metric) and getattr(run, "acc_unit", "fraction") == "fraction"
        scale = 100.0 if fraction else 1.0
        by_step = {
            p.step: p
            for p in sorted(
                client.get_metric_history(run.run_id, metric), key=lambda p: p.timestamp
            )
        }
        points = [by_step[step] for step in sorted(by_step)]
        if points:
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": run.run_id,
                        "task": run.task,
                        "model": run.model,
                        "seed": run.seed,
                        "step": [p.step for p in points],
                        "value": [p.value * scale for p in points],
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "model", "seed", "step", "value"])
    return pd.concat(frames, ignore_index=True)
