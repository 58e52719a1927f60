"""Creating a fresh SQLite MLflow store: several processes at once, a kill in the middle of its
table setup, a half-built store left by an older version (issues 23 and 25).

Each case runs real processes (`python -c ...`) on a store in the test's folder; MLflow's table
setup issues about 400 DDL statements, and a process is SIGKILLed right after the n-th.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.run import tracking

# Start a process that SIGKILLs itself after the n-th schema statement (CREATE/ALTER/DROP or an
# alembic version write) while it creates the store: through `prepare_store` ("harness"), or
# through a bare MLflow client as an older ssm-bench did ("mlflow").
KILL_DURING_CREATION = r"""
import os, signal, sys
import sqlalchemy
from sqlalchemy.engine import Engine

n, uri, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = [0]
SCHEMA = ("CREATE", "ALTER", "DROP", "INSERT INTO ALEMBIC", "UPDATE ALEMBIC")


@sqlalchemy.event.listens_for(Engine, "after_cursor_execute")
def after(conn, cursor, statement, *args):
    if statement.lstrip().upper().startswith(SCHEMA):
        seen[0] += 1
        if seen[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)


if how == "mlflow":
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).get_experiment_by_name("ssm-bench")
else:
    from harness.run import tracking

    tracking.prepare_store(uri, "ssm-bench")
"""

# One process of a project's first moments: look a run up (a sweep's planning does, before its
# jobs), or not, then prepare the store and log a run in it.
START = r"""
import sys
from harness.run import tracking

uri, look_first = sys.argv[1], sys.argv[2] == "1"
if look_first:
    assert tracking.run_status(uri, "0" * 32) is None
experiment = tracking.prepare_store(uri, "ssm-bench")
run = tracking.TrackedRun.create(uri, experiment, "one", {"who": sys.argv[3]})
run.log_metrics({"x": 1.0}, 0)
run.end("FINISHED")
"""


def _env() -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return values | {"OMP_NUM_THREADS": "1"}


def _kill_during_creation(uri: str, n: int, how: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", KILL_DURING_CREATION, str(n), uri, how],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode


def _works(uri: str) -> None:
    """A later run prepares the store and logs a run in it; nothing temporary is left."""
    experiment = tracking.prepare_store(uri, "ssm-bench")
    run = tracking.TrackedRun.create(uri, experiment, "later", {})
    run.end("FINISHED")
    assert tracking.run_status(uri, run.run_id) == "FINISHED"
    db = tracking.sqlite_path(uri)
    assert db is not None and not list(db.parent.glob(f".{db.name}.creating-*"))


def _check_kills(tmp_path: Path, points: list[int]) -> None:
    for n in points:
        uri = f"sqlite:///{tmp_path / f'kill{n}' / 'mlflow.db'}"
        assert _kill_during_creation(uri, n, "harness") == -9, n
        assert not tracking.sqlite_path(uri).exists()  # a kill leaves no store, not a broken one
        _works(uri)


def test_a_kill_while_the_store_creates_its_tables_leaves_no_broken_store(tmp_path: Path) -> None:
    _check_kills(tmp_path, [40])


@pytest.mark.slow
def test_a_kill_anywhere_in_the_store_creation_leaves_no_broken_store(tmp_path: Path) -> None:
    _check_kills(tmp_path, [1, 2, 10, 40, 80, 120, 200, 300, 380])


def test_a_half_built_store_without_runs_is_set_aside_and_built_again(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _kill_during_creation(uri, 40, "mlflow") == -9  # as an older version left it
    _works(uri)
    assert (tmp_path / "mlflow.db.broken").is_file()


def test_a_store_with_runs_is_never_set_aside(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _works(uri)
    _works(uri)
    assert not (tmp_path / "mlflow.db.broken").exists()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ssm-bench")
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_processes_starting_at_once_on_a_fresh_store_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", START, uri, str(i % 2), str(i)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for process in starts:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ssm-bench")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["who"] for r in runs) == ["0", "1", "2", "3"]
