"""Generated datasets written once, in a release layout, under the processed-data cache root.

The offline generators (`listops_gen`, `pathfinder_gen`) write files in the layout of the real
release and then read them back with the real loader. The files of one generator config live in

    <cache root>/<task>-release-<key>/      key = SHA-256 of (task, config), first 16 hex digits

so every config is generated once. The directory is written under a temporary name and renamed
into place when complete, so an interrupted generation is never mistaken for a finished one.
"""

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from common.atomic import write_directory_atomically
from tasks.cache import content_key, usable_root

log = logging.getLogger(__name__)

DONE = "generated.json"  # written last: its presence marks a complete directory


def release_key(task: str, config: Mapping) -> str:
    """The cache key of the task name and its generator config (`tasks.cache.content_key`)."""
    return content_key({"task": task, "config": dict(config)})


def generated_release(
    task: str, config: Mapping, write: Callable[[Path], None], cache_dir: str | None
) -> Path:
    """The directory holding `task`'s generated files for `config`, made by `write(dir)` once.

    config: JSON-serialisable generator options (everything that changes the files).
    write: fills the (empty, temporary) directory it is given.
    cache_dir: the cache root (see `tasks.cache.cache_root`); one that is a file is a `UserError`.
    """
    root = usable_root(cache_dir) / f"{task}-release-{release_key(task, config)}"
    if (root / DONE).is_file():
        log.info("reading generated %s from %s", task, root)
        return root
    log.info("generating %s into %s", task, root)

    def fill(tmp: Path) -> None:
        write(tmp)
        (tmp / DONE).write_text(json.dumps({"task": task, "config": dict(config)}, indent=1))

    write_directory_atomically(root, fill, DONE)
    return root
