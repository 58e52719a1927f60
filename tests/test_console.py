"""The `ssm-bench` console command: dispatch to the entry points, `list`, `ui`."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow  # mlflow ui takes 1-2 min to answer on a busy 2-core machine
def test_ui_prints_the_url_once_serving_and_sigterm_stops_every_child(tmp_path) -> None:
    """`ssm-bench ui` on a free loopback port: the URL line comes only when the port answers;
    SIGTERM to the command's pid leaves no server process and closes the port."""
    store = tmp_path / "mlflow.db"
    tracking.prepare_store(f"sqlite:///{store}", "ssm-bench")
    port = _free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.console",
            "ui",
            "--port",
            str(port),
            "--tracking-uri",
            f"sqlite:///{store}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    try:
        line = ""
        while "runs table" not in line:  # the server's own lines share stdout
            line = ui.stdout.readline()
            assert line, "the command ended without printing the URL"
        assert f"http://127.0.0.1:{port}/#/experiments/" in line
        with socket.create_connection(("127.0.0.1", port), 5):
            pass  # the server answers when the URL is printed
        server = int(_pgrep("-P", str(ui.pid))[0])
        members = _pgrep("-g", str(server))  # its own process group: server and workers
        assert str(server) in members
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(60) == 128 + signal.SIGTERM
        assert not _group_alive(server), "a server process survived SIGTERM"
        for pid in members:
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 2).close()
    finally:  # on a failure too, no server is left behind
        if ui.poll() is None:
            ui.send_signal(signal.SIGTERM)
            try:
                ui.wait(30)
            except subprocess.TimeoutExpired:
                ui.kill()
        for pgid in _pgrep("-f", f"--port {port}"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pgid), signal.SIGKILL)


def _pgrep(*args: str) -> list[str]:
    return subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout.split()


def _zombie(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_ui_waits_for_the_port_and_stops_the_whole_group() -> None:
    """The quick version: a server (a shell whose child listens) in its own group is seen
    serving only once its port answers, and `_terminate` leaves no member of the group."""
    port = _free_port()
    server = subprocess.Popen(
        ["sh", "-c", f"sleep 1; {sys.executable} -m http.server -b 127.0.0.1 {port} & wait"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert not console._serving(server, port, 0.2)  # not yet listening
        assert console._serving(server, port, 60)
        members = _pgrep("-g", str(server.pid))
        assert len(members) >= 2, "the shell and its server child"
        console._terminate(server, grace_s=10)
        assert not _group_alive(server.pid)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 2).close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.mark.parametrize("command", ["report", "status", "bench", "study"])
def test_help_names_the_command_as_the_readme_teaches_it(command, capsys) -> None:
    with pytest.raises(SystemExit):
        console.main([command, "--help"])
    assert capsys.readouterr().out.startswith(f"usage: ssm-bench {command} ")


def test_readme_model_table_dt_ranges_match_the_registry() -> None:
    """Each row of the README's model table names its dt range, or 'same' as the first row's."""
    text = (PROJECT_ROOT / "README.md").read_text()
    table = text[text.index("## Models") :].split("\n\n")[1]
    first = None
    for row in table.splitlines()[2:]:
        names = re.findall(r"`(\w+)`", row.split("|")[1])
        found = re.search(r"dt log-uniform in \[([\d.]+), ([\d.]+)\]", row)
        dt = (float(found.group(1)), float(found.group(2))) if found else first
        first = first or dt
        for name in names:
            options = models.MODELS[name]().options
            assert (options.dt_min, options.dt_max) == dt, name
