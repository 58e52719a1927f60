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
from harness.damaged import set_aside
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
    # local: the start time of process `job_id` (`process_start`), so that a process id reused
    # by an unrelated process is not taken for the job; None for SLURM (and older records)
    process_start: str | None = None

    @classmethod
    def new(cls, job_id: str, executor: str, folder: str | Path, sweep: str) -> "JobRecord":
        if executor not in EXECUTORS:
            raise ValueError(f"executor {executor!r} is not one of {EXECUTORS}")
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        started = process_start(int(job_id)) if executor == "local" else None
        return cls(str(job_id), executor, str(folder), sweep, stamp, started)

    @property
    def paths(self) -> JobPaths:
        """submitit's file layout of this job (task 0): logs, pickles."""
        return JobPaths(self.folder, job_id=self.job_id, task_id=0)

    def save(self, run_dir: Path) -> None:
        write_json_atomically(run_dir / JOB_RECORD, asdict(self))

    @classmethod
    def load(cls, run_dir: Path) -> "JobRecord | None":
        """The latest submission of the point in `run_dir`, None if it was never submitted.

        A damaged record (not JSON, wrong fields) is set aside with a warning
        (`harness.damaged.set_aside`) and read as none: the point is planned by what MLflow says.
        """
        path = run_dir / JOB_RECORD
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_bytes().decode()))
        except (ValueError, TypeError) as error:
            set_aside(path, f"{type(error).__name__}: {error}")
            return None


def outcome_path(paths: JobPaths) -> Path:
    """`<folder>/<job id>_<task>_outcome.json`: how the job's task ended, as JSON the job writes
    (`write_outcome`); read instead of submitit's result pickle, which is never unpickled."""
    return paths.result_pickle.with_name(f"{paths.job_id}_{paths.task_id}_outcome.json")


def write_outcome(paths: JobPaths, status: str, value: object = None, error: str = "") -> None:
    """Record (atomically) that the job's task ended `COMPLETED` with `value` or `FAILED` with
    `error`; a value that is not JSON is recorded as its text."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = str(value)
    write_json_atomically(outcome_path(paths), {"status": status, "value": value, "error": error})


def read_outcome(paths: JobPaths) -> dict | None:
    """The outcome the job recorded, None if it recorded none (killed) or the file is damaged."""
    try:
        outcome = json.loads(outcome_path(paths).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(outcome, dict) or outcome.get("status") not in ("COMPLETED", "FAILED"):
        return None
    return outcome


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


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, `/proc/<pid>/stat` field 22), None
    where there is no /proc or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name, from field 3


def _is_the_job(record: JobRecord) -> bool:
    """Whether the live process `record.job_id` is the job's submitit controller and not an
    unrelated process that got the id later: same start time, else (an older record) a
    controller's command line."""
    pid = int(record.job_id)
    if record.process_start is not None and Path("/proc").is_dir():
        return process_start(pid) == record.process_start
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: the process id is all there is
    return b"submitit.local._local" in command


def _local_state(record: JobRecord) -> str:
    """COMPLETED or FAILED by the job's outcome (or result) file, RUNNING while the process lives,
    else INTERRUPTED."""
    outcome = read_outcome(record.paths)
    if outcome is not None:
        return str(outcome["status"])
    result = record.paths.result_pickle
    if result.is_file():
        return "COMPLETED" if result_outcome(result) == "success" else "FAILED"
    try:
        os.kill(int(record.job_id), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return "INTERRUPTED"
    return "RUNNING" if _is_the_job(record) else "INTERRUPTED"


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
