"""The SLURM launcher against a real one-node SLURM (`bash .ci/slurm/setup.sh`), end to end.

Everything goes through the real `sbatch`, `sacct` and `scontrol`: a 6-point sweep as one job array,
idempotent resubmission, `scontrol requeue` of a running job (resume into the same MLflow run, equal
to an uninterrupted run), the requeue limit, and a crashing point. In CI (`CI=true`) a missing or
stopped cluster fails these tests; elsewhere they are skipped only when `sbatch` is not installed.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import sweep_helpers as sh
from mlflow import MlflowClient

pytestmark = pytest.mark.slurm

MODELS = ("s4_legs", "s4_fout", "hope")
SEEDS = (0, 1)
SLURM = ["hydra/launcher=slurm", "hydra.launcher.timeout_min=10"]
# A run long enough (a few hundred optimizer steps) to be caught while training.
LONG = {"steps": 300, "seq_len": 256, "n_train": 640}


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    """The local cluster is up: a node in service and accounting answering (.ci/slurm/setup.sh)."""
    if shutil.which("sbatch") is None:
        if os.environ.get("CI"):
            pytest.fail("sbatch not found: CI must run `bash .ci/slurm/setup.sh` first")
        pytest.skip("SLURM is not installed; `sudo bash .ci/slurm/setup.sh` sets up a local one")
    node = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    accounting = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True)
    if not set(node.stdout.split()) & {"idle", "mixed", "allocated", "completing"}:
        pytest.fail(f"no SLURM node up (sinfo: {node.stdout.strip()!r} {node.stderr.strip()!r})")
    if accounting.returncode != 0:
        pytest.fail(f"sacct fails ({accounting.stderr.strip()}); accounting must be on")


def _array_ids(output: str) -> list[str]:
    """The job ids the launcher printed (`#3 model=hope seed=1: job 17_3 (new), log ...`)."""
    return re.findall(r": job (\S+) \(", output)


def _sacct_states(job: str) -> dict[str, str]:
    """Final accounting states of a job's array tasks (waits out the seconds after the result
    file appears, while the task's process is still exiting)."""
    for _ in range(120):
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        states = dict(line.split("|", 1) for line in out.splitlines() if line)
        if not {"RUNNING", "COMPLETING", "PENDING"} & set(states.values()):
            return states
        time.sleep(0.5)
    raise AssertionError(f"job {job} still running: {states}")


def _finished_metrics(root: Path) -> dict[str, dict[str, float]]:
    return {r.data.tags["config_hash"]: r.data.metrics for r in sh.runs(root)}


def test_sweep_is_one_array_and_resubmission_is_idempotent(tmp_path: Path) -> None:
    sweep = ["-m", *SLURM, f"model={','.join(MODELS)}", f"seed={','.join(map(str, SEEDS))}"]
    first = sh.harness_run([*sweep, *sh.tiny(tmp_path)], tmp_path, timeout=400)
    assert first.returncode == 0, first.stderr[-3000:]
    ids = _array_ids(first.stderr + first.stdout)
    assert len(ids) == 6
    array = {i.split("_")[0] for i in ids}
    assert len(array) == 1, f"one job array, got {ids}"
    assert sorted(int(i.split("_")[1]) for i in ids) == list(range(6))
    array_id = array.pop()
    states = _sacct_states(array_id)
    assert set(states.values()) == {"COMPLETED"}, states
    sweep_id = re.search(r"^sweep (\S+) \(", first.stdout, re.M).group(1)
    names = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobName", "-j", array_id], capture_output=True, text=True
    ).stdout.split()
    assert set(names) == {f"ssm-bench_{sweep_id}"}, names

    found = sh.runs(tmp_path)
    assert sorted((r.data.tags["model"], int(r.data.tags["seed"])) for r in found) == sorted(
        (m, s) for m in MODELS for s in SEEDS
    ), "every point exactly once, none lost or duplicated"
    assert {r.info.status for r in found} == {"FINISHED"}
    assert all({"best/val_loss", "best/test_loss"} <= set(r.data.metrics) for r in found)
    table = sh.harness_status(tmp_path)
    assert table.returncode == 0 and "6 finished" in table.stdout, table.stdout + table.stderr

    # Resubmitting the finished sweep submits nothing.
    again = sh.harness_run([*sweep, *sh.tiny(tmp_path)], tmp_path, timeout=200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _array_ids(again.stderr + again.stdout) == []
    assert "all 6 points skipped; nothing submitted" in again.stderr + again.stdout
    assert len(sh.runs(tmp_path)) == 6

    # Delete one point's result (its MLflow run and run folder): only that point runs again.
    gone = found[0]
    MlflowClient(tracking_uri=sh.store_uri(tmp_path)).delete_run(gone.info.run_id)
    shutil.rmtree(tmp_path / "results" / "runs" / gone.data.tags["config_hash"])
    third = sh.harness_run([*sweep, *sh.tiny(tmp_path)], tmp_path, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(_array_ids(third.stderr + third.stdout)) == 1
    after = sh.runs(tmp_path)
    assert len(after) == 6 and {r.info.status for r in after} == {"FINISHED"}
    redone = [r for r in after if r.data.tags["config_hash"] == gone.data.tags["config_hash"]]
    assert len(redone) == 1 and redone[0].info.run_id != gone.info.run_id
    assert redone[0].data.metrics["best/val_loss"] == gone.data.metrics["best/val_loss"]


def _wait_for_training(root: Path, launcher: subprocess.Popen) -> tuple[str, str]:
    """Block until the single point's job is training -> (config hash, job id)."""
    for _ in range(1200):
        started = list((root / "results" / "runs").glob("*/model_init.pt"))
        if started:
            digest = started[0].parent.name
            return digest, sh.job_record(root, digest)["job_id"]
        assert launcher.poll() is None, (root / "launcher.log").read_text()[-3000:]
        time.sleep(0.25)
    raise AssertionError("the job never started training")


@pytest.mark.slow  # SLURM faults; the array sweep stays in the default suite
def test_scontrol_requeue_resumes_into_the_same_run(tmp_path: Path) -> None:
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    interrupted.mkdir()
    reference.mkdir()
    cache = tmp_path / "cache"
    launcher = sh.harness_run_background(
        ["-m", *SLURM, "model=s4_legs", *sh.tiny(interrupted, cache=cache, **LONG)], interrupted
    )
    digest, job = _wait_for_training(interrupted, launcher)
    subprocess.run(["scontrol", "requeue", job], check=True)
    assert launcher.wait(timeout=400) == 0, (interrupted / "launcher.log").read_text()[-3000:]

    (run,) = sh.runs(interrupted)
    assert run.info.status == "FINISHED"
    assert run.data.tags["config_hash"] == digest
    assert run.data.tags["requeues"] == "1"
    job_logs = (interrupted / "results" / "sweeps").rglob(f"{job}_0_log.*")
    assert any("resumed at step" in p.read_text() for p in job_logs), "resumed from a checkpoint"

    # The same point without interruption, as a plain single run: same hash, same numbers.
    plain = sh.harness_run(
        ["model=s4_legs", *sh.tiny(reference, cache=cache, **LONG)], reference, timeout=300
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    (ref,) = sh.runs(reference)
    assert ref.data.tags["config_hash"] == digest
    curve, ref_curve = (
        sh.loss_curve(interrupted, run.info.run_id),
        sh.loss_curve(reference, ref.info.run_id),
    )
    assert sorted(curve) == sorted(ref_curve) == list(range(1, LONG["steps"] + 1))
    assert curve == pytest.approx(ref_curve, rel=1e-6, abs=1e-9)
    for key in ("best/val_loss", "best/test_loss", "best/step"):
        assert run.data.metrics[key] == pytest.approx(ref.data.metrics[key], rel=1e-6), key


@pytest.mark.slow  # SLURM faults; the array sweep stays in the default suite
def test_requeue_limit_ends_the_run_failed(tmp_path: Path) -> None:
    limited = ["-m", *SLURM, "hydra.launcher.max_requeues=0", "model=s4_legs"]
    launcher = sh.harness_run_background([*limited, *sh.tiny(tmp_path, **LONG)], tmp_path)
    _, job = _wait_for_training(tmp_path, launcher)
    subprocess.run(["scontrol", "requeue", job], check=True)
    assert launcher.wait(timeout=400) != 0
    (run,) = sh.runs(tmp_path)
    assert run.info.status == "FAILED"
    reason = run.data.tags["status_reason"]
    assert reason == "requeued 1 times, more than hydra.launcher.max_requeues=0"
    table = sh.harness_status(tmp_path)
    assert "failed" in table.stdout and "max_requeues=0" in table.stdout, table.stdout


@pytest.mark.slow  # SLURM faults; the array sweep stays in the default suite
def test_crashing_points_fail_with_their_reason_and_leave_no_half_made_run(tmp_path: Path) -> None:
    """Both points meet a file where their data cache should be a folder: a user error before
    the run is created (the cache folder is operational, not hashed, so it cannot tell two points
    apart). Hydra reports the failure, the error names the file, MLflow holds no half-made run,
    and status counts both points failed."""
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a file where the data cache should be a folder\n")
    bad = blocker / "cache"
    args = ["-m", *SLURM, "model=s4d_legs", *sh.tiny(tmp_path), f"task.cache_dir={bad}", "seed=0,1"]
    done = sh.harness_run(args, tmp_path, timeout=300)
    assert done.returncode != 0, "Hydra reports the failed points"
    assert str(blocker) in done.stdout + done.stderr, "the points' error names the file in the way"
    assert sh.runs(tmp_path) == []

    table = sh.harness_status(tmp_path)
    assert table.returncode == 0, table.stderr
    assert "2 failed" in table.stdout
