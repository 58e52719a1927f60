"""The one atomic file writer: a reader sees the old file or the whole new one, never a torn one.

The content goes to a temporary file in the same folder (so the final rename stays on one file
system), is flushed and fsynced, given the permissions a plain `open` would give (the umask's, or
the replaced file's), then `os.replace`d over the target. If writing fails (a full disk,
a bad object, a signal), the temporary file is removed and the old target is left as it was.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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
