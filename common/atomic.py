"""The atomic writers: a reader sees the old file or the whole new one, never a torn one.

A file's content goes to a temporary file in the same folder (so the final rename stays on one file
system), is flushed and fsynced, given the permissions a plain `open` would give (the umask's, or
the replaced file's), then `os.replace`d over the target. If writing fails (a full disk,
a bad object, a signal), the temporary file is removed and the old target is left as it was.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write(handle)` writes into a binary file handle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _file_mode(path))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The mode of the file at `path`, else what the process umask gives a new file (mkstemp
    itself creates 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomically(path: Path, text: str) -> None:
    """`write_atomically` for UTF-8 text."""
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def write_directory_atomically(directory: Path, fill: Callable[[Path], None], marker: str) -> None:
    """Make `directory` with `fill(tmp)` in a temporary sibling, then rename it into place.

    `fill` must write the file `marker` last: its presence marks a complete directory. Every
    file of the temporary directory is fsynced before the rename, so a crash leaves either no
    directory or a whole one. If another process finished the same directory first, that one is
    kept. On failure nothing is left.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name}-", dir=directory.parent))
    try:
        fill(tmp)
        for path in sorted(tmp.rglob("*")):
            if path.is_file() and not path.is_symlink():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        try:
            os.rename(tmp, directory)
        except OSError:
            if not (directory / marker).is_file():  # not a concurrent writer's finished one
                raise
            log.info("%s was written concurrently; keeping that one", directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
