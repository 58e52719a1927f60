"""Who a point is and where its things live, resolved once from its config.

`resolve(cfg)` -> `Point`: the config hash, the run directory, the tracking store and experiment,
the MLflow run name and the sweep it belongs to, and whether it resumes or is forced. Everything
that plans, records or trains a point reads them from the record instead of recomputing them
from the raw config.
"""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from harness.run import tracking
from harness.run.config import config_hash


@dataclass(frozen=True)
class Point:
    """One point's identity and places.

    digest: `config_hash(cfg)`, the run directory's name and the runs' `config_hash` tag.
    directory: `<paths.runs_dir>/<digest>/`. uri: the tracking store. experiment: its MLflow
    experiment. run_name: `<task>/<model>/s<seed>`. sweep: the `sweep` tag, None outside a sweep.
    resume, force: the config's `resume` and `force`.
    """

    digest: str
    directory: Path
    uri: str
    experiment: str
    run_name: str
    sweep: str | None
    resume: bool
    force: bool


def resolve(cfg: DictConfig) -> Point:
    """The `Point` of a composed run config."""
    digest = config_hash(cfg)
    return Point(
        digest=digest,
        directory=Path(cfg.paths.runs_dir) / digest,
        uri=tracking_uri(cfg),
        experiment=str(cfg.tracking.experiment),
        run_name=run_name(cfg),
        sweep=sweep_name(cfg),
        resume=bool(cfg.resume),
        force=bool(cfg.force),
    )


def run_dir(cfg: DictConfig) -> Path:
    """`<paths.runs_dir>/<config_hash>/`."""
    return Path(cfg.paths.runs_dir) / config_hash(cfg)


def tracking_uri(cfg: DictConfig) -> str:
    """The tracking store of `cfg` (`tracking.uri`, else the environment, else the default)."""
    return tracking.resolve_uri(cfg.tracking.uri)


def run_name(cfg: DictConfig) -> str:
    """The MLflow run name, `<task>/<model>/s<seed>` (the `config_hash` tag tells points apart)."""
    return f"{cfg.task.name}/{cfg.model.name}/s{cfg.seed}"


def sweep_name(cfg: DictConfig) -> str | None:
    """`tracking.sweep`, else the basename of Hydra's multirun sweep directory in a sweep."""
    if cfg.tracking.sweep:
        return str(cfg.tracking.sweep)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None
