"""Checkpoints of a run (atomic files in its run directory) and clean stops on cluster signals.

Files in `<paths.runs_dir>/<config_hash>/`:
- `checkpoint.pt`: a dict with keys `model`, `optimizer`, `scheduler` (state dicts), `rng`
  (`torch`, `numpy`, `python`, `cuda`), `step`, `epoch`, `batch_in_epoch` (optimizer-step
  position: training resumes at batch `batch_in_epoch` of epoch `epoch`), `best` (metrics, step and
  early-stopping count of the best validation evaluation), `mlflow_run_id`, `config` (resolved, as
  a dict) and `model_args` (the keyword arguments of `models.build_model`, so a report can rebuild
  the model without data).
- `model_init.pt`: the model's state dict at step 0; `model_best.pt`: at the best validation.

SIGTERM, SIGUSR1 and SIGUSR2 only set a flag (`StopSignals`); the training loop finishes the step,
writes a checkpoint, then calls `StopSignals.dispatch`, which hands the signal to the handler that
was installed before (submitit's requeue protocol runs there) and raises `Preempted`.
"""

import logging
import random
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from common.atomic import write_atomically

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(Exception):
    """Training stopped at a step boundary on a signal, after writing a checkpoint."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint written")
        self.signum = signum

    def __reduce__(self):  # rebuilt from `signum` when it crosses a process boundary (submitit)
        return type(self), (self.signum,)


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` through the atomic writer (never a torn file, no temp file left behind)."""
    write_atomically(path, lambda handle: torch.save(obj, handle))


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by this module onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop draws from."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopSignals:
    """Context manager: SIGTERM / SIGUSR1 / SIGUSR2 request a stop at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
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
        if self.signum is None:
            log.warning("received %s: stopping after this step", signal.Signals(signum).name)
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def dispatch(self) -> None:
        """After the checkpoint: run the earlier Python handler for the signal, then stop."""
        assert self.signum is not None, "dispatch() without a received signal"
        previous = self._previous.get(self.signum)
        if callable(previous):
            previous(self.signum, None)
        raise Preempted(self.signum)
