"""MLflow tracking: where the store is, creating it safely, and the client side of one run.

The default store is a SQLite file inside the project (`results/mlflow.db`, artifacts in
`results/mlartifacts`), never relative to the working directory. `tracking.uri` in the config, or
else `MLFLOW_TRACKING_URI`, points at any other MLflow store (a tracking server on a cluster).

Facts this module is built around (mlflow 3.17.2): processes that create a fresh SQLite store at the
same moment crash in table setup; a process killed (or failing) while MLflow creates the tables
leaves a store that fails for good (`table ... already exists`); processes that race to create an
experiment put runs in the Default experiment. So a SQLite store is built in a temporary file
beside it and moved into place only once complete (`_create_sqlite_store`), under an exclusive file
lock `<db>.lock` that a second process waits on; `prepare_store` creates the experiment under the
same lock, the launching process calls it before any job starts (`harness.run.callbacks`), and
every run is created with an explicit experiment id. A store found half-built (its schema not at
MLflow's head and no run in it: left by an older version killed in table setup) is set aside as
`<db>.broken` with a warning and built afresh. SQLite answers "database is locked" under many
concurrent writers; every call here is retried with exponential backoff.

A tracking server that does not answer is a user error within seconds: `prepare_store` first
opens a TCP connection with a timeout of `CONNECT_TIMEOUT_S`, and MLflow's own HTTP timeout and
retries are bounded (`HTTP_LIMITS`, unless the environment sets them). A store that cannot be
created (an unwritable path) is a user error too.

A resumed run logs each metric only past the last step the store already has for it (one value
per metric and step), and only the params it does not have yet.
"""

import contextlib
import fcntl
import functools
import json
import logging
import os
import random
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from common import UserError
from harness.layout import PROJECT_ROOT

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_PREFIX = "sqlite:///"
RETRY_ATTEMPTS = 12
RETRY_FIRST_WAIT_S = 0.1
RETRY_MAX_WAIT_S = 5.0
_TRANSIENT_MARKERS = ("database is locked", "database table is locked", "OperationalError")
# MLflow's per-request limits (mlflow.utils.validation).
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
CONNECT_TIMEOUT_S = 5.0
# MLflow's HTTP client: seconds per request, retries, backoff (its defaults wait ~8 minutes).
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
for _name, _value in HTTP_LIMITS.items():
    os.environ.setdefault(_name, _value)


RUNS_VIEW_KEY = "ssm-bench"
"""The saved view of the runs table: the experiment tag `mlflow.sharedViewState.<key>` that the
MLflow UI (3.17) reads for the URL `#/experiments/<id>/runs?viewStateShareKey=<key>`."""
RUNS_VIEW_COLUMNS = (
    ("tags", "task"),
    ("tags", "model"),
    ("tags", "seed"),
    ("tags", "init"),
    ("tags", "sweep"),
    ("metrics", "best/val_acc"),
    ("metrics", "best/test_acc"),
    ("metrics", "best/val_loss"),
    ("metrics", "best/test_loss"),
    ("metrics", "wall_time_s"),
    ("params", "n_params"),
    ("attributes", "Duration"),
)
"""The runs table's columns in that view, as (kind, key) of the UI's column ids."""


def default_tracking_uri() -> str:
    """`sqlite:///<project root>/results/mlflow.db`."""
    return f"{SQLITE_PREFIX}{PROJECT_ROOT / 'results' / 'mlflow.db'}"


STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")
"""The URI schemes of MLflow tracking stores (a database one may name its driver: `mysql+...`)."""


def resolve_uri(configured: str | None) -> str:
    """The store to use: `tracking.uri` if set, else `MLFLOW_TRACKING_URI`, else the default;
    `UserError` for a URI that names no kind of MLflow store."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    scheme = urlparse(uri).scheme.split("+", 1)[0] if "://" in uri else ""
    if scheme and scheme not in STORE_SCHEMES:
        raise UserError(
            f"tracking URI {uri!r} names no MLflow store; give one of "
            f"{', '.join(s + '://' for s in STORE_SCHEMES)} (e.g. 'sqlite:////abs/path/mlflow.db')"
        )
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, or None for any other store."""
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def artifact_location(uri: str) -> str | None:
    """A SQLite store keeps its artifacts beside it in `mlartifacts/`; other stores decide."""
    db = sqlite_path(uri)
    return str(db.parent / "mlartifacts") if db is not None else None


def _is_transient(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def with_retries(call: Callable[..., T], *args, **kwargs) -> T:
    """Run `call`, retrying with jittered exponential backoff while the store reports contention."""
    wait = RETRY_FIRST_WAIT_S
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call(*args, **kwargs)
        except Exception as error:
            if attempt == RETRY_ATTEMPTS or not _is_transient(error):
                raise
            log.debug("tracking store busy (%s); retry %d in %.2fs", error, attempt, wait)
            time.sleep(wait * (1.0 + random.random()))
            wait = min(2.0 * wait, RETRY_MAX_WAIT_S)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock for creating a SQLite store (`<db>.lock` beside it); no-op for servers."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _schema_version(db: Path) -> str | None:
    """The MLflow schema revision recorded in the SQLite file `db` (read only), None if none."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        try:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.DatabaseError:  # no such table, or not a database
            return None
    return rows[0][0] if len(rows) == 1 else None


def _holds_runs(db: Path) -> bool:
    """Whether the SQLite file `db` has a `runs` table with a row in it."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        try:
            return connection.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
        except sqlite3.DatabaseError:
            return False


@functools.cache
def _head_revision(uri: str) -> str:
    """MLflow's newest schema revision (what a store it creates is at)."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return str(ScriptDirectory.from_config(_get_alembic_config(uri)).get_current_head())


def _build_sqlite_store(uri: str, target: Path) -> None:
    """MLflow's tables (and its Default experiment) in the new SQLite file `target`."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    target_uri = f"{SQLITE_PREFIX}{target}"
    SqlAlchemyStore(target_uri, artifact_location(uri))
    _drop_cached_engine(target_uri)


def _drop_cached_engine(uri: str) -> None:
    """Close and forget the SQLAlchemy engine MLflow keeps for `uri` (a file moved or removed)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = SqlAlchemyStore._engine_map.pop(uri, None)
    if engine is not None:
        engine.dispose()


def _create_sqlite_store(uri: str) -> None:
    """Holding the store lock: make sure the SQLite store of `uri` exists complete.

    It is built in `.<db>.creating-<pid>` beside it and renamed into place, so a kill leaves no
    store (and that temporary, removed by the next call) rather than a half-built one.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    for stale in db.parent.glob(f".{db.name}.creating-*"):
        stale.unlink(missing_ok=True)
    if db.exists():
        if _holds_runs(db) or _schema_version(db) == _head_revision(uri):
            return
        aside = db.with_name(db.name + ".broken")
        os.replace(db, aside)
        log.warning("%s is a half-built MLflow store without runs; set aside as %s", db, aside)
    temporary = db.with_name(f".{db.name}.creating-{os.getpid()}")
    try:
        _build_sqlite_store(uri, temporary)
        os.replace(temporary, db)
    finally:
        temporary.unlink(missing_ok=True)
    _CREATED_HERE.add(db)
    log.info("created the MLflow store %s", db)


_CREATED_HERE: set[Path] = set()
"""The SQLite stores this process created (`remove_unused_store` may take one back)."""


def remove_unused_store(uri: str) -> bool:
    """Delete the SQLite store of `uri` (and its lock file) if this process created it and no
    run was ever started in it: a command that stopped on a user error takes back what it made.
    MLflow's cached store and engine for `uri` are dropped with it. True if it was removed."""
    db = sqlite_path(uri)
    if db is None or db not in _CREATED_HERE:
        return False
    with _store_lock(uri):
        if not db.exists() or _holds_runs(db):
            return False
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
        _drop_cached_engine(uri)
        for path in (db, *(db.with_name(db.name + end) for end in ("-journal", "-wal", "-shm"))):
            path.unlink(missing_ok=True)
        _CREATED_HERE.discard(db)
    db.with_name(db.name + ".lock").unlink(missing_ok=True)
    return True


def ensure_store(uri: str) -> None:
    """Create a SQLite store that does not exist yet, under its lock (waiting for a process that
    is creating it); nothing for a store that exists or a server."""
    db = sqlite_path(uri)
    if db is None or db.exists():
        return
    with _store_lock(uri):
        _create_sqlite_store(uri)


def _check_supported(uri: str) -> None:
    scheme = uri.split(":", 1)[0] if "://" in uri else ""
    if scheme in ("", "file") and not os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
        raise UserError(
            f"tracking.uri {uri!r} is an MLflow file store, which mlflow 3 refuses; use a SQLite "
            "store such as 'sqlite:////abs/path/mlflow.db' (or set MLFLOW_ALLOW_FILE_STORE=true)"
        )


def check_reachable(uri: str) -> None:
    """For an http(s) store: `UserError` unless its port accepts a connection within seconds."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise UserError(
            f"cannot reach the MLflow tracking server {uri} ({error.strerror or error}); start "
            "it, or set tracking.uri (or MLFLOW_TRACKING_URI) to a store that is reachable"
        ) from None


def prepare_store(uri: str, experiment: str) -> str:
    """Create the store and the experiment if missing (idempotent, safe in parallel) -> its id."""
    _check_supported(uri)
    check_reachable(uri)
    try:
        return _prepare(uri, experiment)
    except OSError as error:
        raise UserError(
            f"cannot create the MLflow store of tracking.uri {uri} ({error}); set tracking.uri "
            "to a writable location, e.g. sqlite:////abs/path/mlflow.db"
        ) from None


def _prepare(uri: str, experiment: str) -> str:
    with _store_lock(uri):
        _create_sqlite_store(uri)
        client = with_retries(MlflowClient, tracking_uri=uri)
        found = with_retries(client.get_experiment_by_name, experiment)
        if found is None:
            try:
                created = with_retries(
                    client.create_experiment, experiment, artifact_location=artifact_location(uri)
                )
                set_runs_view(uri, created)
                return created
            except MlflowException:
                # A server store without our lock: someone else created it first.
                found = with_retries(client.get_experiment_by_name, experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise UserError(
                f"MLflow experiment {experiment!r} in {uri} is deleted; restore it with "
                f"`mlflow experiments restore --experiment-id {found.experiment_id}` or set "
                "tracking.experiment to another name"
            )
        return found.experiment_id


def runs_view_state() -> str:
    """The saved runs-table view as the UI stores it: JSON of its UI state, so the key
    metrics and tags show without picking columns. A column id is kind.`key`, e.g.
    metrics.`best/test_acc`."""
    columns = [f"{kind}.`{key}`" for kind, key in RUNS_VIEW_COLUMNS]
    return json.dumps({"selectedColumns": columns, "runListHidden": False})


def set_runs_view(uri: str, experiment_id: str) -> None:
    """Save the runs-table view (`RUNS_VIEW_KEY`) in the experiment (idempotent)."""
    client = MlflowClient(tracking_uri=uri)
    key = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
    with_retries(client.set_experiment_tag, experiment_id, key, runs_view_state())


def runs_table_url(base_url: str, experiment_id: str) -> str:
    """The MLflow UI page of the experiment's runs table in the saved view."""
    page = f"#/experiments/{experiment_id}/runs?viewStateShareKey={RUNS_VIEW_KEY}"
    return f"{base_url.rstrip('/')}/{page}"


def run_status(uri: str, run_id: str) -> str | None:
    """MLflow status of a run (`RUNNING`, `FINISHED`, `FAILED`, `KILLED`, ...), None if gone."""
    ensure_store(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        run = with_retries(client.get_run, run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise UserError(
            f"cannot read MLflow run {run_id} from the store {uri} ({error.message}); check "
            "that tracking.uri names a reachable store"
        ) from None
    return None if run.info.lifecycle_stage == "deleted" else run.info.status


def find_run(uri: str, experiment: str, digest: str, exclude: set[str | None]) -> str | None:
    """The id of the newest live run tagged `config_hash=<digest>` in `experiment` that is not in
    `exclude`, or None."""
    ensure_store(uri)
    client = MlflowClient(tracking_uri=uri)
    found = with_retries(client.get_experiment_by_name, experiment)
    if found is None:
        return None
    runs = with_retries(
        client.search_runs,
        [found.experiment_id],
        filter_string=f"tags.config_hash = '{digest}'",
        order_by=["attributes.start_time DESC"],
    )
    return next((r.info.run_id for r in runs if r.info.run_id not in exclude), None)


class TrackedRun:
    """One MLflow run, written through a client with retries (only rank 0 holds one)."""

    def __init__(self, uri: str, run_id: str):
        self.uri = uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri)
        self.last_steps: dict[str, int] = {}  # metric -> the last step the store has

    @classmethod
    def create(cls, uri: str, experiment_id: str, name: str, tags: dict[str, str]) -> "TrackedRun":
        """Start a new run in `experiment_id` (explicit: never the Default experiment)."""
        client = MlflowClient(tracking_uri=uri)
        run = with_retries(client.create_run, experiment_id, tags=tags, run_name=name)
        return cls(uri, run.info.run_id)

    def reopen(self) -> None:
        """Mark a resumed run RUNNING again; later metrics are logged past its last steps."""
        with_retries(self.client.update_run, self.run_id, status="RUNNING")
        for key in with_retries(self.client.get_run, self.run_id).data.metrics:
            history = with_retries(self.client.get_metric_history, self.run_id, key)
            self.last_steps[key] = max(m.step for m in history)

    def params(self) -> dict[str, str]:
        """The params the run has."""
        return with_retries(self.client.get_run, self.run_id).data.params

    def artifact_names(self) -> set[str]:
        """The top-level artifact names of the run."""
        return {a.path for a in with_retries(self.client.list_artifacts, self.run_id)}

    def delete(self) -> None:
        """Delete the run (MLflow keeps it in the deleted lifecycle stage)."""
        with_retries(self.client.delete_run, self.run_id)

    def tag(self, key: str) -> str | None:
        """The current value of one tag, None when unset."""
        return with_retries(self.client.get_run, self.run_id).data.tags.get(key)

    def log_params(self, params: dict[str, str]) -> None:
        items = [Param(key, value) for key, value in sorted(params.items())]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            chunk = items[start : start + MAX_PARAMS_PER_BATCH]
            with_retries(self.client.log_batch, self.run_id, params=chunk)

    def set_tags(self, tags: dict[str, object]) -> None:
        items = [RunTag(key, str(value)) for key, value in sorted(tags.items())]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            chunk = items[start : start + MAX_PARAMS_PER_BATCH]
            with_retries(self.client.log_batch, self.run_id, tags=chunk)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log several metrics at one optimizer step in a single request.

        A metric whose history already reaches `step` is left out (a resumed run retraining
        steps it logged before the stop), so the store holds one value per metric and step.
        """
        stamp = int(time.time() * 1000)
        fresh = {k: v for k, v in metrics.items() if step > self.last_steps.get(k, -1)}
        self.last_steps.update(dict.fromkeys(fresh, step))
        items = [Metric(key, float(value), stamp, step) for key, value in sorted(fresh.items())]
        for start in range(0, len(items), MAX_METRICS_PER_BATCH):
            chunk = items[start : start + MAX_METRICS_PER_BATCH]
            with_retries(self.client.log_batch, self.run_id, metrics=chunk)

    def log_artifact(self, path: Path) -> None:
        with_retries(self.client.log_artifact, self.run_id, str(path))

    def end(self, status: str, reason: str | None = None) -> None:
        """Terminate as FINISHED, FAILED or KILLED; `reason` goes to the `status_reason` tag."""
        if reason is not None:
            self.set_tags({"status_reason": reason})
        with_retries(self.client.set_terminated, self.run_id, status=status)
