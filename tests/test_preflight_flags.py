"""The preflight reads a command line the way Hydra does: Hydra's own flags work, an override that
cannot be parsed and a non-finite or absurd number are one `error:` line before anything exists."""

import subprocess
import sys
from pathlib import Path

import pytest

from common import UserError
from harness.run import preflight


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--cfg", "job", "task=listops_gen", "model=s4d_lin"],
        ["--cfg", "hydra", "model=s4d_lin"],
        ["--cfg", "all", "--resolve", "model=s4d_lin"],
        ["--cfg", "job", "--package", "trainer", "model=s4d_lin"],
        ["--multirun", "model=s4d_lin,hope"],
        ["-m", "model=s4d_lin,hope", "seed=0,1"],
        ["--config-name", "config", "model=hope"],
        ["--help"],
        ["--hydra-help"],
        ["--info", "plugins"],
        ["--shell-completion", "install=bash"],
    ],
)
def test_hydra_flags_are_not_read_as_overrides(argv):
    preflight.check(argv)  # raises UserError if a flag's value is read as an override


def test_config_dir_adds_a_config_folder(tmp_path):
    experiments = tmp_path / "experiment"
    experiments.mkdir()
    (experiments / "mine.yaml").write_text("# @package _global_\ntrainer: {max_epochs: 7}\n")
    preflight.check(["--config-dir", str(tmp_path), "experiment=mine"])
    with pytest.raises(UserError, match="experiment"):
        preflight.check(["experiment=mine"])  # without the folder it is unknown


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path):
    root = tmp_path / "root"
    done = _cli(
        ["--cfg", "job", "task=listops_gen", "model=s4d_lin", f"paths.root={root}"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "name: listops_gen" in done.stdout and "name: s4d_lin" in done.stdout
    assert not root.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=nan", "optimizer.lr: must be a finite number, got nan"),
        ("optimizer.lr=inf", "optimizer.lr: must be a finite number, got inf"),
        ("optimizer.weight_decay=-inf", "optimizer.weight_decay: must be a finite number"),
        ("optimizer.eps=nan", "optimizer.eps: must be a finite number"),
        ("model.layer.dt_min=nan", "model.layer.dt_min: must be a finite number"),
        ("trainer.checkpoint_every_minutes=nan", "trainer.checkpoint_every_minutes: must be"),
        ("trainer.max_epochs=100000000000000000000000", "trainer.max_epochs: 1000000000"),
        ("seed=99999999999", "seed: 99999999999 is out of range"),
        ("model=ś4d", "cannot read the overrides"),
    ],
)
def test_bad_values_are_one_error_line(override, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        preflight.check(["model=s4d_lin", override])


def test_a_non_ascii_override_is_one_line_and_leaves_nothing(tmp_path):
    root = tmp_path / "root"
    done = _cli(["model=ś4d", f"paths.root={root}"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot read the overrides")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not root.exists()
    nan = _cli(["optimizer.lr=nan", f"paths.root={root}"], tmp_path)
    assert nan.returncode == 2
    assert nan.stderr.strip().splitlines()[-1].startswith("error: optimizer.lr: must be a finite")
    assert not root.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'# @package _global_\ntrainer: !!python/object/apply:os.system ["touch {marker}"]\n',
            r"evil\.yaml, line 2: not valid config YAML \(could not determine a constructor",
        ),
        (b"trainer: [unclosed\n", r"evil\.yaml, line 2: not valid config YAML \(expected"),
        (bytes(range(128, 256)), "not UTF-8 text"),
    ],
)
def test_a_bad_experiment_yaml_is_one_error_line_and_runs_nothing(tmp_path, content, message):
    marker = tmp_path / "ran"
    (tmp_path / "experiment").mkdir()
    text = content.replace(b"{marker}", str(marker).encode())
    (tmp_path / "experiment" / "evil.yaml").write_bytes(text)
    with pytest.raises(UserError, match=message):
        preflight.check(["--config-dir", str(tmp_path), "experiment=evil"])
    assert not marker.exists()


@pytest.mark.parametrize("uri", ["garbage:://x", "nosuch://host/db"])
def test_report_with_a_uri_of_no_store_is_one_error_line(tmp_path, uri):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.report",
            "--tracking-uri",
            uri,
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"error: tracking URI {uri!r} names no MLflow store")
    assert not (tmp_path / "o").exists()
