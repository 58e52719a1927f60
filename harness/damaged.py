"""Damaged files in a run directory: set aside (`<name>.damaged`) with a warning, never a traceback.

A run directory's small files (`mlflow_run_id`, `mlflow_run_id.pending`, `job.json`, the
`tracking_uri` of its run) are hints: MLflow holds the truth. One that cannot be read (binary
bytes, not JSON, a malformed run id) is renamed out of the way, named in a warning, and read as
absent, so the point is treated by what MLflow says, as damaged checkpoints already are
(`harness.run.checkpoint`).
"""

import logging
import os
import re
from pathlib import Path

from harness.layout import DAMAGED_SUFFIX

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"[0-9a-f]{32}")  # an MLflow run id


def set_aside(path: Path, why: str) -> Path:
    """Rename `path` to `<name>.damaged` (replacing an older one) and warn; returns the new path."""
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    os.replace(path, aside)
    log.warning("%s is damaged (%s); set aside as %s", path, why, aside.name)
    return aside


def read_text(path: Path, pattern: re.Pattern[str] | None = None) -> str | None:
    """The stripped UTF-8 text of `path`, None if there is none; a file that is not UTF-8 or
    whose text does not match `pattern` (whole) is set aside and read as None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        set_aside(path, f"not UTF-8 text: {error.reason} at byte {error.start}")
        return None
    if pattern is not None and not pattern.fullmatch(text):
        set_aside(path, f"{text[:40]!r} is not of the form {pattern.pattern}")
        return None
    return text
