"""`ssm-bench <command> [args]`: the one console command (pyproject `[project.scripts]`).

    ssm-bench run task=listops_gen model=s4d_lin     # python -m harness.run (Hydra; -m: sweep)
    ssm-bench report --plots --html                  # python -m harness.report
    ssm-bench status [SWEEP]                         # python -m harness.cluster.status
    ssm-bench bench --suite layer                    # python -m harness.bench
    ssm-bench bench curve|data|sweep|gpu ...         # python -m harness.bench.curve, .data,
                                                     #   harness.bench.sweep, harness.bench.gpu
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
import contextlib
import importlib
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

from common import UserError
from harness.cli import exits_on_user_error

log = logging.getLogger(__name__)

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
    "gpu": "harness.bench.gpu",
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
    # Its own process group: a signal to this process stops the server and all its workers.
    server = subprocess.Popen(ui_command(uri, args.port), start_new_session=True)
    previous = {s: signal.signal(s, _stop_group(server)) for s in STOP_SIGNALS}
    try:
        if _serving(server, args.port, UI_START_S):
            print(f"runs table of experiment {args.experiment!r}: {url}", flush=True)
        elif server.poll() is None:
            log.warning(
                "the MLflow UI did not answer on port %d within %d s", args.port, UI_START_S
            )
        return server.wait()
    except KeyboardInterrupt:
        _terminate(server)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


UI_START_S = 180  # how long `ui` waits for the server to answer before it says so
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # (SIGINT: KeyboardInterrupt)


def _serving(server: subprocess.Popen, port: int, within_s: float) -> bool:
    """Whether 127.0.0.1:`port` accepts a connection within `within_s` s (False as soon as the
    server process has ended)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return True
        time.sleep(0.5)
    return False


def _terminate(server: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group (server and workers), SIGKILL what is left of it after
    `grace_s`, and wait until no member is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(grace_s)
        if _group_gone(server.pid, grace_s):
            return


def _group_gone(pgid: int, within_s: float) -> bool:
    """Whether process group `pgid` has no member left (zombies are reaped) within `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _stop_group(server: subprocess.Popen) -> Callable[[int, object], None]:
    def handler(signum: int, frame: object) -> None:
        _terminate(server)
        sys.exit(128 + signum)

    return handler


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
