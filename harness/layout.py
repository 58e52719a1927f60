"""Where a run's files live: the project root and the names of every file in a run directory.

Shared by `harness.run` (which writes these files), `harness.cluster` (which reads them to plan and
show a sweep) and `harness.report`. It imports nothing beyond the standard library, so commands that
only read results (`harness.cluster.status`, `harness.report --help`) start without torch or MLflow.

A run directory is `<paths.runs_dir>/<config_hash>/` (`harness.run.config.config_hash`); a sweep
directory is `<paths.sweeps_dir>/<sweep name>/`.
"""

import importlib.metadata
import json
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


# Files of a run directory.
RUN_ID_FILE = "mlflow_run_id"  # the MLflow run id; written once the run is fully created
PENDING_ID_FILE = "mlflow_run_id.pending"  # the id of a run still being created
TRACKING_FILE = "tracking_uri"  # the MLflow store the run lives in (written when it is created)
SUMMARY_FILE = "summary.json"  # final metrics; written last, present once the run FINISHED
CONFIG_FILE = "config.yaml"  # the resolved config
GROUPS_FILE = "param_groups.json"  # optimizer groups (lr, weight decay, parameter names)
LOCK_FILE = ".lock"  # held by the process running the point
CHECKPOINT = "checkpoint.pt"  # the newest training state (resume)
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before it
CHECKPOINTS = (CHECKPOINT, PREVIOUS_CHECKPOINT)  # newest first
DAMAGED_SUFFIX = ".damaged"  # a checkpoint that failed to load, set aside under this suffix
MODEL_INIT = "model_init.pt"  # the model's weights at step 0
MODEL_BEST = "model_best.pt"  # the weights at the best validation score
JOB_RECORD = "job.json"  # the submitit job that runs the point (harness.cluster.jobs)
FORCE_DIR = ".force"  # a force=true attempt trains here until it has finished
OLD_DIR = ".old"  # the replaced results while a finished attempt is put in place
PROMOTED_MARK = ".complete"  # in OLD_DIR: every replaced file is in it
PREVIOUS_DIR = "previous"  # the results a finished force=true attempt replaced

# What a run writes into its run directory (other owners' files there are left alone); the
# summary last, so that a directory with a summary has every other file.
RUN_FILES = (
    PENDING_ID_FILE,
    RUN_ID_FILE,
    TRACKING_FILE,
    CONFIG_FILE,
    GROUPS_FILE,
    *CHECKPOINTS,
    *(name + DAMAGED_SUFFIX for name in CHECKPOINTS),
    MODEL_INIT,
    MODEL_BEST,
    SUMMARY_FILE,
)

# Files of a sweep directory.
MANIFEST = "sweep.json"  # the sweep's points (harness.cluster.launcher)


def sweep_manifests(sweeps_dir: Path, name: str) -> list[Path]:
    """The manifests under `sweeps_dir` of the sweep called `name`: its folder's name, or the
    sweep id its manifest records (`tracking.sweep` when set); unreadable ones are passed by."""
    found = []
    for manifest in sorted(sweeps_dir.glob(f"*/{MANIFEST}")):
        if manifest.parent.name == name:
            found.append(manifest)
            continue
        try:
            if json.loads(manifest.read_text()).get("sweep") == name:
                found.append(manifest)
        except (OSError, ValueError, AttributeError):
            continue
    return found
