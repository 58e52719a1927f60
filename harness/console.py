"""`ssm-bench <command> [args]`: the one console command (pyproject `[project.scripts]`).

    ssm-bench run task=listops_gen model=s4d_lin     # python -m harness.run (Hydra; -m: sweep)
    ssm-bench report --plots --html                  # python -m harness.report
    ssm-bench status [SWEEP]                         # python -m harness.status
    ssm-bench bench --suite layer                    # python -m harness.bench
    ssm-bench bench curve|data|sweep ...             # python -m harness.bench_curve, _data, .sweep
    ssm-bench study ...                              # python -m harness.study
    ssm-bench tune NAME model=a,b ... [--trials N]   # harness.tune.command (hydra/sweeper=optuna)
    ssm-bench list [models|tasks]                    # registered names, descriptions, options
    ssm-bench ui [--port 5000] [--tracking-uri URI]  # mlflow ui on the store, runs-table URL

Each command hands its arguments to the entry point named on its right, which is what runs;
`python -m harness.*` keeps working the same. `list` reads the model and task registries, so
plugins (entry point groups `ssm_bench.models` / `ssm_bench.tasks`) are listed with the
built-ins.
"""

import argparse
import importlib
import inspect
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict

from common import UserError
from harness.cli import exits_on_user_error

# command -> (module, attribute of its `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("harness.run.command", "cli", "train one point, or a sweep with -m (Hydra overrides)"),
    "report": ("harness.report.command", "main", "leaderboard, ablation tables, figures, HTML"),
    "status": ("harness.cluster.status", "main", "state of a sweep's points"),
    "bench": ("harness.bench.command", "main", "performance benchmarks (also: curve, data, sweep)"),
    "study": ("harness.study.command", "main", "a reproduction study: its sweep, tables, README"),
    "tune": ("harness.tune.command", "main", "Optuna studies per model, best settings as a config"),
    "list": ("harness.console", "list_main", "models and tasks with their options and defaults"),
    "ui": ("harness.console", "ui_main", "MLflow UI on the project store, with the runs-table URL"),
}
BENCH_MODES = {
    "curve": "harness.bench.curve",
    "data": "harness.bench.data",
    "sweep": "harness.bench.sweep",
}
DEFAULT_PORT = 5000


def _usage() -> str:
    lines = ["usage: ssm-bench <command> [args]   (ssm-bench <command> --help)", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _entry(command: str, argv: list[str]) -> tuple[Callable[..., object], list[str]]:
    """The function that runs `command` and the arguments it gets."""
    if command == "bench" and argv and argv[0] in BENCH_MODES:
        return importlib.import_module(BENCH_MODES[argv[0]]).main, argv[1:]
    module_name, attribute, _ = COMMANDS[command]
    return getattr(importlib.import_module(module_name), attribute), argv


def _run_hydra(cli: Callable[[], None], argv: list[str]) -> int:
    """Hydra reads `sys.argv`: run `cli` with it set to `ssm-bench run <argv>`."""
    sys.argv = ["ssm-bench run", *argv]
    try:
        cli()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


# ------------------------------------------------------------------------------------- list
def _first_line(recipe: object) -> str:
    return (inspect.getdoc(recipe) or "").split("\n")[0]


def _override_text(value: object) -> str:
    """A default as it is written in an override: `true`, `null`, `[0.5, 0.5]`, `zoh`."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_override_text(v) for v in value) + "]"
    return str(value)


def _options_text(options: dict[str, object]) -> str:
    return " ".join(f"{key}={_override_text(value)}" for key, value in options.items())


def model_lines() -> list[str]:
    """`name  description` and `  options: key=default ...` for every registered model."""
    import models

    lines = []
    for name in models.MODELS:
        recipe = models.MODELS[name]
        origin = models.MODELS.origins.get(name)
        lines.append(
            f"{name:<16} {_first_line(recipe)}" + (f" [plugin {origin}]" if origin else "")
        )
        lines.append(f"    layer options: {_options_text(asdict(recipe().options))}")
    return lines


def task_lines() -> list[str]:
    """`name  description` and `  options: key=default ...` for every registered task."""
    import tasks

    lines = []
    for name in tasks.TASKS:
        origin = tasks.TASKS.origins.get(name)
        description = _first_line(tasks.TASKS[name])
        lines.append(f"{name:<16} {description}" + (f" [plugin {origin}]" if origin else ""))
        lines.append(f"    options: {_options_text(tasks.task_options(name))}")
    return lines


def list_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ssm-bench list", description="Registered models and tasks.")
    p.add_argument("what", nargs="?", choices=("models", "tasks"), help="only models or tasks")
    args = p.parse_args(argv)
    sections = []
    if args.what in (None, "models"):
        lines = model_lines()
        head = f"models ({len(lines) // 2}): model=<name>, model.layer.<option>=<value>"
        sections.append("\n".join([head, *lines]))
    if args.what in (None, "tasks"):
        lines = task_lines()
        head = f"tasks ({len(lines) // 2}): task=<name>, task.<option>=<value>"
        sections.append("\n".join([head, *lines]))
    print("\n\n".join(sections))
    return 0


# --------------------------------------------------------------------------------------- ui
def ui_command(uri: str, port: int) -> list[str]:
    """The `mlflow ui` command line serving `uri` on 127.0.0.1:`port`."""
    from harness.run.tracking import artifact_location

    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    artifacts = artifact_location(uri)
    if artifacts is not None:
        command += ["--default-artifact-root", artifacts]
    return [*command, "--host", "127.0.0.1", "--port", str(port)]


def ui_main(argv: list[str]) -> int:
    from harness.run import tracking
    from harness.run.tracking import resolve_uri

    p = argparse.ArgumentParser(
        prog="ssm-bench ui", description="Start `mlflow ui` on the project's store (127.0.0.1)."
    )
    p.add_argument(
        "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or results/mlflow.db)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--experiment", default="ssm-bench", help="experiment whose runs table to open")
    args = p.parse_args(argv)
    uri = resolve_uri(args.tracking_uri)
    db = tracking.sqlite_path(uri)
    if db is not None and not db.is_file():
        raise UserError(
            f"no MLflow store at {db}; train a run first (ssm-bench run ...) or pass --tracking-uri"
        )
    experiment_id = tracking.prepare_store(uri, args.experiment)
    tracking.set_runs_view(uri, experiment_id)  # stores made before the saved view get it too
    url = tracking.runs_table_url(f"http://127.0.0.1:{args.port}", experiment_id)
    print(f"runs table of experiment {args.experiment!r}: {url}", flush=True)
    try:
        return subprocess.run(ui_command(uri, args.port)).returncode
    except KeyboardInterrupt:
        return 0


# ------------------------------------------------------------------------------------- main
@exits_on_user_error
def main(argv: list[str] | None = None) -> int:
    """Entry point of `ssm-bench`: dispatch the command's arguments to its entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise UserError(f"unknown command {command!r}; valid commands are: {', '.join(COMMANDS)}")
    entry, rest = _entry(command, rest)
    if command == "run":
        return _run_hydra(entry, rest)
    status = entry(rest)
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
