"""What a rerun finds after a kill or a mistake, and never loses (issues 23 and 25):

- a `force=true` replacement killed at every step of its promotion (`harness.run.rundir.promote`):
  the next start completes it, keeps both generations, trains nothing;
- an unfinished point resumed with another `tracking.uri`: refused, its checkpoints kept;
- a damaged run-id file: set aside with a warning, the point taken as MLflow knows it;
- a damaged `job.json` and a local job id that is now an unrelated process.
"""

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from common import UserError
from harness import layout
from harness.cluster import jobs, progress
from harness.run import rundir
from harness.run.identity import resolve, run_dir
from harness.run.point import execute
from harness.run.rundir import point_state
from harness.run.train import Trainer

ONE_EPOCH = ["model=s4d_lin", "trainer.deterministic=true", "trainer.max_epochs=1"]
MUTATIONS = ("replace", "unlink", "rmdir", "mkdir")  # what the promotion does to the disk


class Kill(BaseException):
    """Stands for a SIGKILL: nothing after it runs, no handler sees it."""


def _store_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ssm-bench")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _count_disk_operations(monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> list[str]:
    """Count every change `_promote` makes to the disk (renames, deletions, new folders and
    files, also inside `shutil.rmtree`), raising `Kill` instead of the `kill_at`-th."""
    done: list[str] = []

    def counted(name: str, real):
        def operation(*args, **kwargs):
            if name == "open" and not args[1] & os.O_CREAT:
                return real(*args, **kwargs)
            what = f"{name} {Path(str(args[0])).name}"
            if len(done) + 1 == kill_at:
                raise Kill(f"killed before operation {kill_at} ({what})")
            done.append(what)
            return real(*args, **kwargs)

        return operation

    for name in (*MUTATIONS, "open"):
        monkeypatch.setattr(os, name, counted(name, getattr(os, name)))
    return done


def _no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self):
        raise AssertionError("a rerun after a killed promotion trained again")

    monkeypatch.setattr(Trainer, "fit", refuse)


def _promotion_kills(make_cfg, tracking_env, monkeypatch, every: bool) -> int:
    cfg, forced = make_cfg(*ONE_EPOCH), make_cfg(*ONE_EPOCH, "force=true")
    execute(cfg)  # generation A
    execute(forced)  # generation B; A is in previous/
    directory = run_dir(cfg)
    real_promote = rundir.promote

    def killed_before_promotion(_: Path) -> None:
        raise Kill("killed once the force=true run finished")

    monkeypatch.setattr(rundir, "promote", killed_before_promotion)
    with pytest.raises(Kill):
        execute(forced)  # generation C, finished in .force/, not yet in place
    monkeypatch.undo()
    newest = (directory / layout.FORCE_DIR / layout.SUMMARY_FILE).read_bytes()
    kept = (directory / layout.SUMMARY_FILE).read_bytes()
    kept_checkpoint = (directory / layout.CHECKPOINT).read_bytes()
    snapshot = directory.parent / "snapshot"
    shutil.copytree(directory, snapshot)
    runs = len(_store_runs(tracking_env.uri))

    operations = _count_disk_operations(monkeypatch, None)
    real_promote(directory)
    monkeypatch.undo()
    marks = [i for i, op in enumerate(operations, 1) if op.endswith(layout.PROMOTED_MARK)]
    first_retire = marks[-1] + 1  # the mark is gone, `.old/` not yet `previous/`
    points = range(1, len(operations) + 1) if every else sorted({1, *marks, first_retire})
    for kill_at in points:
        shutil.rmtree(directory)
        shutil.copytree(snapshot, directory)
        _count_disk_operations(monkeypatch, kill_at)
        with pytest.raises(Kill):
            real_promote(directory)
        monkeypatch.undo()
        _no_training(monkeypatch)
        again = make_cfg(*ONE_EPOCH, "force=true") if kill_at % 2 else cfg
        summary = execute(again)  # completes the promotion, trains nothing
        monkeypatch.undo()
        where = f"killed before operation {kill_at} of {len(operations)}: {operations[kill_at - 1]}"
        assert (directory / layout.SUMMARY_FILE).read_bytes() == newest, where
        assert summary["mlflow_run_id"] == rundir.read_run_id(resolve(cfg), directory), where
        previous = directory / layout.PREVIOUS_DIR
        assert (previous / layout.SUMMARY_FILE).read_bytes() == kept, where
        assert (previous / layout.CHECKPOINT).read_bytes() == kept_checkpoint, where
        assert not (directory / layout.OLD_DIR).exists(), where
        assert not (directory / layout.FORCE_DIR).exists(), where
        assert point_state(resolve(cfg)) == "finished", where
        assert len(_store_runs(tracking_env.uri)) == runs, where
    return len(points)


def test_force_killed_inside_the_promotion_loses_no_generation(make_cfg, tracking_env, monkeypatch):
    assert _promotion_kills(make_cfg, tracking_env, monkeypatch, every=False) >= 4


@pytest.mark.slow
def test_force_killed_at_every_step_of_the_promotion_loses_no_generation(
    make_cfg, tracking_env, monkeypatch
):
    assert _promotion_kills(make_cfg, tracking_env, monkeypatch, every=True) >= 20


# ------------------------------------------------------------------------- store switch
def _unfinished(make_cfg, monkeypatch) -> Path:
    """A point stopped by a hard kill after its second optimizer step (checkpoint written)."""
    cfg = make_cfg(*ONE_EPOCH, "trainer.checkpoint_every=1")
    real_step = Trainer._optimizer_step

    def step_then_kill(self: Trainer) -> None:
        real_step(self)
        if self.step == 2:
            raise KeyboardInterrupt("hard stop")

    monkeypatch.setattr(Trainer, "_optimizer_step", step_then_kill)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg)
    monkeypatch.undo()
    return run_dir(cfg)


def test_resuming_an_unfinished_point_in_another_store_is_refused_and_keeps_it(
    make_cfg, tracking_env, monkeypatch, tmp_path
):
    directory = _unfinished(make_cfg, monkeypatch)
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    assert layout.CHECKPOINT in before
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    with pytest.raises(UserError, match="unfinished MLflow run") as error:
        execute(make_cfg(*ONE_EPOCH, "trainer.checkpoint_every=1", f"tracking.uri={other}"))
    message = str(error.value)
    assert f"in {tracking_env.uri}" in message and f"tracking.uri={tracking_env.uri}" in message
    assert "\n" not in message
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    assert after == before  # checkpoints and the run id untouched
    assert _store_runs(other) == []
    # Back in its own store it resumes into the same run.
    summary = execute(make_cfg(*ONE_EPOCH, "trainer.checkpoint_every=1"))
    (run,) = _store_runs(tracking_env.uri)
    assert summary["mlflow_run_id"] == run.info.run_id and run.data.tags["requeues"] == "1"


def test_a_run_directory_without_its_store_recorded_is_refused_too(
    make_cfg, tracking_env, monkeypatch, tmp_path
):
    directory = _unfinished(make_cfg, monkeypatch)
    (directory / layout.TRACKING_FILE).unlink()  # written before the store was recorded
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    with pytest.raises(UserError, match="another MLflow store"):
        execute(make_cfg(*ONE_EPOCH, "trainer.checkpoint_every=1", f"tracking.uri={other}"))
    assert (directory / layout.CHECKPOINT).is_file()


# ------------------------------------------------------------------------- damaged files
@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x81binary", b"not-a-run-id\n", b""])
def test_a_damaged_run_id_file_is_set_aside_and_the_point_read_from_mlflow(
    make_cfg, tracking_env, monkeypatch, caplog, content
):
    cfg = make_cfg(*ONE_EPOCH)
    first = execute(cfg)
    id_file = run_dir(cfg) / layout.RUN_ID_FILE
    id_file.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert point_state(resolve(cfg)) == "finished"
    assert "damaged" in caplog.text and str(id_file) in caplog.text
    assert id_file.read_text().strip() == first["mlflow_run_id"]  # restored from MLflow
    assert (id_file.parent / (layout.RUN_ID_FILE + layout.DAMAGED_SUFFIX)).read_bytes() == content
    id_file.write_bytes(content)
    _no_training(monkeypatch)
    assert execute(cfg)["mlflow_run_id"] == first["mlflow_run_id"]


def test_a_damaged_run_id_file_of_an_unfinished_point_resumes_its_run(
    make_cfg, tracking_env, monkeypatch
):
    directory = _unfinished(make_cfg, monkeypatch)
    run_id = (directory / layout.RUN_ID_FILE).read_text().strip()
    (directory / layout.RUN_ID_FILE).write_bytes(b"\x00\xff" * 20)
    summary = execute(make_cfg(*ONE_EPOCH, "trainer.checkpoint_every=1"))
    assert summary["mlflow_run_id"] == run_id
    assert len(_store_runs(tracking_env.uri)) == 1


def test_a_damaged_job_record_and_summary_are_read_as_none(tmp_path: Path) -> None:
    (tmp_path / layout.JOB_RECORD).write_bytes(b"\x89PNG\x00\xff")
    assert jobs.JobRecord.load(tmp_path) is None
    assert (tmp_path / (layout.JOB_RECORD + layout.DAMAGED_SUFFIX)).is_file()
    (tmp_path / layout.JOB_RECORD).write_text('{"job_id": 1}')
    assert jobs.JobRecord.load(tmp_path) is None
    (tmp_path / layout.SUMMARY_FILE).write_bytes(b"\xff{")
    assert progress._score(tmp_path)[0] == ""


# ------------------------------------------------------------------------- local job ids
def test_a_local_job_id_now_naming_an_unrelated_process_is_not_running(tmp_path: Path) -> None:
    unrelated = str(os.getpid())  # alive, but not a submitit job
    record = jobs.JobRecord("0", "local", str(tmp_path), "s", "2026-01-01T00:00:00+00:00")
    reused = jobs.JobRecord(unrelated, "local", str(tmp_path), "s", record.submitted, "1")
    older = jobs.JobRecord(unrelated, "local", str(tmp_path), "s", record.submitted)
    assert jobs.job_states([reused]) == {unrelated: "INTERRUPTED"}  # another start time
    assert jobs.job_states([older]) == {unrelated: "INTERRUPTED"}  # not a submitit controller
    # The job's own controller process is running, by start time and by command line.
    controller = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "submitit.local._local"]
    )
    try:
        time.sleep(0.2)
        pid = str(controller.pid)
        record = jobs.JobRecord.new(pid, "local", tmp_path, "s")
        assert record.process_start is not None
        legacy = jobs.JobRecord(pid, "local", str(tmp_path), "s", record.submitted)
        assert jobs.job_states([record]) == {pid: "RUNNING"}
        assert jobs.job_states([legacy]) == {pid: "RUNNING"}
    finally:
        controller.kill()
        controller.wait()
