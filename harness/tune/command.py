"""`ssm-bench tune NAME [--trials N] [--jobs N] [--out DIR] [--force] OVERRIDES...`

Tune each model on its own, then write the best settings as an experiment config:

    ssm-bench tune lr task=quickstart/listops_gen model=s4d_lin,hope --trials 20 \\
        'optimizer.lr=tag(log, interval(1e-4, 1e-1))' hydra/launcher=local
    python -m harness.run -m experiment=tuned/lr seed=0,1,2      # the seeded comparison

For every model of `model=a,b` it runs the Optuna study `NAME/<model>` as a Hydra multirun
(`python -m harness.run -m hydra/sweeper=optuna ...`, `harness.tune.sweeper`) with the other
overrides, in a process of its own, then writes `tuned/NAME/<model>.yaml` and
`experiment/tuned/NAME.yaml` under `--out` (default: the project's `configs/`;
`harness.tune.export`). Running the same command again continues each study up to `--trials`
ended trials (finished points are not trained again) and rewrites identical files.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser

from common import UserError
from harness.cluster.launcher import _override_key
from harness.layout import CONFIGS_DIR
from harness.run import preflight, schema
from harness.run.config import is_operational
from harness.tune import export

EPILOG = """\
The search space and every other setting are Hydra overrides, as for `harness.run`:
  optimizer.lr='tag(log, interval(1e-4, 1e-1))'  a float range, log-uniform
  model.layer.dt_max='interval(0.01, 1.0)'        a float range
  backbone.n_layers='tag(int, interval(1, 4))'    an integer range
  backbone.d_model=32,64                          a choice
  model=s4d_lin,hope                              one study per model (not a search key)
  hydra/launcher=local|slurm, hydra.sweeper.*     the launcher and the sweeper's settings
"""


def _models(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the models of `model=...`, the other overrides)."""
    parser = OverridesParser.create()
    models, rest = [], []
    for text in overrides:
        (override,) = parser.parse_overrides([text])
        if override.get_key_element() == "model":
            if override.is_sweep_override():
                models = list(override.sweep_string_iterator())
            else:
                models = [override.get_value_element_as_str()]
        else:
            rest.append(text)
    if not models:
        raise UserError("no model to tune; name them, e.g. model=s4d_lin,hope")
    schema.register()
    known = preflight.group_options("model")
    unknown = [m for m in models if m not in known]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}; valid model names are: {', '.join(known)}")
    return models, rest


def _fixed(overrides: list[str]) -> list[str]:
    """`overrides` without the search space (what composes without --multirun)."""
    parser = OverridesParser.create()
    return [o for o in overrides if not parser.parse_overrides([o])[0].is_sweep_override()]


def study_overrides(name: str, model: str, args: argparse.Namespace, rest: list[str]) -> list[str]:
    """The `harness.run -m` command line of the model's study."""
    sweeper = ["hydra/sweeper=optuna", f"hydra.sweeper.study_name={name}/{model}"]
    if args.trials is not None:
        sweeper.append(f"hydra.sweeper.n_trials={args.trials}")
    if args.jobs is not None:
        sweeper.append(f"hydra.sweeper.n_jobs={args.jobs}")
    return [*sweeper, f"model={model}", *rest]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="ssm-bench tune",
        description="Tune each model in an Optuna study (hydra/sweeper=optuna), then write the "
        "best settings as experiment=tuned/NAME for a seeded comparison.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="tuning name: studies NAME/<model>, experiment=tuned/NAME")
    p.add_argument("overrides", nargs="*", help="Hydra overrides: model=..., search space, ...")
    p.add_argument("--trials", type=int, help="trials per model (default hydra.sweeper.n_trials)")
    p.add_argument("--jobs", type=int, help="trials per batch (default hydra.sweeper.n_jobs)")
    p.add_argument(
        "--out", type=Path, default=CONFIGS_DIR, help="config folder to write into (configs/)"
    )
    p.add_argument("--force", action="store_true", help="replace tuned configs that differ")
    args = p.parse_intermixed_args(argv)
    if not args.name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"tuning name {args.name!r}: use letters, digits, '_' and '-' only")
    models, rest = _models(args.overrides)
    for model in models:
        command = ["-m", *study_overrides(args.name, model, args, rest)]
        print(f"tuning {model}: ssm-bench run {' '.join(command)}", flush=True)
        done = subprocess.run([sys.executable, "-m", "harness.run", *command])
        if done.returncode != 0:
            print(
                f"error: the study of {model} ended with status {done.returncode}",
                file=sys.stderr,
            )
            return done.returncode
    bests = []
    for model in models:
        cfg = export.compose_config(_fixed(study_overrides(args.name, model, args, rest)))
        study = optuna.load_study(
            study_name=f"{args.name}/{model}", storage=str(cfg.hydra.sweeper.storage)
        )
        bests.append(export.Best(model, study, export.best_trial(study)))
    runs_dir = Path(str(cfg.paths.runs_dir))
    written = export.write(args.name, bests, args.out, runs_dir, args.force)
    for best in bests:
        metric = best.study.user_attrs.get("metric", "objective")
        params = " ".join(f"{k}={v}" for k, v in best.trial.params.items())
        value, number = best.trial.value, best.trial.number
        print(f"{best.model}: best {metric} {value:.6g} (trial {number}): {params}")
    print("wrote " + ", ".join(str(p) for p in written))
    where = [o for o in rest if is_operational(_override_key(o))]  # paths, tracking, launcher
    searchpath = export.searchpath_override(args.out)
    extra = " ".join([*where, *([searchpath] if searchpath else [])])
    print(f"seeded comparison: ssm-bench run -m experiment=tuned/{args.name} seed=0,1,2 " + extra)
    return 0
