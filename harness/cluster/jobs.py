"""Which submitit job runs a sweep point, and what state that job is in right now.

When `harness.cluster.launcher` submits a point it writes a `JobRecord` (`job.json`) into the
point's run directory `<paths.runs_dir>/<config_hash>/`. The launcher reads it back so that a point
whose job is still queued or running is never submitted twice; `harness.cluster.status` reads it
to join the job's state with the point's MLflow run.

Job states come from the scheduler: SLURM through submitit's `sacct` watcher (one `sacct` call for
all jobs; this needs SLURM accounting), local jobs from their result file and their process id.
"""

import json
import os
import pickletools
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from submitit.core.utils import JobPaths
from submitit.slurm.slurm import SlurmInfoWatcher

from common.atomic import write_text_atomically
from harness.layout import JOB_RECORD

EXECUTORS = ("slurm", "local")
# Scheduler states in which a job may still run the point (SLURM names; local jobs use RUNNING).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "PREEMPTED",
    }
)


def write_json_atomically(path: Path, data: object) -> None:
    """Write `data` as JSON through the atomic writer."""
    write_text_atomically(path, json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class JobRecord:
    """One submission of one point: the submitit job id and where its files are."""

    job_id: str  # SLURM "<array id>_<index>" or "<id>"; local: the controller's process id
    executor: str  # "slurm" | "local"
    folder: str  # submitit folder with `%j` still in it, as the executor was given it
    sweep: str
    submitted: str  # ISO 8601, UTC

    @classmethod
    def new(cls, job_id: str, executor: str, folder: str | Path, sweep: str) -> "JobRecord":
        if executor not in EXECUTORS:
            raise ValueError(f"executor {executor!r} is not one of {EXECUTORS}")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(str(job_id), executor, str(folder), sweep, stamp)

    @property
    def paths(self) -> JobPaths:
        """submitit's file layout of this job (task 0): logs, pickles."""
        return JobPaths(self.folder, job_id=self.job_id, task_id=0)

    def save(self, run_dir: Path) -> None:
        write_json_atomically(run_dir / JOB_RECORD, asdict(self))

    @classmethod
    def load(cls, run_dir: Path) -> "JobRecord | None":
        """The latest submission of the point in `run_dir`, None if it was never submitted."""
        path = run_dir / JOB_RECORD
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))


def result_outcome(path: Path) -> str | None:
    """The outcome (`success` | `error`) of submitit's result pickle, read without unpickling.

    submitit writes `(outcome, result)`; the outcome is the stream's first string. The opcodes are
    only scanned (`pickletools.genops` builds no object), so a crafted file runs nothing. None if
    the file holds no string or is not a pickle.
    """
    try:
        with open(path, "rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if isinstance(arg, str) and "UNICODE" in opcode.name:
                    return arg
    except (ValueError, EOFError, OSError):
        return None
    return None


def _local_state(record: JobRecord) -> str:
    """COMPLETED or FAILED by the result file, RUNNING while the process lives, else INTERRUPTED."""
    result = record.paths.result_pickle
    if result.is_file():
        return "COMPLETED" if result_outcome(result) == "success" else "FAILED"
    try:
        os.kill(int(record.job_id), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return "INTERRUPTED"
    return "RUNNING"


def job_states(records: list[JobRecord]) -> dict[str, str]:
    """Scheduler state of each record's job, keyed by job id (`UNKNOWN` when nobody knows it).

    SLURM states are read with a single `sacct` call for all jobs; a failing `sacct` (no
    accounting, no SLURM) leaves those jobs `UNKNOWN` rather than raising.
    """
    states: dict[str, str] = {}
    slurm = [r.job_id for r in records if r.executor == "slurm"]
    if slurm:
        watcher = SlurmInfoWatcher()
        for job_id in slurm:
            watcher.register_job(job_id)
        watcher.update()
        for job_id in slurm:
            states[job_id] = watcher.get_state(job_id, mode="cache").split()[0]
    for record in records:
        if record.executor == "local":
            states[record.job_id] = _local_state(record)
    return states


def is_active(state: str) -> bool:
    """Whether a job in this scheduler state may still run (or rerun) its point."""
    return state.upper() in ACTIVE_STATES


def parse_elapsed(sacct_output: str) -> dict[str, float]:
    """`sacct -n -X -P -o JobID,ElapsedRaw` lines -> {job id: seconds the job ran}."""
    elapsed = {}
    for line in sacct_output.splitlines():
        job_id, _, seconds = line.strip().partition("|")
        if job_id and seconds.strip().isdigit():
            elapsed[job_id] = float(seconds)
    return elapsed


def slurm_elapsed(job_ids: list[str]) -> dict[str, float]:
    """How long each SLURM job ran (sacct's ElapsedRaw: start to end, queueing left out); jobs
    sacct does not know (no accounting) are missing from the answer."""
    if not job_ids:
        return {}
    try:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,ElapsedRaw", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_elapsed(out)
