"""Where a run's files live: the project root and the names of every file in a run directory.

Shared by `harness.run` (which writes these files), `harness.cluster` (which reads them to plan and
show a sweep) and `harness.report`. It imports nothing beyond the standard library, so commands that
only read results (`harness.status`, `harness.report --help`) start without torch or MLflow.

A run directory is `<paths.runs_dir>/<config_hash>/` (`harness.run.config.config_hash`); a sweep
directory is `<paths.sweeps_dir>/<sweep name>/`.
"""

import importlib.metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PROJECT_ROOT / "configs"  # Hydra's primary config directory

CONFIG_PLUGINS = "ssm_bench.configs"
"""Entry point group of installed packages' config directories: each entry point names a package
(`my_ssm.configs`) whose folder holds `model/<name>.yaml`, `task/<name>.yaml`, ... like configs/."""


def plugin_config_dirs() -> list[Path]:
    """The config directories that installed plugins declare (`CONFIG_PLUGINS`), by plugin name.

    Importing the named package is what locates it, so a package that fails to import raises.
    """
    dirs = []
    for entry in sorted(
        importlib.metadata.entry_points(group=CONFIG_PLUGINS), key=lambda e: e.name
    ):
        package = entry.load()
        dirs.extend(Path(p) for p in getattr(package, "__path__", []))
    return dirs


def config_dirs() -> list[Path]:
    """Where configs are looked up, in Hydra's order: `configs/`, then the plugins' directories."""
    return [CONFIGS_DIR, *plugin_config_dirs()]


# Files of a run directory.
RUN_ID_FILE = "mlflow_run_id"  # the MLflow run id; written once the run is fully created
SUMMARY_FILE = "summary.json"  # final metrics; present once the run FINISHED
CONFIG_FILE = "config.yaml"  # the resolved config
GROUPS_FILE = "param_groups.json"  # optimizer groups (lr, weight decay, parameter names)
LOCK_FILE = ".lock"  # held by the process running the point
CHECKPOINT = "checkpoint.pt"  # the latest training state (resume)
MODEL_INIT = "model_init.pt"  # the model's weights at step 0
MODEL_BEST = "model_best.pt"  # the weights at the best validation score
JOB_RECORD = "job.json"  # the submitit job that runs the point (harness.cluster.jobs)

# What a run writes into its run directory (other owners' files there are left alone).
RUN_FILES = (
    RUN_ID_FILE,
    SUMMARY_FILE,
    CONFIG_FILE,
    GROUPS_FILE,
    CHECKPOINT,
    MODEL_INIT,
    MODEL_BEST,
)

# Files of a sweep directory.
MANIFEST = "sweep.json"  # the sweep's points (harness.cluster.launcher)
