"""On-disk cache of processed task arrays (token ids, decoded pixels, labels).

A task turns its source files into a few numpy arrays once; later builds read them back. The
cache entry of one task lives in `<root>/<task>-<key>/`, one `<array>.npy` per array plus
`meta.json`, where `key` hashes

    (task name, processing config, fingerprint of the source files),

and the fingerprint lists every source file's relative path, size and modification time. A
change to any source file, or to a processing option, gives a new key, so the entry is rebuilt.
Entries are written to a temporary directory and renamed into place, so an interrupted build
never leaves a half-written entry that a later build would read.

Public API:
    cache_root(cache_dir) -> Path
    fingerprint(paths, base) -> list
    content_key(payload) -> str
    write_atomically(directory, fill, marker) -> None
    load_or_build(task, config, sources, build, cache_dir=None) -> dict[str, np.ndarray]
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "SSM_BENCH_CACHE"
DEFAULT_CACHE = Path("~/.cache/ssm_bench")


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The cache root: `cache_dir` if given, else `$SSM_BENCH_CACHE`, else ~/.cache/ssm_bench."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)).expanduser()


def fingerprint(paths: Sequence[Path], base: Path) -> list[tuple[str, int, int]]:
    """(path relative to `base`, size in bytes, mtime in ns) of every file in `paths`, sorted."""
    rows = []
    for path in paths:
        stat = os.stat(path)
        rows.append((os.path.relpath(path, base), stat.st_size, stat.st_mtime_ns))
    return sorted(rows)


def content_key(payload: Mapping) -> str:
    """First 16 hex digits of SHA-256 of `payload` as JSON with sorted keys."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _entry_key(task: str, config: Mapping, sources: Sequence[Path]) -> str:
    """The key of the task name, its config and its sources' fingerprint."""
    resolved = [Path(os.path.abspath(p)) for p in sources]
    base = Path(os.path.commonpath(resolved)) if resolved else Path()
    return content_key(
        {"task": task, "config": dict(config), "sources": fingerprint(resolved, base)}
    )


def write_atomically(directory: Path, fill: Callable[[Path], None], marker: str) -> None:
    """Make `directory` with `fill(tmp)` on a temporary sibling, then rename it into place.

    `fill` must write the file `marker` last: its presence marks a complete directory. If another
    process finished the same directory first, that one is kept. On failure nothing is left.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name}-", dir=directory.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, directory)
        except OSError:
            if not (directory / marker).is_file():  # not a concurrent writer's finished one
                raise
            log.info("%s was written concurrently; keeping that one", directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path) -> dict[str, np.ndarray]:
    """The arrays of a complete cache entry, memory-mapped read-only."""
    names = json.loads((entry / "meta.json").read_text())["arrays"]
    return {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in names}


def _write_entry(entry: Path, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Write `arrays` and `meta.json` (last) as the cache entry `entry`, atomically."""

    def fill(tmp: Path) -> None:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({**meta, "arrays": sorted(arrays)}, indent=1))

    write_atomically(entry, fill, "meta.json")


def load_or_build(
    task: str,
    config: Mapping,
    sources: Sequence[Path],
    build: Callable[[], Mapping[str, np.ndarray]],
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of `task` for `config`: read from the cache, or made by `build()` and stored.

    task: the task name (first part of the entry's directory name).
    config: JSON-serialisable processing options that change the arrays (not paths).
    sources: every file the arrays are made from; their size and mtime are part of the key.
    build: makes the arrays; called only on a cache miss.
    cache_dir: the cache root (see `cache_root`).
    Returns name -> array (memory-mapped read-only for a hit and after a build alike).
    """
    entry = cache_root(cache_dir) / f"{task}-{_entry_key(task, config, sources)}"
    if (entry / "meta.json").is_file():
        log.info("reading %s from cache %s", task, entry)
        return _read_entry(entry)
    log.info("processing %s (cache miss, writing %s)", task, entry)
    arrays = build()
    _write_entry(entry, arrays, {"task": task, "config": dict(config)})
    return _read_entry(entry)
