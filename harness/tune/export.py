"""The best trial of each model's study as an experiment config a seeded comparison runs.

For tuning name `NAME` and models m1, m2 it writes, under a config folder `root` (the project's
`configs/` unless told otherwise):

    root/tuned/NAME/m1.yaml            every setting of m1's best trial (what its run's
    root/tuned/NAME/m2.yaml            config.yaml holds) except the seed and operational keys
    root/experiment/tuned/NAME.yaml    selects tuned/NAME: m1 and sweeps tuned/NAME over m1,m2

so that `python -m harness.run -m experiment=tuned/NAME seed=0,1,2` trains every model at its
tuned setting with three seeds, and `experiment=tuned/NAME tuned/NAME=m2` one of them. The
per-model file sets the schema's config groups (`override /model: m1`, ...) from the trial's
composition, then every value of the trial's resolved config, so it stays the tuned setting when
a default changes later. Written files are checked: composing them with the best trial's seed
gives the best trial's config hash (the comparison's seed-0 point is that very run).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from common import UserError
from common.atomic import write_text_atomically
from harness.cli import make_folder
from harness.layout import CONFIG_FILE, CONFIGS_DIR
from harness.run import schema
from harness.run.config import config_hash, is_operational

SCHEMA_GROUPS = ("task", "model", "backbone", "optimizer", "scheduler", "trainer")
"""The config groups whose choice selects a schema node (`harness.run.schema.register`)."""


@dataclass
class Best:
    """A model's best trial, as the export needs it."""

    model: str
    study: optuna.Study
    trial: optuna.trial.FrozenTrial


def compose_config(overrides: list[str], search_root: Path | None = None) -> DictConfig:
    """The config `harness.run` composes for `overrides` (with Hydra's node: `hydra.runtime.
    choices`, `hydra.sweeper`); `search_root` a config folder added to the search path."""
    schema.register()
    extra = [f"hydra.searchpath=[file://{search_root}]"] if search_root else []
    with initialize_config_dir(str(CONFIGS_DIR), version_base="1.3"):
        return compose("config", overrides=[*overrides, *extra], return_hydra_config=True)


def searchpath_override(root: Path) -> str | None:
    """What a command line needs to find configs written under `root` (None for configs/)."""
    if root.resolve() == CONFIGS_DIR.resolve():
        return None
    return f"hydra.searchpath=[file://{root.resolve()}]"


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise UserError(
            f"study {study.study_name!r} has no finished trial; run it (again) with more trials"
        )
    return study.best_trial


def _settings(run_config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The run's resolved config without the seed and the operational keys."""
    kept = {}
    for key, value in run_config.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if dotted == "seed" or is_operational(dotted):
            continue
        kept[key] = _settings(value, dotted) if isinstance(value, dict) else value
    return kept


def model_config(best: Best, runs_dir: Path) -> str:
    """The text of `tuned/NAME/<model>.yaml` for `best`."""
    config_file = runs_dir / str(best.trial.user_attrs["config_hash"]) / CONFIG_FILE
    if not config_file.is_file():
        raise UserError(
            f"{config_file} is missing: the best trial's run directory is not under "
            f"{runs_dir}; give the same paths.* overrides as the study's command"
        )
    run_config = yaml.safe_load(config_file.read_text())
    choices = compose_config(list(best.trial.user_attrs["overrides"])).hydra.runtime.choices
    metric = best.study.user_attrs.get("metric", "objective")
    direction = best.study.direction.name.lower()
    params = " ".join(f"{k}={v}" for k, v in best.trial.params.items())
    header = [
        "# @package _global_",
        f"# The best trial of Optuna study {best.study.study_name!r} (ssm-bench tune): trial "
        f"{best.trial.number}, {metric} {best.trial.value:.6g} ({direction}d),",
        f"# MLflow run {best.trial.user_attrs.get('mlflow_run_id')}, config hash "
        f"{best.trial.user_attrs['config_hash']}. Tuned: {params}",
        "# Every other value is the study's fixed setting; the seed is left to the command line.",
    ]
    body = {
        "defaults": [{f"override /{g}": str(choices[g])} for g in SCHEMA_GROUPS if g in choices],
        **_settings(run_config),
    }
    return "\n".join(header) + "\n" + yaml.safe_dump(body, sort_keys=False)


def experiment_config(name: str, models: list[str]) -> str:
    """The text of `experiment/tuned/NAME.yaml`: the first model selected, all of them swept."""
    lines = [
        "# @package _global_",
        f"# Tuned settings of `ssm-bench tune {name}`, one file per model in tuned/{name}/.",
        f"# Seeded comparison: ssm-bench run -m experiment=tuned/{name} seed=0,1,2",
        f"# One model: ssm-bench run experiment=tuned/{name} tuned/{name}={models[0]}",
    ]
    body = {
        "defaults": [{f"/tuned/{name}": models[0]}],
        "hydra": {"sweeper": {"params": {f"tuned/{name}": ",".join(models)}}},
    }
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)


def _write(path: Path, text: str, force: bool) -> None:
    if path.is_file() and path.read_text() != text and not force:
        raise UserError(
            f"{path} exists with other settings; choose another tuning name, or pass --force "
            "to replace it"
        )
    make_folder(path.parent, "the config folder", "give --out a writable folder")
    write_text_atomically(path, text)


def write(name: str, bests: list[Best], root: Path, runs_dir: Path, force: bool) -> list[Path]:
    """Write the tuned configs of `bests` under `root` and check them; the paths written."""
    texts = {root / "tuned" / name / f"{b.model}.yaml": model_config(b, runs_dir) for b in bests}
    texts[root / "experiment" / "tuned" / f"{name}.yaml"] = experiment_config(
        name, [b.model for b in bests]
    )
    for path, text in texts.items():
        _write(path, text, force)
    for best in bests:
        composed = compose_config(
            [
                f"experiment=tuned/{name}",
                f"tuned/{name}={best.model}",
                f"seed={OmegaConf.select(_trial_config(best), 'seed')}",
            ],
            None if searchpath_override(root) is None else root,
        )
        composed_hash = config_hash(_without_hydra(composed))
        if composed_hash != best.trial.user_attrs["config_hash"]:
            raise AssertionError(
                f"tuned/{name}/{best.model}.yaml composes to config hash {composed_hash}, not "
                f"the best trial's {best.trial.user_attrs['config_hash']}"
            )
    return list(texts)


def _trial_config(best: Best) -> DictConfig:
    return compose_config(list(best.trial.user_attrs["overrides"]))


def _without_hydra(cfg: DictConfig) -> DictConfig:
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
