"""Fault injection: a real `python -m harness.run` process is SIGKILLed at step boundaries, in
the middle of checkpoint writes, between the two renames of a checkpoint rotation and right
after metrics were logged, then started again until it finishes. The result must be the
uninterrupted run's: the same final metrics and weights (bit for bit, `trainer.deterministic`),
one MLflow run, one value per metric and step, every param and artifact, no temporary file.

The quick test kills three times; the slow one (`-m slow`) at least 20 times at random points.

Beyond training (issues 23 and 25): a `force=true` run killed inside the promotion of its results
(every rename of it in the slow test), a store killed while it creates its tables, two runs
started at once on a fresh store, and an unfinished point resumed with another `tracking.uri`.
"""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sweep_helpers as sh
import torch
from mlflow import MlflowClient

from harness import layout
from harness.run import checkpoint

# Runs `python -m harness.run <args>` after arranging a SIGKILL of this process at the n-th
# event of a kind: `step` (after an optimizer step), `write` (halfway through writing a
# checkpoint), `rotate` (after the newest checkpoint became the previous one, before the new one
# is written) or `log` (after a metrics request reached the store).
KILLER = r"""
import os, signal, sys

kind, n = sys.argv[1], int(sys.argv[2])
sys.argv = ["-m", *sys.argv[3:]]
seen = [0]


def event():
    seen[0] += 1
    if seen[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)


if kind == "step":
    from harness.run.train import Trainer

    real_step = Trainer._optimizer_step

    def optimizer_step(self):
        real_step(self)
        event()

    Trainer._optimizer_step = optimizer_step
elif kind == "write":
    import torch

    real_save = torch.save

    def save(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj and seen[0] + 1 == n:
            handle.write(b"torn checkpoint")
            handle.flush()
        if isinstance(obj, dict) and "optimizer" in obj:
            event()
        return real_save(obj, handle, *args, **kwargs)

    torch.save = save
elif kind == "rotate":
    from harness import layout
    from harness.run import checkpoint

    real_atomic = checkpoint.save_atomic

    def save_atomic(obj, path):
        if path.name == layout.CHECKPOINT:
            event()
        return real_atomic(obj, path)

    checkpoint.save_atomic = save_atomic
elif kind == "log":
    from harness.run.tracking import TrackedRun

    real_log = TrackedRun.log_metrics

    def log_metrics(self, metrics, step):
        real_log(self, metrics, step)
        event()

    TrackedRun.log_metrics = log_metrics
elif kind == "promote":  # at the n-th rename while a force=true run's results are put in place
    from harness import layout  # (n = 0: at the last one, `.old/` replacing `previous/`)
    from harness.run import rundir

    real_promote, real_replace = rundir.promote, os.replace

    def replace(src, dst):
        if n == 0 and os.path.basename(dst) == layout.PREVIOUS_DIR:
            os.kill(os.getpid(), signal.SIGKILL)
        event()
        return real_replace(src, dst)

    def promote(directory):
        os.replace = replace
        try:
            real_promote(directory)
        finally:
            os.replace = real_replace

    rundir.promote = promote
elif kind == "schema":  # after the n-th schema statement while the fresh store is created
    import sqlalchemy
    from sqlalchemy.engine import Engine

    @sqlalchemy.event.listens_for(Engine, "after_cursor_execute")
    def after(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")):
            event()
import runpy

runpy.run_module("harness.run", run_name="__main__", alter_sys=True)
"""
TIMING = ("perf/", "wall_time_s")  # differ between any two runs


def _config(root: Path, cache: Path, steps: int) -> list[str]:
    return [
        *sh.tiny(root, steps=steps, cache=cache),
        "trainer.max_epochs=1000",
        "trainer.checkpoint_every=2",
        "backbone.dropout=0.1",  # the RNG state matters
    ]


def _command(args: list[str], kill: tuple[str, int] | None) -> list[str]:
    if kill is None:
        return [sys.executable, "-m", "harness.run", *args]
    return [sys.executable, "-c", KILLER, kill[0], str(kill[1]), *args]


def _run(args: list[str], root: Path, kill: tuple[str, int] | None) -> int:
    command = _command(args, kill)
    done = subprocess.run(command, cwd=root, env=sh.env(), capture_output=True, text=True)
    assert done.returncode in (0, -9), done.stderr[-3000:]
    return done.returncode


def _only_run(root: Path):
    (run,) = sh.runs(root)
    return run


def _histories(root: Path, run) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(tracking_uri=sh.store_uri(root))
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
        if not key.startswith(TIMING)
    }


def _survives(tmp_path: Path, steps: int, kills: list[tuple[str, int]]) -> int:
    """Kill a run at each of `kills` in turn, rerun it to the end, compare with an uninterrupted
    run; returns how many kills happened (a kill point past the end of the run does not)."""
    cache, reference, faulty = tmp_path / "cache", tmp_path / "reference", tmp_path / "faulty"
    reference.mkdir()
    faulty.mkdir()
    assert _run(_config(reference, cache, steps), reference, None) == 0
    killed = 0
    for kill in kills:
        if _run(_config(faulty, cache, steps), faulty, kill) == 0:
            break
        killed += 1
    else:
        assert _run(_config(faulty, cache, steps), faulty, None) == 0

    expected, got = _only_run(reference), _only_run(faulty)
    assert got.info.status == "FINISHED"
    final = {k: v for k, v in expected.data.metrics.items() if not k.startswith(TIMING)}
    assert {k: got.data.metrics[k] for k in final} == final
    histories, expected_histories = _histories(faulty, got), _histories(reference, expected)
    for key, points in histories.items():
        steps_logged = [step for step, _ in points]
        assert len(steps_logged) == len(set(steps_logged)), f"{key}: a step logged twice"
    assert histories == expected_histories

    def normalized(params: dict[str, str], root: Path) -> dict[str, str]:
        return {k: v.replace(str(root), "<root>") for k, v in params.items()}

    assert normalized(got.data.params, faulty) == normalized(expected.data.params, reference)
    client = MlflowClient(tracking_uri=sh.store_uri(faulty))
    artifacts = {a.path for a in client.list_artifacts(got.info.run_id)}
    assert {"config.yaml", "param_groups.json", "summary.json"} <= artifacts

    digest = got.data.tags["config_hash"]
    run_dir = faulty / "results" / "runs" / digest
    weights = checkpoint.load(run_dir / layout.CHECKPOINT)["model"]
    reference_dir = reference / "results" / "runs" / digest
    for key, value in checkpoint.load(reference_dir / layout.CHECKPOINT)["model"].items():
        assert torch.equal(weights[key], value), key
    assert not list(run_dir.glob(".*.tmp"))
    return killed


def test_run_killed_at_a_step_mid_write_and_mid_rotation_ends_as_if_never_killed(tmp_path):
    kills = [("step", 3), ("write", 2), ("rotate", 2)]
    assert _survives(tmp_path, steps=10, kills=kills) == len(kills)


@pytest.mark.slow
def test_run_killed_twenty_times_at_random_points_ends_as_if_never_killed(tmp_path):
    rng = random.Random(12)
    ranges = {"step": (1, 7), "write": (1, 3), "rotate": (1, 3), "log": (1, 14)}
    kills = []
    for _ in range(24):
        kind = rng.choice(sorted(ranges))
        kills.append((kind, rng.randint(*ranges[kind])))
    killed = _survives(tmp_path, steps=120, kills=kills)
    print(f"kill points survived: {killed} of {len(kills)} planned")
    assert killed >= 20


# ---------------------------------------------------------------- promotion, store, store switch
def _summary(root: Path, digest: str, *where: str) -> dict:
    path = root / "results" / "runs" / digest / Path(*where) / layout.SUMMARY_FILE
    return json.loads(path.read_text())


def _promotion_survives(tmp_path: Path, kill_points: list[int]) -> int:
    """A finished point, then per kill point a force=true run SIGKILLed at that rename of its
    promotion and a plain rerun: the newest run is in place, the one it replaced in previous/,
    no third run trained, nothing half-moved. Returns how many kills happened (a kill point past
    the promotion's last rename ends the loop)."""
    root = tmp_path / "promotion"
    root.mkdir()
    args = _config(root, tmp_path / "cache", steps=4)
    assert _run(args, root, None) == 0
    (first,) = sh.runs(root)
    digest = first.data.tags["config_hash"]
    for n in kill_points:
        before = {r.info.run_id for r in sh.runs(root)}
        kept = _summary(root, digest)["mlflow_run_id"]
        if _run([*args, "force=true"], root, ("promote", n)) == 0:
            return kill_points.index(n)
        (forced,) = [r for r in sh.runs(root) if r.info.run_id not in before]
        assert forced.info.status == "FINISHED"
        assert _run(args, root, None) == 0  # completes the promotion
        assert _summary(root, digest)["mlflow_run_id"] == forced.info.run_id, n
        assert _summary(root, digest, layout.PREVIOUS_DIR)["mlflow_run_id"] == kept, n
        assert len(sh.runs(root)) == len(before) + 1, n  # nothing trained on the rerun
        run_dir = root / "results" / "runs" / digest
        assert not (run_dir / layout.OLD_DIR).exists() and not (run_dir / layout.FORCE_DIR).exists()
    return len(kill_points)


@pytest.mark.slow  # quick version: test_run_recovery (in process)
def test_force_killed_inside_the_promotion_is_completed_without_losing_a_generation(tmp_path):
    # the last rename (0): `.old/` replacing previous/ once the completion mark is gone
    assert _promotion_survives(tmp_path, [0]) == 1


@pytest.mark.slow
def test_force_killed_at_every_rename_of_the_promotion(tmp_path):
    assert _promotion_survives(tmp_path, list(range(1, 40))) >= 15


@pytest.mark.slow  # quick version: test_tracking_store
def test_a_run_killed_while_its_fresh_store_creates_tables_runs_next_time(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    args = _config(root, tmp_path / "cache", steps=4)
    assert _run(args, root, ("schema", 60)) == -9
    assert _run(args, root, None) == 0
    (run,) = sh.runs(root)
    assert run.info.status == "FINISHED"


@pytest.mark.slow  # quick version: test_tracking_store
def test_two_runs_started_at_once_on_a_fresh_store_both_finish(tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    starts = [
        subprocess.Popen(
            _command([*_config(root, tmp_path / "cache", steps=4), f"seed={seed}"], None),
            cwd=root,
            env=sh.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for process in starts:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    assert sorted(r.info.status for r in sh.runs(root)) == ["FINISHED", "FINISHED"]


@pytest.mark.slow  # quick version: test_run_recovery (in process)
def test_store_switch_resume_is_refused_and_a_damaged_run_id_is_read_from_mlflow(tmp_path):
    root = tmp_path / "switch"
    root.mkdir()
    args = _config(root, tmp_path / "cache", steps=10)
    assert _run(args, root, ("step", 5)) == -9
    (run,) = sh.runs(root)
    run_dir = root / "results" / "runs" / run.data.tags["config_hash"]
    checkpoint_before = (run_dir / layout.CHECKPOINT).read_bytes()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    done = subprocess.run(
        _command([*args, f"tracking.uri={other}"], None),
        cwd=root,
        env=sh.env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and sh.store_uri(root) in errors[0], done.stderr[-3000:]
    assert (run_dir / layout.CHECKPOINT).read_bytes() == checkpoint_before
    assert _run(args, root, None) == 0  # in its own store it resumes the same run
    (resumed,) = sh.runs(root)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    # Its run-id file damaged: set aside with a warning, the point read from MLflow, no traceback.
    (run_dir / layout.RUN_ID_FILE).write_bytes(b"\xff\xfe\x00binary")
    command = _command(args, None)
    done = subprocess.run(command, cwd=root, env=sh.env(), capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in output, output[-3000:]
    assert "damaged" in output and "already finished" in output
    assert (run_dir / layout.RUN_ID_FILE).read_text().strip() == run.info.run_id
    assert len(sh.runs(root)) == 1
