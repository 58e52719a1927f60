"""The local launcher (`hydra/launcher=local`) end to end, and the launcher's and status's logic.

The sweep test runs the real chain: `python -m harness.run -m hydra/launcher=local` with 3 models x
2 seeds as submitit jobs on this machine, at most 2 at once, then reads MLflow and `ssm-bench
status` (`python -m harness.cluster.status`). The unit tests pin the pieces that decide what to
submit and what the status table says.
"""

import re
from pathlib import Path

import cloudpickle
import pytest
import sweep_helpers as sh

from common import UserError
from harness.cluster import launcher
from harness.cluster.jobs import parse_elapsed, result_outcome
from harness.cluster.launcher import job_threads, local_slots, slurm_job_name, swept
from harness.cluster.progress import Outcome, summary_table
from harness.cluster.status import RunView, row_state
from harness.cluster.status import main as status_main

MODELS = ("s4_legs", "s4_fout", "hope")
SEEDS = (0, 1)
RESUBMIT = "preempted; resubmit the sweep to resume"


def _max_overlap(intervals: list[tuple[int, int]]) -> int:
    """Largest number of [start, end] intervals that hold one common instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_local_sweep_runs_six_points_two_at_a_time(tmp_path: Path) -> None:
    args = [
        "-m",
        "hydra/launcher=local",
        "hydra.launcher.max_parallel=2",
        f"model={','.join(MODELS)}",
        f"seed={','.join(map(str, SEEDS))}",
        *sh.tiny(tmp_path),
    ]
    # A thread count the launcher must replace: each job gets cpus_per_task (1) threads.
    done = sh.harness_run(args, tmp_path, timeout=400, OMP_NUM_THREADS="3")
    assert done.returncode == 0, done.stderr[-3000:]

    found = sh.runs(tmp_path)
    assert sorted((r.data.tags["model"], int(r.data.tags["seed"])) for r in found) == sorted(
        (m, s) for m in MODELS for s in SEEDS
    ), "every point exactly once"
    assert {r.info.status for r in found} == {"FINISHED"}
    assert all("best/val_loss" in r.data.metrics for r in found)
    assert len({r.data.tags["config_hash"] for r in found}) == len(found)
    # Each point ran in its own local job (one controller process each), never more than 2 at once.
    jobs = {sh.job_record(tmp_path, r.data.tags["config_hash"])["job_id"] for r in found}
    assert len(jobs) == len(found)
    spans = [(r.info.start_time, r.info.end_time) for r in found]
    assert _max_overlap(spans) <= 2
    threads = job_threads(2, cpus_per_task=1)
    output = done.stdout + done.stderr  # Hydra logs to stdout
    assert f"local launcher: 2 job(s) at once, {threads} thread(s) per process" in output
    assert {r.data.tags["torch_threads"] for r in found} == {str(threads)}
    assert {r.info.run_name for r in found} == {f"adding/{m}/s{s}" for m in MODELS for s in SEEDS}
    # A line per finished point as it ends, then the summary table of all six.
    for model in MODELS:
        for seed in SEEDS:
            assert re.search(
                rf"#\d+ model={model} seed={seed}: finished, best/val_loss [\d.]+", output
            )
    assert re.search(r"^6 points: 6 finished$", done.stdout, re.M), done.stdout[-2000:]

    table = sh.harness_status(tmp_path)
    assert table.returncode == 0, table.stderr
    assert "6 finished" in table.stdout
    for model in MODELS:
        assert f"model={model}" in table.stdout


def test_job_threads_never_exceed_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 8)
    assert job_threads(2, cpus_per_task=4) == 4
    assert job_threads(4, cpus_per_task=4) == 2  # 4 jobs share 8 cores
    assert job_threads(2, cpus_per_task=2, tasks_per_node=2) == 2
    assert job_threads(16, cpus_per_task=1) == 1  # at least one each
    assert job_threads(1, cpus_per_task=32) == 8
    with pytest.raises(UserError, match="cpus_per_task=0"):
        job_threads(1, cpus_per_task=0)


def test_outcome_lines_and_summary_table() -> None:
    done = Outcome(0, "model=hope seed=1", "finished", "best/val_acc", 43.216, 12.34)
    assert done.line() == "#0 model=hope seed=1: finished, best/val_acc 43.22, 12.3 s"
    failed = Outcome(1, "model=s4_legs seed=0", "failed: non-finite loss", "", float("nan"), 3.0)
    skipped = Outcome(
        2, "model=s4d_lin seed=0", "skipped (finished)", "best/val_loss", 0.5, float("nan")
    )
    table = summary_table([done, failed, skipped]).splitlines()
    assert table[-1] == "3 points: 1 finished, 1 failed, 1 skipped"
    row = next(line for line in table if "model=s4d_lin" in line)
    assert row.split()[-3:] == ["best/val_loss", "0.5", "-"]


def test_swept_labels_keep_only_what_differs() -> None:
    points = [["task=adding", "model=hope", "seed=0"], ["task=adding", "model=hope", "seed=1"]]
    assert swept(points) == ["seed=0", "seed=1"]
    assert swept([["task=adding", "seed=3"]]) == ["task=adding seed=3"]
    # Where results go is no part of what a point is.
    where = ["paths.root=/scratch", "tracking.uri=sqlite:////x.db", "+force=true"]
    assert swept([["seed=0", *where], ["seed=1", *where]]) == ["seed=0", "seed=1"]
    assert swept([["model=hope", *where]]) == ["model=hope"]


def test_local_slots_split_gpus_and_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert local_slots(None, gpus_per_node=1, cpus_per_task=1) == [[0], [1], [2]]
    assert local_slots(None, gpus_per_node=2, cpus_per_task=1) == [[0, 1]]
    assert local_slots(2, gpus_per_node=1, cpus_per_task=1) == [[0], [1]]
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 8)
    assert local_slots(None, gpus_per_node=0, cpus_per_task=2) == [[]] * 4
    assert local_slots(3, gpus_per_node=0, cpus_per_task=1) == [[]] * 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError, match="gpus_per_node=1"):
        local_slots(None, gpus_per_node=1, cpus_per_task=1)
    with pytest.raises(UserError, match="max_parallel=0"):
        local_slots(0, gpus_per_node=0, cpus_per_task=1)


def _run(status: str, reason: str = "", requeues: int = 0) -> RunView:
    return RunView("r1", status, reason, requeues)


NO_RUN = "stopped before its MLflow run was created; see the job's log (--logs)"


@pytest.mark.parametrize(
    ("job_state", "run", "skipped", "expected"),
    [
        ("COMPLETED", _run("FINISHED"), False, ("finished", "")),
        (None, _run("FINISHED"), True, ("finished", "")),
        ("COMPLETED", _run("FAILED", "error: no /x"), False, ("failed", "error: no /x")),
        ("PENDING", None, False, ("pending", "")),
        ("PENDING", _run("KILLED", "preempted", 1), False, ("requeued", "")),
        ("REQUEUED", _run("KILLED", "preempted", 1), False, ("requeued", "")),
        ("RUNNING", _run("RUNNING"), False, ("running", "")),
        ("CANCELLED", _run("RUNNING"), False, ("failed", "job CANCELLED")),
        ("TIMEOUT", None, False, ("failed", "job TIMEOUT")),
        ("COMPLETED", _run("KILLED", "preempted"), False, ("preempted", RESUBMIT)),
        (None, None, False, ("pending", "not submitted")),
        ("COMPLETED", None, False, ("failed", NO_RUN)),
        (None, _run("FAILED", "x"), True, ("failed", "x")),
    ],
)  # fmt: skip
def test_status_joins_job_state_and_mlflow(job_state, run, skipped, expected) -> None:
    requeues = run.requeues if run is not None else 0
    assert row_state(job_state, run, skipped, requeues) == expected


def test_status_names_a_missing_sweep(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert status_main(["no-such-sweep", f"paths.root={tmp_path}"]) == 2
    assert "error: no sweep 'no-such-sweep'" in capsys.readouterr().err
    assert status_main([f"paths.root={tmp_path}"]) == 2
    assert "no sweep launched yet" in capsys.readouterr().err
    assert status_main(["paths.no_such_key=1"]) == 2
    assert "error: bad override" in capsys.readouterr().err


class _WritesMarker:
    """A pickle payload: unpickling it creates the file `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("outcome", ["success", "error"])
def test_result_pickle_outcome_is_read_without_unpickling(tmp_path: Path, outcome: str) -> None:
    marker = tmp_path / "payload-ran"
    result = tmp_path / "0_result.pkl"
    result.write_bytes(cloudpickle.dumps((outcome, _WritesMarker(marker))))
    assert result_outcome(result) == outcome
    assert not marker.exists()


def test_result_outcome_of_a_garbled_file_is_none(tmp_path: Path) -> None:
    result = tmp_path / "0_result.pkl"
    result.write_bytes(b"\x80\x05not a pickle at all")
    assert result_outcome(result) is None


def test_sacct_elapsed_is_parsed_per_job() -> None:
    out = "57_0|34\n57_1|59\n57_2|\n"
    assert parse_elapsed(out) == {"57_0": 34.0, "57_1": 59.0}
    assert slurm_job_name("2026-12-03_09-34-07") == "ssm-bench_2026-12-03_09-34-07"
