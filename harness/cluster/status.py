"""`ssm-bench status [SWEEP] [--logs] [overrides]`: one table row per point of a sweep.

SWEEP is a sweep's name (its folder under `paths.sweeps_dir`, the `sweep` tag of its runs) or the
path of a sweep folder; without it, the most recently launched sweep. `overrides` are the same
`key=value` Hydra overrides `harness.run` takes, for where results live (`paths.root=...`).

Each row joins three sources: the sweep's manifest (`sweep.json`, written by
`harness.cluster.launcher`), the point's latest job (`job.json` in its run folder) with the
scheduler's state of that job (SLURM through `sacct`, local jobs from their process), and the
point's MLflow run (status and the tags `status_reason` and `requeues`). The `state` column
condenses them:

    finished | failed | running | pending | requeued | preempted | skipped | unknown

with the reason of a failure (MLflow's `status_reason`, else the job's end state) beside it.
"""

import argparse
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from common import UserError
from harness import damaged
from harness.cli import exits_on_user_error, program
from harness.cluster.jobs import JobRecord, is_active, job_states
from harness.layout import MANIFEST, PROJECT_ROOT, RUN_ID_FILE, sweep_manifests
from harness.run.tracking import with_retries

log = logging.getLogger(__name__)

RUNNING_JOB_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING"})
REQUEUE_JOB_STATES = frozenset({"REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED"})


@dataclass(frozen=True)
class RunView:
    """What the table needs from one MLflow run."""

    run_id: str
    status: str  # RUNNING | FINISHED | FAILED | KILLED | SCHEDULED
    reason: str
    requeues: int


def row_state(
    job_state: str | None, run: RunView | None, skipped: bool, requeues: int
) -> tuple[str, str]:
    """(state, reason) of one point from its job's scheduler state and its MLflow run.

    MLflow decides for ended runs (FINISHED, FAILED); otherwise a live job decides (pending,
    running, requeued); a job that ended without its run finishing is a failure named by the
    job's end state (CANCELLED, TIMEOUT, OUT_OF_MEMORY, ...), and one that completed with no run
    at all stopped on a user error before creating it.
    """
    if run is not None and run.status == "FINISHED":
        return "finished", ""
    if run is not None and run.status == "FAILED":
        return "failed", run.reason or "MLflow run FAILED"
    if job_state is not None and is_active(job_state):
        if job_state in RUNNING_JOB_STATES:
            return "running", ""
        if job_state in REQUEUE_JOB_STATES:
            return "requeued", ""
        return ("requeued" if requeues else "pending"), ""
    if run is not None and run.status == "KILLED":
        return "preempted", f"{run.reason or 'killed'}; resubmit the sweep to resume"
    if job_state is not None and job_state != "COMPLETED":
        return "failed", f"job {job_state}"
    if skipped:
        return "skipped", ""
    if job_state is None and run is None:
        return "pending", "not submitted"
    if job_state == "COMPLETED" and run is None:
        # A user error stops a point before its run is created (nothing half-made is left).
        return "failed", "stopped before its MLflow run was created; see the job's log (--logs)"
    return "unknown", ""


def _launched(manifest: Path) -> str:
    """When the sweep of `manifest` was launched (ISO, UTC): its `launched` field, else (a
    manifest of an older version) the file's modification time."""
    try:
        launched = json.loads(manifest.read_text()).get("launched")
    except (OSError, ValueError):
        launched = None
    if isinstance(launched, str) and launched:
        return launched
    return datetime.fromtimestamp(manifest.stat().st_mtime, UTC).isoformat()


def find_manifest(sweep: str | None, sweeps_dir: Path) -> Path:
    """The manifest of `sweep` (a folder, a folder name under `sweeps_dir` or a sweep id), else
    the manifest of the sweep launched last (by the `launched` time it records)."""
    manifests = sorted(sweeps_dir.glob(f"*/{MANIFEST}"), key=_launched)
    if sweep is not None:
        if (Path(sweep) / MANIFEST).is_file():
            return Path(sweep) / MANIFEST
        named = sorted(sweep_manifests(sweeps_dir, sweep), key=_launched)
        if named:
            return named[-1]
        known = ", ".join(m.parent.name for m in manifests[-5:]) or "none yet"
        raise UserError(
            f"no sweep {sweep!r}: neither {sweep}/{MANIFEST} nor a sweep of that name under "
            f"{sweeps_dir} (newest: {known}); `{program('status')}` shows the latest"
        )
    if not manifests:
        raise UserError(
            f"no sweep launched yet: no {sweeps_dir}/*/{MANIFEST}; start one with "
            f"`{program('run')} -m task=... model=a,b seed=0,1` (or set paths.root)"
        )
    return manifests[-1]


def _run_view(client: MlflowClient, run_dir: Path) -> RunView | None:
    run_id = damaged.read_text(run_dir / RUN_ID_FILE, damaged.RUN_ID)
    if run_id is None:
        return None
    try:
        run = with_retries(client.get_run, run_id)
    except MlflowException:
        return None
    tags = run.data.tags
    return RunView(
        run.info.run_id,
        run.info.status,
        tags.get("status_reason", ""),
        int(tags.get("requeues", "0") or 0),
    )


def _process_alive(manifest: dict) -> bool:
    """Whether the process that runs a sequential sweep's points (`pid` on `host`) still lives."""
    if manifest.get("host") != socket.gethostname() or not manifest.get("pid"):
        return False
    try:
        os.kill(int(manifest["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError, OverflowError):
        return False
    return True


def _process_job_state(point: dict, alive: bool, run: RunView | None) -> str | None:
    """A sequential sweep's point as the scheduler state `row_state` reads: its outcome in the
    manifest once it ended; while the sweep's process lives RUNNING (its run is open) or PENDING;
    after it INTERRUPTED (None: not reached before the process ended)."""
    outcome = point.get("outcome", "")
    if outcome:
        return "COMPLETED" if outcome == "finished" else "FAILED"
    if alive:
        return "RUNNING" if run is not None and run.status == "RUNNING" else "PENDING"
    return "INTERRUPTED" if run is not None else None


def status_table(manifest_path: Path, with_logs: bool = False) -> pd.DataFrame:
    """One row per point of the sweep in `manifest_path` (see the module docstring)."""
    manifest = json.loads(manifest_path.read_text())
    in_process = manifest.get("executor") == "process"
    alive = in_process and _process_alive(manifest)
    client = MlflowClient(tracking_uri=manifest["tracking_uri"])
    points = manifest["points"]
    records = {
        p["config_hash"]: None if in_process else JobRecord.load(Path(p["run_dir"])) for p in points
    }
    states = job_states([r for r in records.values() if r is not None])
    rows = []
    for point in points:
        record = None if in_process else records[point["config_hash"]]
        job_state = states.get(record.job_id) if record is not None else None
        run = _run_view(client, Path(point["run_dir"]))
        if in_process and point["action"] != "skip":
            job_state = _process_job_state(point, alive, run)
        requeues = run.requeues if run is not None else 0
        state, reason = row_state(job_state, run, point["action"] == "skip", requeues)
        if in_process and state == "failed" and point.get("outcome", "").startswith("failed"):
            reason = point["outcome"].removeprefix("failed: ")
        elif in_process and job_state is None and run is None and point["action"] != "skip":
            reason = "not started: the sweep's process ended first; run the sweep again"
        elif in_process and job_state == "INTERRUPTED" and state == "failed":
            reason = "interrupted with the sweep's process; run the sweep again to resume"
        row = {
            "#": point["index"],
            "state": state,
            "requeues": requeues,
            "job": record.job_id if record is not None else "-",
            "job_state": job_state or "-",
            "mlflow": run.status if run is not None else "-",
            "hash": point["config_hash"],
            "reason": reason or "-",
            "point": point["label"],
        }
        if with_logs:
            row["log"] = str(record.paths.stdout) if record is not None else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def render(table: pd.DataFrame) -> str:
    """The table as left-aligned text columns (long reasons and labels stay readable)."""
    rows = [list(map(str, table.columns))]
    rows += [[str(value) for value in row] for row in table.itertuples(index=False)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.columns))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=program("status"), description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep", nargs="?", help="sweep id, folder name or folder (default: the latest launched)"
    )
    parser.add_argument("--logs", action="store_true", help="add each job's log file")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for paths, e.g. paths.root=/scratch/me"
    )
    args = parser.parse_args(argv)
    if args.sweep is not None and "=" in args.sweep:
        args.overrides.insert(0, args.sweep)
        args.sweep = None
    return args


@exits_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from harness.run import schema  # the models and tasks load only now, not for --help

        schema.register()
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "configs"), version_base="1.3"):
            cfg = compose("config", overrides=args.overrides)
    except HydraException as error:
        raise UserError(f"bad override in {args.overrides}: {error}") from None
    sweeps_dir = Path(cfg.paths.sweeps_dir)
    manifest = find_manifest(args.sweep, sweeps_dir)
    table = status_table(manifest, with_logs=args.logs)
    counts = table["state"].value_counts()
    which = "" if args.sweep else f", the latest of {len(list(sweeps_dir.glob('*/' + MANIFEST)))}"
    print(
        f"sweep {json.loads(manifest.read_text())['sweep']} ({manifest.parent}), launched "
        f"{_launched(manifest)[:19].replace('T', ' ')} UTC{which}"
    )
    print(render(table))
    print(", ".join(f"{n} {state}" for state, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
