"""No code from the sweep folder: every pickle a job or the launcher would read, planted with a
payload (unpickling it creates a marker file), is refused without running it.

- the job's submitted call (`<job>_submitted.pkl`, also what a requeue rewrites): the job entry
  loads only a file signed under the launch's key (`harness.cluster.signed`);
- the job's result (`<job>_0_result.pkl`): the launcher reads the job's JSON outcome instead,
  and the local job state is read from it (or the pickle's opcodes, never unpickled).
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from hydra.core.utils import JobStatus
from submitit.core.utils import DelayedSubmission, JobPaths
from submitit.local.local import LocalJob

from harness.cluster import jobs, launcher, signed
from harness.cluster.launcher import Point, _SweepLauncher

KEY = "ab" * 32


class _WritesMarker:
    """A pickle payload: unpickling it creates the file `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _job_env(key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != signed.KEY_VARIABLE}
    env.update(
        SUBMITIT_EXECUTOR="local",
        SUBMITIT_LOCAL_JOB_ID="4242",
        SUBMITIT_LOCAL_NTASKS="1",
        SUBMITIT_LOCAL_JOB_NUM_NODES="1",
        SUBMITIT_LOCAL_NODEID="0",
        SUBMITIT_LOCAL_GLOBALID="0",
        SUBMITIT_LOCAL_LOCALID="0",
        OMP_NUM_THREADS="1",
    )
    if key is not None:
        env[signed.KEY_VARIABLE] = key
    return env


def _start_job(folder: Path, key: str | None) -> subprocess.CompletedProcess:
    """The job's process as the executor starts it: `python -m harness.cluster.job_entry`."""
    return subprocess.run(
        [sys.executable, "-u", "-m", signed.ENTRY_MODULE, str(folder)],
        env=_job_env(key),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _signed_call(monkeypatch: pytest.MonkeyPatch, obj: object) -> bytes:
    monkeypatch.setenv(signed.KEY_VARIABLE, KEY)
    return signed.signed_bytes(obj)


def _payloads(marker: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Planted submitted-call files: plain pickles, a forged header, a signature from another key,
    a signed job whose pickle was swapped afterwards."""
    plain = cloudpickle.dumps(DelayedSubmission(pow, _WritesMarker(marker), 1))
    good = _signed_call(monkeypatch, DelayedSubmission(pow, 2, 3))
    start = len(signed.HEADER) + signed.DIGEST_CHARS + 1
    monkeypatch.setenv(signed.KEY_VARIABLE, "cd" * 32)
    other_key = signed.signed_bytes(_WritesMarker(marker))
    monkeypatch.setenv(signed.KEY_VARIABLE, KEY)
    return {
        "plain pickle": plain,
        "bare payload": pickle.dumps(_WritesMarker(marker)),
        "forged header": signed.HEADER + b"0" * signed.DIGEST_CHARS + b"\n" + plain,
        "other key": other_key,
        "swapped pickle": good[:start] + plain,
    }


def test_a_signed_job_file_round_trips_and_every_planted_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "0_submitted.pkl"
    monkeypatch.setenv(signed.KEY_VARIABLE, KEY)
    signed.SignedSubmission(pow, 2, 5).dump(path)
    assert signed.SignedSubmission.load(path).result() == 32
    for name, data in _payloads(marker, monkeypatch).items():
        path.write_bytes(data)
        with pytest.raises(signed.UnsignedJobError):
            signed.SignedSubmission.load(path)
        assert not marker.exists(), name
    monkeypatch.delenv(signed.KEY_VARIABLE)
    with pytest.raises(signed.UnsignedJobError, match=signed.KEY_VARIABLE):
        signed.SignedSubmission.load(path)


def test_the_job_process_runs_its_signed_call_and_refuses_a_planted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "submitit"
    folder.mkdir()
    paths = JobPaths(folder, job_id="4242", task_id=0)
    # The control: a signed call runs and succeeds.
    paths.submitted_pickle.write_bytes(_signed_call(monkeypatch, DelayedSubmission(pow, 2, 3)))
    done = _start_job(folder, KEY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert jobs.result_outcome(paths.result_pickle) == "success"
    # The planted ones, as the job's first start would find them and as a requeue would.
    for name, data in _payloads(marker, monkeypatch).items():
        paths.result_pickle.unlink(missing_ok=True)
        paths.submitted_pickle.write_bytes(data)
        done = _start_job(folder, KEY)
        assert done.returncode != 0, name
        assert "UnsignedJobError" in done.stderr, (name, done.stderr[-2000:])
        assert jobs.result_outcome(paths.result_pickle) == "error", name
        assert not marker.exists(), name
    # Without the launch's key nothing is loaded at all.
    paths.submitted_pickle.write_bytes(_signed_call(monkeypatch, _WritesMarker(marker)))
    done = _start_job(folder, None)
    assert done.returncode != 0 and not marker.exists()


def test_a_requeue_rewrites_the_job_file_signed() -> None:
    local = launcher.LocalLauncher.__new__(launcher.LocalLauncher)
    again = local.checkpoint(["seed=0"], "hydra.sweep.dir", 0, "id", {}, requeues=2)
    assert isinstance(again, signed.SignedSubmission)
    assert again.kwargs["requeues"] == 3
    assert signed.SignedSubmission.of(DelayedSubmission(pow, 2, 3)).result() == 8


def _ended_job(folder: Path) -> LocalJob:
    """A local job that has ended (no process left), as the launcher polls it."""
    return LocalJob(folder=folder, job_id="4242", tasks=[0])


def _point() -> Point:
    return Point(0, ["seed=0"], "seed=0", "abc", "/nowhere", "new", "submit", "new")


@pytest.mark.parametrize("outcome", ["success", "error"])
def test_the_launcher_never_unpickles_a_result_file(
    tmp_path: Path, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "OUTCOME_WAIT_S", 1)
    marker = tmp_path / "marker"
    paths = JobPaths(tmp_path, job_id="4242", task_id=0)
    paths.result_pickle.write_bytes(cloudpickle.dumps((outcome, _WritesMarker(marker))))
    ret = _SweepLauncher._collect(_point(), _ended_job(tmp_path))
    assert not marker.exists()
    assert ret.status == JobStatus.FAILED  # no outcome file: the job ended without one
    assert "ended without an outcome" in str(ret._return_value)
    record = jobs.JobRecord.new("4242", "local", tmp_path, "sweep")
    assert jobs.job_states([record]) == {"4242": "COMPLETED" if outcome == "success" else "FAILED"}
    assert not marker.exists()


def test_the_launcher_reads_the_jobs_json_outcome(tmp_path: Path) -> None:
    paths = JobPaths(tmp_path, job_id="4242", task_id=0)
    jobs.write_outcome(paths, "COMPLETED", 0.75)
    ret = _SweepLauncher._collect(_point(), _ended_job(tmp_path))
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 0.75
    jobs.write_outcome(paths, "FAILED", error="error: task.seq_len=0 must be >= 1")
    ret = _SweepLauncher._collect(_point(), _ended_job(tmp_path))
    assert ret.status == JobStatus.FAILED and "task.seq_len=0" in str(ret._return_value)
    record = jobs.JobRecord.new("4242", "local", tmp_path, "sweep")
    assert jobs.job_states([record]) == {"4242": "FAILED"}


def test_slurm_jobs_start_through_the_verifying_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"  # submitit needs an `srun` to build a SLURM executor
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slurm = launcher.SlurmLauncher.__new__(launcher.SlurmLauncher)
    slurm.params = {"submitit_folder": str(tmp_path / "%j"), "timeout_min": 7, "partition": "gpu"}
    slurm.max_requeues = 2
    executor = slurm._executor()
    assert isinstance(executor._executor, signed.SignedSlurmExecutor)
    script = executor._executor._make_submission_file_text(
        executor._executor._submitit_command_str, "uid"
    )
    assert f"-m {signed.ENTRY_MODULE}" in script and "submitit.core._submit" not in script
    assert "--time=7" in script and "--partition=gpu" in script
    local = signed.SignedLocalExecutor(folder=tmp_path)
    assert f"-m {signed.ENTRY_MODULE}" in local._submitit_command_str
