"""A point's run directory through its life: lock, plan, clear, promote.

`<paths.runs_dir>/<config hash>/` holds `mlflow_run_id`, the checkpoints, `config.yaml`,
`param_groups.json`, `summary.json` and `tracking_uri` (file names in `harness.layout`). Rank 0
holds its lock for the whole run (`exclusive`), removes what a killed process left
(`remove_temporaries`) and decides what to do (`plan`, the rules in `harness.run.point`'s
docstring); a finished `force=true` attempt in `.force/` is put in place by `promote`.
"""

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import UserError
from common.atomic import write_text_atomically
from harness import damaged
from harness.cli import make_folder
from harness.layout import (
    CHECKPOINTS,
    FORCE_DIR,
    LOCK_FILE,
    OLD_DIR,
    PENDING_ID_FILE,
    PREVIOUS_DIR,
    PROMOTED_MARK,
    RUN_FILES,
    RUN_ID_FILE,
    SUMMARY_FILE,
    TRACKING_FILE,
)
from harness.locking import held_or_refused
from harness.run import tracking
from harness.run.identity import Point

log = logging.getLogger(__name__)


def read_run_id(point: Point, directory: Path) -> str | None:
    """The MLflow run id in `<directory>/mlflow_run_id`, None without one.

    A damaged file (not UTF-8, not a run id) is set aside (`harness.damaged`) and the point is
    taken as MLflow knows it: the run its `summary.json` names, else the newest run of its config
    hash other than a force=true attempt's (in `.force/`); that id is written back. None if there
    is none.
    """
    id_file = directory / RUN_ID_FILE
    if not id_file.exists():
        return None
    run_id = damaged.read_text(id_file, damaged.RUN_ID)
    if run_id is not None:
        return run_id
    with contextlib.suppress(OSError, ValueError, AttributeError):
        named = json.loads((directory / SUMMARY_FILE).read_bytes()).get("mlflow_run_id")
        run_id = named if damaged.RUN_ID.fullmatch(str(named)) else None
    if run_id is None:
        attempt = damaged.read_text(directory / FORCE_DIR / RUN_ID_FILE, damaged.RUN_ID)
        run_id = tracking.find_run(point.uri, point.experiment, point.digest, exclude={attempt})
    if run_id is not None:
        log.warning("%s: restored from MLflow (run %s)", id_file, run_id)
        write_text_atomically(id_file, f"{run_id}\n")
    return run_id


def point_state(point: Point) -> str:
    """`new` | `unfinished` | `finished` | `failed`, from the run directory and MLflow (cheap)."""
    run_id = read_run_id(point, point.directory)
    if run_id is None:
        return "new"
    status = tracking.run_status(point.uri, run_id)
    if status is None:
        return "new"
    return {"FINISHED": "finished", "FAILED": "failed"}.get(status, "unfinished")


@dataclass
class Plan:
    """What rank 0 decided for this point (broadcast to the other ranks)."""

    action: str  # "finished" | "resume" | "fresh" | "force"
    workdir: Path  # where the run's files are written: the run directory, or FORCE_DIR in it
    run_id: str | None = None
    summary: dict[str, Any] | None = None


def _make_run_dir(directory: Path) -> None:
    fix = "set paths.results_dir (or paths.runs_dir) to a writable folder"
    make_folder(directory, "the run directory", fix)


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold `<run dir>/.lock` for the whole run: one process per point at a time.

    A run directory this call created and in which nothing but the lock was written (the run
    stopped before it started, e.g. on a user error) is removed again.
    """
    created = not directory.exists()
    _make_run_dir(directory)
    busy = (
        f"run directory {directory} is in use: this point is already running in another process; "
        "wait for it to end"
    )
    with held_or_refused(directory / LOCK_FILE, busy):
        try:
            yield
        finally:
            if created and os.listdir(directory) == [LOCK_FILE]:
                (directory / LOCK_FILE).unlink()
                directory.rmdir()


def remove_temporaries(directory: Path) -> None:
    """Delete the temporary files of atomic writes that a killed process left (`.<name>.*.tmp`)."""
    for name in RUN_FILES:
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _delete_pending_run(point: Point, directory: Path) -> None:
    """A run whose creation a killed process did not complete holds no results: delete it."""
    pending = directory / PENDING_ID_FILE
    if pending.is_file():
        run_id = damaged.read_text(pending, damaged.RUN_ID)
        if run_id and tracking.run_status(point.uri, run_id) is not None:
            log.info("deleting MLflow run %s: its creation was interrupted", run_id)
            tracking.TrackedRun(point.uri, run_id).delete()
        pending.unlink(missing_ok=True)


def _clear(point: Point, directory: Path) -> None:
    """Remove an unfinished run's files (never called on a directory holding a summary)."""
    if (directory / SUMMARY_FILE).exists():
        raise AssertionError(f"refusing to clear {directory}: it holds a finished result")
    _delete_pending_run(point, directory)
    for name in RUN_FILES:
        (directory / name).unlink(missing_ok=True)


def read_summary(directory: Path) -> dict[str, Any] | None:
    """The run directory's `summary.json`, None without one; a `UserError` if it is damaged."""
    path = directory / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (ValueError, OSError) as error:
        why = f"{type(error).__name__}: {error}"
    else:
        if isinstance(summary, dict):
            return summary
        why = f"holds a {type(summary).__name__}, not an object"
    run_id = "<run id>"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        run_id = (directory / RUN_ID_FILE).read_text().strip() or run_id
    raise UserError(
        f"{path} is damaged ({why}); restore it from its MLflow run with `mlflow artifacts "
        f"download -r {run_id} -a {SUMMARY_FILE} -d {directory}`, or rerun with force=true"
    )


def _finished_elsewhere(point: Point, summary: dict[str, Any]) -> UserError:
    directory = point.directory
    where = summary.get("tracking_uri") or "another MLflow store"
    run_id = summary.get("mlflow_run_id", "?")
    if where == point.uri:
        return UserError(
            f"point {directory.name} finished (results in {directory}) but its MLflow run "
            f"{run_id} is no longer in {where}; restore it with `mlflow runs restore --run-id "
            f"{run_id}`, or train it again with force=true"
        )
    return UserError(
        f"point {directory.name} already finished in {where} (MLflow run "
        f"{summary.get('mlflow_run_id', '?')}, results in {directory}), not in tracking.uri "
        f"{point.uri}; read it there with tracking.uri={where}, or train it again "
        "into this store with force=true (the old results are kept until the new run finished)"
    )


def _unfinished_elsewhere(point: Point) -> UserError | None:
    """The refusal to resume a point whose unfinished run lives in another store (its checkpoints
    would be lost to a fresh start here); None when nothing of another store is in its directory.

    The store is the one `<run dir>/tracking_uri` records; a directory written before that file
    existed counts as another store's when it holds a checkpoint.
    """
    directory = point.directory
    run_id = read_run_id(point, directory)
    if run_id is None:
        return None
    owner = damaged.read_text(directory / TRACKING_FILE)
    here = point.uri
    has_checkpoint = any((directory / name).exists() for name in CHECKPOINTS)
    if owner == here or (owner is None and not has_checkpoint):
        return None  # its run was deleted from this store: nothing to keep
    where = owner or "another MLflow store (not recorded)"
    return UserError(
        f"point {directory.name} has an unfinished MLflow run {run_id} in {where} (checkpoints "
        f"in {directory}), not in tracking.uri {here}; resume it there with tracking.uri="
        f"{owner or '<that store>'}, or start it over in this store with resume=false (its "
        "checkpoints are deleted)"
    )


def plan(point: Point) -> Plan:
    """Rank 0: what to do with the point (module docstring of `harness.run.point`), completing a
    killed promotion first."""
    directory = point.directory
    promoted = _promotion_pending(directory)
    if promoted:
        log.info("completing the replacement of %s by its finished force=true run", directory)
        promote(directory)
    state = point_state(point)
    summary = read_summary(directory)
    if point.force and promoted and state == "finished":
        log.info("the force=true run of %s finished and is in place; not training again", directory)
    elif point.force and (state == "finished" or summary is not None):
        return _plan_force(point)
    if state == "finished":
        log.info(
            "point %s already finished (MLflow run %s); force=true reruns it",
            directory.name,
            (summary or {}).get("mlflow_run_id", "?"),
        )
        return Plan("finished", directory, summary=summary or {})
    if summary is not None and (state == "new" or not point.resume):
        raise _finished_elsewhere(point, summary)
    run_id = read_run_id(point, directory)
    if state in ("unfinished", "failed") and point.resume:
        return Plan("resume", directory, run_id=run_id)
    if state == "new" and point.resume:
        refusal = _unfinished_elsewhere(point)
        if refusal is not None:
            raise refusal
    if state == "unfinished":
        old = tracking.TrackedRun(point.uri, str(run_id))
        old.end("KILLED", reason="superseded: restarted with resume=false")
    _clear(point, directory)
    return Plan("fresh", directory)


def _plan_force(point: Point) -> Plan:
    """A fresh attempt in `<run dir>/.force/` (an earlier unfinished attempt there is dropped)."""
    workdir = point.directory / FORCE_DIR
    if workdir.exists():
        run_id = damaged.read_text(workdir / RUN_ID_FILE, damaged.RUN_ID)
        if run_id is not None:
            old = tracking.TrackedRun(point.uri, run_id)
            if tracking.run_status(old.uri, old.run_id) not in (None, "FINISHED"):
                old.end("KILLED", reason="superseded: a new force=true attempt")
        _delete_pending_run(point, workdir)
        shutil.rmtree(workdir)
    workdir.mkdir()
    return Plan("force", workdir)


def promote(directory: Path) -> None:
    """Put a finished force=true attempt in place; the results it replaces go to `previous/`.

    Three phases of renames; the files on disk tell which one a killed process was in, and the
    next start (`plan`) completes it from there, losing nothing and training nothing:
    1. stash: the old results move to `.old/`, then `.old/.complete` marks them all there
       (`.old/` unmarked while `.force/` still exists: repeat the stash);
    2. install: the new results move in from `.force/` (the summary last), `.force/` is removed
       (`.old/` marked: repeat the install);
    3. retire: the mark is removed, `.old/` replaces `previous/` (the generation before it)
       (`.old/` unmarked and no `.force/`: the install is done, only retire).
    """
    workdir, old = directory / FORCE_DIR, directory / OLD_DIR
    if not (old / PROMOTED_MARK).exists() and workdir.exists():
        old.mkdir(exist_ok=True)
        for name in reversed(RUN_FILES):
            if (directory / name).exists():
                os.replace(directory / name, old / name)
        (old / PROMOTED_MARK).touch()
    if workdir.exists():
        for name in RUN_FILES:
            if (workdir / name).exists():
                os.replace(workdir / name, directory / name)
        shutil.rmtree(workdir)
    (old / PROMOTED_MARK).unlink(missing_ok=True)
    previous = directory / PREVIOUS_DIR
    if previous.exists():
        shutil.rmtree(previous)
    os.replace(old, previous)


def _promotion_pending(directory: Path) -> bool:
    """A finished force=true attempt not (completely) put in place yet."""
    return (directory / OLD_DIR).exists() or (directory / FORCE_DIR / SUMMARY_FILE).exists()
