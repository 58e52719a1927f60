"""What a single run that stopped on a user error takes back, so that it leaves nothing behind.

A user error found only once the job runs (a task option out of range, a missing or damaged
dataset file) comes after Hydra made the run's log folder and `PrepareTrackingStore` made the
MLflow store; the run directory itself is removed by `harness.run.rundir.exclusive` when nothing
was written in it. `take_back` removes the rest: the store if this process created it and it holds
no run, Hydra's log folder of this run, and the folders above them that are left empty.
"""

import shutil
from pathlib import Path

from omegaconf import DictConfig

from harness.run import tracking
from harness.run.identity import tracking_uri


def _remove_empty_up_to(folder: Path, top: Path) -> None:
    """`folder` and its parents up to and including `top`, each only while it is empty."""
    folder, top = folder.resolve(), top.resolve()
    for candidate in (folder, *folder.parents):
        if not candidate.is_relative_to(top):
            return
        try:
            candidate.rmdir()
        except OSError:  # not empty (or gone, or not ours to remove): stop here
            return


def take_back(cfg: DictConfig, log_folder: Path | None) -> None:
    """Remove what this single run created before it stopped on a user error (module doc).

    `log_folder`: Hydra's output folder of this run (`hydra.runtime.output_dir`), or None.
    """
    results, uri = Path(cfg.paths.results_dir), tracking_uri(cfg)
    tracking.remove_unused_store(uri)
    if log_folder is not None and log_folder.resolve().is_relative_to(
        Path(cfg.paths.logs_dir).resolve()
    ):
        shutil.rmtree(log_folder, ignore_errors=True)
        _remove_empty_up_to(log_folder.parent, results)
    _remove_empty_up_to(Path(cfg.paths.runs_dir), results)
    db = tracking.sqlite_path(uri)
    if db is not None:
        _remove_empty_up_to(db.parent, results)
