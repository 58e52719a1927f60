"""Multi-process runs: submitit's job environment -> torch.distributed, and DDP == one process.

The end-to-end test starts one run as a local submitit job of 2 tasks (`tasks_per_node=2`): the
launcher maps each task's submitit environment to RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
(`harness.cluster.task_env`), the runner joins a gloo group, and rank 0 logs. Its loss curve must
equal a plain 1-process run with the same global batch (2 x 8 = 16), step for step.
"""

from pathlib import Path

import pytest
import sweep_helpers as sh

from harness.cluster import task_env as cluster_env

PER_RANK_BATCH = 8
WORLD = 2


def _slurm_task(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    """Pretend to be one task of a SLURM job (the variables srun sets)."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_dist_env_from_a_two_node_slurm_job(monkeypatch: pytest.MonkeyPatch) -> None:
    _slurm_task(
        monkeypatch,
        SLURM_JOB_ID="123457",
        SLURM_ARRAY_JOB_ID="123450",
        SLURM_ARRAY_TASK_ID="7",
        SLURM_NTASKS="4",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NODEID="1",
        SLURM_PROCID="3",
        SLURM_LOCALID="1",
        SLURM_JOB_NODELIST="gpu[07-08]",
    )
    for key in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        monkeypatch.delenv(key, raising=False)
    environ: dict[str, str] = {"MASTER_PORT": "29999"}
    written = cluster_env.export_dist_env(environ)
    assert environ == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "gpu07",  # the first host of the job runs rank 0
        "MASTER_PORT": "29999",  # a port the user set is kept
    }
    assert "MASTER_PORT" not in written
    # Every task of job 123450_7 derives the same port from the job id alone.
    assert cluster_env.master_port("123450_7") == 20000 + 1234507 % 20000


def test_single_task_job_stays_non_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    _slurm_task(monkeypatch, SLURM_JOB_ID="99", SLURM_NTASKS="1", SLURM_PROCID="0")
    environ: dict[str, str] = {}
    assert cluster_env.export_dist_env(environ) == {}
    assert environ == {}
    with pytest.raises(ValueError, match="no digits"):
        cluster_env.master_port("abc")


@pytest.mark.slow  # two processes of gloo; the quick versions are the environment tests above
def test_two_process_gloo_run_matches_one_process_with_the_same_global_batch(
    tmp_path: Path,
) -> None:
    ddp_root, single_root = tmp_path / "ddp", tmp_path / "single"
    ddp_root.mkdir()
    single_root.mkdir()
    ddp = sh.harness_run(
        [
            "-m",
            "hydra/launcher=local",
            f"hydra.launcher.tasks_per_node={WORLD}",
            "model=s4d_legs",
            *sh.tiny(ddp_root, steps=4),
            f"trainer.batch_size={PER_RANK_BATCH}",
        ],
        ddp_root,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = sh.harness_run(
        [
            "model=s4d_legs",
            *sh.tiny(single_root, steps=4),
            f"trainer.batch_size={WORLD * PER_RANK_BATCH}",
        ],
        single_root,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    (ddp_run,) = sh.runs(ddp_root)  # only rank 0 talks to MLflow
    (single_run,) = sh.runs(single_root)
    assert ddp_run.data.tags["world_size"] == str(WORLD)
    assert single_run.data.tags["world_size"] == "1"
    for run in (ddp_run, single_run):
        assert run.info.status == "FINISHED"
        assert run.data.tags["effective_batch_size"] == str(WORLD * PER_RANK_BATCH)
    curve = sh.loss_curve(ddp_root, ddp_run.info.run_id)
    reference = sh.loss_curve(single_root, single_run.info.run_id)
    assert sorted(curve) == sorted(reference) == [1, 2, 3, 4]
    assert curve == pytest.approx(reference, rel=1e-5, abs=1e-7)
    val = sh.loss_curve(ddp_root, ddp_run.info.run_id, "val/loss")
    assert val == pytest.approx(
        sh.loss_curve(single_root, single_run.info.run_id, "val/loss"), rel=1e-5
    )
