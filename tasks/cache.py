"""On-disk cache of processed task arrays (token ids, decoded pixels, labels).

A task turns its source files into a few numpy arrays once; later builds read them back. The
cache entry of one task lives in `<root>/<task>-<key>/`, one `<array>.npy` per array plus
`meta.json`, where `key` hashes

    (task name, processing config, fingerprint of the source files),

and the fingerprint lists every source file's relative path, size and modification time. A
change to any source file, or to a processing option, gives a new key, so the entry is rebuilt.
An entry is written only after `build()` returned every array (the whole dataset parsed), into
a temporary directory that is renamed into place (`common.atomic.write_directory_atomically`),
so a failed or interrupted build never leaves a half-written entry that a later build would
read. An entry that cannot be read back (damaged on disk) is removed with a warning and rebuilt.
A cache root that is a file, or under one, is a `UserError` naming task.cache_dir (or
$SSM_BENCH_CACHE), raised before any source is parsed.

Public API:
    cache_root(cache_dir) -> Path
    usable_root(cache_dir) -> Path
    fingerprint(paths, base) -> list
    content_key(payload) -> str
    load_or_build(task, config, sources, build, cache_dir=None) -> dict[str, np.ndarray]
"""

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from common import UserError
from common.atomic import write_directory_atomically

log = logging.getLogger(__name__)

CACHE_ENV = "SSM_BENCH_CACHE"
DEFAULT_CACHE = Path("~/.cache/ssm_bench")


def cache_root(cache_dir: str | os.PathLike | None) -> Path:
    """The cache root: `cache_dir` if given, else `$SSM_BENCH_CACHE`, else ~/.cache/ssm_bench."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)).expanduser()


def usable_root(cache_dir: str | os.PathLike | None) -> Path:
    """`cache_root(cache_dir)`, or a `UserError` naming the setting when it, or a folder above
    it, is a file (the cache could never be written there). Creates nothing."""
    root = cache_root(cache_dir)
    setting = (
        f"task.cache_dir={cache_dir}"
        if cache_dir is not None
        else f"${CACHE_ENV}={root}"
        if CACHE_ENV in os.environ
        else f"the default cache folder {root}"
    )
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                raise UserError(
                    f"{setting}: {path} is a file, not a folder; point task.cache_dir (or "
                    f"${CACHE_ENV}) at a folder for the processed-data cache"
                )
            break
    return root


def fingerprint(paths: Sequence[Path], base: Path) -> list[tuple[str, int, int]]:
    """(path relative to `base`, size in bytes, mtime in ns) of every file in `paths`, sorted.

    A source that cannot be stat'ed (gone, a broken symlink) is a `UserError` naming it.
    """
    rows = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise UserError(
                f"{path}: cannot read the data file ({exc.strerror or exc}); re-extract it"
            ) from None
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

    write_directory_atomically(entry, fill, "meta.json")


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
    entry = usable_root(cache_dir) / f"{task}-{_entry_key(task, config, sources)}"
    if (entry / "meta.json").is_file():
        try:
            arrays = _read_entry(entry)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ValueError: bad JSON too
            log.warning("cache entry %s is damaged (%s); rebuilding it", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
        else:
            log.info("reading %s from cache %s", task, entry)
            return arrays
    log.info("processing %s (cache miss, writing %s)", task, entry)
    arrays = build()
    try:
        _write_entry(entry, arrays, {"task": task, "config": dict(config)})
    except OSError as exc:
        raise UserError(
            f"cannot write the cache entry {entry} ({exc.strerror or exc}); point "
            f"task.cache_dir (or ${CACHE_ENV}) at a writable folder with free space"
        ) from None
    return _read_entry(entry)
