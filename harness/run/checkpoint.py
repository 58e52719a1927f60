"""Checkpoints of a run (atomic files in its run directory) and clean stops on cluster signals.

Files in `<paths.runs_dir>/<config_hash>/`:
- `checkpoint.pt` (the newest) and `checkpoint.prev.pt` (the one before it): a dict with keys
  `model`, `optimizer`, `scheduler` (state dicts), `rng` (`torch`, `numpy`, `python`, `cuda`, as
  tensors and plain numbers), `step`, `epoch`, `batch_in_epoch` (optimizer-step position: training
  resumes at batch `batch_in_epoch` of epoch `epoch`), `best` (metrics, step and early-stopping
  count of the best validation evaluation), `mlflow_run_id`, `config` (resolved, as a dict) and
  `model_args` (the keyword arguments of `models.build_model`, so a report can rebuild the model
  without data).
- `model_init.pt`: the model's state dict at step 0; `model_best.pt`: at the best validation.

Every file holds only tensors and plain data and is read with `torch.load(weights_only=True)`:
a file carrying any other object is refused, never executed. A checkpoint that cannot be read
or is inconsistent (`Damaged`) is reported by name and set aside as `<name>.damaged`; resuming
falls back to the previous one (`load_latest`).

SIGTERM, SIGUSR1 and SIGUSR2 only set a flag (`StopSignals`); the training loop finishes the step,
writes a checkpoint, then calls `StopSignals.dispatch`, which hands the signal to the handler that
was installed before (submitit's requeue protocol runs there) and raises `Preempted`. Before
training starts (`StopSignals.setup`) a stop signal stops the setup at once.
"""

import logging
import os
import random
import signal
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from common import UserError
from common.atomic import write_atomically
from harness.layout import CHECKPOINT, CHECKPOINTS, DAMAGED_SUFFIX, PREVIOUS_CHECKPOINT

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(Exception):
    """Training stopped at a step boundary on a signal, after writing a checkpoint."""

    def __init__(self, signum: int, during_setup: bool = False):
        done = "during setup, before training" if during_setup else "checkpoint written"
        super().__init__(f"stopped by {signal.Signals(signum).name}; {done}")
        self.signum = signum
        self.during_setup = during_setup

    def __reduce__(self):  # rebuilt from its fields when it crosses a process boundary (submitit)
        return type(self), (self.signum, self.during_setup)


class Damaged(Exception):
    """A checkpoint that cannot be read or does not fit the run; the message says why."""


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` through the atomic writer: never a torn file, no temp file left behind, and on
    a failure (a full disk, a signal) `path` is untouched."""
    write_atomically(path, lambda handle: torch.save(obj, handle))


def save_checkpoint(state: dict[str, Any], directory: Path) -> None:
    """Write `state` as the newest checkpoint; the one it replaces becomes `checkpoint.prev.pt`.

    At every moment the directory holds the last two complete checkpoints, or (between the two
    renames, or after a failed write) the last complete one as `checkpoint.prev.pt`.
    """
    newest = directory / CHECKPOINT
    if newest.exists():
        os.replace(newest, directory / PREVIOUS_CHECKPOINT)
    save_atomic(state, newest)


def load(path: Path) -> dict[str, Any]:
    """Read a file written by this module onto the CPU; only tensors and plain data are accepted.

    Raises `Damaged` (saying why) for a file that is truncated, garbled, holds other objects
    (a pickle payload is refused, not run) or is not a dict. A `torch.save` file is a zip archive
    whose records carry CRC-32 sums that `torch.load` does not check, so a file whose tensor bytes
    were overwritten would load as if intact: every record's sum is checked first.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad_record = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise Damaged(f"unreadable: not a zip archive: {error}") from None
    if bad_record is not None:
        raise Damaged(f"unreadable: record {bad_record} fails its CRC-32 check") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise Damaged(f"unreadable: {type(error).__name__}: {first_line}") from None
    if not isinstance(state, dict):
        raise Damaged(f"holds a {type(state).__name__}, not a dict")
    return state


def load_latest(
    directory: Path, use: Callable[[dict[str, Any]], None], set_aside: bool
) -> Path | None:
    """Hand the newest intact checkpoint of `directory` to `use`; the path used, None if none.

    `use` applies a checkpoint and raises `Damaged` when it does not fit the run. A damaged file
    is logged by name and, with `set_aside` (one process of a run), renamed `<name>.damaged`;
    the previous checkpoint is tried next. All present but none intact: `UserError` naming the
    newest one.
    """
    failures: list[tuple[Path, str]] = []
    for name in CHECKPOINTS:
        path = directory / name
        if not path.is_file():
            continue
        try:
            use(load(path))
        except Damaged as error:
            log.warning("%s is damaged (%s); trying the previous checkpoint", path, error)
            failures.append((path, str(error)))
            continue
        if set_aside:
            for bad, _ in failures:
                os.replace(bad, bad.with_name(bad.name + DAMAGED_SUFFIX))
        return path
    if failures:
        path, why = failures[0]
        raise UserError(f"{path} is damaged ({why}); resume=false starts over")
    return None


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop draws from, as tensors and plain numbers."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),  # (624,) MT19937 words
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": version,
            "internal": torch.tensor(internal, dtype=torch.int64),  # (625,)
            "gauss_next": gauss_next,
        },
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    internal = tuple(int(v) for v in python_state["internal"].tolist())
    random.setstate((python_state["version"], internal, python_state["gauss_next"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopSignals:
    """Context manager: SIGTERM / SIGUSR1 / SIGUSR2 request a stop at the next step boundary.

    With `immediate` (set while a run is set up, before its first step) a signal stops at once:
    the earlier handler runs and `Preempted(during_setup=True)` is raised where the code is.
    """

    def __init__(self, immediate: bool = False) -> None:
        self.signum: int | None = None
        self.immediate = immediate
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: stop signals are not handled")
            return self
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        if self.immediate:
            log.warning("received %s during setup: stopping", signal.Signals(signum).name)
            self.dispatch()
        log.warning("received %s: stopping after this step", signal.Signals(signum).name)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def dispatch(self) -> None:
        """After the checkpoint: run the earlier Python handler for the signal, then stop."""
        assert self.signum is not None, "dispatch() without a received signal"
        previous = self._previous.get(self.signum)
        if callable(previous):
            previous(self.signum, None)
        raise Preempted(self.signum, during_setup=self.immediate)
