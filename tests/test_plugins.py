"""A plugin package adds a model and a task: the README's example, installed from the README.

The files of the README section "Your own models and tasks (plugins)" (its fenced blocks whose first
line names the file) are written into a temporary folder, with a `.dist-info` holding the
`entry_points.txt` that installing its `pyproject.toml` would write; that folder goes on PYTHONPATH
of the subprocesses, as an installed package would be on their path. Then, as a user would:
`ssm-bench list` shows both, one sweep trains the plugin model on a built-in task and a built-in
model on the plugin task (one optimizer step each), and `ssm-bench report` shows both.
"""

import csv
import io
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import sweep_helpers as sh

from harness.layout import PROJECT_ROOT

FILE_BLOCK = re.compile(r"```(?:python|yaml|toml)\n# (\S+)\n(.*?)```", re.S)


def readme_files() -> dict[str, str]:
    """path -> text of every fenced README block of the plugin section that names its file."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Your own models and tasks (plugins)", 1)[1].split("\n## ", 1)[0]
    return {path: text for path, text in FILE_BLOCK.findall(section)}


def install(files: dict[str, str], site: Path) -> None:
    """Write the package under `site` (importable from there) and its entry point metadata."""
    project = tomllib.loads(files.pop("pyproject.toml"))
    for path, text in files.items():
        target = site / path  # paths are relative to the project folder, as site-packages
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for package in ("my_ssm", "my_ssm/configs"):
        (site / package / "__init__.py").touch()
    info = site / "my_ssm-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ssm\nVersion: 0.1.0\n")
    groups = project["project"]["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
            for group, entries in groups.items()
        )
    )


def ssm_bench(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`ssm-bench <args>` (as `python -m harness.console`) with the plugin on the path."""
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cache = str(cwd / "cache")  # generated data stays in the test's folder
    return sh.run_module("harness.console", args, cwd, 600, PYTHONPATH=path, SSM_BENCH_CACHE=cache)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    files = readme_files()
    assert {
        "pyproject.toml",
        "my_ssm/models.py",
        "my_ssm/tasks.py",
        "my_ssm/configs/model/decay_ssm.yaml",
        "my_ssm/configs/task/majority.yaml",
    } <= set(files), sorted(files)
    root = tmp_path_factory.mktemp("plugin_site")
    install(files, root)
    return root


def test_list_shows_the_plugin_next_to_the_built_ins(site: Path, tmp_path: Path) -> None:
    done = ssm_bench(["list"], site, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "models (10)" in done.stdout and "tasks (15)" in done.stdout, done.stdout[:300]
    assert re.search(r"^decay_ssm +Real diagonal SSM.*\[plugin my_ssm.models\]$", done.stdout, re.M)
    assert re.search(
        r"^majority +Majority of a random bit string.*\[plugin my_ssm.tasks\]$", done.stdout, re.M
    )
    assert "decay_max=8.0" in done.stdout and "seq_len=63" in done.stdout


def test_plugin_model_and_task_train_and_reach_the_report(site: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = [
        "run",
        "-m",
        "model=decay_ssm,s4d_lin",
        "task=adding,majority",
        "task.seq_len=15",
        "task.n_train=16",
        "task.n_val=8",
        "task.n_test=8",
        "backbone.d_model=8",
        "backbone.n_layers=1",
        "model.layer.d_state=4",
        "trainer.batch_size=8",
        "trainer.max_steps=1",
        "trainer.device=cpu",
        "trainer.progress=false",
        f"paths.root={tmp_path}",
        f"tracking.uri={store}",
    ]
    done = ssm_bench(sweep, site, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "report"
    done = ssm_bench(
        ["report", "--tracking-uri", store, "--out", str(out), "--metric", "best/step"],
        site,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    measured = {row["model"]: row for row in rows if row["published"] == "False"}
    assert {"decay_ssm", "s4d_lin"} <= set(measured)
    for model in ("decay_ssm", "s4d_lin"):  # every model x task point trained its one step
        for task in ("adding", "majority"):
            assert float(measured[model][f"{task}_mean"]) == 1.0, (model, task, measured[model])


def test_an_unknown_name_lists_the_plugin_names(site: Path, tmp_path: Path) -> None:
    done = ssm_bench(["run", "model=decay_sm"], site, tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown model 'decay_sm'") and "decay_ssm" in done.stderr
