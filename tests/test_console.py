"""The `ssm-bench` console command: dispatch to the entry points, `list`, `ui`."""

import json
import re
import sys
import tomllib
from pathlib import Path

import models
import tasks
from harness import console
from harness.layout import PROJECT_ROOT
from harness.run import tracking


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["ssm-bench"] == "harness.console:main"


def test_list_shows_every_registered_model_and_task_with_options(capsys) -> None:
    assert console.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "models (9)" in out and "tasks (14)" in out
    listed = re.findall(r"^(\S+) +\S", out, re.M)
    assert [n for n in listed if n in models.MODELS] == models.MODELS.names()
    assert [n for n in listed if n in tasks.TASKS] == tasks.TASKS.names()
    lines = out.splitlines()
    s4d_lin = lines[lines.index(next(line for line in lines if line.startswith("s4d_lin "))) + 1]
    assert "disc=zoh" in s4d_lin and "bidirectional=false" in s4d_lin and "dropout=null" in s4d_lin
    assert "noise_len=1024" in out  # digits_noise's default, from its recipe's signature
    assert console.main(["list", "tasks"]) == 0
    assert "models (" not in capsys.readouterr().out


def test_commands_hand_their_arguments_to_the_entry_points(tmp_path, capsys, monkeypatch) -> None:
    missing = tmp_path / "none.db"
    assert console.main(["report", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert console.main(["run", "model=s4_legz"]) == 2  # Hydra's entry point reads sys.argv
    assert "error: unknown model 's4_legz'" in capsys.readouterr().err
    assert console.main(["bench", "curve", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_unknown_or_missing_commands_are_user_errors(capsys, monkeypatch) -> None:
    assert console.main(["fly"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: unknown command 'fly'; valid commands are: run"
    )
    assert console.main(["study", "nosuch"]) == 2
    assert "error: unknown study 'nosuch'" in capsys.readouterr().err
    assert console.main([]) == 2 and "usage: ssm-bench" in capsys.readouterr().out


def test_ui_serves_the_store_on_loopback_and_names_the_runs_table() -> None:
    command = console.ui_command("sqlite:////data/mlflow.db", 5077)
    assert command[command.index("--backend-store-uri") + 1] == "sqlite:////data/mlflow.db"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5077"
    url = tracking.runs_table_url("http://127.0.0.1:5077", "7")
    assert url == "http://127.0.0.1:5077/#/experiments/7/runs?viewStateShareKey=ssm-bench"


def test_the_runs_table_route_and_saved_view_exist_in_the_installed_mlflow() -> None:
    """The URL and the view tag follow the installed MLflow UI's own routes and names."""
    import mlflow

    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    text = "".join(p.read_text(errors="ignore") for p in bundle.glob("*.js"))
    assert '"/experiments/:experimentId/runs"' in text and "createHashRouter" in text
    assert '"viewStateShareKey"' in text and '"mlflow.sharedViewState."' in text
    view = json.loads(tracking.runs_view_state())
    assert all(
        re.fullmatch(r"(tags|metrics|params|attributes)\.`[^`]+`", c)
        for c in view["selectedColumns"]
    )


def test_ui_without_a_store_is_a_user_error(tmp_path, capsys) -> None:
    assert console.main(["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
