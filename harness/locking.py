"""A lock that one process holds at a time and that a second process is refused at once.

Used where two processes must not work on the same thing: a point's run directory
(`harness.run.rundir.exclusive`) and a tuning study (`harness.tune.sweeper`). The lock is an
exclusive `flock` on a file, released when the block ends or the process dies.
"""

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from common import UserError


@contextlib.contextmanager
def held_or_refused(lock_path: Path, busy: str) -> Iterator[None]:
    """Hold the lock of `lock_path` (the file is created if missing) for the block; a
    `UserError(busy)` at once when another process holds it."""
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
