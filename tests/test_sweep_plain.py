"""A plain `python -m harness.run -m ...` sweep (the default sequential launcher) is first-class.

It prints its sweep id, a line per point and a closing table, writes the manifest `sweep.json`;
`status` shows the newest sweep by launch time and finds one by folder name or id; `report
--sweep <rerun id>` finds the points the rerun skipped as finished (through the manifest).
"""

import json
import os
import re
from pathlib import Path

import pytest
import sweep_helpers as sh

from common import UserError
from harness.cluster import progress
from harness.cluster.status import find_manifest, status_table
from harness.cluster.status import main as status_main
from harness.report.load import RunFilter, load_runs, sweep_hashes


def _sweep_id(stdout: str) -> str:
    found = re.search(r"^sweep (\S+) \(.*\): (\d+) points", stdout, re.M)
    assert found, stdout[-2000:]
    return found.group(1)


def test_plain_sweep_has_id_lines_table_manifest_status_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["-m", "seed=0,1", *sh.tiny(tmp_path, steps=2)]
    first = sh.harness_run(args, tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    first_id = _sweep_id(first.stdout)
    output = first.stdout + first.stderr
    for seed in (0, 1):
        assert re.search(rf"#\d seed={seed}: finished, best/val_loss [\d.]+, [\d.]+ s", output)
    assert re.search(r"^2 points: 2 finished$", first.stdout, re.M), first.stdout[-2000:]
    manifest = json.loads((tmp_path / "results/sweeps" / first_id / "sweep.json").read_text())
    assert manifest["executor"] == "process"
    assert [p["outcome"] for p in manifest["points"]] == ["finished", "finished"]

    rerun = sh.harness_run(args, tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rerun_id = _sweep_id(rerun.stdout)
    assert rerun_id != first_id
    assert re.search(r"^2 points: 2 skipped$", rerun.stdout, re.M), rerun.stdout[-2000:]
    assert len(sh.runs(tmp_path)) == 2, "the rerun trained nothing"

    # Without a name: the rerun (the newest launch), and the line says it is the latest.
    root = f"paths.root={tmp_path}"
    assert status_main([root]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"sweep {rerun_id} (") and "the latest of 2" in shown
    assert "2 finished" in shown  # skipped as finished: their runs are FINISHED
    # By folder name, and by folder path.
    assert status_main([first_id, root]) == 0
    assert "2 finished" in capsys.readouterr().out
    assert status_main([str(tmp_path / "results/sweeps" / first_id), root]) == 0
    assert "2 finished" in capsys.readouterr().out

    # report --sweep <rerun id>: the two runs the rerun skipped, though they carry the first's tag.
    hashes = sweep_hashes(tmp_path / "results/sweeps", (rerun_id,))
    runs = load_runs(sh.store_uri(tmp_path), RunFilter(sweeps=(rerun_id,), sweep_points=hashes))
    assert len(runs) == 2 and set(runs["sweep"]) == {first_id}


def _manifest(folder: Path, launched: str, sweep: str, mtime: float) -> Path:
    folder.mkdir(parents=True)
    path = folder / "sweep.json"
    path.write_text(json.dumps({"sweep": sweep, "launched": launched, "points": []}))
    os.utime(path, (mtime, mtime))
    return path


def test_latest_sweep_is_the_last_launched_not_the_last_written(tmp_path: Path) -> None:
    # A SLURM sweep launched earlier rewrites its manifest as its jobs end (newer mtime).
    old = _manifest(tmp_path / "a-slurm", "2026-01-01T10:00:00+00:00", "a-slurm", 2e9)
    new = _manifest(tmp_path / "b-plain", "2026-01-01T11:00:00+00:00", "b-plain", 1e9)
    assert find_manifest(None, tmp_path) == new
    assert find_manifest("a-slurm", tmp_path) == old
    # A sweep id set by tracking.sweep finds its folder too.
    named = _manifest(tmp_path / "c", "2026-01-01T09:00:00+00:00", "my-study", 1e9)
    assert find_manifest("my-study", tmp_path) == named
    with pytest.raises(UserError, match=r"newest: .*b-plain.*`ssm-bench status` shows the latest"):
        find_manifest("nope", tmp_path)


def test_sequential_sweep_points_after_its_process_ended(tmp_path: Path) -> None:
    """A sequential sweep killed midway: the points it never reached say so, not 'pending'."""
    run_dir = tmp_path / "runs" / "abc"
    run_dir.mkdir(parents=True)
    point = {
        "index": 0,
        "label": "seed=0",
        "config_hash": "abc",
        "run_dir": str(run_dir),
        "action": "submit",
        "outcome": "",
    }
    path = tmp_path / "s" / "sweep.json"
    path.parent.mkdir()
    body = {
        "sweep": "s",
        "executor": "process",
        "pid": 2**22 + 12345,  # above Linux's pid_max: no such process
        "host": os.uname().nodename,
        "tracking_uri": sh.store_uri(tmp_path),
        "points": [point, {**point, "index": 1, "outcome": "failed: bad value"}],
    }
    path.write_text(json.dumps(body))
    table = status_table(path)
    assert list(table["state"]) == ["pending", "failed"]
    assert "not started" in table.loc[0, "reason"]
    assert table.loc[1, "reason"] == "bad value"


@pytest.mark.parametrize(("summary", "shown"), [({"acc_unit": "percent"}, 43.0), ({}, 0.43)])
def test_progress_reads_percent_and_old_fraction_summaries(tmp_path, summary, shown) -> None:
    """A summary of older code (no acc_unit) holds a fraction; lines show percent either way."""
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "best/val_acc": shown}))
    done = progress.outcome(0, "seed=0", tmp_path, None, float("nan"), "finished")
    assert done.value == pytest.approx(43.0)
    assert "best/val_acc 43.00" in done.line()
